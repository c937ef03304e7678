package fraud

import (
	"strings"
	"testing"

	"github.com/verifyd/verifyd"
)

func TestCheckDestination(t *testing.T) {
	t.Run("EmptyDeniesAll", func(t *testing.T) {
		e := wantCode(t, CheckDestination(verifyd.SMS, nil, "GB", "+447911123456"), verifyd.EDESTINATION)
		if !strings.Contains(e.Message, `add "GB"`) || !strings.Contains(e.Message, "empty") {
			t.Errorf("message %q does not say how to allow GB", e.Message)
		}
	})
	t.Run("Listed", func(t *testing.T) {
		if err := CheckDestination(verifyd.SMS, []string{"DE", "GB"}, "GB", "+447911123456"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Star", func(t *testing.T) {
		if err := CheckDestination(verifyd.Call, []string{"*"}, "NG", "+2348021234567"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NotListed", func(t *testing.T) {
		e := wantCode(t, CheckDestination(verifyd.Call, []string{"DE"}, "GB", "+447911123456"), verifyd.EDESTINATION)
		want := `Destination GB is not allowed for call on this profile; add "GB" to whitelisted_destinations.`
		if e.Message != want {
			t.Errorf("message %q, want %q", e.Message, want)
		}
	})
	t.Run("NonGeographicEvenUnderStar", func(t *testing.T) {
		e := wantCode(t, CheckDestination(verifyd.SMS, []string{"*"}, "001", "+80012345678"), verifyd.EDESTINATION)
		if !strings.Contains(e.Message, "+800") {
			t.Errorf("message %q does not name +800", e.Message)
		}
	})
}
