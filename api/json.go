package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/verifyd/verifyd"
)

// maxBody caps every request body (D3).
const maxBody = 64 << 10

// bufPool holds buffers for request bodies and encoded responses. Buffers
// that grew past maxPooled are dropped rather than pinned.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooled = 256 << 10

func getBuf() *bytes.Buffer { b := bufPool.Get().(*bytes.Buffer); b.Reset(); return b }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooled {
		bufPool.Put(b)
	}
}

// writeJSON encodes v into a pooled buffer and writes it with status. Every
// response carries Content-Type: application/json (§2.3).
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := getBuf()
	defer putBuf(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	h := w.Header()
	if err := enc.Encode(v); err != nil {
		// Only a programming error (an unencodable value) gets here.
		buf.Reset()
		buf.WriteString(`{"errors":[{"code":"10007","title":"Unexpected error","detail":"` + internalDetail +
			`","meta":{"url":"` + errorsURLStart + `10007"}}]}` + "\n")
		status = http.StatusInternalServerError
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// data is the single-resource envelope {"data": ...}.
type data[T any] struct {
	Data T `json:"data"`
}

// decode reads the JSON object body of r into dst (a pointer to a struct or
// to a map[string]any), applying D3 in order: Content-Type, size, syntax,
// object-ness, field types. An empty body decodes as {}. Unknown keys are
// ignored.
func decode(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		return &verifyd.Error{Code: emediaType, Message: "Content-Type must be application/json."}
	}
	if r.ContentLength > maxBody {
		return errTooLarge
	}
	buf := getBuf()
	defer putBuf(buf)
	if r.Body != nil {
		n, err := buf.ReadFrom(io.LimitReader(r.Body, maxBody+1))
		if n > maxBody {
			return errTooLarge
		}
		if err != nil {
			return &verifyd.Error{Code: ebadJSON, Message: "The request body could not be read."}
		}
	}
	return decodeBytes(buf.Bytes(), dst)
}

var errTooLarge = &verifyd.Error{Code: etooLarge, Message: "The request body is larger than 64 KiB."}

// decodeBytes is decode after the body has been read.
func decodeBytes(body []byte, dst any) error {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		if json.Valid(body) {
			return &verifyd.Error{Code: ebadJSON, Message: "The request body must be a JSON object."}
		}
		return &verifyd.Error{Code: ebadJSON, Message: "The request body is not valid JSON."}
	}
	err := json.Unmarshal(body, dst)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &verifyd.Error{Code: ebadJSON, Message: "The request body is not valid JSON: " + syn.Error() + "."}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return &verifyd.Error{Code: ebadJSON, Message: "The request body must be a JSON object."}
		}
		ptr := "/" + strings.ReplaceAll(te.Field, ".", "/")
		return &verifyd.Error{Code: verifyd.EINVALID, Pointer: ptr,
			Message: te.Field + " must be " + jsonTypeName(te.Type) + "."}
	}
	return &verifyd.Error{Code: ebadJSON, Message: "The request body is not valid JSON."}
}

// jsonTypeName names a Go kind the way a JSON client thinks of it.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind().String() {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "of another type"
}

// isJSONMediaType reports whether a Content-Type value names JSON:
// application/json or any */*+json, parameters ignored.
func isJSONMediaType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if strings.EqualFold(ct, "application/json") {
		return true
	}
	slash := strings.IndexByte(ct, '/')
	return slash > 0 && len(ct) > slash+6 && strings.EqualFold(ct[len(ct)-5:], "+json")
}

// required returns an errorList of EREQUIRED errors for every named field
// whose presence flag is false, or nil.
func required(fields ...requiredField) error {
	var list errorList
	for _, f := range fields {
		if !f.present {
			list = append(list, &verifyd.Error{Code: verifyd.EREQUIRED,
				Message: f.name + " is required.", Pointer: "/" + f.name})
		}
	}
	if list == nil {
		return nil
	}
	return list
}

type requiredField struct {
	name    string
	present bool
}
