package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func withWebhook(url, failover string) func(*verifyd.Profile) {
	return func(p *verifyd.Profile) { p.WebhookURL, p.WebhookFailoverURL = url, failover }
}

func mustClaimWebhooks(tb testing.TB, s verifyd.Store, worker string, now time.Time, lease time.Duration, limit int) []*verifyd.WebhookDelivery {
	tb.Helper()
	ds, err := s.ClaimWebhooks(context.Background(), verifyd.ClaimParams{Worker: worker, Now: now, Lease: lease, Limit: limit})
	if err != nil {
		tb.Fatalf("ClaimWebhooks: %v", err)
	}
	return ds
}

func finishWebhook(s verifyd.Store, o verifyd.WebhookOutcome) error {
	errs := s.FinishWebhooks(context.Background(), []verifyd.WebhookOutcome{o})
	if len(errs) != 1 {
		return fmt.Errorf("FinishWebhooks of one outcome returned %d errors", len(errs))
	}
	return errs[0]
}

func attemptAt(d *verifyd.WebhookDelivery, url string, status int, at time.Time) *verifyd.WebhookAttempt {
	return &verifyd.WebhookAttempt{EventID: d.Event.ID, AccountID: d.Event.AccountID, Attempt: d.Attempts + 1,
		URL: url, StatusCode: status, Latency: 12 * time.Millisecond, ResponseHead: "ok", At: at}
}

// sentEvent creates a verification of p and finishes its job as sent at
// T0+1s, which writes its verify.sent event.
func sentEvent(t *testing.T, s verifyd.Store, p *verifyd.Profile, phone string) *verifyd.Verification {
	t.Helper()
	v := NewVerification(p, phone, T0)
	MustCreateVerification(t, s, v)
	j := mustClaim(t, s, "w", T0, time.Minute, 1)[0]
	wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second),
		DeliveryStatus: verifyd.DeliverySent}))
	return v
}

func testWebhook(t *testing.T, open Opener) {
	ctx := context.Background()
	subtest(t, open, "OnlyProfilesWithURL", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		with := MustCreateProfile(t, s, a.ID, "With", T0, withWebhook("https://hooks.example/a", "https://hooks.example/b"))
		without := MustCreateProfile(t, s, a.ID, "Without", T0, noWebhook)
		v := sentEvent(t, s, with, "+15550000001")
		quiet := sentEvent(t, s, without, "+15550000002")
		// A profile without a webhook records no events at all: neither
		// verify.sent nor verify.completed.
		mustAccept(t, s, quiet, T0.Add(time.Second))
		if evs := MustListEvents(t, s, a.ID, quiet.ID); len(evs) != 0 {
			t.Fatalf("a profile without a webhook_url recorded %d events", len(evs))
		}
		ds := mustClaimWebhooks(t, s, "n1", T0.Add(2*time.Second), time.Minute, 10)
		if len(ds) != 1 {
			t.Fatalf("claimed %d deliveries, want 1 (the profile with a webhook_url)", len(ds))
		}
		d := ds[0]
		evs := MustListEvents(t, s, a.ID, v.ID)
		if d.Event.ID != evs[0].ID || d.Event.Type != verifyd.EventSent || d.State != verifyd.WebhookPending ||
			d.URL != "https://hooks.example/a" || d.FailoverURL != "https://hooks.example/b" || d.Attempts != 0 ||
			!bytes.Equal(d.Event.Payload, evs[0].Payload) || !d.Event.OccurredAt.Equal(evs[0].OccurredAt) ||
			d.Event.AccountID != a.ID || d.Event.VerificationID != v.ID {
			t.Fatalf("claimed %+v (event %+v)", d, d.Event)
		}
		if again := mustClaimWebhooks(t, s, "n2", T0.Add(3*time.Second), time.Minute, 10); len(again) != 0 {
			t.Fatalf("a leased delivery was claimed again: %d", len(again))
		}
		// The lease lapses: another node takes it (at least once).
		again := mustClaimWebhooks(t, s, "n2", T0.Add(2*time.Second+time.Minute), time.Minute, 10)
		if len(again) != 1 || again[0].Event.ID != d.Event.ID {
			t.Fatalf("lapsed lease not claimed again: %d", len(again))
		}
		// The first holder lost it.
		err := finishWebhook(s, verifyd.WebhookOutcome{EventID: d.Event.ID, AccountID: d.Event.AccountID, Worker: "n1", Now: T0.Add(time.Hour),
			State: verifyd.WebhookDelivered, Attempt: attemptAt(d, d.URL, 200, T0.Add(time.Hour))})
		if err != verifyd.ErrLeaseLost {
			t.Fatalf("finish by the lapsed holder: %v, want ErrLeaseLost", err)
		}
	})

	subtest(t, open, "RetryDeliverLog", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "P", T0, withWebhook("https://hooks.example/a", ""))
		v := sentEvent(t, s, p, "+15550000003")
		now := T0.Add(2 * time.Second)
		fresh, err := s.ClaimWebhooks(ctx, verifyd.ClaimParams{Worker: "n1", Now: now, Lease: time.Minute, Limit: 10, FreshOnly: true})
		if err != nil || len(fresh) != 1 {
			t.Fatalf("fresh-only claim of a new event: %d, %v", len(fresh), err)
		}
		wantNoErr(t, "FinishWebhooks put back", finishWebhook(s, verifyd.WebhookOutcome{EventID: fresh[0].Event.ID, AccountID: fresh[0].Event.AccountID,
			Worker: "n1", Now: now, State: verifyd.WebhookPending, NextAt: now}))
		if again, _ := s.ClaimWebhooks(ctx, verifyd.ClaimParams{Worker: "n1", Now: now, Lease: time.Minute, Limit: 10,
			FreshOnly: true}); len(again) != 0 {
			t.Fatal("a fresh-only claim took a put-back delivery")
		}
		d := mustClaimWebhooks(t, s, "n1", now, time.Minute, 10)[0]
		retryAt := now.Add(2 * time.Second)
		wantNoErr(t, "FinishWebhooks retry", finishWebhook(s, verifyd.WebhookOutcome{EventID: d.Event.ID, AccountID: d.Event.AccountID, Worker: "n1",
			Now: now, State: verifyd.WebhookPending, NextAt: retryAt, Error: "HTTP 500",
			Attempt: attemptAt(d, d.URL, 500, now)}))
		if got := mustClaimWebhooks(t, s, "n1", retryAt.Add(-time.Millisecond), time.Minute, 10); len(got) != 0 {
			t.Fatal("claimed before its retry time")
		}
		// Put back without an attempt: the count stays.
		d = mustClaimWebhooks(t, s, "n1", retryAt, time.Minute, 10)[0]
		if d.Attempts != 1 || d.LastError != "HTTP 500" {
			t.Fatalf("after one attempt: %+v", d)
		}
		wantNoErr(t, "FinishWebhooks defer", finishWebhook(s, verifyd.WebhookOutcome{EventID: d.Event.ID, AccountID: d.Event.AccountID, Worker: "n1",
			Now: retryAt, State: verifyd.WebhookPending, NextAt: retryAt}))
		d = mustClaimWebhooks(t, s, "n1", retryAt, time.Minute, 10)[0]
		if d.Attempts != 1 {
			t.Fatalf("a put-back counted as an attempt: %d", d.Attempts)
		}
		done := retryAt.Add(time.Second)
		wantNoErr(t, "FinishWebhooks delivered", finishWebhook(s, verifyd.WebhookOutcome{EventID: d.Event.ID, AccountID: d.Event.AccountID,
			Worker: "n1", Now: done, State: verifyd.WebhookDelivered, Attempt: attemptAt(d, d.URL, 204, done)}))
		if got := mustClaimWebhooks(t, s, "n1", done.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatal("a delivered event was claimed again")
		}

		got, attempts, err := s.GetWebhookDelivery(ctx, a.ID, d.Event.ID)
		wantNoErr(t, "GetWebhookDelivery", err)
		if got.State != verifyd.WebhookDelivered || got.Attempts != 2 || got.Event.VerificationID != v.ID ||
			got.URL != "https://hooks.example/a" || len(attempts) != 2 {
			t.Fatalf("delivery %+v, %d attempts", got, len(attempts))
		}
		if a0, a1 := attempts[0], attempts[1]; a0.Attempt != 1 || a0.StatusCode != 500 || a1.Attempt != 2 ||
			a1.StatusCode != 204 || a1.Latency != 12*time.Millisecond || a1.ResponseHead != "ok" ||
			a1.URL != "https://hooks.example/a" || !a1.At.Equal(done) {
			t.Fatalf("attempts %+v %+v", a0, a1)
		}
		_, _, err = s.GetWebhookDelivery(ctx, b.ID, d.Event.ID)
		wantCode(t, "GetWebhookDelivery of another account", err, verifyd.ENOTFOUND)
		_, _, err = s.GetWebhookDelivery(ctx, a.ID, verifyd.NewOrderedID())
		wantCode(t, "GetWebhookDelivery unknown", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "ListFilterRedeliver", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "P", T0, withWebhook("https://hooks.example/a", ""))
		pb := MustCreateProfile(t, s, b.ID, "P", T0, withWebhook("https://hooks.example/b", ""))
		v1 := sentEvent(t, s, p, "+15550000004")
		v2 := sentEvent(t, s, p, "+15550000005")
		sentEvent(t, s, pb, "+15550000006")
		mustAccept(t, s, v1, T0.Add(5*time.Second)) // verify.completed for v1
		now := T0.Add(10 * time.Second)
		ds := mustClaimWebhooks(t, s, "n1", now, time.Minute, 10)
		if len(ds) != 4 {
			t.Fatalf("claimed %d, want 4", len(ds))
		}
		for i := 1; i < len(ds); i++ {
			if ds[i].Event.OccurredAt.Before(ds[i-1].Event.OccurredAt) {
				t.Fatal("claims not oldest first")
			}
		}
		var outs []verifyd.WebhookOutcome
		for _, d := range ds {
			state := verifyd.WebhookDelivered
			if d.Event.VerificationID == v2.ID {
				state = verifyd.WebhookFailed
			}
			outs = append(outs, verifyd.WebhookOutcome{EventID: d.Event.ID, AccountID: d.Event.AccountID, Worker: "n1", Now: now, State: state,
				Attempt: attemptAt(d, d.URL, 200, now)})
		}
		for i, err := range s.FinishWebhooks(ctx, outs) {
			wantNoErr(t, fmt.Sprintf("FinishWebhooks[%d]", i), err)
		}

		list := func(f verifyd.WebhookFilter) ([]*verifyd.WebhookDelivery, int) {
			t.Helper()
			if f.Limit == 0 {
				f.Limit = 25
			}
			ds, n, err := s.ListWebhookDeliveries(ctx, a.ID, f)
			wantNoErr(t, "ListWebhookDeliveries", err)
			return ds, n
		}
		all, n := list(verifyd.WebhookFilter{})
		if n != 3 || len(all) != 3 {
			t.Fatalf("account a: %d deliveries (total %d), want 3", len(all), n)
		}
		if all[0].Event.Type != verifyd.EventCompleted || all[0].URL != "https://hooks.example/a" {
			t.Fatalf("not newest first: %+v", all[0].Event)
		}
		if ds, n := list(verifyd.WebhookFilter{State: verifyd.WebhookFailed}); n != 1 || ds[0].Event.VerificationID != v2.ID {
			t.Fatalf("failed filter: %d", n)
		}
		if _, n := list(verifyd.WebhookFilter{EventType: verifyd.EventSent}); n != 2 {
			t.Fatalf("event type filter: %d", n)
		}
		if _, n := list(verifyd.WebhookFilter{VerificationID: v1.ID}); n != 2 {
			t.Fatalf("verification filter: %d", n)
		}
		if _, n := list(verifyd.WebhookFilter{From: T0.Add(2 * time.Second)}); n != 1 {
			t.Fatalf("from filter: %d", n)
		}
		if _, n := list(verifyd.WebhookFilter{To: T0.Add(2 * time.Second)}); n != 2 {
			t.Fatalf("to filter: %d", n)
		}
		if ds, n := list(verifyd.WebhookFilter{Offset: 1, Limit: 1}); n != 3 || len(ds) != 1 || ds[0].Event.ID != all[1].Event.ID {
			t.Fatalf("paging: %d of %d", len(ds), n)
		}

		// Redeliver the failed ones of a time range.
		later := now.Add(time.Minute)
		k, err := s.RedeliverWebhooks(ctx, a.ID, verifyd.WebhookFilter{State: verifyd.WebhookFailed, From: T0, To: later}, later)
		wantNoErr(t, "RedeliverWebhooks", err)
		if k != 1 {
			t.Fatalf("redelivered %d, want 1", k)
		}
		re := mustClaimWebhooks(t, s, "n2", later, time.Minute, 10)
		if len(re) != 1 || re[0].Event.VerificationID != v2.ID || re[0].Attempts != 1 || re[0].RoundStart != 1 {
			t.Fatalf("redelivered claim: %d %+v", len(re), re)
		}
		// One event by its ID.
		k, err = s.RedeliverWebhooks(ctx, a.ID, verifyd.WebhookFilter{EventID: all[0].Event.ID}, later)
		wantNoErr(t, "RedeliverWebhooks by event", err)
		if re := mustClaimWebhooks(t, s, "n2", later, time.Minute, 10); k != 1 || len(re) != 1 || re[0].Event.ID != all[0].Event.ID {
			t.Fatalf("redeliver by event ID: %d, claimed %d", k, len(re))
		}
		// Another account cannot redeliver a's events.
		k, err = s.RedeliverWebhooks(ctx, b.ID, verifyd.WebhookFilter{VerificationID: v1.ID}, later)
		wantNoErr(t, "RedeliverWebhooks b", err)
		if k != 0 {
			t.Fatalf("account b redelivered %d of a's events", k)
		}
	})

	subtest(t, open, "ProfileURLChanged", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "P", T0, withWebhook("https://old.example/", ""))
		sentEvent(t, s, p, "+15550000007")
		p.WebhookURL, p.UpdatedAt = "https://new.example/", T0.Add(time.Second)
		wantNoErr(t, "UpdateProfile", s.UpdateProfile(ctx, p))
		d := mustClaimWebhooks(t, s, "n1", T0.Add(2*time.Second), time.Minute, 10)
		if len(d) != 1 || d[0].URL != "https://new.example/" {
			t.Fatalf("claim after URL change: %+v", d)
		}
	})

	subtest(t, open, "Pause", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "P", T0, withWebhook("https://hooks.example/a", ""))
		sentEvent(t, s, p, "+15550000008") // written before the pause: due at once
		until := T0.Add(time.Minute)
		wantNoErr(t, "PauseWebhooks", s.PauseWebhooks(ctx, p.ID, until))
		v := NewVerification(p, "+15550000009", T0)
		MustCreateVerification(t, s, v)
		mustAccept(t, s, v, T0.Add(2*time.Second)) // verify.completed, written during the pause
		got := mustClaimWebhooks(t, s, "n1", T0.Add(3*time.Second), time.Second, 10)
		if len(got) != 1 || got[0].Event.Type != verifyd.EventSent {
			t.Fatalf("claimed during the pause: %d", len(got))
		}
		wantNoErr(t, "FinishWebhooks", finishWebhook(s, verifyd.WebhookOutcome{EventID: got[0].Event.ID, AccountID: got[0].Event.AccountID, Worker: "n1",
			Now: T0.Add(3 * time.Second), State: verifyd.WebhookDelivered}))
		if got := mustClaimWebhooks(t, s, "n1", until.Add(-time.Millisecond), time.Second, 10); len(got) != 0 {
			t.Fatalf("claimed before the pause ended: %d", len(got))
		}
		fresh, err := s.ClaimWebhooks(ctx, verifyd.ClaimParams{Worker: "n1", Now: until.Add(time.Hour), Lease: time.Second,
			Limit: 10, FreshOnly: true})
		if err != nil || len(fresh) != 0 {
			t.Fatalf("a fresh-only claim took a paused event: %d, %v", len(fresh), err)
		}
		got = mustClaimWebhooks(t, s, "n1", until, time.Second, 10)
		if len(got) != 1 || got[0].Event.VerificationID != v.ID {
			t.Fatalf("claimed when the pause ended: %d, want the paused event", len(got))
		}
	})

	subtest(t, open, "Keys", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		key := func(acct, state string, at time.Time) *verifyd.WebhookKey {
			pub, sealed := make([]byte, 32), make([]byte, 60)
			rand.Read(pub)
			rand.Read(sealed)
			return &verifyd.WebhookKey{ID: verifyd.NewID(), AccountID: acct, PublicKey: pub, SealedPrivate: sealed,
				State: state, CreatedAt: at, UpdatedAt: at}
		}
		k1 := key(a.ID, verifyd.KeyActive, T0)
		wantNoErr(t, "AddWebhookKey", s.AddWebhookKey(ctx, k1))
		wantCode(t, "second active key", s.AddWebhookKey(ctx, key(a.ID, verifyd.KeyActive, T0)), verifyd.ECONFLICT)
		wantNoErr(t, "AddWebhookKey b", s.AddWebhookKey(ctx, key(b.ID, verifyd.KeyActive, T0)))
		k2 := key(a.ID, verifyd.KeyNext, T0.Add(time.Second))
		wantNoErr(t, "AddWebhookKey next", s.AddWebhookKey(ctx, k2))
		ks, err := s.ListWebhookKeys(ctx, a.ID)
		wantNoErr(t, "ListWebhookKeys", err)
		if len(ks) != 2 || ks[0].ID != k1.ID || ks[1].ID != k2.ID || !bytes.Equal(ks[0].PublicKey, k1.PublicKey) ||
			!bytes.Equal(ks[0].SealedPrivate, k1.SealedPrivate) || ks[0].State != verifyd.KeyActive {
			t.Fatalf("keys %+v", ks)
		}
		wantCode(t, "promote another account's key", s.PromoteWebhookKey(ctx, b.ID, k2.ID, T0), verifyd.ENOTFOUND)
		wantCode(t, "delete the active key", s.DeleteWebhookKey(ctx, a.ID, k1.ID), verifyd.ECONFLICT)
		wantNoErr(t, "PromoteWebhookKey", s.PromoteWebhookKey(ctx, a.ID, k2.ID, T0.Add(time.Minute)))
		ks, _ = s.ListWebhookKeys(ctx, a.ID)
		if ks[0].State != verifyd.KeyRetired || ks[1].State != verifyd.KeyActive || !ks[1].UpdatedAt.Equal(T0.Add(time.Minute)) {
			t.Fatalf("after promote: %s %s", ks[0].State, ks[1].State)
		}
		wantNoErr(t, "DeleteWebhookKey", s.DeleteWebhookKey(ctx, a.ID, k1.ID))
		wantCode(t, "delete again", s.DeleteWebhookKey(ctx, a.ID, k1.ID), verifyd.ENOTFOUND)
		ks, _ = s.ListWebhookKeys(ctx, a.ID)
		if len(ks) != 1 || ks[0].ID != k2.ID {
			t.Fatalf("after delete: %+v", ks)
		}
	})
}
