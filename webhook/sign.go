// Package webhook delivers the event log to the profiles' webhook URLs:
// the Telnyx envelope, Ed25519 signatures the way Telnyx signs, a client
// that refuses internal addresses before it dials, and a deliverer that
// retries with backoff, fails over, and keeps slow receivers from slowing
// anything else.
package webhook

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/verifyd/verifyd"
)

// Header names of a Telnyx webhook signature (API.md §9.5).
const (
	HeaderSignature = "telnyx-signature-ed25519"
	HeaderTimestamp = "telnyx-timestamp"
)

// Sign returns the telnyx-timestamp and telnyx-signature-ed25519 header
// values for body sent at ts: the signature is Ed25519 over
// "<unix seconds>|<body>", in padded standard base64.
func Sign(priv ed25519.PrivateKey, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	msg := make([]byte, 0, len(timestamp)+1+len(body))
	msg = append(append(append(msg, timestamp...), '|'), body...)
	return timestamp, base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
}

// Verify checks a signature the way the Telnyx SDKs do: both headers
// present, the timestamp within tolerance of now, the signature 64 bytes
// of padded standard base64, valid over "<timestamp>|<body>".
func Verify(pub ed25519.PublicKey, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	if len(pub) != ed25519.PublicKeySize || timestamp == "" || signature == "" {
		return false
	}
	for _, c := range timestamp {
		if c < '0' || c > '9' {
			return false
		}
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, []byte(timestamp+"|"+string(body)), sig)
}

// PublicKeyString returns the public key the way Telnyx hands it out:
// padded standard base64 of the raw 32 bytes.
func PublicKeyString(pub []byte) string { return base64.StdEncoding.EncodeToString(pub) }

// envelope is the Telnyx v2 webhook body (API.md §9.3).
type envelope struct {
	Data struct {
		EventType  string          `json:"event_type"`
		ID         string          `json:"id"`
		OccurredAt string          `json:"occurred_at"`
		RecordType string          `json:"record_type"`
		Payload    json.RawMessage `json:"payload"`
	} `json:"data"`
	Meta struct {
		Attempt     int    `json:"attempt"`
		DeliveredTo string `json:"delivered_to"`
	} `json:"meta"`
}

// Body returns the webhook body of event e for one attempt to url.
func Body(e *verifyd.Event, attempt int, url string) []byte {
	var env envelope
	env.Data.EventType, env.Data.ID, env.Data.RecordType = e.Type, e.ID, "event"
	env.Data.OccurredAt = OccurredAt(e.OccurredAt)
	env.Data.Payload = e.Payload
	env.Meta.Attempt, env.Meta.DeliveredTo = attempt, url
	b, err := json.Marshal(&env)
	if err != nil {
		// Payload is JSON the store wrote from a struct; if it ever is not,
		// send the envelope with a null payload rather than nothing.
		env.Data.Payload = json.RawMessage("null")
		b, _ = json.Marshal(&env)
	}
	return b
}

// OccurredAt formats a webhook timestamp (D37): UTC, milliseconds, +00:00.
func OccurredAt(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+00:00") }
