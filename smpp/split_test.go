package smpp

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGSM7_RoundTrip(t *testing.T) {
	s := "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà^{}\\[~]|€\f"
	b, ok := EncodeGSM7(s)
	if !ok {
		t.Fatal("not GSM")
	}
	if got := DecodeGSM7(b); got != s {
		t.Fatalf("round trip %q", got)
	}
	n, ok := GSM7Septets(s)
	if !ok || n != len(b) {
		t.Fatalf("septets %d, encoded %d", n, len(b))
	}
	b, _ = EncodeGSM7("€[a")
	if !bytes.Equal(b, []byte{0x1B, 0x65, 0x1B, 0x3C, 0x61}) {
		t.Fatalf("extension table: % x", b)
	}
	if _, ok := EncodeGSM7("Привет"); ok {
		t.Fatal("Cyrillic accepted as GSM")
	}
	if got := DecodeGSM7([]byte{0x1B}); got != " " {
		t.Fatalf("trailing escape: %q", got)
	}
}

func TestUCS2_SurrogatePairs(t *testing.T) {
	s := "Код 😀"
	b := EncodeUCS2(s)
	if len(b) != 2*(4+2) {
		t.Fatalf("length %d", len(b))
	}
	if !bytes.Equal(b[8:], []byte{0xD8, 0x3D, 0xDE, 0x00}) {
		t.Fatalf("surrogates % x", b[8:])
	}
	if DecodeUCS2(b) != s {
		t.Fatal("round trip")
	}
}

// joined decodes the text of segments, checking each part's UDH.
func joined(t *testing.T, segs []Segment, ref byte) string {
	t.Helper()
	var sb strings.Builder
	for i, s := range segs {
		b := s.ShortMessage
		if len(segs) > 1 {
			udh := []byte{5, 0, 3, ref, byte(len(segs)), byte(i + 1)}
			if !bytes.Equal(b[:6], udh) || s.ESMClass&esmUDHI == 0 {
				t.Fatalf("part %d: UDH % x esm %x", i+1, b[:6], s.ESMClass)
			}
			b = b[6:]
		}
		if s.DataCoding == CodingUCS2 {
			if !utf8.ValidString(DecodeUCS2(b)) || strings.ContainsRune(DecodeUCS2(b), utf8.RuneError) {
				t.Fatalf("part %d: surrogate pair cut", i+1)
			}
			sb.WriteString(DecodeUCS2(b))
		} else {
			if len(b) > 0 && b[len(b)-1] == gsmEscape {
				t.Fatalf("part %d ends with an escape", i+1)
			}
			sb.WriteString(DecodeGSM7(b))
		}
	}
	return sb.String()
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name   string
		text   string
		coding byte
		parts  int
		maxLen int // octets of text per part
	}{
		{"gsm single 160", strings.Repeat("a", 160), CodingDefault, 1, 160},
		{"gsm 161", strings.Repeat("a", 161), CodingDefault, 2, 153},
		{"gsm 306 = 2x153", strings.Repeat("b", 306), CodingDefault, 2, 153},
		{"gsm 307", strings.Repeat("b", 307), CodingDefault, 3, 153},
		{"ext 80 euros = 160 septets", strings.Repeat("€", 80), CodingDefault, 1, 160},
		{"escape never cut", strings.Repeat("a", 152) + "€" + strings.Repeat("c", 20), CodingDefault, 2, 153},
		{"ucs2 single 70", strings.Repeat("ж", 70), CodingUCS2, 1, 140},
		{"ucs2 71", strings.Repeat("ж", 71), CodingUCS2, 2, 134},
		{"surrogate never cut", strings.Repeat("ж", 66) + "😀" + strings.Repeat("я", 10), CodingUCS2, 2, 134},
		{"russian long", strings.Repeat("Ваш код подтверждения 123456. ", 6), CodingUCS2, 3, 134},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			segs, parts, err := Split(c.text, 77, false)
			if err != nil {
				t.Fatal(err)
			}
			if parts != c.parts || len(segs) != c.parts {
				t.Fatalf("parts %d segments %d, want %d", parts, len(segs), c.parts)
			}
			for i, s := range segs {
				if s.DataCoding != c.coding {
					t.Fatalf("coding %x", s.DataCoding)
				}
				n := len(s.ShortMessage)
				if c.parts > 1 {
					n -= 6
				}
				if n > c.maxLen {
					t.Fatalf("part %d: %d octets > %d", i+1, n, c.maxLen)
				}
			}
			if got := joined(t, segs, 77); got != c.text {
				t.Fatalf("rejoined %q", got)
			}
		})
	}
}

func TestSplit_EscapeAtBoundary(t *testing.T) {
	// 152 septets then an escape pair: it cannot fit the first part.
	segs, _, _ := Split(strings.Repeat("a", 152)+"€"+strings.Repeat("c", 20), 1, false)
	if got := len(segs[0].ShortMessage) - 6; got != 152 {
		t.Fatalf("first part %d septets, want 152 (escape pair moved on)", got)
	}
}

func TestSplit_Payload(t *testing.T) {
	text := strings.Repeat("Long text ", 40)
	segs, parts, err := Split(text, 1, true)
	if err != nil || len(segs) != 1 || parts != 3 {
		t.Fatalf("segs %d parts %d err %v", len(segs), parts, err)
	}
	if segs[0].ShortMessage != nil || DecodeGSM7(segs[0].Payload) != text || segs[0].ESMClass != 0 {
		t.Fatalf("payload segment %+v", segs[0])
	}
	// Short text stays in short_message.
	segs, _, _ = Split("hi", 1, true)
	if string(segs[0].ShortMessage) != "hi" || segs[0].Payload != nil {
		t.Fatalf("short text %+v", segs[0])
	}
}

func TestSplit_TooLong(t *testing.T) {
	if _, _, err := Split(strings.Repeat("a", 153*255+1), 1, false); err == nil {
		t.Fatal("256 parts accepted")
	}
	if _, _, err := Split(strings.Repeat("a", 153*255), 1, false); err != nil {
		t.Fatalf("255 parts refused: %v", err)
	}
}
