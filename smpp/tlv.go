package smpp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Tag is a TLV (optional parameter) tag.
type Tag uint16

// Tags this package reads or writes (§5.3.2).
const (
	TagReceiptedMessageID Tag = 0x001E
	TagSarMsgRefNum       Tag = 0x020C
	TagSarTotalSegments   Tag = 0x020E
	TagSarSegmentSeqnum   Tag = 0x020F
	TagNetworkErrorCode   Tag = 0x0423
	TagMessagePayload     Tag = 0x0424
	TagMessageState       Tag = 0x0427
	TagSCInterfaceVersion Tag = 0x0210
)

// TLV is one optional parameter.
type TLV struct {
	Tag   Tag
	Value []byte
}

// decodeTLVs parses the optional parameters that end a body.
func decodeTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("truncated TLV header")
		}
		tag := Tag(binary.BigEndian.Uint16(b[0:2]))
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n > len(b)-4 {
			return nil, fmt.Errorf("TLV 0x%04x length %d past the body", uint16(tag), n)
		}
		v := make([]byte, n)
		copy(v, b[4:4+n])
		out = append(out, TLV{Tag: tag, Value: v})
		b = b[4+n:]
	}
	return out, nil
}

// TLV returns the value of the first TLV with tag t.
func (p *PDU) TLV(t Tag) ([]byte, bool) {
	for _, x := range p.TLVs {
		if x.Tag == t {
			return x.Value, true
		}
	}
	return nil, false
}

// SetTLV appends a TLV.
func (p *PDU) SetTLV(t Tag, v []byte) { p.TLVs = append(p.TLVs, TLV{Tag: t, Value: v}) }

// CStringTLV is the value of a C-Octet string TLV (receipted_message_id).
func CStringTLV(s string) []byte { return append([]byte(s), 0) }

// tlvCString reads a C-Octet string TLV, tolerating a missing NUL.
func tlvCString(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

// Uint16TLV is the value of a two-octet integer TLV (sar_msg_ref_num).
func Uint16TLV(n uint16) []byte { return binary.BigEndian.AppendUint16(nil, n) }
