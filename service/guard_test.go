package service_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/ratelimit"
	"github.com/verifyd/verifyd/service"
)

// guarded is a fixture whose service runs every guard: the fraud guard on a
// MemStore, the in-process limiter, both on the fixture's clock.
type guarded struct {
	*fixture
	mem   *fraud.MemStore
	guard *fraud.Guard
	refs  *refusals
}

// refusals is an Observer that records refusals and outcomes.
type refusals struct {
	mu       sync.Mutex
	codes    map[string]int
	outcomes map[string]int
}

func (r *refusals) Count(_ verifyd.Channel, outcome string) {
	r.mu.Lock()
	r.outcomes[outcome]++
	r.mu.Unlock()
}
func (r *refusals) Refused(code string) { r.mu.Lock(); r.codes[code]++; r.mu.Unlock() }
func (r *refusals) get(m map[string]int, k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[k]
}

func newGuarded(t *testing.T, mod func(*fraud.Config, *service.Guards)) *guarded {
	t.Helper()
	g := &guarded{mem: fraud.NewMemStore(), refs: &refusals{codes: map[string]int{}, outcomes: map[string]int{}}}
	now := func() time.Time { // the fixture's clock, once it exists (same start)
		if g.fixture == nil {
			return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		}
		return g.clock.Now()
	}
	cfg := fraud.DefaultConfig()
	cfg.Now = now
	guards := &service.Guards{Limiter: ratelimit.New(ratelimit.Options{Now: now})}
	if mod != nil {
		mod(&cfg, guards)
	}
	var err error
	if g.guard, err = fraud.NewGuard(cfg, g.mem, g.mem); err != nil {
		t.Fatal(err)
	}
	guards.Fraud = g.guard
	g.fixture = newFixture(t, service.Options{Guards: guards, Observer: g.refs})
	g.profile = g.mustProfile(t, g.acct, map[string]any{"name": "gb", "sms": map[string]any{"whitelisted_destinations": []any{"GB"}}})
	return g
}

func (g *guarded) try(phone string, mods ...func(*service.TriggerRequest)) (*verifyd.Verification, error) {
	r := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: g.profile.ID}
	for _, m := range mods {
		m(&r)
	}
	return g.svc.Trigger(g.ctx, g.acct, r)
}

func (g *guarded) depth(t *testing.T) int {
	t.Helper()
	n, err := g.store.QueueDepth(g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestGuards_DestinationAllowlistD24(t *testing.T) {
	g := newGuarded(t, nil)
	closed := g.mustProfile(t, g.acct, map[string]any{"name": "closed"})
	_, err := g.try("+447400123456", func(r *service.TriggerRequest) { r.ProfileID = closed.ID })
	wantCode(t, err, verifyd.EDESTINATION, "/phone_number")
	if e := err.(*verifyd.Error); !bytes.Contains([]byte(e.Message), []byte(`add "GB"`)) {
		t.Fatalf("V0001 does not say what to add: %q", e.Message)
	}
	_, err = g.try("+12025550123") // GB only
	wantCode(t, err, verifyd.EDESTINATION, "/phone_number")
	if _, err := g.try("+447400123456"); err != nil {
		t.Fatalf("GB on a GB profile: %v", err)
	}
	if g.depth(t) != 1 || g.refs.get(g.refs.codes, verifyd.EDESTINATION) != 2 {
		t.Fatalf("depth %d, V0001 refusals %d; want 1 job and 2 refusals", g.depth(t), g.refs.get(g.refs.codes, verifyd.EDESTINATION))
	}
}

func TestGuards_NumberTypePolicy(t *testing.T) {
	g := newGuarded(t, nil)
	_, err := g.try("+442079460123") // London landline
	wantCode(t, err, verifyd.ENUMBERTYPE, "/phone_number")
	// A profile that allows landlines for SMS (its number_types override).
	p := g.mustProfile(t, g.acct, map[string]any{"name": "landline", "sms": map[string]any{
		"whitelisted_destinations": []any{"GB"}, "number_types": map[string]any{"deny": []any{"premium_rate"}}}})
	if _, err := g.try("+442079460123", func(r *service.TriggerRequest) { r.ProfileID = p.ID }); err != nil {
		t.Fatalf("landline on a profile that allows it: %v", err)
	}
}

func TestGuards_PhoneLimitsAndRefusalsCostNoToken(t *testing.T) {
	g := newGuarded(t, nil)
	const phone = "+447400123456"
	// Refused by an earlier guard: no token spent (D6).
	closed := g.mustProfile(t, g.acct, map[string]any{"name": "closed"})
	for range 5 {
		_, err := g.try(phone, func(r *service.TriggerRequest) { r.ProfileID = closed.ID })
		wantCode(t, err, verifyd.EDESTINATION, "")
	}
	for i := range 3 {
		if _, err := g.try(phone); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	_, err := g.try(phone)
	wantCode(t, err, verifyd.ERATELIMITED, "")
	if ra := err.(*verifyd.Error).RetryAfter; ra < 190 || ra > 200 {
		t.Fatalf("Retry-After %d, want ~200 s (3 per 10 min refills one per 200 s)", ra)
	}
	g.clock.Add(200 * time.Second)
	if _, err := g.try(phone); err != nil {
		t.Fatalf("after 200 s: %v", err)
	}
	g.clock.Add(200 * time.Second)
	if _, err := g.try(phone); err != nil {
		t.Fatalf("5th in the hour: %v", err)
	}
	g.clock.Add(200 * time.Second)
	_, err = g.try(phone) // 6th within the hour: the 5/h limit
	wantCode(t, err, verifyd.ERATELIMITED, "")
	if g.depth(t) != 5 {
		t.Fatalf("%d jobs, want 5 (refusals enqueue nothing)", g.depth(t))
	}
}

func TestGuards_EndUserIPAndSession(t *testing.T) {
	g := newGuarded(t, nil)
	ctx := service.WithEndUser(g.ctx, service.EndUser{IP: "198.51.100.7", Session: "s1"})
	for i := range 5 {
		_, err := g.svc.Trigger(ctx, g.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: fmt.Sprintf("+4474001000%02d", i), ProfileID: g.profile.ID})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_, err := g.svc.Trigger(ctx, g.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400100099", ProfileID: g.profile.ID})
	wantCode(t, err, verifyd.ERATELIMITED, "")
	if e := err.(*verifyd.Error); !bytes.Contains([]byte(e.Message), []byte("session")) {
		t.Fatalf("refusal names %q, want the session limit", e.Message)
	}
	// Another session on the same IP: the IP allows 10 per hour.
	ctx2 := service.WithEndUser(g.ctx, service.EndUser{IP: "198.51.100.7", Session: "s2"})
	for i := range 5 {
		if _, err := g.svc.Trigger(ctx2, g.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: fmt.Sprintf("+4474002000%02d", i), ProfileID: g.profile.ID}); err != nil {
			t.Fatalf("session 2 send %d: %v", i, err)
		}
	}
	ctx3 := service.WithEndUser(g.ctx, service.EndUser{IP: "198.51.100.7", Session: "s3"})
	_, err = g.svc.Trigger(ctx3, g.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400300001", ProfileID: g.profile.ID})
	wantCode(t, err, verifyd.ERATELIMITED, "")
	if e := err.(*verifyd.Error); !bytes.Contains([]byte(e.Message), []byte("ip")) {
		t.Fatalf("refusal names %q, want the ip limit", e.Message)
	}
}

func TestGuards_ProfileRateLimitOverride(t *testing.T) {
	g := newGuarded(t, nil)
	p := g.mustProfile(t, g.acct, map[string]any{"name": "strict", "sms": map[string]any{
		"whitelisted_destinations": []any{"GB"}, "rate_limits": map[string]any{"phone": "1/1h", "profile": "2/1h"}}})
	use := func(r *service.TriggerRequest) { r.ProfileID = p.ID }
	if _, err := g.try("+447400100001", use); err != nil {
		t.Fatal(err)
	}
	_, err := g.try("+447400100001", use)
	wantCode(t, err, verifyd.ERATELIMITED, "")
	if _, err := g.try("+447400100002", use); err != nil {
		t.Fatal(err)
	}
	_, err = g.try("+447400100003", use)
	wantCode(t, err, verifyd.ERATELIMITED, "")
}

func TestGuards_PrefixBlockAndAdmin(t *testing.T) {
	g := newGuarded(t, nil)
	if _, err := g.svc.BlockPrefix(g.ctx, "+447400", "pumping seen by the NOC", time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := g.try("+447400123456")
	wantCode(t, err, verifyd.EPREFIXBLOCK, "/phone_number")
	if ra := err.(*verifyd.Error).RetryAfter; ra != 3600 {
		t.Fatalf("Retry-After %d, want 3600", ra)
	}
	if g.depth(t) != 0 {
		t.Fatal("a blocked trigger enqueued a job")
	}
	blocks, err := g.svc.FraudBlocks(g.ctx)
	if err != nil || len(blocks) != 1 || blocks[0].Prefix != "+447400" || !blocks[0].Manual {
		t.Fatalf("blocks = %+v, %v", blocks, err)
	}
	if _, err := g.svc.LiftBlock(g.ctx, "+447400"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.try("+447400123456"); err != nil {
		t.Fatalf("after the lift: %v", err)
	}
}

func TestGuards_ConversionGuardBlocksAPumpedPrefix(t *testing.T) {
	g := newGuarded(t, func(_ *fraud.Config, gs *service.Guards) { gs.Limits = service.Limits{} }) // limits off: the guard alone
	// Sends to one prefix every 20 s, none completed: once 20 of them have
	// matured (3 min), the prefix is blocked.
	sent := 0
	for ; sent < 60; sent++ {
		_, err := g.try(fmt.Sprintf("+4474001%05d", sent))
		if verifyd.ErrorCode(err) == verifyd.EPREFIXBLOCK {
			break
		}
		if err != nil {
			t.Fatalf("send %d: %v", sent, err)
		}
		g.clock.Add(20 * time.Second)
	}
	if sent < 20 || sent > 32 {
		t.Fatalf("blocked after %d sends, want 20-32 (floor 20 matured sends)", sent)
	}
	if g.depth(t) != sent {
		t.Fatalf("%d jobs, want %d", g.depth(t), sent)
	}
	if blocks, _ := g.svc.FraudBlocks(g.ctx); len(blocks) != 1 || blocks[0].Manual || blocks[0].Prefix != "+447400" {
		t.Fatalf("blocks = %+v, want one automatic block of +447400", blocks)
	}
}

func TestGuards_CompletionFeedsConversion(t *testing.T) {
	g := newGuarded(t, nil)
	if _, err := g.try("+447400123456"); err != nil {
		t.Fatal(err)
	}
	code := "12345"
	g.codes.Push(code)
	v2, err := g.try("+447400123457")
	if err != nil {
		t.Fatal(err)
	}
	if !g.check(t, v2.ID, code) {
		t.Fatal("right code rejected")
	}
	mins, _, err := g.mem.Counts(g.ctx, "+447400", g.clock.Now().Add(-time.Hour), g.clock.Now().Add(-time.Hour))
	if err != nil || len(mins) != 1 || mins[0].Sent != 2 || mins[0].Completed != 1 {
		t.Fatalf("prefix stats = %+v, %v; want 2 sent, 1 completed", mins, err)
	}
}

func TestGuards_DailySpendCap(t *testing.T) {
	g := newGuarded(t, func(c *fraud.Config, _ *service.Guards) {
		c.Prices = fraud.PriceTable{Default: fraud.Amount(0.05), Prices: map[string]fraud.Money{"GB/sms": fraud.Amount(0.04)}}
	})
	p := g.mustProfile(t, g.acct, map[string]any{"name": "capped", "daily_spend_limit": "0.10", "daily_spend_limit_enabled": true,
		"sms": map[string]any{"whitelisted_destinations": []any{"GB"}}})
	use := func(r *service.TriggerRequest) { r.ProfileID = p.ID }
	for i := range 2 {
		if _, err := g.try(fmt.Sprintf("+44740010000%d", i), use); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_, err := g.try("+447400100009", use) // 0.08 + 0.04 > 0.10
	wantCode(t, err, verifyd.ESPENDLIMIT, "")
	if err.(*verifyd.Error).RetryAfter != 12*3600 {
		t.Fatalf("Retry-After %d, want 12 h to 00:00 UTC", err.(*verifyd.Error).RetryAfter)
	}
}

func TestGuards_Captcha(t *testing.T) {
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		_ = r.ParseForm()
		if r.PostForm.Get("secret") == "s3cret" && r.PostForm.Get("response") == "good" && r.PostForm.Get("remoteip") == "198.51.100.7" {
			fmt.Fprint(w, `{"success":true}`)
			return
		}
		fmt.Fprint(w, `{"success":false,"error-codes":["invalid-input-response"]}`)
	}))
	defer srv.Close()
	g := newGuarded(t, func(_ *fraud.Config, gs *service.Guards) { gs.Captcha = fraud.NewCaptchaVerifier(srv.URL, "s3cret") })
	p := g.mustProfile(t, g.acct, map[string]any{"name": "bots", "sms": map[string]any{
		"whitelisted_destinations": []any{"GB"}, "captcha_required": true}})
	req := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123456", ProfileID: p.ID}
	_, err := g.svc.Trigger(g.ctx, g.acct, req)
	wantCode(t, err, verifyd.ECAPTCHA, "")
	bad := service.WithEndUser(g.ctx, service.EndUser{IP: "198.51.100.7", CaptchaToken: "forged"})
	req.PhoneNumber = "+447400123457"
	_, err = g.svc.Trigger(bad, g.acct, req)
	wantCode(t, err, verifyd.ECAPTCHA, "")
	good := service.WithEndUser(g.ctx, service.EndUser{IP: "198.51.100.7", CaptchaToken: "good"})
	req.PhoneNumber = "+447400123458"
	if _, err := g.svc.Trigger(good, g.acct, req); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if calls != 2 || g.depth(t) != 1 {
		t.Fatalf("siteverify calls %d (want 2: none without a token), jobs %d (want 1)", calls, g.depth(t))
	}
}

func TestGuards_CheckLimitsIgnoreExistence(t *testing.T) {
	g := newGuarded(t, func(_ *fraud.Config, gs *service.Guards) {
		gs.Limits, _ = service.ParseLimits(service.DefaultLimits(), "check_account=4/1h,check_ip=2/1h")
	})
	v, err := g.try("+447400123456")
	if err != nil {
		t.Fatal(err)
	}
	ip := service.WithEndUser(g.ctx, service.EndUser{IP: "203.0.113.9"})
	code := "00000"
	// One check of an existing and one of a missing verification: the IP
	// limit counts both alike.
	if _, _, err := g.svc.CheckByID(ip, g.acct, v.ID, &code, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.svc.CheckByID(ip, g.acct, verifyd.NewID(), &code, nil); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Fatalf("missing verification: %v", err)
	}
	_, err = g.svc.CheckByPhone(ip, g.acct, "+447400999999", g.profile.ID, code)
	wantCode(t, err, verifyd.ERATELIMITED, "")
	// Without the header the account limit (4) still has 2 left.
	for range 2 {
		if _, err := g.svc.CheckByPhone(g.ctx, g.acct, "+447400999999", g.profile.ID, code); err != nil {
			t.Fatal(err)
		}
	}
	_, err = g.svc.CheckByPhone(g.ctx, g.acct, "+447400999999", g.profile.ID, code)
	wantCode(t, err, verifyd.ERATELIMITED, "")
}

func TestTestMode_FixedCodeNeverSentNorLimited(t *testing.T) {
	g := newGuarded(t, nil)
	p := g.mustProfile(t, g.acct, map[string]any{"name": "ci", "sms": map[string]any{
		"test_numbers": map[string]any{"+15005550006": "424242"}}}) // no destinations: test numbers need none
	use := func(r *service.TriggerRequest) { r.ProfileID = p.ID }
	var last *verifyd.Verification
	for i := range 8 { // beyond every per-phone limit
		v, err := g.try("+15005550006", use)
		if err != nil {
			t.Fatalf("test trigger %d: %v", i, err)
		}
		last = v
	}
	if last.DeliveryStatus != service.DeliveryTest {
		t.Fatalf("delivery_status %q, want %q (the marker)", last.DeliveryStatus, service.DeliveryTest)
	}
	if g.depth(t) != 0 {
		t.Fatalf("%d jobs queued for test numbers, want 0 (never sent)", g.depth(t))
	}
	if !g.check(t, last.ID, "424242") {
		t.Fatal("the fixed code was rejected")
	}
	if n, _ := g.mem.Spend(g.ctx, p.ID, g.clock.Now().Truncate(24*time.Hour)); n != 0 {
		t.Fatalf("test sends billed %v", n)
	}
	if g.refs.get(g.refs.outcomes, "test_triggered") != 8 || g.refs.get(g.refs.outcomes, "test_accepted") != 1 ||
		g.refs.get(g.refs.outcomes, "triggered") != 0 {
		t.Fatalf("outcomes %v, want 8 test_triggered, 1 test_accepted", g.refs.outcomes)
	}
	// Any other number on the profile goes through the guards.
	_, err := g.try("+447400123456", use)
	wantCode(t, err, verifyd.EDESTINATION, "")
}

func TestIdempotency_KeyReplaysAndRefusesOtherBodies(t *testing.T) {
	g := newGuarded(t, nil)
	renders := 0
	rp := &service.Replay{Key: "order-42", Respond: func(v *verifyd.Verification) ([]byte, error) {
		renders++
		return []byte(`{"data":{"id":"` + v.ID + `"}}`), nil
	}}
	req := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123456", ProfileID: g.profile.ID}
	v, replay, err := g.svc.TriggerReplayable(g.ctx, g.acct, req, rp)
	if err != nil || v == nil || replay != nil {
		t.Fatalf("first: %v %s %v", v, replay, err)
	}
	for range 5 { // beyond the per-phone limits: replays spend nothing
		g.clock.Add(time.Hour)
		v2, replay, err := g.svc.TriggerReplayable(g.ctx, g.acct, req, rp)
		if err != nil || v2 != nil || string(replay) != `{"data":{"id":"`+v.ID+`"}}` {
			t.Fatalf("replay: %v %q %v", v2, replay, err)
		}
	}
	if renders != 1 || g.depth(t) != 1 {
		t.Fatalf("renders %d, jobs %d; want 1 and 1", renders, g.depth(t))
	}
	other := req
	other.PhoneNumber = "+447400123457"
	_, _, err = g.svc.TriggerReplayable(g.ctx, g.acct, other, rp)
	wantCode(t, err, verifyd.EINVALID, "Idempotency-Key")
	g.clock.Add(20 * time.Hour) // 25 h after the first: the key is free again
	if v3, _, err := g.svc.TriggerReplayable(g.ctx, g.acct, other, rp); err != nil || v3 == nil {
		t.Fatalf("after 24 h: %v %v", v3, err)
	}
	_, _, err = g.svc.TriggerReplayable(g.ctx, g.acct, req, &service.Replay{Key: "bad\nkey"})
	wantCode(t, err, verifyd.EINVALID, "Idempotency-Key")
}

func TestIdempotency_ConcurrentSameKeyOneVerification(t *testing.T) {
	g := newGuarded(t, func(_ *fraud.Config, gs *service.Guards) { gs.Limits = service.Limits{} })
	req := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123456", ProfileID: g.profile.ID}
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := &service.Replay{Key: "same", Respond: func(v *verifyd.Verification) ([]byte, error) { return []byte(v.ID), nil }}
			v, replay, err := g.svc.TriggerReplayable(g.ctx, g.acct, req, rp)
			switch {
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			case v != nil:
				bodies[i] = v.ID
			default:
				bodies[i] = string(replay)
			}
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] || b == "" {
			t.Fatalf("answers differ: %q", bodies)
		}
	}
	list, _, _ := g.store.ListVerificationsByPhone(g.ctx, g.acct.ID, req.PhoneNumber, 0, 100)
	if len(list) != 1 || g.depth(t) != 1 {
		t.Fatalf("%d verifications, %d jobs for one key; want 1 and 1", len(list), g.depth(t))
	}
}

func TestIdempotency_SDKRetryWithoutKey(t *testing.T) {
	g := newGuarded(t, nil)
	req := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123456", ProfileID: g.profile.ID}
	first, err := g.svc.Trigger(g.ctx, g.acct, req)
	if err != nil {
		t.Fatal(err)
	}
	retry := service.WithEndUser(g.ctx, service.EndUser{Retry: true})
	g.clock.Add(30 * time.Second)
	again, err := g.svc.Trigger(retry, g.acct, req)
	if err != nil || again.ID != first.ID {
		t.Fatalf("retry within 60 s: %v %v, want verification %s", again, err, first.ID)
	}
	// A different body is a new trigger, even marked as a retry.
	other := req
	other.TimeoutSecs = new(int)
	*other.TimeoutSecs = 120
	v2, err := g.svc.Trigger(retry, g.acct, other)
	if err != nil || v2.ID == first.ID {
		t.Fatalf("retry with another body: %v %v", v2, err)
	}
	g.clock.Add(61 * time.Second)
	v3, err := g.svc.Trigger(retry, g.acct, other)
	if err != nil || v3.ID == v2.ID {
		t.Fatalf("retry after 60 s: %v %v, want a new verification", v3, err)
	}
	if g.depth(t) != 3 {
		t.Fatalf("%d jobs, want 3", g.depth(t))
	}
}
