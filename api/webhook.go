package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/webhook"
)

// webhookDeliveryJSON is one entry of the delivery log (verifyd extension,
// modelled on Telnyx's webhook_deliveries).
type webhookDeliveryJSON struct {
	ID                 string               `json:"id"` // the event's data.id
	RecordType         string               `json:"record_type"`
	Status             string               `json:"status"` // pending, delivered, failed
	EventType          string               `json:"event_type"`
	OccurredAt         string               `json:"occurred_at"`
	VerificationID     string               `json:"verification_id"`
	AttemptsMade       int                  `json:"attempts_made"`
	NextAttemptAt      *string              `json:"next_attempt_at"`
	LastError          *string              `json:"last_error"`
	WebhookURL         *string              `json:"webhook_url"`
	WebhookFailoverURL *string              `json:"webhook_failover_url"`
	UpdatedAt          *string              `json:"updated_at"`
	Payload            json.RawMessage      `json:"payload"`
	Attempts           []webhookAttemptJSON `json:"attempts,omitempty"`
}

type webhookAttemptJSON struct {
	Attempt      int     `json:"attempt"`
	URL          string  `json:"url"`
	StartedAt    string  `json:"started_at"`
	StatusCode   *int    `json:"status_code"`
	LatencyMS    float64 `json:"latency_ms"`
	Error        *string `json:"error"`
	ResponseHead string  `json:"response_body_head"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toDelivery(d *verifyd.WebhookDelivery, attempts []*verifyd.WebhookAttempt) webhookDeliveryJSON {
	out := webhookDeliveryJSON{ID: d.Event.ID, RecordType: "webhook_delivery", Status: d.State,
		EventType: d.Event.Type, OccurredAt: webhook.OccurredAt(d.Event.OccurredAt),
		VerificationID: d.Event.VerificationID, AttemptsMade: d.Attempts, LastError: optString(d.LastError),
		WebhookURL: optString(d.URL), WebhookFailoverURL: optString(d.FailoverURL), Payload: d.Event.Payload}
	if d.State == verifyd.WebhookPending && !d.NextAt.IsZero() {
		out.NextAttemptAt = optString(verifyd.FormatTime(d.NextAt))
	}
	if !d.UpdatedAt.IsZero() {
		out.UpdatedAt = optString(verifyd.FormatTime(d.UpdatedAt))
	}
	if len(out.Payload) == 0 {
		out.Payload = json.RawMessage("null")
	}
	for _, a := range attempts {
		aj := webhookAttemptJSON{Attempt: a.Attempt, URL: a.URL, StartedAt: verifyd.FormatTime(a.At),
			LatencyMS: float64(a.Latency.Microseconds()) / 1000, Error: optString(a.Error), ResponseHead: a.ResponseHead}
		if a.StatusCode != 0 {
			code := a.StatusCode
			aj.StatusCode = &code
		}
		out.Attempts = append(out.Attempts, aj)
	}
	return out
}

// webhookFilter reads filter[status], filter[event_type],
// filter[verification_id], filter[occurred_at][gte] and
// filter[occurred_at][lt] (RFC 3339).
func webhookFilter(get func(string) (string, bool), prefix, suffix string) (verifyd.WebhookFilter, error) {
	var f verifyd.WebhookFilter
	name := func(k string) string { return prefix + k + suffix }
	if v, ok := get("status"); ok {
		switch v {
		case verifyd.WebhookPending, verifyd.WebhookDelivered, verifyd.WebhookFailed:
			f.State = v
		default:
			return f, &verifyd.Error{Code: verifyd.EINVALID, Parameter: name("status"),
				Message: "status must be one of pending, delivered, failed."}
		}
	}
	if v, ok := get("event_type"); ok {
		f.EventType = v
	}
	if v, ok := get("verification_id"); ok {
		if !verifyd.ValidID(v) {
			return f, invalidID(name("verification_id"))
		}
		f.VerificationID = v
	}
	for _, b := range []struct {
		key string
		dst *time.Time
	}{{"occurred_at][gte", &f.From}, {"occurred_at][lt", &f.To}} {
		if v, ok := get(b.key); ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, &verifyd.Error{Code: verifyd.EINVALID, Parameter: name(b.key),
					Message: "occurred_at bounds must be RFC 3339 times, e.g. 2026-01-31T09:00:00Z."}
			}
			*b.dst = t
		}
	}
	return f, nil
}

func queryGetter(q url.Values) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := q["filter["+k+"]"]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
}

// handleWebhookDeliveryList handles GET /v2/webhook_deliveries.
func (s *Server) handleWebhookDeliveryList(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	q := r.URL.Query()
	p, err := parsePage(q)
	if err != nil {
		return err
	}
	f, err := webhookFilter(queryGetter(q), "filter[", "]")
	if err != nil {
		return err
	}
	f.Offset, f.Limit = p.offset(), p.size
	ds, total, err := s.svc.ListWebhookDeliveries(r.Context(), acct, f)
	if err != nil {
		return err
	}
	out := list[webhookDeliveryJSON]{Data: make([]webhookDeliveryJSON, len(ds)), Meta: p.meta(total)}
	for i, d := range ds {
		out.Data[i] = toDelivery(d, nil)
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// handleWebhookDeliveryGet handles GET /v2/webhook_deliveries/{id}.
func (s *Server) handleWebhookDeliveryGet(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "id")
	if err != nil {
		return err
	}
	d, attempts, err := s.svc.GetWebhookDelivery(r.Context(), acct, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[webhookDeliveryJSON]{toDelivery(d, attempts)})
	return nil
}

// handleWebhookRedeliver handles POST /v2/webhook_deliveries/{id}/actions/redeliver.
func (s *Server) handleWebhookRedeliver(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "id")
	if err != nil {
		return err
	}
	d, err := s.svc.RedeliverWebhook(r.Context(), acct, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[webhookDeliveryJSON]{toDelivery(d, nil)})
	return nil
}

// handleWebhookRedeliverMany handles POST
// /v2/webhook_deliveries/actions/redeliver with a body
// {"filter": {"status": "failed", "occurred_at": {"gte": ..., "lt": ...}, ...}}:
// a new round for every finished delivery matching (failed by default).
func (s *Server) handleWebhookRedeliverMany(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	var body struct {
		Filter struct {
			Status         *string `json:"status"`
			EventType      *string `json:"event_type"`
			VerificationID *string `json:"verification_id"`
			OccurredAt     struct {
				GTE *string `json:"gte"`
				LT  *string `json:"lt"`
			} `json:"occurred_at"`
		} `json:"filter"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	fl := body.Filter
	vals := map[string]*string{"status": fl.Status, "event_type": fl.EventType,
		"verification_id": fl.VerificationID, "occurred_at][gte": fl.OccurredAt.GTE, "occurred_at][lt": fl.OccurredAt.LT}
	f, err := webhookFilter(func(k string) (string, bool) {
		if v := vals[k]; v != nil {
			return *v, true
		}
		return "", false
	}, "filter[", "]")
	if err != nil {
		return err
	}
	if f.State == verifyd.WebhookPending {
		return &verifyd.Error{Code: verifyd.EINVALID, Pointer: "/filter/status",
			Message: "Only delivered or failed deliveries can be redelivered."}
	}
	n, err := s.svc.RedeliverWebhooks(r.Context(), acct, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[map[string]any]{map[string]any{"record_type": "webhook_redelivery", "redelivered": n}})
	return nil
}

type webhookKeyJSON struct {
	ID         string `json:"id"`
	RecordType string `json:"record_type"`
	PublicKey  string `json:"public_key"`
	Status     string `json:"status"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`
}

// handleWebhookKeys handles GET /v2/webhook_keys: the account's Ed25519
// public keys (D35), the active one signing, a "next" one published ahead
// of a rotation.
func (s *Server) handleWebhookKeys(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	ks, err := s.svc.WebhookKeys(r.Context(), acct.ID)
	if err != nil {
		return err
	}
	out := make([]webhookKeyJSON, len(ks))
	for i, k := range ks {
		out[i] = webhookKeyJSON{ID: k.ID, RecordType: "webhook_key", PublicKey: webhook.PublicKeyString(k.PublicKey),
			Status: k.State, CreatedAt: verifyd.FormatTime(k.CreatedAt), UpdatedAt: verifyd.FormatTime(k.UpdatedAt)}
	}
	writeJSON(w, http.StatusOK, data[[]webhookKeyJSON]{out})
	return nil
}
