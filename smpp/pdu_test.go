package smpp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestPDU_RoundTrip(t *testing.T) {
	pdus := map[string]*PDU{
		"bind_transceiver": {ID: BindTransceiver, Seq: 1, SystemID: "test", Password: "secret",
			SystemType: "OTP", InterfaceVersion: 0x34, AddrTON: 1, AddrNPI: 1, AddressRange: "^1"},
		"bind_transmitter":      {ID: BindTransmitter, Seq: 2, SystemID: "a", InterfaceVersion: 0x34},
		"bind_receiver":         {ID: BindReceiver, Seq: 3, SystemID: "b", Password: "p", InterfaceVersion: 0x34},
		"bind_transceiver_resp": {ID: BindTransceiverResp, Seq: 1, SystemID: "SMSC", TLVs: []TLV{{TagSCInterfaceVersion, []byte{0x34}}}},
		"bind_transmitter_resp": {ID: BindTransmitterResp, Seq: 2, SystemID: "SMSC"},
		"bind_receiver_resp":    {ID: BindReceiverResp, Seq: 3, SystemID: "SMSC"},
		"submit_sm": {ID: SubmitSM, Seq: 7, SourceTON: 5, Source: "Verifyd", DestTON: 1, DestNPI: 1,
			Dest: "4915112345678", ESMClass: esmUDHI, RegisteredDelivery: 1, DataCoding: CodingUCS2,
			ShortMessage: []byte{5, 0, 3, 9, 2, 1, 0x04, 0x1F},
			TLVs:         []TLV{{TagSarMsgRefNum, Uint16TLV(513)}, {TagSarTotalSegments, []byte{2}}, {TagSarSegmentSeqnum, []byte{1}}}},
		"submit_sm_payload": {ID: SubmitSM, Seq: 8, Dest: "1", TLVs: []TLV{{TagMessagePayload, bytes.Repeat([]byte{'a'}, 1000)}}},
		"submit_sm_resp":    {ID: SubmitSMResp, Seq: 7, MessageID: "1A2B3C"},
		"deliver_sm": {ID: DeliverSM, Seq: 99, Source: "4915112345678", Dest: "Verifyd", ESMClass: esmTypeReceipt,
			ShortMessage: []byte("id:1A2B3C sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:"),
			TLVs: []TLV{{TagReceiptedMessageID, CStringTLV("1A2B3C")}, {TagMessageState, []byte{2}},
				{TagNetworkErrorCode, []byte{3, 0, 1}}}},
		"deliver_sm_resp":   {ID: DeliverSMResp, Seq: 99},
		"enquire_link":      {ID: EnquireLink, Seq: 5},
		"enquire_link_resp": {ID: EnquireLinkResp, Seq: 5},
		"unbind":            {ID: Unbind, Seq: 6},
		"unbind_resp":       {ID: UnbindResp, Seq: 6},
		"generic_nack":      {ID: GenericNack, Status: StatusInvCmdID, Seq: 12},
	}
	for name, p := range pdus {
		t.Run(name, func(t *testing.T) {
			b, err := p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint32(b); int(got) != len(b) {
				t.Fatalf("command_length %d, encoded %d octets", got, len(b))
			}
			q, err := ReadPDU(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalise(p), normalise(q)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", q, p)
			}
		})
	}
}

// normalise makes nil and empty slices compare equal.
func normalise(p *PDU) PDU {
	c := *p
	if len(c.ShortMessage) == 0 {
		c.ShortMessage = nil
	}
	if len(c.TLVs) == 0 {
		c.TLVs = nil
	}
	return c
}

// TestPDU_WireFormat checks one PDU byte for byte against the spec layout.
func TestPDU_WireFormat(t *testing.T) {
	b, err := (&PDU{ID: EnquireLink, Seq: 0x01020304}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 1, 2, 3, 4}
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	b, _ = (&PDU{ID: SubmitSMResp, Seq: 1, MessageID: "ab"}).Encode()
	if !bytes.Equal(b[16:], []byte{'a', 'b', 0}) || b[3] != 19 {
		t.Fatalf("submit_sm_resp % x", b)
	}
}

func TestPDU_EncodeRejectsLongFields(t *testing.T) {
	for name, p := range map[string]*PDU{
		"password":      {ID: BindTransceiver, SystemID: "x", Password: "123456789"},
		"system_id":     {ID: BindTransceiver, SystemID: "0123456789abcdef"},
		"short_message": {ID: SubmitSM, ShortMessage: make([]byte, 255)},
		"nul":           {ID: SubmitSM, Dest: "12\x003"},
	} {
		if _, err := p.Encode(); err == nil {
			t.Errorf("%s: encoded, want an error", name)
		}
	}
	_, err := (&PDU{ID: BindTransceiver, SystemID: "x", Password: "hunter2xx"}).Encode()
	if err == nil || bytes.Contains([]byte(err.Error()), []byte("hunter2")) {
		t.Fatalf("error %v must exist and not quote the password", err)
	}
}

// countingReader counts the octets read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadPDU_RejectsLengthBeforeReading(t *testing.T) {
	h := make([]byte, 16, 1<<20)
	binary.BigEndian.PutUint32(h, 0xFFFFFFF0)
	binary.BigEndian.PutUint32(h[4:], uint32(DeliverSM))
	h = append(h, make([]byte, 1<<20-16)...)
	cr := &countingReader{r: bytes.NewReader(h)}
	_, err := ReadPDU(cr, 0)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err %v, want ErrTooLong", err)
	}
	if cr.n > 4096 { // bufio-free read: only the header should be consumed
		t.Fatalf("read %d octets before rejecting", cr.n)
	}
	binary.BigEndian.PutUint32(h, 8)
	if _, err := ReadPDU(bytes.NewReader(h), 0); !errors.Is(err, ErrTooShort) {
		t.Fatalf("err %v, want ErrTooShort", err)
	}
	// A lower cap is honoured too.
	b, _ := (&PDU{ID: SubmitSM, ShortMessage: make([]byte, 200)}).Encode()
	if _, err := ReadPDU(bytes.NewReader(b), 100); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err %v, want ErrTooLong under a 100-octet cap", err)
	}
}

func TestDecode_MalformedKeepsHeader(t *testing.T) {
	b, _ := (&PDU{ID: DeliverSM, Seq: 42, ShortMessage: []byte("hello")}).Encode()
	b[len(b)-6] = 200 // sm_length past the body
	p, err := Decode(b)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err %v, want ErrMalformed", err)
	}
	if p == nil || p.ID != DeliverSM || p.Seq != 42 {
		t.Fatalf("header not kept: %+v", p)
	}
	// Truncated TLV.
	b, _ = (&PDU{ID: DeliverSM, Seq: 43, TLVs: []TLV{{TagMessageState, []byte{2}}}}).Encode()
	b = b[:len(b)-1]
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated TLV: err %v", err)
	}
	// Unknown command: header only, no error.
	u := []byte{0, 0, 0, 20, 0, 0, 0, 0xAB, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4}
	p, err = Decode(u)
	if err != nil || p.ID != 0xAB || p.Seq != 9 {
		t.Fatalf("unknown command: %+v %v", p, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []*PDU{
		{ID: BindTransceiverResp, Seq: 1, SystemID: "SMSC"},
		{ID: SubmitSMResp, Seq: 2, MessageID: "abc"},
		{ID: DeliverSM, Seq: 3, ShortMessage: []byte("id:1 stat:DELIVRD"), TLVs: []TLV{{TagMessageState, []byte{2}}}},
		{ID: EnquireLink, Seq: 4},
		{ID: GenericNack, Seq: 5, Status: 3},
		{ID: BindTransceiver, Seq: 6, SystemID: "x", Password: "y"},
	} {
		b, _ := p.Encode()
		f.Add(b)
	}
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		p, err := ReadPDU(cr, 0)
		if len(b) >= 4 && binary.BigEndian.Uint32(b) > MaxPDULen && cr.n > HeaderLen {
			t.Fatalf("read %d octets of a PDU over the cap", cr.n)
		}
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same,
		// as long as the body was canonical.
		e, err := p.Encode()
		if err != nil {
			return
		}
		q, err := Decode(e)
		if err != nil {
			t.Fatalf("re-decode of %x: %v", e, err)
		}
		if !reflect.DeepEqual(normalise(p), normalise(q)) {
			t.Fatalf("unstable:\n%+v\n%+v", p, q)
		}
	})
}
