package smpp

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// data_coding values this package sends.
const (
	CodingDefault byte = 0x00 // SMSC default alphabet: GSM 03.38, unpacked
	CodingUCS2    byte = 0x08 // UTF-16BE
)

// esm_class bits.
const (
	esmUDHI        byte = 0x40
	esmTypeMask    byte = 0x3C
	esmTypeReceipt byte = 0x04
)

// Part and message limits (GSM 03.40). Lengths are in octets of
// short_message: one per septet (unpacked GSM), two per UCS-2 unit.
const (
	gsmSingle   = 160
	gsmPart     = 153
	ucs2Single  = 70 * 2
	ucs2Part    = 67 * 2
	maxParts    = 255
	udhConcatLn = 6
)

// ErrTextTooLong is returned for a text that needs more than 255 parts.
var ErrTextTooLong = errors.New("smpp: text needs more than 255 parts")

// Segment is one submit_sm worth of text.
type Segment struct {
	DataCoding   byte
	ESMClass     byte   // esmUDHI when ShortMessage starts with a UDH
	ShortMessage []byte // UDH + text octets, or nil with Payload
	Payload      []byte // message_payload TLV value, or nil
}

// Encoding tells how text is coded: CodingDefault when every rune is in the
// GSM 7-bit alphabet (basic or extension table), else CodingUCS2.
func Encoding(text string) byte {
	if _, ok := GSM7Septets(text); ok {
		return CodingDefault
	}
	return CodingUCS2
}

// Split codes text and cuts it into the segments to submit. Text that fits
// one SMS (160 septets / 70 UCS-2 units) is one segment without UDH. Longer
// text becomes parts of at most 153 septets / 67 UCS-2 units, each led by
// the concatenation UDH 05 00 03 ref total seq; an escape pair (GSM) or a
// surrogate pair (UCS-2) is never cut. With payload set, long text is one
// segment carrying all of it in message_payload instead. parts is the
// number of SMS the text needs on the air (what carriers bill) either way.
func Split(text string, ref byte, payload bool) (segs []Segment, parts int, err error) {
	coding := Encoding(text)
	units, single, per := runeUnits(text, coding)
	total := 0
	for _, u := range units {
		total += len(u)
	}
	if total <= single {
		return []Segment{{DataCoding: coding, ShortMessage: concat(units)}}, 1, nil
	}
	chunks := cut(units, per)
	if len(chunks) > maxParts {
		return nil, 0, fmt.Errorf("%w (%d)", ErrTextTooLong, len(chunks))
	}
	if payload {
		return []Segment{{DataCoding: coding, Payload: concat(units)}}, len(chunks), nil
	}
	segs = make([]Segment, len(chunks))
	for i, c := range chunks {
		sm := make([]byte, 0, udhConcatLn+len(c))
		sm = append(sm, 0x05, 0x00, 0x03, ref, byte(len(chunks)), byte(i+1))
		sm = append(sm, c...)
		segs[i] = Segment{DataCoding: coding, ESMClass: esmUDHI, ShortMessage: sm}
	}
	return segs, len(chunks), nil
}

// runeUnits codes text rune by rune: each element is the octets of one
// rune, which must stay in one part. It also returns the single-message and
// per-part octet limits of the coding.
func runeUnits(text string, coding byte) (units [][]byte, single, per int) {
	units = make([][]byte, 0, utf8.RuneCountInString(text))
	if coding == CodingDefault {
		for _, r := range text {
			b, _ := EncodeGSM7(string(r))
			units = append(units, b)
		}
		return units, gsmSingle, gsmPart
	}
	for _, r := range text {
		var b []byte
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			b = []byte{byte(r1 >> 8), byte(r1), byte(r2 >> 8), byte(r2)}
		} else {
			b = EncodeUCS2(string(r))
		}
		units = append(units, b)
	}
	return units, ucs2Single, ucs2Part
}

// cut groups units into chunks of at most per octets without cutting one.
func cut(units [][]byte, per int) [][]byte {
	var chunks [][]byte
	var cur []byte
	for _, u := range units {
		if len(cur)+len(u) > per {
			chunks = append(chunks, cur)
			cur = nil
		}
		cur = append(cur, u...)
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

func concat(units [][]byte) []byte {
	n := 0
	for _, u := range units {
		n += len(u)
	}
	b := make([]byte, 0, n)
	for _, u := range units {
		b = append(b, u...)
	}
	return b
}
