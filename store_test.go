package verifyd

import (
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
