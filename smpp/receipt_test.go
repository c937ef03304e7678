package smpp

import (
	"fmt"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func TestParseReceipt_Text(t *testing.T) {
	cases := []struct {
		text, id, stat, err, status, cause string
	}{
		{"id:1A2B3C sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Your code",
			"1A2B3C", "DELIVRD", "000", verifyd.DeliveryDelivered, ""},
		{"id:0123 sub:001 dlvrd:000 submit date:250101120000 done date:250101120100 stat:UNDELIV err:001 Text:x",
			"0123", "UNDELIV", "001", verifyd.DeliveryFailed, "UNDELIV err:001"},
		{"ID:77 stat:rejectd err:0", "77", "REJECTD", "0", verifyd.DeliveryFailed, "REJECTD"},
		{"id:9 stat:EXPIRED err:000", "9", "EXPIRED", "000", verifyd.DeliveryFailed, "EXPIRED"},
		{"id:9 stat:DELETED err:000", "9", "DELETED", "000", verifyd.DeliveryFailed, "DELETED"},
		{"id:9 stat:ACCEPTD err:000", "9", "ACCEPTD", "000", verifyd.DeliveryUnconfirmed, "ACCEPTD"},
		{"id:9 stat:UNKNOWN err:000", "9", "UNKNOWN", "000", verifyd.DeliveryUnconfirmed, "UNKNOWN"},
		{"id:9 stat:ENROUTE err:000 text:id:5", "9", "ENROUTE", "000", verifyd.DeliveryUnconfirmed, "ENROUTE"},
	}
	for _, c := range cases {
		p := &PDU{ID: DeliverSM, ESMClass: esmTypeReceipt, ShortMessage: []byte(c.text)}
		if !IsReceipt(p) {
			t.Fatal("not a receipt")
		}
		r, ok := ParseReceipt(p)
		if !ok || r.ID != c.id || r.Stat != c.stat || r.Err != c.err {
			t.Errorf("%q: got %+v", c.text, r)
			continue
		}
		if r.Status() != c.status || r.Cause() != c.cause {
			t.Errorf("%q: status %s cause %q", c.text, r.Status(), r.Cause())
		}
	}
}

func TestParseReceipt_TLVsWin(t *testing.T) {
	p := &PDU{ID: DeliverSM, ESMClass: esmTypeReceipt,
		ShortMessage: []byte("id:999 stat:DELIVRD err:000"),
		TLVs: []TLV{{TagReceiptedMessageID, CStringTLV("abc")}, {TagMessageState, []byte{5}},
			{TagNetworkErrorCode, []byte{3, 0, 0x22}}}}
	r, ok := ParseReceipt(p)
	if !ok || r.ID != "abc" || r.Stat != "UNDELIV" || r.Err != "3:034" {
		t.Fatalf("%+v", r)
	}
	if r.Cause() != "UNDELIV err:3:034" {
		t.Fatalf("cause %q", r.Cause())
	}
	// UCS-2 receipt text, TLV id only.
	p = &PDU{ID: DeliverSM, DataCoding: CodingUCS2, ShortMessage: EncodeUCS2("id:5 stat:DELIVRD err:000"),
		TLVs: []TLV{{TagReceiptedMessageID, []byte("5")}}}
	if !IsReceipt(p) {
		t.Fatal("receipted_message_id alone must mark a receipt")
	}
	if r, _ := ParseReceipt(p); r.Stat != "DELIVRD" || r.ID != "5" {
		t.Fatalf("%+v", r)
	}
	// A mobile-originated message is not a receipt.
	if IsReceipt(&PDU{ID: DeliverSM, ShortMessage: []byte("id:1 stat:DELIVRD")}) {
		t.Fatal("MO taken for a receipt")
	}
}

func TestIDForm(t *testing.T) {
	if got := IDHexDec.canonSubmit("1A2B3C"); got != "1715004" {
		t.Fatalf("hex-dec submit %s", got)
	}
	if got := IDHexDec.canonReceipt("0001715004"); got != "1715004" {
		t.Fatalf("hex-dec receipt %s", got)
	}
	if got := IDDecHex.canonSubmit("1715004"); got != "1a2b3c" {
		t.Fatalf("dec-hex submit %s", got)
	}
	if got := IDDecHex.canonReceipt("001A2B3C"); got != "1a2b3c" {
		t.Fatalf("dec-hex receipt %s", got)
	}
	if got := IDAsGiven.canonSubmit("1A2B3C"); got != "1A2B3C" {
		t.Fatalf("as given %s", got)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func resolved(tr *tracker, id, st string) (string, bool) {
	p, ok, commit, _ := tr.resolve(id, st)
	if ok {
		commit()
	}
	return p, ok
}

func TestTracker_TwinIDs(t *testing.T) {
	tr := newTracker(100, time.Hour, newClock().now)
	tr.add("1A2B3C", []string{"1A2B3C"})
	for _, id := range []string{"1A2B3C", "1a2b3c", "001A2B3C", "1715004", "01715004"} {
		if p, ok := resolved(tr, id, verifyd.DeliveryDelivered); !ok || p != "1A2B3C" {
			t.Errorf("%s -> %q %v", id, p, ok)
		}
	}
	// A decimal submit id matched by a hex receipt.
	tr.add("4096", []string{"4096"})
	if p, _ := resolved(tr, "1000", verifyd.DeliveryDelivered); p != "4096" {
		t.Fatalf("hex twin of 4096 -> %q", p)
	}
	// Unknown ids pass through as given.
	if p, ok := resolved(tr, "zz9", verifyd.DeliveryDelivered); !ok || p != "zz9" {
		t.Fatalf("unknown -> %q %v", p, ok)
	}
}

func TestTracker_MultipartRule(t *testing.T) {
	tr := newTracker(100, time.Hour, newClock().now)
	tr.add("p1", []string{"p1", "p2", "p3"})
	if _, ok := resolved(tr, "p2", verifyd.DeliveryDelivered); ok {
		t.Fatal("second part's delivered reported")
	}
	if p, ok := resolved(tr, "p1", verifyd.DeliveryDelivered); !ok || p != "p1" {
		t.Fatal("first part's delivered not reported")
	}
	if _, ok := resolved(tr, "p1", verifyd.DeliveryDelivered); ok {
		t.Fatal("delivered reported twice")
	}
	if p, ok := resolved(tr, "p3", verifyd.DeliveryFailed); !ok || p != "p1" {
		t.Fatal("a part's failure not reported under the first id")
	}
	if _, ok := resolved(tr, "p2", verifyd.DeliveryFailed); ok {
		t.Fatal("failure reported twice")
	}
	// Without commit (sink failed) the next receipt is reported again.
	tr.add("q1", []string{"q1", "q2"})
	if _, ok, _, _ := tr.resolve("q2", verifyd.DeliveryFailed); !ok {
		t.Fatal("not reported")
	}
	if _, ok := resolved(tr, "q2", verifyd.DeliveryFailed); !ok {
		t.Fatal("uncommitted report swallowed")
	}
	// After a failure, the first part's delivered is not reported.
	if _, ok := resolved(tr, "q1", verifyd.DeliveryDelivered); ok {
		t.Fatal("delivered after failed")
	}
}

func TestTracker_Bounds(t *testing.T) {
	clk := newClock()
	tr := newTracker(50, time.Hour, clk.now)
	for i := range 100 {
		id := fmt.Sprintf("m%d", i) // not hex, not decimal: one key each
		tr.add(id, []string{id})
	}
	if n := tr.len(); n > 50 {
		t.Fatalf("%d keys held, cap 50", n)
	}
	tr.add("x1", []string{"x1", "x2"})
	if p, _ := resolved(tr, "x2", verifyd.DeliveryFailed); p != "x1" {
		t.Fatal("newest entry evicted")
	}
	clk.add(2 * time.Hour)
	if p, _ := resolved(tr, "x2", verifyd.DeliveryFailed); p != "x2" {
		t.Fatalf("expired entry still maps to %q", p)
	}
	if n := tr.len(); n != 0 {
		t.Fatalf("%d keys after TTL", n)
	}
}

func TestBucket(t *testing.T) {
	clk := newClock()
	b := newBucket(10, 1, clk.now)
	if d := b.reserve(); d != 0 {
		t.Fatalf("first token waits %v", d)
	}
	if d := b.reserve(); d != 100*time.Millisecond {
		t.Fatalf("second token waits %v, want 100ms", d)
	}
	if d := b.reserve(); d != 200*time.Millisecond {
		t.Fatalf("third token waits %v, want 200ms (queued)", d)
	}
	clk.add(time.Second)
	if d := b.reserve(); d != 0 {
		t.Fatalf("after a second: %v", d)
	}
	if d := b.reserve(); d != 100*time.Millisecond {
		t.Fatalf("burst must stay 1: %v", d)
	}
	if d := newBucket(0, 1, clk.now).reserve(); d != 0 {
		t.Fatal("rate 0 must be unlimited")
	}
}
