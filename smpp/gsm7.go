package smpp

import (
	"strings"
	"unicode/utf16"
)

// gsmBasic is the GSM 03.38 default alphabet, indexed by septet. Position
// 0x1B is the escape to the extension table (never a character itself).
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

const gsmEscape = 0x1B

// gsmExt is the GSM 03.38 extension table: the septet after the escape.
var gsmExt = map[rune]byte{
	'\f': 0x0A, '^': 0x14, '{': 0x28, '}': 0x29, '\\': 0x2F,
	'[': 0x3C, '~': 0x3D, ']': 0x3E, '|': 0x40, '€': 0x65,
}

// gsmTables are the lookup tables built from gsmBasic and gsmExt.
type gsmTables struct {
	enc    map[rune]byte
	dec    [128]rune
	extDec map[byte]rune
}

func newGSMTables() *gsmTables {
	t := &gsmTables{enc: make(map[rune]byte, 128), extDec: make(map[byte]rune, len(gsmExt))}
	i := 0
	for _, r := range gsmBasic {
		t.dec[i] = r
		if i != gsmEscape {
			t.enc[r] = byte(i)
		}
		i++
	}
	for r, c := range gsmExt {
		t.extDec[c] = r
	}
	return t
}

// gsm is read-only lookup data (like a compiled regexp): built with the
// package, never written after.
var gsm = newGSMTables()

// GSM7Septets returns the number of septets s needs in the GSM 7-bit
// alphabet (extension characters count two) and whether every rune of s is
// in the alphabet.
func GSM7Septets(s string) (int, bool) {
	n := 0
	for _, r := range s {
		if _, ok := gsm.enc[r]; ok {
			n++
		} else if _, ok := gsmExt[r]; ok {
			n += 2
		} else {
			return 0, false
		}
	}
	return n, true
}

// EncodeGSM7 encodes s unpacked, one septet per octet, extension characters
// as 0x1B + code. ok is false when a rune has no GSM 7-bit form.
func EncodeGSM7(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		if c, ok := gsm.enc[r]; ok {
			b = append(b, c)
		} else if c, ok := gsmExt[r]; ok {
			b = append(b, gsmEscape, c)
		} else {
			return nil, false
		}
	}
	return b, true
}

// DecodeGSM7 decodes unpacked septets. An unknown extension code decodes
// as its basic-table character (as 03.38 advises); a trailing escape as a
// space.
func DecodeGSM7(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i] & 0x7F
		if c == gsmEscape {
			if i+1 >= len(b) {
				sb.WriteByte(' ')
				break
			}
			i++
			e := b[i] & 0x7F
			if r, ok := gsm.extDec[e]; ok {
				sb.WriteRune(r)
			} else {
				sb.WriteRune(gsm.dec[e])
			}
			continue
		}
		sb.WriteRune(gsm.dec[c])
	}
	return sb.String()
}

// EncodeUCS2 encodes s as UTF-16BE; runes outside the BMP become surrogate
// pairs.
func EncodeUCS2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u))
	for _, x := range u {
		b = append(b, byte(x>>8), byte(x))
	}
	return b
}

// DecodeUCS2 decodes UTF-16BE (a trailing odd octet is dropped).
func DecodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}
