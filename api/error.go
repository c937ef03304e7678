package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/verifyd/verifyd"
)

// Error codes of the HTTP layer itself, next to the domain's codes in the
// one table below: they have no meaning outside HTTP.
const (
	ebadJSON       = "api_bad_json"   // 400 10015: body is not JSON, or not a JSON object
	etooLarge      = "api_too_large"  // 413 10015: body over maxBody
	emediaType     = "api_media_type" // 415 10014: Content-Type present and not JSON
	emethod        = "api_method"     // 405 10015: path exists, method does not
	errorsURLStart = "https://developers.telnyx.com/docs/overview/errors/"
)

// errorClass is how one error code goes on the wire.
type errorClass struct {
	status  int
	code    string // Telnyx numeric code, or a V-code (D6)
	title   string
	telnyx  bool // has a Telnyx docs page (meta.url)
	noRetry bool // V-coded 429: x-should-retry: false
}

// errorTable maps every error code to its HTTP status, wire code and title
// (API.md D1–D6, §7). Codes not in it are internal errors.
var errorTable = map[string]errorClass{
	verifyd.EINTERNAL:     {http.StatusInternalServerError, "10007", "Unexpected error", true, false},
	verifyd.EUNAVAILABLE:  {http.StatusServiceUnavailable, "10007", "Unexpected error", true, false},
	verifyd.ENOTFOUND:     {http.StatusNotFound, "10005", "Resource not found", true, false},
	verifyd.EINVALIDID:    {http.StatusBadRequest, "10006", "Invalid ID", true, false},
	verifyd.EINVALID:      {http.StatusUnprocessableEntity, "10015", "Bad Request", true, false},
	verifyd.EREQUIRED:     {http.StatusUnprocessableEntity, "10004", "Missing required parameter", true, false},
	verifyd.EPHONEFORMAT:  {http.StatusUnprocessableEntity, "10016", "Phone number must be in +E.164 format", true, false},
	verifyd.EPHONEINVALID: {http.StatusUnprocessableEntity, "10002", "Invalid phone number", true, false},
	verifyd.EREFERENCE:    {http.StatusUnprocessableEntity, "10017", "Associated resource does not exist", true, false},
	verifyd.EURL:          {http.StatusUnprocessableEntity, "10003", "Invalid URL", true, false},
	verifyd.EUNAUTHORIZED: {http.StatusUnauthorized, "10009", "Authentication failed", true, false},
	verifyd.EFORBIDDEN:    {http.StatusForbidden, "10010", "Authorization failed", true, false},
	verifyd.ECONFLICT:     {http.StatusConflict, "10012", "Duplicate resource", true, false},

	ebadJSON:   {http.StatusBadRequest, "10015", "Bad Request", true, false},
	etooLarge:  {http.StatusRequestEntityTooLarge, "10015", "Bad Request", true, false},
	emediaType: {http.StatusUnsupportedMediaType, "10014", "Unsupported Media Type", true, false},
	emethod:    {http.StatusMethodNotAllowed, "10015", "Bad Request", true, false},

	verifyd.EDESTINATION: {http.StatusUnprocessableEntity, "V0001", "Destination not allowed", false, false},
	verifyd.ENUMBERTYPE:  {http.StatusUnprocessableEntity, "V0002", "Number type blocked", false, false},
	verifyd.ERATELIMITED: {http.StatusTooManyRequests, "V0003", "Rate limited", false, true},
	verifyd.EPREFIXBLOCK: {http.StatusUnprocessableEntity, "V0004", "Prefix blocked by fraud guard", false, false},
	verifyd.ESPENDLIMIT:  {http.StatusUnprocessableEntity, "V0005", "Daily spend limit reached", false, false},
	verifyd.ENOTPENDING:  {http.StatusUnprocessableEntity, "V0006", "Verification not pending", false, false},
	verifyd.EMAXATTEMPTS: {http.StatusTooManyRequests, "V0007", "Max attempts exceeded", false, true},
	verifyd.EEXPIRED:     {http.StatusUnprocessableEntity, "V0008", "Verification expired", false, false},
	verifyd.ECHANNEL:     {http.StatusUnprocessableEntity, "V0009", "Channel not available", false, false},
	verifyd.ECAPTCHA:     {http.StatusForbidden, "V0010", "Bot check failed", false, false},
}

// internalDetail is what a client sees of an internal error.
const internalDetail = "An unexpected error occurred; it has been logged."

// errorList is several client errors answered together (e.g. every missing
// required field). All share the HTTP status of the first.
type errorList []*verifyd.Error

func (l errorList) Error() string { return l[0].Error() }

// Wire shapes of the error envelope (§7).
type errorEnvelope struct {
	Errors []errorObject `json:"errors"`
}

type errorObject struct {
	Code   string       `json:"code"`
	Title  string       `json:"title"`
	Detail string       `json:"detail,omitempty"`
	Source *errorSource `json:"source,omitempty"`
	Meta   *errorMeta   `json:"meta,omitempty"`
}

type errorSource struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

type errorMeta struct {
	URL string `json:"url"`
}

// writeError answers err in the Telnyx error envelope. Domain errors go out
// with their message; anything else is logged (with the request id) and
// answered as a 500 without its text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var list errorList
	if !errors.As(err, &list) {
		var e *verifyd.Error
		if !errors.As(err, &e) {
			s.logInternal(r, err)
			e = errLogged
		}
		list = errorList{e}
	}
	env := errorEnvelope{Errors: make([]errorObject, 0, len(list))}
	var first errorClass
	retryAfter := 0
	for i, e := range list {
		class, ok := errorTable[e.Code]
		if !ok || e.Code == verifyd.EINTERNAL {
			switch {
			case e == errLogged:
			case ok:
				s.logInternal(r, e)
			default:
				s.logInternal(r, errors.New("unmapped error code "+strconv.Quote(e.Code)+": "+e.Message))
			}
			e, class = errLogged, errorTable[verifyd.EINTERNAL]
		}
		if i == 0 {
			first = class
			retryAfter = e.RetryAfter
		}
		obj := errorObject{Code: class.code, Title: class.title, Detail: e.Message}
		if e.Pointer != "" || e.Parameter != "" {
			obj.Source = &errorSource{Pointer: e.Pointer, Parameter: e.Parameter}
		}
		if class.telnyx {
			obj.Meta = &errorMeta{URL: errorsURLStart + class.code}
		}
		env.Errors = append(env.Errors, obj)
	}
	h := w.Header()
	switch {
	case first.status == http.StatusTooManyRequests:
		h.Set("Retry-After", strconv.Itoa(max(retryAfter, 1)))
		if first.noRetry {
			h.Set("X-Should-Retry", "false")
		}
	case first.status == http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(max(retryAfter, 1)))
	case first.status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="verifyd"`)
	}
	writeJSON(w, first.status, &env)
}

// logInternal logs an error whose text must not reach the client.
func (s *Server) logInternal(r *http.Request, err error) {
	lvl := slog.LevelError
	if errors.Is(err, context.Canceled) {
		lvl = slog.LevelInfo // the client went away
	}
	st := stateOf(r.Context())
	s.log.LogAttrs(r.Context(), lvl, "internal error",
		slog.String("request_id", st.requestID()),
		slog.String("route", routeOf(r)),
		slog.String("error", err.Error()))
}

// errLogged answers an internal error that has been logged already (a
// non-domain error, a panic).
var errLogged = &verifyd.Error{Code: verifyd.EINTERNAL, Message: internalDetail}

// errRouteNotFound is the answer to an unknown route or an unserved feature
// (D1, D38).
var errRouteNotFound = &verifyd.Error{Code: verifyd.ENOTFOUND, Message: "The requested resource or route does not exist."}

// methodNotAllowed is the answer to a known path with another method (D1);
// the caller sets the Allow header.
func methodNotAllowed(method, allow string) error {
	return &verifyd.Error{Code: emethod, Message: "Method " + method + " is not allowed here; allowed: " + allow + "."}
}

// invalidID is the answer to a path ID that is not a UUID (D1).
func invalidID(param string) error {
	return &verifyd.Error{Code: verifyd.EINVALIDID, Message: "The " + param + " must be a UUID.", Parameter: param}
}

// checkID validates a UUID path parameter.
func checkID(r *http.Request, param string) (string, error) {
	id := r.PathValue(param)
	if !verifyd.ValidID(id) {
		return "", invalidID(param)
	}
	return id, nil
}
