package service

import (
	"github.com/verifyd/verifyd"
)

// CheckPhoneFormat enforces the E.164 shape of D2: '+', then 1–15 digits,
// the first 1–9. Nothing is repaired.
func CheckPhoneFormat(phone string) error {
	if !wellFormed(phone) {
		return &verifyd.Error{Code: verifyd.EPHONEFORMAT, Message: "Phone number must be in +E.164 format."}
	}
	return nil
}

func wellFormed(phone string) bool {
	if len(phone) < 2 || len(phone) > 16 || phone[0] != '+' || phone[1] < '1' || phone[1] > '9' {
		return false
	}
	for i := 2; i < len(phone); i++ {
		if phone[i] < '0' || phone[i] > '9' {
			return false
		}
	}
	return true
}

// ValidatePhone checks the shape (EPHONEFORMAT) and that libphonenumber's
// data holds the number valid for its country (EPHONEINVALID). It returns the
// ISO region code. It is the trigger's classification (classifyPhone).
func ValidatePhone(phone string) (region string, err error) {
	c, err := classifyPhone(phone)
	return c.Region, err
}
