package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/verifyd/verifyd"
)

// maxWebhook caps a webhook body.
const maxWebhook = 256 << 10

// Signature headers of Telnyx webhooks.
const (
	SignatureHeader = "telnyx-signature-ed25519"
	TimestampHeader = "telnyx-timestamp"
)

// ErrSignature is returned by Verify for a missing, malformed, stale or
// wrong signature.
var ErrSignature = errors.New("telnyx: bad webhook signature")

// Verify checks a webhook: sig is base64 of an Ed25519 signature by key
// over timestamp + "|" + body, and timestamp (Unix seconds) is within
// tolerance of now, either way.
func Verify(key ed25519.PublicKey, body []byte, sig, timestamp string, now time.Time, tolerance time.Duration) error {
	if len(key) != ed25519.PublicKeySize || sig == "" || timestamp == "" {
		return ErrSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrSignature
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return ErrSignature
	}
	msg := make([]byte, 0, len(timestamp)+1+len(body))
	msg = append(append(append(msg, timestamp...), '|'), body...)
	if !ed25519.Verify(key, msg, raw) {
		return ErrSignature
	}
	return nil
}

// event is the part of a message webhook we read.
type event struct {
	Data struct {
		EventType  string `json:"event_type"`
		OccurredAt string `json:"occurred_at"`
		Payload    struct {
			ID          string      `json:"id"`
			To          []recipient `json:"to"`
			Errors      []apiError  `json:"errors"`
			CompletedAt string      `json:"completed_at"`
		} `json:"payload"`
	} `json:"data"`
}

// WebhookHandler returns the handler for the message webhooks of the
// messages s sent. Mount it (POST) where Config.WebhookURL points, e.g.
// "POST /callbacks/telnyx/{name}". It answers 403 to a request without a
// valid, fresh signature (and to everything when no public key is
// configured), 413 to a body over 256 KiB, 400 to a signed body that is not
// JSON, 200 to anything it took or chose to ignore (including a receipt for
// a message the sink does not know), and 500 when the sink failed otherwise.
func (s *Sender) WebhookHandler(sink verifyd.ReceiptSink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhook))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if s.key == nil {
			s.log.WarnContext(r.Context(), "telnyx webhook refused: no public key configured", "sender", s.cfg.Name)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if err := Verify(s.key, body, r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader), s.cfg.Now(), s.cfg.Tolerance); err != nil {
			s.log.WarnContext(r.Context(), "telnyx webhook refused: bad, stale or missing signature",
				"sender", s.cfg.Name, "remote", r.RemoteAddr, "timestamp", r.Header.Get(TimestampHeader))
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		rc := s.receipt(&ev)
		if rc == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err := sink.Receipt(r.Context(), rc); err != nil {
			if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
				s.log.WarnContext(r.Context(), "telnyx receipt for an unknown message",
					"sender", s.cfg.Name, "id", rc.ProviderMessageID, "status", rc.Status)
				w.WriteHeader(http.StatusOK)
				return
			}
			s.log.ErrorContext(r.Context(), "telnyx receipt not recorded",
				"sender", s.cfg.Name, "id", rc.ProviderMessageID, "err", err.Error())
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// receipt maps a message.sent or message.finalized event to a receipt, or
// nil for anything that is not a carrier's final word.
func (s *Sender) receipt(ev *event) *verifyd.Receipt {
	d := &ev.Data
	if d.EventType != "message.sent" && d.EventType != "message.finalized" {
		return nil
	}
	if d.Payload.ID == "" || len(d.Payload.To) == 0 {
		return nil
	}
	rc := &verifyd.Receipt{Sender: s.cfg.Name, ProviderMessageID: d.Payload.ID}
	switch st := d.Payload.To[0].Status; st {
	case "delivered":
		rc.Status = verifyd.DeliveryDelivered
	case "delivery_failed", "sending_failed":
		rc.Status = verifyd.DeliveryFailed
		rc.Cause = st
		if len(d.Payload.Errors) > 0 && d.Payload.Errors[0].Code != "" {
			rc.Cause = string(d.Payload.Errors[0].Code)
		}
	case "delivery_unconfirmed":
		rc.Status = verifyd.DeliveryUnconfirmed
	default:
		return nil
	}
	rc.At = s.cfg.Now().UTC()
	for _, t := range []string{d.Payload.CompletedAt, d.OccurredAt} {
		if at, err := time.Parse(time.RFC3339Nano, t); err == nil {
			rc.At = at.UTC()
			break
		}
	}
	return rc
}
