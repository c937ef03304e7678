package service

import (
	"testing"

	"github.com/verifyd/verifyd"
)

func TestCheckPhoneFormat(t *testing.T) {
	for phone, ok := range map[string]bool{
		"+447400123456": true, "+1": true, "+123456789012345": true,
		"": false, "+": false, "447400123456": false, "+0447400123456": false,
		"+1234567890123456": false, "+44 7400123456": false, "+44-7400": false,
		"++44": false, "+４４": false, " +447400123456": false,
	} {
		if got := CheckPhoneFormat(phone) == nil; got != ok {
			t.Errorf("CheckPhoneFormat(%q) ok=%v, want %v", phone, got, ok)
		}
	}
	if _, err := ValidatePhone("+447400123456"); err != nil {
		t.Fatalf("valid UK mobile refused: %v", err)
	}
	if _, err := ValidatePhone("+4474001"); verifyd.ErrorCode(err) != verifyd.EPHONEINVALID {
		t.Fatalf("short UK number: %v", err)
	}
}

// FuzzValidatePhone: any input either passes both checks consistently or is
// refused with one of the two phone errors; nothing panics.
func FuzzValidatePhone(f *testing.F) {
	for _, s := range []string{"+447400123456", "+1", "+12025550123", "+", "", "+999999999999999", "+86١٢٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, phone string) {
		formatErr := CheckPhoneFormat(phone)
		_, err := ValidatePhone(phone)
		switch verifyd.ErrorCode(err) {
		case "":
			if formatErr != nil {
				t.Fatalf("%q valid but badly formed", phone)
			}
		case verifyd.EPHONEFORMAT:
			if formatErr == nil {
				t.Fatalf("%q well formed but refused as badly formed", phone)
			}
		case verifyd.EPHONEINVALID:
			if formatErr != nil {
				t.Fatalf("%q badly formed but reported invalid", phone)
			}
		default:
			t.Fatalf("%q: unexpected error %v", phone, err)
		}
	})
}
