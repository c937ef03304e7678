package verifyd

import (
	"strings"
	"testing"
	"time"
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		v4, v7 := NewID(), NewOrderedID()
		if !ValidID(v4) || !ValidID(v7) || v4[14] != '4' || v7[14] != '7' {
			t.Fatalf("bad ids %s %s", v4, v7)
		}
		if seen[v4] || seen[v7] {
			t.Fatal("duplicate id")
		}
		seen[v4], seen[v7] = true, true
	}
	a := NewOrderedID()
	time.Sleep(2 * time.Millisecond) // a new millisecond, not a wait for async work
	if b := NewOrderedID(); b <= a {
		t.Fatalf("ordered ids not increasing across milliseconds: %s then %s", a, b)
	}
	for _, bad := range []string{"", "x", "9b6c5a4e-0f0e-4d53-8a1c-1f2e3d4c5b6", "9b6c5a4e+0f0e-4d53-8a1c-1f2e3d4c5b6a", "9b6c5a4e-0f0e-4d53-8a1c-1f2e3d4c5b6g"} {
		if ValidID(bad) {
			t.Fatalf("ValidID(%q) = true", bad)
		}
	}
}

func TestVerificationIDs(t *testing.T) {
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	for period := int64(1000); period < 1064; period++ {
		first := newVerificationID(period)
		prefixes[first[:4]] = true
		for i := 0; i < 100; i++ {
			id := newVerificationID(period)
			if !ValidID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
				t.Fatalf("not a UUIDv4: %s", id)
			}
			if id[:4] != first[:4] {
				t.Fatalf("period %d: %s and %s do not share their first 16 bits", period, first, id)
			}
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
			// Bits 16 on are drawn per ID: 106 random bits, so two IDs of
			// one period that agree on the next 32 bits are all but
			// impossible (2^-32 per pair) unless they are not drawn.
			if i > 0 && id[4:13] == first[4:13] {
				t.Fatalf("period %d: %s and %s share more than their prefix", period, first, id)
			}
		}
	}
	// 64 periods, each a random 16-bit prefix: that fewer than 32 differ
	// has a probability far below 2^-100.
	if len(prefixes) < 32 {
		t.Fatalf("64 periods drew only %d distinct prefixes", len(prefixes))
	}
	if id := NewVerificationID(); !ValidID(id) || id[14] != '4' {
		t.Fatalf("NewVerificationID() = %s", id)
	}
}

func TestDecideOnPassesACopy(t *testing.T) {
	v := &Verification{ID: "v", Attempts: 1, Status: StatusPending}
	p := AttemptParams{Decide: func(got *Verification, n int) (Decision, error) {
		if got == v || got.ID != "v" || n != 3 {
			t.Fatalf("Decide got %p %+v, %d; want a copy of %p and 3", got, got, n, v)
		}
		got.Attempts, got.Status = 99, StatusAccepted
		return DecideAccept, nil
	}}
	if d, err := p.DecideOn(v, 3); d != DecideAccept || err != nil {
		t.Fatalf("DecideOn = %v, %v", d, err)
	}
	if v.Attempts != 1 || v.Status != StatusPending {
		t.Fatalf("Decide changed the caller's verification: %+v", v)
	}
	p.Decide = func(got *Verification, _ int) (Decision, error) {
		if got != nil {
			t.Fatalf("Decide got %+v for no verification", got)
		}
		return DecideReject, nil
	}
	if d, _ := p.DecideOn(nil, 0); d != DecideReject {
		t.Fatalf("DecideOn(nil) = %v", d)
	}
}
