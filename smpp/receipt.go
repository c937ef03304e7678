package smpp

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/verifyd/verifyd"
)

// Message states of the message_state TLV (§5.2.28), by their receipt
// text names (Appendix B).
var messageStates = [...]string{
	1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}

// Receipt text fields (Appendix B). Keys vary in case ("Text:"), so the
// match is case-insensitive; a key must start the text or follow a space.
var (
	receiptIDRe   = regexp.MustCompile(`(?i)(?:^|\s)id:(\S+)`)
	receiptStatRe = regexp.MustCompile(`(?i)(?:^|\s)stat:(\S+)`)
	receiptErrRe  = regexp.MustCompile(`(?i)(?:^|\s)err:(\S+)`)
)

// DeliveryReceipt is what a deliver_sm receipt says.
type DeliveryReceipt struct {
	ID   string // the receipted message id, as the SMSC wrote it
	Stat string // DELIVRD, UNDELIV, ... (from message_state when present)
	Err  string // err field, or network_error_code as "type:code"
}

// Status maps the receipt's state to a verifyd delivery status: DELIVRD is
// delivered; UNDELIV, REJECTD, EXPIRED and DELETED are failed; anything
// else (ENROUTE, ACCEPTD, UNKNOWN, vendor words) is unconfirmed.
func (r DeliveryReceipt) Status() string {
	switch strings.ToUpper(r.Stat) {
	case "DELIVRD", "DELIVERED":
		return verifyd.DeliveryDelivered
	case "UNDELIV", "UNDELIVERABLE", "REJECTD", "REJECTED", "EXPIRED", "DELETED":
		return verifyd.DeliveryFailed
	}
	return verifyd.DeliveryUnconfirmed
}

// Cause is the receipt's reason, for the account: "" when delivered, else
// the state and, when it is not all zeros, the error ("UNDELIV err:001").
func (r DeliveryReceipt) Cause() string {
	if r.Status() == verifyd.DeliveryDelivered {
		return ""
	}
	c := strings.ToUpper(r.Stat)
	if c == "" {
		c = "UNKNOWN"
	}
	if strings.Trim(r.Err, "0:") != "" {
		c += " err:" + r.Err
	}
	return c
}

// IsReceipt reports whether a deliver_sm is a delivery receipt rather than
// a mobile-originated message: its esm_class says so (message type 0x04),
// or it carries receipted_message_id.
func IsReceipt(p *PDU) bool {
	if p.ESMClass&esmTypeMask == esmTypeReceipt {
		return true
	}
	_, ok := p.TLV(TagReceiptedMessageID)
	return ok
}

// ParseReceipt reads a delivery receipt from a deliver_sm. The TLVs
// (receipted_message_id, message_state, network_error_code) win over the
// Appendix-B text; the text fills what they leave out. ok is false when no
// message id is found.
func ParseReceipt(p *PDU) (r DeliveryReceipt, ok bool) {
	if v, ok := p.TLV(TagReceiptedMessageID); ok {
		r.ID = strings.TrimSpace(tlvCString(v))
	}
	if v, ok := p.TLV(TagMessageState); ok && len(v) == 1 && int(v[0]) < len(messageStates) && v[0] > 0 {
		r.Stat = messageStates[v[0]]
	}
	if v, ok := p.TLV(TagNetworkErrorCode); ok && len(v) == 3 {
		r.Err = fmt.Sprintf("%d:%03d", v[0], binary.BigEndian.Uint16(v[1:3]))
	}
	text := receiptText(p)
	if r.ID == "" {
		r.ID = firstMatch(receiptIDRe, text)
	}
	if r.Stat == "" {
		r.Stat = strings.ToUpper(firstMatch(receiptStatRe, text))
	}
	if r.Err == "" {
		r.Err = firstMatch(receiptErrRe, text)
	}
	return r, r.ID != ""
}

func receiptText(p *PDU) string {
	b := p.ShortMessage
	if len(b) == 0 {
		b, _ = p.TLV(TagMessagePayload)
	}
	if p.ESMClass&esmUDHI != 0 && len(b) > 0 && int(b[0]) < len(b) {
		b = b[int(b[0])+1:]
	}
	if p.DataCoding == CodingUCS2 {
		return DecodeUCS2(b)
	}
	return string(b) // ASCII and GSM agree on the characters of the fields
}

func firstMatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// IDForm says how an SMSC writes message ids in receipts compared with
// submit_sm_resp. Some give the receipt id in decimal where submit_sm_resp
// gave hex, or the reverse.
type IDForm string

const (
	// IDAsGiven keeps ids as the SMSC gives them. Receipts whose id is
	// the hex/decimal twin of a submitted id still match while the
	// in-memory tracker remembers the message (see tracker).
	IDAsGiven IDForm = ""
	// IDHexDec: submit_sm_resp ids are hex, receipt ids decimal. Both
	// are canonicalised to decimal, so ProviderMessageID is decimal and
	// receipts match even after a restart.
	IDHexDec IDForm = "hex-dec"
	// IDDecHex: submit_sm_resp ids are decimal, receipt ids hex. Both
	// are canonicalised to lowercase hex.
	IDDecHex IDForm = "dec-hex"
)

// canonSubmit is the id a SendResult reports for a submit_sm_resp id.
func (f IDForm) canonSubmit(id string) string {
	switch f {
	case IDHexDec:
		if n, err := strconv.ParseUint(id, 16, 64); err == nil {
			return strconv.FormatUint(n, 10)
		}
	case IDDecHex:
		if n, err := strconv.ParseUint(id, 10, 64); err == nil {
			return strconv.FormatUint(n, 16)
		}
	}
	return id
}

// canonReceipt is the id a receipt id stands for, in canonSubmit's form.
func (f IDForm) canonReceipt(id string) string {
	switch f {
	case IDHexDec:
		if n, err := strconv.ParseUint(id, 10, 64); err == nil {
			return strconv.FormatUint(n, 10)
		}
	case IDDecHex:
		if n, err := strconv.ParseUint(id, 16, 64); err == nil {
			return strconv.FormatUint(n, 16)
		}
	}
	return id
}

// normID is the lookup key of an id: lowercase, leading zeros dropped.
func normID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	t := strings.TrimLeft(id, "0")
	if t == "" && id != "" {
		return "0"
	}
	return t
}

// idTwins returns the other readings of an id: its value as hex written
// in decimal, and its value as decimal written in hex, when they parse.
func idTwins(id string) []string {
	var out []string
	if n, err := strconv.ParseUint(id, 16, 64); err == nil {
		out = append(out, strconv.FormatUint(n, 10))
	}
	if n, err := strconv.ParseUint(id, 10, 64); err == nil {
		out = append(out, strconv.FormatUint(n, 16))
	}
	return out
}
