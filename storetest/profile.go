package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func testProfile(t *testing.T, open Opener) {
	ctx := context.Background()
	profileID := func(p *verifyd.Profile) string { return p.ID }

	subtest(t, open, "CreateGet", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		limit := 12.5
		p := MustCreateProfile(t, s, a.ID, "Main", T0, func(p *verifyd.Profile) {
			p.WebhookURL, p.WebhookFailoverURL, p.Language = "https://example.com/hook", "https://example.com/failover", "de-DE"
			p.DailySpendLimit, p.DailySpendLimitEnabled = &limit, true
			p.Channels = map[verifyd.Channel]map[string]any{
				verifyd.SMS: {"code_length": float64(7), "messaging_template_id": "tpl", "app_name": "Acme",
					"whitelisted_destinations": []any{"US", "CA"}, "unknown_key": map[string]any{"x": true}},
				verifyd.Call: {"default_verification_timeout_secs": float64(120)},
			}
		})
		got, err := s.GetProfile(ctx, a.ID, p.ID)
		wantNoErr(t, "GetProfile", err)
		wantEqual(t, "GetProfile", got, p)
		if st := got.Settings(verifyd.SMS); st.CodeLength != 7 || st.AppName != "Acme" || len(st.WhitelistedDestinations) != 2 {
			t.Fatalf("Settings(sms) after a round trip: %+v", st)
		}
		if st := got.Settings(verifyd.Call); st.TimeoutSecs != 120 {
			t.Fatalf("Settings(call) after a round trip: %+v", st)
		}

		bare := MustCreateProfile(t, s, a.ID, "Bare", T0, func(p *verifyd.Profile) { p.Channels = nil })
		got, err = s.GetProfile(ctx, a.ID, bare.ID)
		wantNoErr(t, "GetProfile bare", err)
		wantEqual(t, "GetProfile bare", got, bare)
		if got.DailySpendLimit != nil {
			t.Fatalf("DailySpendLimit = %v, want nil", *got.DailySpendLimit)
		}
	})

	subtest(t, open, "AccountScoping", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		MustCreateProfile(t, s, b.ID, "Main", T0)

		_, err := s.GetProfile(ctx, b.ID, p.ID)
		wantCode(t, "GetProfile of another account", err, verifyd.ENOTFOUND)
		_, err = s.GetProfile(ctx, a.ID, verifyd.NewID())
		wantCode(t, "GetProfile unknown", err, verifyd.ENOTFOUND)

		upd := *p
		upd.AccountID, upd.Name = b.ID, "Stolen"
		wantCode(t, "UpdateProfile of another account", s.UpdateProfile(ctx, &upd), verifyd.ENOTFOUND)
		_, err = s.DeleteProfile(ctx, b.ID, p.ID, T0)
		wantCode(t, "DeleteProfile of another account", err, verifyd.ENOTFOUND)

		got, err := s.GetProfile(ctx, a.ID, p.ID)
		wantNoErr(t, "GetProfile", err)
		wantEqual(t, "profile after foreign update and delete", got, p)

		list, total, err := s.ListProfiles(ctx, b.ID, verifyd.ProfileFilter{})
		wantNoErr(t, "ListProfiles(b)", err)
		if total != 1 || len(list) != 1 || list[0].ID == p.ID {
			t.Fatalf("ListProfiles(b) = %d profiles, total %d; want only b's one", len(list), total)
		}
	})

	subtest(t, open, "ListOrderPagingTotal", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		// Created out of order; two share a created_at (id breaks the tie).
		p2 := MustCreateProfile(t, s, a.ID, "two", T0.Add(2*time.Second))
		p0 := MustCreateProfile(t, s, a.ID, "zero", T0)
		p1a := MustCreateProfile(t, s, a.ID, "one-a", T0.Add(time.Second))
		p1b := MustCreateProfile(t, s, a.ID, "one-b", T0.Add(time.Second))
		if p1b.ID < p1a.ID {
			p1a, p1b = p1b, p1a
		}
		want := []string{p0.ID, p1a.ID, p1b.ID, p2.ID}

		list, total, err := s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Limit: 10})
		wantNoErr(t, "ListProfiles", err)
		wantIDs(t, "ListProfiles", ids(list, profileID), want)
		if total != 4 {
			t.Fatalf("ListProfiles total = %d, want 4", total)
		}
		wantEqual(t, "listed profile", list[0], p0)

		list, total, err = s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Offset: 1, Limit: 2})
		wantNoErr(t, "ListProfiles page", err)
		wantIDs(t, "ListProfiles offset 1 limit 2", ids(list, profileID), want[1:3])
		if total != 4 {
			t.Fatalf("ListProfiles page total = %d, want 4", total)
		}

		list, total, err = s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Offset: 3, Limit: 2})
		wantNoErr(t, "ListProfiles last page", err)
		wantIDs(t, "ListProfiles offset 3", ids(list, profileID), want[3:])
		if total != 4 {
			t.Fatalf("ListProfiles last page total = %d, want 4", total)
		}

		list, total, err = s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Offset: 10, Limit: 2})
		wantNoErr(t, "ListProfiles past the end", err)
		if len(list) != 0 || total != 4 {
			t.Fatalf("ListProfiles past the end = %d profiles, total %d; want 0, 4", len(list), total)
		}
	})

	subtest(t, open, "ListNameFilter", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		x1 := MustCreateProfile(t, s, a.ID, "Alpha", T0)
		MustCreateProfile(t, s, a.ID, "alpha", T0.Add(time.Second))
		MustCreateProfile(t, s, a.ID, "Alpha ", T0.Add(2*time.Second))
		MustCreateProfile(t, s, a.ID, "Alphabet", T0.Add(3*time.Second))
		x2 := MustCreateProfile(t, s, a.ID, "Alpha", T0.Add(4*time.Second))
		MustCreateProfile(t, s, b.ID, "Alpha", T0)

		name := "Alpha"
		list, total, err := s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Name: &name, Limit: 10})
		wantNoErr(t, "ListProfiles name", err)
		wantIDs(t, "ListProfiles name=Alpha", ids(list, profileID), []string{x1.ID, x2.ID})
		if total != 2 {
			t.Fatalf("ListProfiles name total = %d, want 2", total)
		}
		list, total, err = s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Name: &name, Offset: 1, Limit: 1})
		wantNoErr(t, "ListProfiles name page", err)
		wantIDs(t, "ListProfiles name=Alpha offset 1", ids(list, profileID), []string{x2.ID})
		if total != 2 {
			t.Fatalf("ListProfiles name page total = %d, want 2", total)
		}
		none := "ALPHA"
		list, total, err = s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Name: &none, Limit: 10})
		wantNoErr(t, "ListProfiles name none", err)
		if len(list) != 0 || total != 0 {
			t.Fatalf("ListProfiles name=ALPHA = %d profiles, total %d; want none (case-sensitive)", len(list), total)
		}
	})

	subtest(t, open, "Update", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		limit := 3.0
		upd := *p
		upd.Name, upd.WebhookURL, upd.Language = "Renamed", "https://example.com/new", "fr-FR"
		upd.DailySpendLimit, upd.DailySpendLimitEnabled = &limit, true
		upd.Channels = map[verifyd.Channel]map[string]any{verifyd.Flashcall: {"default_verification_timeout_secs": float64(60)}}
		upd.UpdatedAt = T0.Add(time.Minute)
		upd.CreatedAt = T0.Add(time.Hour) // ignored
		wantNoErr(t, "UpdateProfile", s.UpdateProfile(ctx, &upd))

		got, err := s.GetProfile(ctx, a.ID, p.ID)
		wantNoErr(t, "GetProfile", err)
		want := upd
		want.CreatedAt = p.CreatedAt
		wantEqual(t, "updated profile", got, &want)

		unknown := upd
		unknown.ID = verifyd.NewID()
		wantCode(t, "UpdateProfile unknown", s.UpdateProfile(ctx, &unknown), verifyd.ENOTFOUND)
	})

	subtest(t, open, "DeleteExpiresPending", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		other := MustCreateProfile(t, s, a.ID, "Other", T0)

		pending1 := NewVerification(p, "+15550001", T0)
		MustCreateVerification(t, s, pending1)
		pending2 := NewVerification(p, "+15550002", T0)
		MustCreateVerification(t, s, pending2)
		accepted := NewVerification(p, "+15550003", T0)
		MustCreateVerification(t, s, accepted)
		mustAccept(t, s, accepted, T0.Add(time.Second))
		otherPending := NewVerification(other, "+15550001", T0)
		MustCreateVerification(t, s, otherPending)

		now := T0.Add(time.Minute)
		got, err := s.DeleteProfile(ctx, a.ID, p.ID, now)
		wantNoErr(t, "DeleteProfile", err)
		wantEqual(t, "deleted profile", got, p)

		_, err = s.GetProfile(ctx, a.ID, p.ID)
		wantCode(t, "GetProfile deleted", err, verifyd.ENOTFOUND)
		list, total, err := s.ListProfiles(ctx, a.ID, verifyd.ProfileFilter{Limit: 10})
		wantNoErr(t, "ListProfiles", err)
		wantIDs(t, "ListProfiles after delete", ids(list, profileID), []string{other.ID})
		if total != 1 {
			t.Fatalf("ListProfiles total after delete = %d, want 1", total)
		}
		_, err = s.DeleteProfile(ctx, a.ID, p.ID, now)
		wantCode(t, "DeleteProfile twice", err, verifyd.ENOTFOUND)
		upd := *p
		wantCode(t, "UpdateProfile deleted", s.UpdateProfile(ctx, &upd), verifyd.ENOTFOUND)

		for _, v := range []*verifyd.Verification{pending1, pending2} {
			got := MustGetVerification(t, s, a.ID, v.ID)
			wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonProfileDeleted)
			if !got.UpdatedAt.Equal(now) {
				t.Fatalf("UpdatedAt = %v, want %v", got.UpdatedAt, now)
			}
			evs := wantEvents(t, s, v, verifyd.EventCompleted)
			wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonProfileDeleted, now)
		}
		wantStatus(t, MustGetVerification(t, s, a.ID, accepted.ID), verifyd.StatusAccepted, verifyd.ReasonAccepted)
		wantEvents(t, s, accepted, verifyd.EventCompleted)
		wantStatus(t, MustGetVerification(t, s, a.ID, otherPending.ID), verifyd.StatusPending, "")
		wantEvents(t, s, otherPending)
	})
}

func testTemplate(t *testing.T, open Opener) {
	ctx := context.Background()
	templateID := func(t *verifyd.Template) string { return t.ID }

	subtest(t, open, "CreateGetList", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		t2 := MustCreateTemplate(t, s, a.ID, "Second {{code}}", T0.Add(time.Second))
		t1 := MustCreateTemplate(t, s, a.ID, "Your {{app_name}} code is {{code}}", T0)
		tb := MustCreateTemplate(t, s, b.ID, "B {{code}}", T0)

		got, err := s.GetTemplate(ctx, a.ID, t1.ID)
		wantNoErr(t, "GetTemplate", err)
		wantEqual(t, "GetTemplate", got, t1)
		_, err = s.GetTemplate(ctx, a.ID, tb.ID)
		wantCode(t, "GetTemplate of another account", err, verifyd.ENOTFOUND)
		_, err = s.GetTemplate(ctx, a.ID, verifyd.NewID())
		wantCode(t, "GetTemplate unknown", err, verifyd.ENOTFOUND)

		list, err := s.ListTemplates(ctx, a.ID)
		wantNoErr(t, "ListTemplates", err)
		wantIDs(t, "ListTemplates", ids(list, templateID), []string{t1.ID, t2.ID})
		wantEqual(t, "listed template", list[1], t2)
		list, err = s.ListTemplates(ctx, verifyd.NewID())
		wantNoErr(t, "ListTemplates unknown account", err)
		if len(list) != 0 {
			t.Fatalf("ListTemplates of an unknown account: %d", len(list))
		}
	})

	subtest(t, open, "Update", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		tp := MustCreateTemplate(t, s, a.ID, "Old {{code}}", T0)
		upd := *tp
		upd.Text, upd.UpdatedAt = "New {{code}}", T0.Add(time.Minute)
		wantNoErr(t, "UpdateTemplate", s.UpdateTemplate(ctx, &upd))
		got, err := s.GetTemplate(ctx, a.ID, tp.ID)
		wantNoErr(t, "GetTemplate", err)
		wantEqual(t, "updated template", got, &upd)

		foreign := upd
		foreign.AccountID, foreign.Text = b.ID, "Stolen"
		wantCode(t, "UpdateTemplate of another account", s.UpdateTemplate(ctx, &foreign), verifyd.ENOTFOUND)
		unknown := upd
		unknown.ID = verifyd.NewID()
		wantCode(t, "UpdateTemplate unknown", s.UpdateTemplate(ctx, &unknown), verifyd.ENOTFOUND)
		got, err = s.GetTemplate(ctx, a.ID, tp.ID)
		wantNoErr(t, "GetTemplate", err)
		wantEqual(t, "template after foreign update", got, &upd)
	})
}
