package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func testAccount(t *testing.T, open Opener) {
	ctx := context.Background()

	subtest(t, open, "CreateGet", func(t *testing.T, s verifyd.Store) {
		a := &verifyd.Account{ID: verifyd.NewID(), Name: "Acme", Disabled: true, CreatedAt: T0}
		wantNoErr(t, "CreateAccount", s.CreateAccount(ctx, a))
		got, err := s.GetAccount(ctx, a.ID)
		wantNoErr(t, "GetAccount", err)
		wantEqual(t, "GetAccount", got, a)
	})

	subtest(t, open, "CreateConflict", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		err := s.CreateAccount(ctx, &verifyd.Account{ID: a.ID, Name: "again", CreatedAt: T0})
		wantCode(t, "CreateAccount same ID", err, verifyd.ECONFLICT)
	})

	subtest(t, open, "GetNotFound", func(t *testing.T, s verifyd.Store) {
		MustCreateAccount(t, s)
		_, err := s.GetAccount(ctx, verifyd.NewID())
		wantCode(t, "GetAccount unknown", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "ListOldestFirst", func(t *testing.T, s verifyd.Store) {
		var want []string
		for _, d := range []int{2, 0, 1} {
			a := &verifyd.Account{ID: verifyd.NewID(), Name: "a", CreatedAt: T0.Add(time.Duration(d) * time.Second)}
			wantNoErr(t, "CreateAccount", s.CreateAccount(ctx, a))
			want = append(want, a.ID)
		}
		want = []string{want[1], want[2], want[0]}
		list, err := s.ListAccounts(ctx)
		wantNoErr(t, "ListAccounts", err)
		wantIDs(t, "ListAccounts", ids(list, func(a *verifyd.Account) string { return a.ID }), want)
	})

	subtest(t, open, "ListEmpty", func(t *testing.T, s verifyd.Store) {
		list, err := s.ListAccounts(ctx)
		wantNoErr(t, "ListAccounts", err)
		if len(list) != 0 {
			t.Fatalf("ListAccounts on an empty store: %d accounts", len(list))
		}
	})
}

func testAPIKey(t *testing.T, open Opener) {
	ctx := context.Background()

	subtest(t, open, "CreateFind", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		k := MustCreateAPIKey(t, s, a.ID, "secret-one", T0)
		MustCreateAPIKey(t, s, a.ID, "secret-two", T0)
		gotK, gotA, err := s.FindAPIKey(ctx, KeyHash("secret-one"))
		wantNoErr(t, "FindAPIKey", err)
		wantEqual(t, "FindAPIKey key", gotK, k)
		wantEqual(t, "FindAPIKey account", gotA, a)
	})

	subtest(t, open, "FindUnknown", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		MustCreateAPIKey(t, s, a.ID, "secret-one", T0)
		_, _, err := s.FindAPIKey(ctx, KeyHash("secret-other"))
		wantCode(t, "FindAPIKey unknown", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "RevokedNotFound", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		k := MustCreateAPIKey(t, s, a.ID, "secret-one", T0)
		keep := MustCreateAPIKey(t, s, a.ID, "secret-two", T0)
		at := T0.Add(time.Hour)
		wantNoErr(t, "RevokeAPIKey", s.RevokeAPIKey(ctx, k.ID, at))
		_, _, err := s.FindAPIKey(ctx, KeyHash("secret-one"))
		wantCode(t, "FindAPIKey revoked", err, verifyd.ENOTFOUND)
		if _, _, err := s.FindAPIKey(ctx, KeyHash("secret-two")); err != nil {
			t.Fatalf("FindAPIKey of the other key after a revoke: %v", err)
		}
		wantCode(t, "RevokeAPIKey twice", s.RevokeAPIKey(ctx, k.ID, at), verifyd.ENOTFOUND)
		wantCode(t, "RevokeAPIKey unknown", s.RevokeAPIKey(ctx, verifyd.NewID(), at), verifyd.ENOTFOUND)

		list, err := s.ListAPIKeys(ctx, a.ID)
		wantNoErr(t, "ListAPIKeys", err)
		if len(list) != 2 {
			t.Fatalf("ListAPIKeys: %d keys, want 2 (revoked ones too)", len(list))
		}
		for _, got := range list {
			switch got.ID {
			case k.ID:
				want := *k
				want.RevokedAt = &at
				wantEqual(t, "revoked key", got, &want)
			case keep.ID:
				wantEqual(t, "live key", got, keep)
			}
		}
	})

	subtest(t, open, "ListScopedOldestFirst", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		a2 := MustCreateAPIKey(t, s, a.ID, "a-second", T0.Add(2*time.Second))
		a1 := MustCreateAPIKey(t, s, a.ID, "a-first", T0)
		b1 := MustCreateAPIKey(t, s, b.ID, "b-first", T0.Add(time.Second))
		keyID := func(k *verifyd.APIKey) string { return k.ID }

		list, err := s.ListAPIKeys(ctx, a.ID)
		wantNoErr(t, "ListAPIKeys(a)", err)
		wantIDs(t, "ListAPIKeys(a)", ids(list, keyID), []string{a1.ID, a2.ID})
		list, err = s.ListAPIKeys(ctx, b.ID)
		wantNoErr(t, "ListAPIKeys(b)", err)
		wantIDs(t, "ListAPIKeys(b)", ids(list, keyID), []string{b1.ID})
		list, err = s.ListAPIKeys(ctx, "")
		wantNoErr(t, "ListAPIKeys(all)", err)
		wantIDs(t, "ListAPIKeys(all)", ids(list, keyID), []string{a1.ID, b1.ID, a2.ID})
		list, err = s.ListAPIKeys(ctx, verifyd.NewID())
		wantNoErr(t, "ListAPIKeys(unknown)", err)
		if len(list) != 0 {
			t.Fatalf("ListAPIKeys of an unknown account: %d keys", len(list))
		}
	})
}
