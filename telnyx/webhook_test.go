package telnyx_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/telnyx"
)

// sink records receipts and answers with err.
type sink struct {
	mu  sync.Mutex
	got []verifyd.Receipt
	err error
}

func (s *sink) Receipt(_ context.Context, r *verifyd.Receipt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, *r)
	return s.err
}

func (s *sink) receipts() []verifyd.Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]verifyd.Receipt(nil), s.got...)
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type keys struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newKeys(t *testing.T) keys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keys{pub, priv}
}

// signHeaders signs body at ts the way Telnyx does, independently of the
// package.
func (k keys) signHeaders(body []byte, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sig := ed25519.Sign(k.priv, append([]byte(stamp+"|"), body...))
	h := http.Header{}
	h.Set("telnyx-signature-ed25519", base64.StdEncoding.EncodeToString(sig))
	h.Set("telnyx-timestamp", stamp)
	return h
}

func webhookSender(t *testing.T, pub ed25519.PublicKey, logs *bytes.Buffer) *telnyx.Sender {
	t.Helper()
	cfg := telnyx.Config{Name: "telnyx-eu", APIKey: testKey, From: "+15550001111",
		Now: func() time.Time { return now }}
	if pub != nil {
		cfg.PublicKey = base64.StdEncoding.EncodeToString(pub)
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return mustNew(t, cfg)
}

func eventBody(eventType, status, errorsJSON string) []byte {
	if errorsJSON == "" {
		errorsJSON = "[]"
	}
	return fmt.Appendf(nil, `{"data":{"event_type":%q,"id":"4ee8c3a6-4995-4309-a3c6-38e3db9ea4be","occurred_at":"2026-03-01T11:59:58.5+00:00",
 "payload":{"id":"msg-7","direction":"outbound","to":[{"phone_number":"+15551234567","status":%q,"carrier":"T-Mobile USA"}],
 "errors":%s,"completed_at":"2026-03-01T11:59:57.25+00:00","parts":1},"record_type":"event"},
 "meta":{"attempt":1,"delivered_to":"https://verifyd.example/callbacks/telnyx/telnyx-eu"}}`, eventType, status, errorsJSON)
}

func deliver(h http.Handler, body []byte, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/callbacks/telnyx/telnyx-eu", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestWebhookHandler_Receipts(t *testing.T) {
	completed := time.Date(2026, 3, 1, 11, 59, 57, 250e6, time.UTC)
	for _, tc := range []struct {
		name, event, status, errs string
		want                      *verifyd.Receipt
	}{
		{"Delivered", "message.finalized", "delivered", "",
			&verifyd.Receipt{Sender: "telnyx-eu", ProviderMessageID: "msg-7", Status: verifyd.DeliveryDelivered, At: completed}},
		{"DeliveryFailed", "message.finalized", "delivery_failed", `[{"code":"40008","title":"Undeliverable"}]`,
			&verifyd.Receipt{Sender: "telnyx-eu", ProviderMessageID: "msg-7", Status: verifyd.DeliveryFailed, Cause: "40008", At: completed}},
		{"SendingFailedNoCode", "message.sent", "sending_failed", "",
			&verifyd.Receipt{Sender: "telnyx-eu", ProviderMessageID: "msg-7", Status: verifyd.DeliveryFailed, Cause: "sending_failed", At: completed}},
		{"Unconfirmed", "message.finalized", "delivery_unconfirmed", "",
			&verifyd.Receipt{Sender: "telnyx-eu", ProviderMessageID: "msg-7", Status: verifyd.DeliveryUnconfirmed, At: completed}},
		{"Sent", "message.sent", "sent", "", nil},
		{"Received", "message.received", "webhook_delivered", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeys(t)
			snk := &sink{}
			body := eventBody(tc.event, tc.status, tc.errs)
			rec := deliver(webhookSender(t, k.pub, nil).WebhookHandler(snk), body, k.signHeaders(body, now.Add(-2*time.Second)))
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200 (%s)", rec.Code, rec.Body)
			}
			got := snk.receipts()
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("receipts = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0] != *tc.want {
				t.Fatalf("receipts = %+v, want %+v", got, *tc.want)
			}
		})
	}
}

func TestWebhookHandler_Refused(t *testing.T) {
	k := newKeys(t)
	other := newKeys(t)
	body := eventBody("message.finalized", "delivered", "")
	good := k.signHeaders(body, now)
	without := func(name string) http.Header {
		h := good.Clone()
		h.Del(name)
		return h
	}
	for _, tc := range []struct {
		name string
		body []byte
		hdr  http.Header
	}{
		{"MissingSignature", body, without("telnyx-signature-ed25519")},
		{"MissingTimestamp", body, without("telnyx-timestamp")},
		{"NoHeaders", body, http.Header{}},
		{"TamperedBody", bytes.Replace(body, []byte(`"delivered"`), []byte(`"delivery_failed"`), 1), good},
		{"WrongKey", body, other.signHeaders(body, now)},
		{"Stale", body, k.signHeaders(body, now.Add(-5*time.Minute-time.Second))},
		{"FarFuture", body, k.signHeaders(body, now.Add(6*time.Minute))},
		{"TimestampSwapped", body, func() http.Header {
			h := k.signHeaders(body, now.Add(-time.Minute))
			h.Set("telnyx-timestamp", strconv.FormatInt(now.Unix(), 10))
			return h
		}()},
		{"NotBase64", body, func() http.Header { h := good.Clone(); h.Set("telnyx-signature-ed25519", "%%%"); return h }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			snk := &sink{}
			rec := deliver(webhookSender(t, k.pub, &logs).WebhookHandler(snk), tc.body, tc.hdr)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", rec.Code)
			}
			if n := len(snk.receipts()); n != 0 {
				t.Fatalf("sink got %d receipts", n)
			}
			if strings.Contains(logs.String(), testKey) {
				t.Fatalf("log leaks the API key: %s", logs.String())
			}
		})
	}
}

func TestWebhookHandler_WithinTolerance(t *testing.T) {
	k := newKeys(t)
	snk := &sink{}
	body := eventBody("message.finalized", "delivered", "")
	// 4m59s old, under the default 5 min.
	rec := deliver(webhookSender(t, k.pub, nil).WebhookHandler(snk), body, k.signHeaders(body, now.Add(-299*time.Second)))
	if rec.Code != http.StatusOK || len(snk.receipts()) != 1 {
		t.Fatalf("status = %d, receipts = %d", rec.Code, len(snk.receipts()))
	}
}

func TestWebhookHandler_NoPublicKey(t *testing.T) {
	k := newKeys(t)
	snk := &sink{}
	body := eventBody("message.finalized", "delivered", "")
	rec := deliver(webhookSender(t, nil, nil).WebhookHandler(snk), body, k.signHeaders(body, now))
	if rec.Code != http.StatusForbidden || len(snk.receipts()) != 0 {
		t.Fatalf("status = %d, receipts = %d; want 403 and none", rec.Code, len(snk.receipts()))
	}
}

func TestWebhookHandler_SinkErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
		log  string
	}{
		{"Unknown", verifyd.ErrNotFound, http.StatusOK, "unknown message"},
		{"Unavailable", verifyd.ErrUnavailable, http.StatusInternalServerError, "not recorded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			k := newKeys(t)
			snk := &sink{err: tc.err}
			body := eventBody("message.finalized", "delivered", "")
			rec := deliver(webhookSender(t, k.pub, &logs).WebhookHandler(snk), body, k.signHeaders(body, now))
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d", rec.Code, tc.want)
			}
			if len(snk.receipts()) != 1 {
				t.Fatal("sink not called")
			}
			if !strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), "msg-7") {
				t.Fatalf("log = %q, want %q", logs.String(), tc.log)
			}
		})
	}
}

func TestWebhookHandler_BodyCapped(t *testing.T) {
	k := newKeys(t)
	snk := &sink{}
	body := append(eventBody("message.finalized", "delivered", ""), bytes.Repeat([]byte(" "), 300<<10)...)
	rec := deliver(webhookSender(t, k.pub, nil).WebhookHandler(snk), body, k.signHeaders(body, now))
	if rec.Code != http.StatusRequestEntityTooLarge || len(snk.receipts()) != 0 {
		t.Fatalf("status = %d, receipts = %d; want 413 and none", rec.Code, len(snk.receipts()))
	}
}

// A real round trip over loopback HTTP.
func TestWebhookHandler_OverHTTP(t *testing.T) {
	k := newKeys(t)
	snk := &sink{}
	mux := http.NewServeMux()
	mux.Handle("POST /callbacks/telnyx/telnyx-eu", webhookSender(t, k.pub, nil).WebhookHandler(snk))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	body := eventBody("message.finalized", "delivery_failed", `[{"code":40002,"title":"Blocked as spam"}]`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/callbacks/telnyx/telnyx-eu", bytes.NewReader(body))
	for key, v := range k.signHeaders(body, now) {
		req.Header[key] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := snk.receipts()
	if resp.StatusCode != http.StatusOK || len(got) != 1 || got[0].Status != verifyd.DeliveryFailed || got[0].Cause != "40002" {
		t.Fatalf("status = %d, receipts = %+v", resp.StatusCode, got)
	}
}

func TestVerify(t *testing.T) {
	k := newKeys(t)
	body := []byte(`{"data":{}}`)
	h := k.signHeaders(body, now)
	if err := telnyx.Verify(k.pub, body, h.Get("telnyx-signature-ed25519"), h.Get("telnyx-timestamp"), now, time.Minute); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if err := telnyx.Verify(k.pub, body, h.Get("telnyx-signature-ed25519"), h.Get("telnyx-timestamp"), now.Add(2*time.Minute), time.Minute); err == nil {
		t.Fatal("Verify accepted a stale timestamp")
	}
}
