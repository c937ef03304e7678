// Package verifyd holds the domain of the verifyd phone-verification service:
// its types, its one error type, and the small interfaces (Store, Sender,
// Clock) the adapters plug into. It imports only the standard library.
package verifyd

import (
	"errors"
	"fmt"
)

// Error codes. The API layer maps each code to an HTTP status and a Telnyx
// error code in one table; the core never knows about HTTP.
const (
	EINTERNAL     = "internal"      // 500 10007
	EUNAVAILABLE  = "unavailable"   // 503 10007 (database down, shutting down)
	ENOTFOUND     = "not_found"     // 404 10005
	EINVALIDID    = "invalid_id"    // 400 10006
	EINVALID      = "invalid"       // 422 10015 (wrong type, range or pattern)
	EREQUIRED     = "required"      // 422 10004 (missing required field)
	EPHONEFORMAT  = "phone_format"  // 422 10016
	EPHONEINVALID = "phone_invalid" // 422 10002
	EREFERENCE    = "reference"     // 422 10017 (body names a missing profile/template)
	EURL          = "url"           // 422 10003
	EUNAUTHORIZED = "unauthorized"  // 401 10009
	EFORBIDDEN    = "forbidden"     // 403 10010
	ECONFLICT     = "conflict"      // 409 10012

	// verifyd refusal codes (API.md D6).
	EDESTINATION = "V0001"
	ENUMBERTYPE  = "V0002"
	ERATELIMITED = "V0003"
	EPREFIXBLOCK = "V0004"
	ESPENDLIMIT  = "V0005"
	ENOTPENDING  = "V0006"
	EMAXATTEMPTS = "V0007"
	EEXPIRED     = "V0008"
	ECHANNEL     = "V0009"
	ECAPTCHA     = "V0010" // the bot check (CAPTCHA) failed
)

// Error is the one domain error type. Message is safe to show to a client;
// Pointer and Parameter locate the offending input (JSON pointer into the
// body, or a path/query parameter name). RetryAfter, when set, tells the
// client how many seconds to wait.
type Error struct {
	Code       string
	Message    string
	Pointer    string
	Parameter  string
	RetryAfter int
}

func (e *Error) Error() string {
	return fmt.Sprintf("verifyd error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns a domain error with a formatted client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// At returns a copy of e that points at a body field.
func (e *Error) At(pointer string) *Error { c := *e; c.Pointer = pointer; return &c }

// Param returns a copy of e that names a path or query parameter.
func (e *Error) Param(name string) *Error { c := *e; c.Parameter = name; return &c }

// ErrorCode returns the code of a domain error, EINTERNAL for any other
// non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of a domain error, and a
// generic text for any other error (whose text may hold internals).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrNotFound is the shared not-found error: a missing ID and an ID of another
// account look the same (API.md D1).
var ErrNotFound = &Error{Code: ENOTFOUND, Message: "Resource not found."}

// ErrUnavailable is returned by stores when the database cannot be reached.
var ErrUnavailable = &Error{Code: EUNAVAILABLE, Message: "Service temporarily unavailable; retry shortly."}
