package fraud

import (
	"context"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

func TestPolicy_Default(t *testing.T) {
	g, _, _ := testGuard(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		region string
		typ    phonenumbers.PhoneNumberType
		ch     verifyd.Channel
		want   string // "" = allowed
		named  string
	}{
		{"GB", phonenumbers.MOBILE, verifyd.SMS, "", ""},
		{"GB", phonenumbers.PREMIUM_RATE, verifyd.SMS, verifyd.ENUMBERTYPE, "premium-rate"},
		{"GB", phonenumbers.PREMIUM_RATE, verifyd.Call, verifyd.ENUMBERTYPE, "premium-rate"},
		{"FR", phonenumbers.SHARED_COST, verifyd.Call, verifyd.ENUMBERTYPE, "shared-cost"},
		{"GB", phonenumbers.PAGER, verifyd.SMS, verifyd.ENUMBERTYPE, "pager"},
		{"GB", phonenumbers.UAN, verifyd.Call, verifyd.ENUMBERTYPE, "uan"},
		{"GB", phonenumbers.FIXED_LINE, verifyd.SMS, verifyd.ENUMBERTYPE, "fixed-line"},
		{"GB", phonenumbers.FIXED_LINE, verifyd.WhatsApp, verifyd.ENUMBERTYPE, "fixed-line"},
		{"GB", phonenumbers.FIXED_LINE, verifyd.Call, "", ""},
		{"US", phonenumbers.FIXED_LINE_OR_MOBILE, verifyd.SMS, "", ""},
	} {
		phone := example(t, tc.region, tc.typ)
		d, err := g.Check(ctx, Request{Channel: tc.ch, Phone: phone})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %s (%s): %v", tc.ch, phone, d.Type, err)
			}
			continue
		}
		e := wantCode(t, err, tc.want)
		if !strings.Contains(e.Message, tc.named) {
			t.Errorf("%s %s: message %q does not name %q", tc.ch, phone, e.Message, tc.named)
		}
	}
}

func TestPolicy_UnallocatedIsUnknown(t *testing.T) {
	num, err := phonenumbers.Parse("+441000000000", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := TypeOf(num); got != Unknown {
		t.Fatalf("type %s, want unknown", got)
	}
	e := wantCode(t, DefaultPolicy().Check(verifyd.Call, Unknown), verifyd.ENUMBERTYPE)
	if !strings.Contains(e.Message, "no allocated range") {
		t.Errorf("message %q", e.Message)
	}
}

func TestPolicy_ProfileOverride(t *testing.T) {
	g, _, _ := testGuard(t, nil)
	ctx := context.Background()
	landline := example(t, "GB", phonenumbers.FIXED_LINE)
	// The profile allows sms to landlines (it has an SMS-to-voice gateway).
	over := Policy{Deny: map[verifyd.Channel][]NumberType{verifyd.SMS: {}}}
	if _, err := g.Check(ctx, Request{Channel: verifyd.SMS, Phone: landline, Policy: &over}); err != nil {
		t.Fatalf("override: %v", err)
	}
	// The common deny list still applies to the other types.
	premium := example(t, "GB", phonenumbers.PREMIUM_RATE)
	_, err := g.Check(ctx, Request{Channel: verifyd.SMS, Phone: premium, Policy: &over})
	wantCode(t, err, verifyd.ENUMBERTYPE)
	// An allow list admits only its types.
	only := Policy{Allow: map[verifyd.Channel][]NumberType{verifyd.Call: {Mobile}}}
	_, err = g.Check(ctx, Request{Channel: verifyd.Call, Phone: landline, Policy: &only})
	wantCode(t, err, verifyd.ENUMBERTYPE)
	// The global policy is untouched.
	_, err = g.Check(ctx, Request{Channel: verifyd.SMS, Phone: landline})
	wantCode(t, err, verifyd.ENUMBERTYPE)
}

func TestPolicy_Validate(t *testing.T) {
	p := Policy{Deny: map[verifyd.Channel][]NumberType{verifyd.SMS: {"landline"}}}
	if err := p.Validate(); err == nil {
		t.Fatal("unknown type accepted")
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}
