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
