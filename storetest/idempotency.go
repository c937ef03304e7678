package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// createIdem creates v with its job and an idempotency record for key.
func createIdem(s verifyd.Store, v *verifyd.Verification, key, fingerprint string, now time.Time) error {
	_, err := s.CreateVerification(context.Background(), verifyd.CreateParams{
		Verification: v, Job: NewJob(v, now), Now: now,
		Idempotency: &verifyd.IdempotencyRecord{AccountID: v.AccountID, Key: key, Fingerprint: []byte(fingerprint),
			CreatedAt: now, ExpiresAt: now.Add(verifyd.IdempotencyTTL)},
		Respond: func(v *verifyd.Verification) ([]byte, error) {
			return []byte(`{"id":"` + v.ID + `","created_at":"` + verifyd.FormatTime(v.CreatedAt) + `"}`), nil
		},
	})
	return err
}

func testIdempotency(t *testing.T, open Opener) {
	ctx := context.Background()

	subtest(t, open, "StoredWithItsVerification", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "p", T0)
		v := NewVerification(p, "+447400100001", T0)
		wantNoErr(t, "create", createIdem(s, v, "key-1", "fp-1", T0))
		r, err := s.GetIdempotency(ctx, a.ID, "key-1", T0.Add(time.Minute))
		wantNoErr(t, "GetIdempotency", err)
		want := `{"id":"` + v.ID + `","created_at":"` + verifyd.FormatTime(v.CreatedAt) + `"}`
		if r.VerificationID != v.ID || string(r.Response) != want || !bytes.Equal(r.Fingerprint, []byte("fp-1")) ||
			r.AccountID != a.ID || r.Key != "key-1" || !r.CreatedAt.Equal(T0) || !r.ExpiresAt.Equal(T0.Add(verifyd.IdempotencyTTL)) {
			t.Fatalf("record = %+v (response %s), want verification %s response %s", r, r.Response, v.ID, want)
		}
		// Scoped to the account, expired after the TTL.
		_, err = s.GetIdempotency(ctx, MustCreateAccount(t, s).ID, "key-1", T0)
		wantCode(t, "other account", err, verifyd.ENOTFOUND)
		_, err = s.GetIdempotency(ctx, a.ID, "key-1", T0.Add(verifyd.IdempotencyTTL))
		wantCode(t, "expired", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "RenderedFromTheInsertedRow", func(t *testing.T, s verifyd.Store) {
		// A trigger in the same microsecond as the newest verification is
		// moved just after it (Rows); the stored response shows the row.
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "p", T0)
		MustCreateVerification(t, s, NewVerification(p, "+447400100002", T0))
		v := NewVerification(p, "+447400100002", T0)
		wantNoErr(t, "create", createIdem(s, v, "k", "fp", T0))
		r, err := s.GetIdempotency(ctx, a.ID, "k", T0)
		wantNoErr(t, "GetIdempotency", err)
		if !v.CreatedAt.After(T0) || !bytes.Contains(r.Response, []byte(verifyd.FormatTime(v.CreatedAt))) {
			t.Fatalf("response %s does not show the stored created_at %v", r.Response, v.CreatedAt)
		}
	})

	subtest(t, open, "SecondUseOfAKeyConflictsAndWritesNothing", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "p", T0)
		v1 := NewVerification(p, "+447400100003", T0)
		wantNoErr(t, "first", createIdem(s, v1, "dup", "fp", T0))
		v2 := NewVerification(p, "+447400100004", T0.Add(time.Second))
		id2 := v2.ID
		wantCode(t, "second use", createIdem(s, v2, "dup", "fp", T0.Add(time.Second)), verifyd.ECONFLICT)
		_, err := s.GetVerification(ctx, a.ID, id2)
		wantCode(t, "the refused verification", err, verifyd.ENOTFOUND)
		if n, _ := s.QueueDepth(ctx); n != 1 {
			t.Fatalf("queue depth %d after a refused duplicate, want 1 (no second job)", n)
		}
		// The same key in another account is another key.
		b := MustCreateAccount(t, s)
		pb := MustCreateProfile(t, s, b.ID, "p", T0)
		wantNoErr(t, "other account", createIdem(s, NewVerification(pb, "+447400100003", T0), "dup", "fp", T0))
	})

	subtest(t, open, "ExpiredKeyIsReplaced", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "p", T0)
		wantNoErr(t, "first", createIdem(s, NewVerification(p, "+447400100005", T0), "old", "fp-1", T0))
		later := T0.Add(verifyd.IdempotencyTTL + time.Second)
		v := NewVerification(p, "+447400100006", later)
		wantNoErr(t, "after the TTL", createIdem(s, v, "old", "fp-2", later))
		r, err := s.GetIdempotency(ctx, a.ID, "old", later)
		wantNoErr(t, "GetIdempotency", err)
		if r.VerificationID != v.ID || string(r.Fingerprint) != "fp-2" {
			t.Fatalf("record = %+v, want the new verification %s", r, v.ID)
		}
	})

	subtest(t, open, "RespondErrorRollsBack", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "p", T0)
		v := NewVerification(p, "+447400100007", T0)
		id := v.ID
		_, err := s.CreateVerification(ctx, verifyd.CreateParams{
			Verification: v, Job: NewJob(v, T0), Now: T0,
			Idempotency: &verifyd.IdempotencyRecord{AccountID: a.ID, Key: "k", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)},
			Respond:     func(*verifyd.Verification) ([]byte, error) { return nil, verifyd.Errorf(verifyd.EINVALID, "no") },
		})
		wantCode(t, "Respond error", err, verifyd.EINVALID)
		_, err = s.GetVerification(ctx, a.ID, id)
		wantCode(t, "verification", err, verifyd.ENOTFOUND)
		_, err = s.GetIdempotency(ctx, a.ID, "k", T0)
		wantCode(t, "record", err, verifyd.ENOTFOUND)
	})
}
