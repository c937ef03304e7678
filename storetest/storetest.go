// Package storetest is the conformance suite every verifyd.Store must pass.
//
// A store package runs it from a test:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB) verifyd.Store {
//			s, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "verifyd.db"))
//			...
//			tb.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// open must return a new, empty store each time it is called; subtests run
// in parallel. Every time the suite uses derives from T0 and has microsecond
// precision: stores must round-trip times with at least that precision, in
// UTC. The suite never sleeps.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// T0 is the time base of the suite: UTC, microsecond precision.
var T0 = time.Date(2026, time.March, 14, 9, 26, 53, 589793000, time.UTC)

// Opener returns a new, empty store, closed by a tb.Cleanup it registers.
type Opener func(tb testing.TB) verifyd.Store

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open func(tb testing.TB) verifyd.Store) {
	t.Run("Account", func(t *testing.T) { testAccount(t, open) })
	t.Run("APIKey", func(t *testing.T) { testAPIKey(t, open) })
	t.Run("Profile", func(t *testing.T) { testProfile(t, open) })
	t.Run("Template", func(t *testing.T) { testTemplate(t, open) })
	t.Run("Verification", func(t *testing.T) { testVerification(t, open) })
	t.Run("Attempt", func(t *testing.T) { testAttempt(t, open) })
	t.Run("Job", func(t *testing.T) { testJob(t, open) })
	t.Run("HandOff", func(t *testing.T) { testHandOff(t, open) })
	t.Run("Receipt", func(t *testing.T) { testReceipt(t, open) })
	t.Run("Delivery", func(t *testing.T) { testDelivery(t, open) })
	t.Run("Event", func(t *testing.T) { testEvent(t, open) })
	t.Run("Webhook", func(t *testing.T) { testWebhook(t, open) })
	t.Run("Maintenance", func(t *testing.T) { testMaintenance(t, open) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open) })
	t.Run("Ping", func(t *testing.T) {
		t.Parallel()
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// subtest runs f as a parallel subtest with a fresh store.
func subtest(t *testing.T, open Opener, name string, f func(t *testing.T, s verifyd.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(t, open(t))
	})
}

// MustCreateAccount creates an account created at T0.
func MustCreateAccount(tb testing.TB, s verifyd.Store) *verifyd.Account {
	tb.Helper()
	id := verifyd.NewID()
	a := &verifyd.Account{ID: id, Name: "account " + id[:8], CreatedAt: T0}
	if err := s.CreateAccount(context.Background(), a); err != nil {
		tb.Fatalf("CreateAccount: %v", err)
	}
	return a
}

// KeyHash is the hash under which MustCreateAPIKey stores secret.
func KeyHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// MustCreateAPIKey creates a key of accountID for secret, created at at.
func MustCreateAPIKey(tb testing.TB, s verifyd.Store, accountID, secret string, at time.Time) *verifyd.APIKey {
	tb.Helper()
	k := &verifyd.APIKey{ID: verifyd.NewID(), AccountID: accountID, Name: "key " + secret,
		Prefix: secret[:min(len(secret), 6)], Hash: KeyHash(secret), CreatedAt: at}
	if err := s.CreateAPIKey(context.Background(), k); err != nil {
		tb.Fatalf("CreateAPIKey: %v", err)
	}
	return k
}

// MustCreateProfile creates a profile of accountID named name, created at
// at, after applying mods to it.
func MustCreateProfile(tb testing.TB, s verifyd.Store, accountID, name string, at time.Time, mods ...func(*verifyd.Profile)) *verifyd.Profile {
	tb.Helper()
	p := &verifyd.Profile{ID: verifyd.NewID(), AccountID: accountID, Name: name,
		// A webhook, so that its verifications record their events (a
		// profile without one records none: noWebhook).
		WebhookURL: defaultWebhook,
		Channels:   map[verifyd.Channel]map[string]any{verifyd.SMS: {"code_length": float64(6)}},
		CreatedAt:  at, UpdatedAt: at}
	for _, m := range mods {
		m(p)
	}
	if err := s.CreateProfile(context.Background(), p); err != nil {
		tb.Fatalf("CreateProfile: %v", err)
	}
	return p
}

// defaultWebhook is the webhook_url of the profiles MustCreateProfile
// creates.
const defaultWebhook = "https://hooks.example/default"

// noWebhook is a MustCreateProfile option: the profile has no webhook_url.
func noWebhook(p *verifyd.Profile) { p.WebhookURL, p.WebhookFailoverURL = "", "" }

// MustCreateTemplate creates a template of accountID created at at.
func MustCreateTemplate(tb testing.TB, s verifyd.Store, accountID, text string, at time.Time) *verifyd.Template {
	tb.Helper()
	t := &verifyd.Template{ID: verifyd.NewID(), AccountID: accountID, Text: text, CreatedAt: at, UpdatedAt: at}
	if err := s.CreateTemplate(context.Background(), t); err != nil {
		tb.Fatalf("CreateTemplate: %v", err)
	}
	return t
}

// NewVerification returns a pending SMS verification of profile p for phone,
// created at now, expiring 300s later.
func NewVerification(p *verifyd.Profile, phone string, now time.Time) *verifyd.Verification {
	id := verifyd.NewID()
	return &verifyd.Verification{
		ID: id, AccountID: p.AccountID, ProfileID: p.ID, Type: verifyd.SMS, PhoneNumber: phone,
		CodeHash: []byte("hmac-of-" + id), TimeoutSecs: 300, Status: verifyd.StatusPending,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(300 * time.Second),
	}
}

// NewJob returns the delivery job of v, due at now.
func NewJob(v *verifyd.Verification, now time.Time) *verifyd.Job {
	return &verifyd.Job{
		ID: verifyd.NewOrderedID(), Kind: verifyd.JobDeliver, AccountID: v.AccountID, VerificationID: v.ID,
		Payload: []byte("sealed " + v.ID), MaxAttempts: 5, State: verifyd.JobAvailable, RunAt: now, CreatedAt: now,
	}
}

// NewHandOff returns v's delivery job as a worker hands it off at now:
// inserted running, leased to worker until now+lease, attempt 1.
func NewHandOff(v *verifyd.Verification, now time.Time, worker string, lease time.Duration) *verifyd.Job {
	j := NewJob(v, now)
	j.State, j.LockedBy, j.LockedUntil, j.Attempt = verifyd.JobRunning, worker, now.Add(lease), 1
	return j
}

// MustCreateVerification creates v with its delivery job at v.CreatedAt and
// returns the verification it superseded, if any.
func MustCreateVerification(tb testing.TB, s verifyd.Store, v *verifyd.Verification) *verifyd.Verification {
	tb.Helper()
	sup, err := s.CreateVerification(context.Background(), verifyd.CreateParams{
		Verification: v, Job: NewJob(v, v.CreatedAt), Now: v.CreatedAt})
	if err != nil {
		tb.Fatalf("CreateVerification: %v", err)
	}
	return sup
}

// MustGetVerification returns the stored verification.
func MustGetVerification(tb testing.TB, s verifyd.Store, accountID, id string) *verifyd.Verification {
	tb.Helper()
	v, err := s.GetVerification(context.Background(), accountID, id)
	if err != nil {
		tb.Fatalf("GetVerification(%s): %v", id, err)
	}
	return v
}

// MustListEvents returns the events of a verification.
func MustListEvents(tb testing.TB, s verifyd.Store, accountID, verificationID string) []*verifyd.Event {
	tb.Helper()
	evs, err := s.ListEvents(context.Background(), accountID, verificationID)
	if err != nil {
		tb.Fatalf("ListEvents(%s): %v", verificationID, err)
	}
	return evs
}

// wantCode fails tb unless err has the domain code code.
func wantCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := verifyd.ErrorCode(err); got != code {
		tb.Fatalf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

// wantNoErr fails tb on err.
func wantNoErr(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// wantStatus checks status and completion reason of a verification.
func wantStatus(tb testing.TB, v *verifyd.Verification, status verifyd.Status, reason string) {
	tb.Helper()
	if v.Status != status || v.CompletionReason != reason {
		tb.Fatalf("verification %s: status %q reason %q, want %q %q", v.ID, v.Status, v.CompletionReason, status, reason)
	}
}

// payload decodes an event's payload.
func payload(tb testing.TB, e *verifyd.Event) verifyd.EventPayload {
	tb.Helper()
	var p verifyd.EventPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		tb.Fatalf("event %s payload %q: %v", e.Type, e.Payload, err)
	}
	return p
}

// wantEvents checks the types of a verification's events, oldest first, and
// returns them.
func wantEvents(tb testing.TB, s verifyd.Store, v *verifyd.Verification, types ...string) []*verifyd.Event {
	tb.Helper()
	evs := MustListEvents(tb, s, v.AccountID, v.ID)
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = e.Type
	}
	if fmt.Sprint(got) != fmt.Sprint(types) {
		tb.Fatalf("events of %s: %v, want %v", v.ID, got, types)
	}
	return evs
}

// wantCompleted checks that e is the verify.completed event of v with reason.
func wantCompleted(tb testing.TB, e *verifyd.Event, v *verifyd.Verification, status verifyd.Status, reason string, at time.Time) {
	tb.Helper()
	if e.Type != verifyd.EventCompleted || e.VerificationID != v.ID || e.AccountID != v.AccountID ||
		e.ProfileID != v.ProfileID || !e.OccurredAt.Equal(at) || e.ID == "" {
		tb.Fatalf("completed event = %+v, want verification %s at %v", e, v.ID, at)
	}
	p := payload(tb, e)
	if p.ID != v.ID || p.Status != status || p.CompletionReason == nil || *p.CompletionReason != reason {
		tb.Fatalf("completed payload = %s, want status %q reason %q", e.Payload, status, reason)
	}
}

// wantEqual compares two values of a domain struct type field by field:
// times by Equal and, when set, in UTC; nil and empty maps alike.
func wantEqual(tb testing.TB, what string, got, want any) {
	tb.Helper()
	if d := diff(reflect.ValueOf(got), reflect.ValueOf(want), ""); d != "" {
		tb.Fatalf("%s: %s\ngot  %+v\nwant %+v", what, d, got, want)
	}
}

var timeType = reflect.TypeOf(time.Time{})

func diff(g, w reflect.Value, path string) string {
	if g.Type() != w.Type() {
		return fmt.Sprintf("%s: type %v, want %v", path, g.Type(), w.Type())
	}
	switch {
	case g.Type() == timeType:
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		if !gt.Equal(wt) {
			return fmt.Sprintf("%s: %v, want %v", path, gt, wt)
		}
		if !gt.IsZero() && gt.Location() != time.UTC {
			return fmt.Sprintf("%s: location %v, want UTC", path, gt.Location())
		}
		return ""
	case g.Kind() == reflect.Pointer:
		if g.IsNil() || w.IsNil() {
			if g.IsNil() != w.IsNil() {
				return fmt.Sprintf("%s: nil mismatch (got nil %v)", path, g.IsNil())
			}
			return ""
		}
		return diff(g.Elem(), w.Elem(), path)
	case g.Kind() == reflect.Struct:
		for i := range g.NumField() {
			if d := diff(g.Field(i), w.Field(i), path+"."+g.Type().Field(i).Name); d != "" {
				return d
			}
		}
		return ""
	case g.Kind() == reflect.Map && g.Len() == 0 && w.Len() == 0,
		g.Kind() == reflect.Slice && g.Len() == 0 && w.Len() == 0:
		return ""
	}
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		return fmt.Sprintf("%s: %v, want %v", path, g.Interface(), w.Interface())
	}
	return ""
}

// ids returns the IDs of vs in order.
func ids[T any](vs []T, id func(T) string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = id(v)
	}
	return out
}

func wantIDs(tb testing.TB, what string, got, want []string) {
	tb.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Fatalf("%s: %v, want %v", what, got, want)
	}
}
