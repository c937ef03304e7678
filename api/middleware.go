package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// reqState is what the middleware and the handlers share about one request.
type reqState struct {
	id        string
	accountID string
}

type stateKey struct{}

// stateOf returns the request's state; an empty one outside the server.
func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

func (st *reqState) requestID() string { return st.id }

// routeOf is the metrics and log label of a request: the matched mux
// pattern without its method, or "unmatched". Never the raw path (bounded
// cardinality; by_phone_number paths hold phone numbers).
func routeOf(r *http.Request) string {
	p := r.Pattern
	if p == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ServeHTTP runs every request through the request id, recovery, metrics
// and access log, then the mux. The mux's own 404 and 405 answers are
// replaced by the error envelope (see responseWriter.WriteHeader).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{id: s.requestID(r.Header.Get("X-Request-Id"))}
	w.Header().Set("X-Request-Id", st.id)
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	rw := &responseWriter{ResponseWriter: w, srv: s, req: r}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", st.id), slog.String("route", routeOf(r)),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			if !rw.wroteHeader {
				s.writeError(rw, r, errLogged) // never the panic value: it may hold internals
			}
		}
		s.finish(rw, r, st, start)
	}()
	if allow, err := literalRefusal(r); err != nil {
		if allow != "" {
			rw.Header().Set("Allow", allow)
		}
		s.writeError(rw, r, err)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// finish records the metrics and the access log line of a request.
func (s *Server) finish(rw *responseWriter, r *http.Request, st *reqState, start time.Time) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	d := time.Since(start)
	route, method := routeOf(r), methodLabel(r.Method)
	s.metrics.observeHTTP(route, method, status, d)
	attrs := [...]slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("request_id", st.id),
		slog.String("account_id", st.accountID),
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs[:]...)
}

// methodLabel bounds the method label to the methods the API knows.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete,
		http.MethodPut, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// requestID keeps a sane inbound X-Request-Id (1–128 characters of
// [A-Za-z0-9._:-]) and otherwise makes one: a per-process random prefix and
// a counter, unique without a random read per request.
func (s *Server) requestID(in string) string {
	if saneRequestID(in) {
		return in
	}
	var b [32]byte
	copy(b[:], s.ridPrefix)
	n := s.ridSeq.Add(1)
	return string(strconv.AppendUint(b[:len(s.ridPrefix)], n, 36))
}

func newRequestIDPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// responseWriter records the status for the log and metrics, and replaces
// the mux's plain-text 404/405 answers with the error envelope: when the
// mux matched no pattern (r.Pattern is empty) and answers 404 or 405, we
// write our own body and drop the mux's.
type responseWriter struct {
	http.ResponseWriter
	srv         *Server
	req         *http.Request
	status      int
	wroteHeader bool
	swallow     bool
}

func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	rw.status, rw.wroteHeader = code, true
	if rw.req.Pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		// The mux's fallback (http.Error): answer in our envelope on the
		// underlying writer and drop the plain-text body that follows.
		rw.swallow = true
		h := rw.ResponseWriter.Header()
		h.Del("X-Content-Type-Options")
		var err error = errRouteNotFound
		if code == http.StatusMethodNotAllowed {
			err = methodNotAllowed(rw.req.Method, h.Get("Allow"))
		}
		rw.srv.writeError(rw.ResponseWriter, rw.req, err)
		return
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.swallow {
		return len(p), nil
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// apiFunc is an authenticated API handler. A returned error is answered in
// the error envelope.
type apiFunc func(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error

// authed authenticates the bearer key (D4) and runs h with its account.
func (s *Server) authed(h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acct, err := s.svc.Authenticate(r.Context(), bearer(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		stateOf(r.Context()).accountID = acct.ID
		r = withEndUser(r) // D14 headers, bot-check token, SDK retry mark
		if err := h(w, r, acct); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// bearer returns the key of an "Authorization: Bearer <key>" header, or "".
func bearer(r *http.Request) string {
	const scheme = "bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}
