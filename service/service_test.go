package service_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// codes is a test code source that hands out the codes queued in it, then
// a fixed fallback.
type codes struct {
	mu      sync.Mutex
	next    []string
	lastLen int
}

func (c *codes) Push(s ...string) { c.mu.Lock(); c.next = append(c.next, s...); c.mu.Unlock() }
func (c *codes) Code(n int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastLen = n
	if len(c.next) > 0 {
		s := c.next[0]
		c.next = c.next[1:]
		return s, nil
	}
	return service.RandomCode(n)
}

type fixture struct {
	svc     *service.Service
	store   verifyd.Store
	clock   *clock
	codes   *codes
	acct    *verifyd.Account
	profile *verifyd.Profile
	ctx     context.Context
}

// newStoreKeys opens a SQLite store in a temporary directory, closed when
// tb ends, and makes server keys from a random key.
func newStoreKeys(tb testing.TB) (*sqlite.Store, *service.Keys) {
	tb.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "v.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := service.NewKeys([][]byte{key})
	if err != nil {
		tb.Fatal(err)
	}
	return store, keys
}

func newFixture(t *testing.T, opts service.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	store, keys := newStoreKeys(t)
	f := &fixture{store: store, ctx: ctx, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, codes: &codes{}}
	opts.Now, opts.Codes = f.clock.Now, f.codes.Code
	f.svc = service.New(store, keys, opts)
	var err error
	if f.acct, err = f.svc.CreateAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	f.profile = f.mustProfile(t, f.acct, map[string]any{"name": "p"})
	return f
}

func (f *fixture) mustProfile(t *testing.T, acct *verifyd.Account, body map[string]any) *verifyd.Profile {
	t.Helper()
	p, err := f.svc.CreateProfile(f.ctx, acct, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) trigger(t *testing.T, phone, code string) *verifyd.Verification {
	t.Helper()
	if code != "" {
		f.codes.Push(code)
	}
	v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: f.profile.ID})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) check(t *testing.T, id, code string) bool {
	t.Helper()
	_, ok, err := f.svc.CheckByID(f.ctx, f.acct, id, &code, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func (f *fixture) get(t *testing.T, id string) *verifyd.Verification {
	t.Helper()
	v, err := f.svc.GetVerification(f.ctx, f.acct, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, err error, code, pointer string) {
	t.Helper()
	if got := verifyd.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	if e, ok := err.(*verifyd.Error); ok && pointer != "" && e.Pointer != pointer && e.Parameter != pointer {
		t.Fatalf("error points at %q/%q, want %q", e.Pointer, e.Parameter, pointer)
	}
}

const phone = "+447400123456"

func TestTrigger_Validation(t *testing.T) {
	f := newFixture(t, service.Options{})
	req := func(mod func(*service.TriggerRequest)) error {
		r := service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: f.profile.ID}
		mod(&r)
		_, err := f.svc.Trigger(f.ctx, f.acct, r)
		return err
	}
	intp := func(n int) *int { return &n }
	strp := func(s string) *string { return &s }
	wantCode(t, req(func(r *service.TriggerRequest) { r.PhoneNumber = "447400123456" }), verifyd.EPHONEFORMAT, "/phone_number")
	wantCode(t, req(func(r *service.TriggerRequest) { r.PhoneNumber = "+44 7400123456" }), verifyd.EPHONEFORMAT, "/phone_number")
	wantCode(t, req(func(r *service.TriggerRequest) { r.PhoneNumber = "+0447400123456" }), verifyd.EPHONEFORMAT, "/phone_number")
	wantCode(t, req(func(r *service.TriggerRequest) { r.PhoneNumber = "+44123" }), verifyd.EPHONEINVALID, "/phone_number")
	wantCode(t, req(func(r *service.TriggerRequest) { r.ProfileID = verifyd.NewID() }), verifyd.EREFERENCE, "/verify_profile_id")
	wantCode(t, req(func(r *service.TriggerRequest) { r.ProfileID = "nope" }), verifyd.EREFERENCE, "/verify_profile_id")
	wantCode(t, req(func(r *service.TriggerRequest) { r.ProfileID = "" }), verifyd.EREQUIRED, "/verify_profile_id")
	wantCode(t, req(func(r *service.TriggerRequest) { r.TimeoutSecs = intp(29) }), verifyd.EINVALID, "/timeout_secs")
	wantCode(t, req(func(r *service.TriggerRequest) { r.TimeoutSecs = intp(86401) }), verifyd.EINVALID, "/timeout_secs")
	wantCode(t, req(func(r *service.TriggerRequest) { r.CustomCode = strp("123") }), verifyd.EINVALID, "/custom_code")
	wantCode(t, req(func(r *service.TriggerRequest) { r.CustomCode = strp("12345a") }), verifyd.EINVALID, "/custom_code")
	wantCode(t, req(func(r *service.TriggerRequest) {
		r.Channel, r.Extension = verifyd.Call, strp("12x")
	}), verifyd.EINVALID, "/extension")
	wantCode(t, req(func(r *service.TriggerRequest) { r.Channel = verifyd.WhatsApp }), verifyd.ECHANNEL, "")

	// The profile of another account is a missing reference.
	other, _ := f.svc.CreateAccount(f.ctx, "b")
	op := f.mustProfile(t, other, map[string]any{"name": "theirs"})
	wantCode(t, req(func(r *service.TriggerRequest) { r.ProfileID = op.ID }), verifyd.EREFERENCE, "/verify_profile_id")
}

func TestTrigger_CodeLengthAndTimeoutFromProfile(t *testing.T) {
	f := newFixture(t, service.Options{})
	p := f.mustProfile(t, f.acct, map[string]any{"name": "x", "sms": map[string]any{"code_length": float64(8), "default_verification_timeout_secs": float64(120)}})
	v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	if v.TimeoutSecs != 120 || !v.ExpiresAt.Equal(v.CreatedAt.Add(120*time.Second)) {
		t.Fatalf("timeout %d, expires %v", v.TimeoutSecs, v.ExpiresAt)
	}
	if f.codes.lastLen != 8 {
		t.Fatalf("code drawn with length %d, want the profile's 8", f.codes.lastLen)
	}
	// The default profile draws 5 digits.
	f.trigger(t, "+447400123457", "")
	if f.codes.lastLen != 5 {
		t.Fatalf("default code length %d, want 5", f.codes.lastLen)
	}
}

func TestCheck_RightAndSingleUse(t *testing.T) {
	f := newFixture(t, service.Options{})
	v := f.trigger(t, phone, "12345")
	if f.check(t, v.ID, "54321") {
		t.Fatal("wrong code accepted")
	}
	if !f.check(t, v.ID, "12345") {
		t.Fatal("right code rejected")
	}
	if f.check(t, v.ID, "12345") {
		t.Fatal("code accepted twice")
	}
	got := f.get(t, v.ID)
	if got.Status != verifyd.StatusAccepted || got.FailedAttempts() != 1 {
		t.Fatalf("status %s failed %d", got.Status, got.FailedAttempts())
	}
}

func TestCheck_Expiry(t *testing.T) {
	f := newFixture(t, service.Options{})
	v := f.trigger(t, phone, "12345")
	f.clock.Add(300 * time.Second) // expiry is exclusive: at created+timeout it is gone
	if got := f.get(t, v.ID); got.Status != verifyd.StatusExpired || got.CompletionReason != verifyd.ReasonTimedOut {
		t.Fatalf("read after expiry: status %s reason %s", got.Status, got.CompletionReason)
	}
	if f.check(t, v.ID, "12345") {
		t.Fatal("expired code accepted")
	}
	// By phone too, through a verification that expires between trigger and check.
	v2 := f.trigger(t, "+447400123457", "22222")
	f.clock.Add(299 * time.Second)
	ok, err := f.svc.CheckByPhone(f.ctx, f.acct, v2.PhoneNumber, f.profile.ID, "22222")
	if err != nil || !ok {
		t.Fatalf("check 1 s before expiry: ok=%v err=%v", ok, err)
	}
}

func TestCheck_LockoutAndNoRefill(t *testing.T) {
	f := newFixture(t, service.Options{MaxAttempts: 5})
	v := f.trigger(t, phone, "12345")
	for i := 0; i < 5; i++ {
		if f.check(t, v.ID, "00000") {
			t.Fatal("wrong code accepted")
		}
	}
	if got := f.get(t, v.ID); got.Status != verifyd.StatusInvalid || got.Attempts != 5 {
		t.Fatalf("after 5 wrong: status %s attempts %d", got.Status, got.Attempts)
	}
	if f.check(t, v.ID, "12345") {
		t.Fatal("right code accepted after the budget was used up")
	}
	f.codes.Push("99999")
	_, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: f.profile.ID})
	wantCode(t, err, verifyd.EMAXATTEMPTS, "")
	if ra := err.(*verifyd.Error).RetryAfter; ra < 299 || ra > 300 {
		t.Fatalf("Retry-After %d, want ~300", ra)
	}
	f.clock.Add(301 * time.Second)
	v2 := f.trigger(t, phone, "77777")
	if v2.Attempts != 0 {
		t.Fatalf("fresh verification after expiry starts with %d attempts", v2.Attempts)
	}
}

func TestSupersede_CarriesAttempts(t *testing.T) {
	f := newFixture(t, service.Options{MaxAttempts: 5})
	a := f.trigger(t, phone, "11111")
	f.check(t, a.ID, "00000")
	f.check(t, a.ID, "00001")
	b := f.trigger(t, phone, "22222")
	if b.Attempts != 2 {
		t.Fatalf("resend inherited %d attempts, want 2", b.Attempts)
	}
	if got := f.get(t, a.ID); got.Status != verifyd.StatusExpired || got.CompletionReason != verifyd.ReasonSuperseded {
		t.Fatalf("old: status %s reason %s", got.Status, got.CompletionReason)
	}
	if f.check(t, a.ID, "11111") {
		t.Fatal("superseded code accepted")
	}
	ok, err := f.svc.CheckByPhone(f.ctx, f.acct, phone, f.profile.ID, "11111")
	if err != nil || ok {
		t.Fatalf("old code by phone: ok=%v err=%v", ok, err)
	}
	// 2 inherited + 1 above by phone = 3; two more wrong exhaust the budget.
	f.check(t, b.ID, "00002")
	f.check(t, b.ID, "00003")
	if got := f.get(t, b.ID); got.Status != verifyd.StatusInvalid {
		t.Fatalf("status %s attempts %d after 5 attempts over a resend", got.Status, got.Attempts)
	}
}

func TestCustomCodeAndStatus(t *testing.T) {
	f := newFixture(t, service.Options{})
	cc := "424242"
	v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: f.profile.ID, CustomCode: &cc})
	if err != nil {
		t.Fatal(err)
	}
	if !v.CustomCode {
		t.Fatal("custom code not marked")
	}
	rej, acc := "rejected", "accepted"
	if _, ok, err := f.svc.CheckByID(f.ctx, f.acct, v.ID, nil, &rej); err != nil || ok {
		t.Fatalf("status rejected: ok=%v err=%v", ok, err)
	}
	if got := f.get(t, v.ID); got.Attempts != 1 {
		t.Fatalf("status rejected counted %d attempts", got.Attempts)
	}
	if _, ok, err := f.svc.CheckByID(f.ctx, f.acct, v.ID, nil, &acc); err != nil || !ok {
		t.Fatalf("status accepted: ok=%v err=%v", ok, err)
	}
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, v.ID, nil, &acc)
	wantCode(t, err, verifyd.ENOTPENDING, "")

	// status needs a custom-code verification; neither/both are errors.
	g := f.trigger(t, "+447400123458", "12345")
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, g.ID, nil, &acc)
	wantCode(t, err, verifyd.EINVALID, "/status")
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, g.ID, nil, nil)
	wantCode(t, err, verifyd.EREQUIRED, "/code")
	code := "12345"
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, g.ID, &code, &acc)
	wantCode(t, err, verifyd.EINVALID, "/status")
	bad := "maybe"
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, g.ID, nil, &bad)
	wantCode(t, err, verifyd.EINVALID, "/status")

	// On an expired custom verification → V0008.
	cc2 := "5555"
	e, _ := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123459", ProfileID: f.profile.ID, CustomCode: &cc2})
	f.clock.Add(301 * time.Second)
	_, _, err = f.svc.CheckByID(f.ctx, f.acct, e.ID, nil, &acc)
	wantCode(t, err, verifyd.EEXPIRED, "")
}

func TestCheckByPhone_NoEnumeration(t *testing.T) {
	f := newFixture(t, service.Options{MaxFailures: 3})
	f.trigger(t, phone, "12345")
	for _, p := range []string{phone, "+447400999999"} {
		ok, err := f.svc.CheckByPhone(f.ctx, f.acct, p, f.profile.ID, "00000")
		if err != nil || ok {
			t.Fatalf("%s: ok=%v err=%v", p, ok, err)
		}
	}
	// The failure cap counts the unknown number exactly like the known one.
	for _, p := range []string{phone, "+447400999999"} {
		f.svc.CheckByPhone(f.ctx, f.acct, p, f.profile.ID, "00000")
		f.svc.CheckByPhone(f.ctx, f.acct, p, f.profile.ID, "00000")
		_, err := f.svc.CheckByPhone(f.ctx, f.acct, p, f.profile.ID, "00000")
		wantCode(t, err, verifyd.ERATELIMITED, "")
	}
	// Another account's verification is invisible.
	other, _ := f.svc.CreateAccount(f.ctx, "b")
	op := f.mustProfile(t, other, map[string]any{"name": "q"})
	_, err := f.svc.CheckByPhone(f.ctx, other, phone, f.profile.ID, "12345")
	wantCode(t, err, verifyd.EREFERENCE, "/verify_profile_id")
	if ok, err := f.svc.CheckByPhone(f.ctx, other, phone, op.ID, "12345"); ok || err != nil {
		t.Fatalf("cross-account check: ok=%v err=%v", ok, err)
	}
}

func TestCheck_ConcurrentBudget(t *testing.T) {
	for round := 0; round < 5; round++ {
		f := newFixture(t, service.Options{MaxAttempts: 5, MaxFailures: 1000})
		v := f.trigger(t, phone, "12345")
		var accepted atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 51; i++ {
			code := "00000"
			if i == 25 {
				code = "12345"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := f.svc.CheckByID(f.ctx, f.acct, v.ID, &code, nil)
				if err != nil {
					t.Error(err)
				}
				if ok {
					accepted.Add(1)
				}
			}()
		}
		wg.Wait()
		got := f.get(t, v.ID)
		if got.Attempts > 5 {
			t.Fatalf("attempts %d exceed the budget of 5", got.Attempts)
		}
		if accepted.Load() > 1 {
			t.Fatalf("%d accepts", accepted.Load())
		}
		if (accepted.Load() == 1) != (got.Status == verifyd.StatusAccepted) {
			t.Fatalf("accepted %d but status %s", accepted.Load(), got.Status)
		}
	}
}

func TestCheck_ConcurrentRightCodesAcceptOnce(t *testing.T) {
	f := newFixture(t, service.Options{MaxAttempts: 5})
	f.trigger(t, phone, "12345")
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := f.svc.CheckByPhone(f.ctx, f.acct, phone, f.profile.ID, "12345"); err == nil && ok {
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 1 {
		t.Fatalf("right code accepted %d times, want exactly 1", accepted.Load())
	}
}

func TestProfileDelete_ExpiresPending(t *testing.T) {
	f := newFixture(t, service.Options{})
	v := f.trigger(t, phone, "12345")
	if _, err := f.svc.DeleteProfile(f.ctx, f.acct, f.profile.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, v.ID); got.Status != verifyd.StatusExpired || got.CompletionReason != verifyd.ReasonProfileDeleted {
		t.Fatalf("status %s reason %s", got.Status, got.CompletionReason)
	}
	_, err := f.svc.GetProfile(f.ctx, f.acct, f.profile.ID)
	wantCode(t, err, verifyd.ENOTFOUND, "")
}

func TestRandomCode(t *testing.T) {
	seen := map[byte]int{}
	for i := 0; i < 2000; i++ {
		c, err := service.RandomCode(6)
		if err != nil || len(c) != 6 {
			t.Fatalf("code %q err %v", c, err)
		}
		for j := range c {
			if c[j] < '0' || c[j] > '9' {
				t.Fatalf("non-digit in %q", c)
			}
			seen[c[j]]++
		}
	}
	// 12,000 digits: each of the 10 expected 1,200 times; a biased or
	// broken source falls far outside ±20 %.
	for d := byte('0'); d <= '9'; d++ {
		if n := seen[d]; n < 960 || n > 1440 {
			t.Fatalf("digit %c seen %d times of 12000", d, n)
		}
	}
}
