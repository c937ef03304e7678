package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/verifyd/verifyd"
)

// maxCallback caps a status callback body; Twilio's are well under 4 KiB.
const maxCallback = 64 << 10

// SignatureHeader carries Twilio's request signature.
const SignatureHeader = "X-Twilio-Signature"

// CallbackHandler returns the handler for the status callbacks of the
// messages s sent. Mount it (POST) where Config.CallbackURL points, e.g.
// "POST /callbacks/twilio/{name}". It answers 403 to a request without a
// valid X-Twilio-Signature, 413 to a body over 64 KiB, 200 to anything it
// took or chose to ignore (including a receipt for a message the sink does
// not know, so Twilio does not retry it forever), and 500 when the sink
// failed otherwise.
func (s *Sender) CallbackHandler(sink verifyd.ReceiptSink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if s.cfg.CallbackURL == "" {
			s.log.WarnContext(r.Context(), "twilio callback refused: no callback URL configured", "sender", s.cfg.Name)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCallback))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		params, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if !ValidSignature(s.cfg.AuthToken, s.cfg.CallbackURL, params, r.Header.Get(SignatureHeader)) {
			s.log.WarnContext(r.Context(), "twilio callback refused: bad or missing signature",
				"sender", s.cfg.Name, "remote", r.RemoteAddr)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rc := s.receipt(params)
		if rc == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err := sink.Receipt(r.Context(), rc); err != nil {
			if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
				s.log.WarnContext(r.Context(), "twilio receipt for an unknown message",
					"sender", s.cfg.Name, "sid", rc.ProviderMessageID, "status", rc.Status)
				w.WriteHeader(http.StatusOK)
				return
			}
			s.log.ErrorContext(r.Context(), "twilio receipt not recorded",
				"sender", s.cfg.Name, "sid", rc.ProviderMessageID, "err", err.Error())
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// receipt maps a callback to a receipt, or nil for a status that is not a
// carrier's final word (queued, sending, sent, accepted, …).
func (s *Sender) receipt(p url.Values) *verifyd.Receipt {
	sid := p.Get("MessageSid")
	if sid == "" {
		sid = p.Get("SmsSid")
	}
	status := p.Get("MessageStatus")
	if status == "" {
		status = p.Get("SmsStatus")
	}
	rc := &verifyd.Receipt{Sender: s.cfg.Name, ProviderMessageID: sid, At: s.cfg.Now().UTC()}
	switch status {
	case "delivered", "read":
		rc.Status = verifyd.DeliveryDelivered
	case "undelivered", "failed", "canceled":
		rc.Status = verifyd.DeliveryFailed
		rc.Cause = p.Get("ErrorCode")
		if rc.Cause == "" {
			rc.Cause = status
		}
	default:
		return nil
	}
	if sid == "" {
		return nil
	}
	return rc
}

// Signature is Twilio's request signature: base64 HMAC-SHA1, keyed with the
// auth token, over the full URL followed by every POST parameter name and
// value, in parameter-name order (values of a repeated name in value order).
func Signature(authToken, fullURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vs := slices.Clone(params[k])
		slices.Sort(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ValidSignature reports, in constant time, whether sig is Twilio's
// signature of the request. An empty sig is never valid.
func ValidSignature(authToken, fullURL string, params url.Values, sig string) bool {
	if sig == "" || authToken == "" {
		return false
	}
	want := Signature(authToken, fullURL, params)
	return subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1
}
