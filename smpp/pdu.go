// Package smpp is an SMPP 3.4 client (ESME) written from the specification
// with the standard library only. Sender implements verifyd.Sender over one
// or more binds to an SMSC and reports delivery receipts to a
// verifyd.ReceiptSink.
//
// The package is layered: a PDU codec (pdu.go, tlv.go), text coding and
// splitting (gsm7.go, split.go), receipt parsing (receipt.go, track.go), one
// link to the SMSC (conn.go), a link kept up with reconnects (bind.go), and
// the Sender on top (sender.go).
package smpp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// CommandID is an SMPP command_id. Responses have bit 31 set.
type CommandID uint32

// Command ids of SMPP 3.4 (§5.1.2.1).
const (
	GenericNack         CommandID = 0x80000000
	BindReceiver        CommandID = 0x00000001
	BindReceiverResp    CommandID = 0x80000001
	BindTransmitter     CommandID = 0x00000002
	BindTransmitterResp CommandID = 0x80000002
	QuerySM             CommandID = 0x00000003
	SubmitSM            CommandID = 0x00000004
	SubmitSMResp        CommandID = 0x80000004
	DeliverSM           CommandID = 0x00000005
	DeliverSMResp       CommandID = 0x80000005
	Unbind              CommandID = 0x00000006
	UnbindResp          CommandID = 0x80000006
	BindTransceiver     CommandID = 0x00000009
	BindTransceiverResp CommandID = 0x80000009
	Outbind             CommandID = 0x0000000B
	EnquireLink         CommandID = 0x00000015
	EnquireLinkResp     CommandID = 0x80000015
	AlertNotification   CommandID = 0x00000102
	DataSM              CommandID = 0x00000103
)

// IsResponse reports whether id is a response (bit 31 set).
func (id CommandID) IsResponse() bool { return id&0x80000000 != 0 }

// Resp returns the response id of a request id.
func (id CommandID) Resp() CommandID { return id | 0x80000000 }

func (id CommandID) String() string {
	switch id {
	case GenericNack:
		return "generic_nack"
	case BindReceiver:
		return "bind_receiver"
	case BindReceiverResp:
		return "bind_receiver_resp"
	case BindTransmitter:
		return "bind_transmitter"
	case BindTransmitterResp:
		return "bind_transmitter_resp"
	case BindTransceiver:
		return "bind_transceiver"
	case BindTransceiverResp:
		return "bind_transceiver_resp"
	case SubmitSM:
		return "submit_sm"
	case SubmitSMResp:
		return "submit_sm_resp"
	case DeliverSM:
		return "deliver_sm"
	case DeliverSMResp:
		return "deliver_sm_resp"
	case Unbind:
		return "unbind"
	case UnbindResp:
		return "unbind_resp"
	case EnquireLink:
		return "enquire_link"
	case EnquireLinkResp:
		return "enquire_link_resp"
	}
	return fmt.Sprintf("command_0x%08x", uint32(id))
}

// Status is an SMPP command_status.
type Status uint32

// Status codes used by this package (§5.1.3).
const (
	StatusOK              Status = 0x00
	StatusInvMsgLen       Status = 0x01
	StatusInvCmdLen       Status = 0x02
	StatusInvCmdID        Status = 0x03
	StatusInvBndSts       Status = 0x04
	StatusAlyBnd          Status = 0x05
	StatusInvPrtFlg       Status = 0x06
	StatusInvRegDlvFlg    Status = 0x07
	StatusSysErr          Status = 0x08
	StatusInvSrcAdr       Status = 0x0A
	StatusInvDstAdr       Status = 0x0B
	StatusInvMsgID        Status = 0x0C
	StatusBindFail        Status = 0x0D
	StatusInvPaswd        Status = 0x0E
	StatusInvSysID        Status = 0x0F
	StatusMsgQFul         Status = 0x14
	StatusInvSerTyp       Status = 0x15
	StatusInvEsmClass     Status = 0x43
	StatusSubmitFail      Status = 0x45
	StatusInvSrcTON       Status = 0x48
	StatusInvSrcNPI       Status = 0x49
	StatusInvDstTON       Status = 0x50
	StatusInvDstNPI       Status = 0x51
	StatusThrottled       Status = 0x58
	StatusInvSched        Status = 0x61
	StatusInvExpiry       Status = 0x62
	StatusXTAppn          Status = 0x64 // ESME_RX_T_APPN: temporary, SMSC retries later
	StatusXRAppn          Status = 0x65 // ESME_RX_R_APPN: permanent, SMSC drops it
	StatusInvOptParStream Status = 0xC0
	StatusOptParNotAllwd  Status = 0xC1
	StatusInvParLen       Status = 0xC2
	StatusMissingOptParam Status = 0xC3
	StatusInvOptParamVal  Status = 0xC4
)

var statusNames = map[Status]string{
	StatusOK: "ESME_ROK", StatusInvMsgLen: "ESME_RINVMSGLEN", StatusInvCmdLen: "ESME_RINVCMDLEN",
	StatusInvCmdID: "ESME_RINVCMDID", StatusInvBndSts: "ESME_RINVBNDSTS", StatusAlyBnd: "ESME_RALYBND",
	StatusInvPrtFlg: "ESME_RINVPRTFLG", StatusInvRegDlvFlg: "ESME_RINVREGDLVFLG", StatusSysErr: "ESME_RSYSERR",
	StatusInvSrcAdr: "ESME_RINVSRCADR", StatusInvDstAdr: "ESME_RINVDSTADR", StatusInvMsgID: "ESME_RINVMSGID",
	StatusBindFail: "ESME_RBINDFAIL", StatusInvPaswd: "ESME_RINVPASWD", StatusInvSysID: "ESME_RINVSYSID",
	StatusMsgQFul: "ESME_RMSGQFUL", StatusInvSerTyp: "ESME_RINVSERTYP", StatusInvEsmClass: "ESME_RINVESMCLASS",
	StatusSubmitFail: "ESME_RSUBMITFAIL", StatusInvSrcTON: "ESME_RINVSRCTON", StatusInvSrcNPI: "ESME_RINVSRCNPI",
	StatusInvDstTON: "ESME_RINVDSTTON", StatusInvDstNPI: "ESME_RINVDSTNPI", StatusThrottled: "ESME_RTHROTTLED",
	StatusInvSched: "ESME_RINVSCHED", StatusInvExpiry: "ESME_RINVEXPIRY", StatusXTAppn: "ESME_RX_T_APPN",
	StatusXRAppn: "ESME_RX_R_APPN", StatusInvOptParStream: "ESME_RINVOPTPARSTREAM",
	StatusOptParNotAllwd: "ESME_ROPTPARNOTALLWD", StatusInvParLen: "ESME_RINVPARLEN",
	StatusMissingOptParam: "ESME_RMISSINGOPTPARAM", StatusInvOptParamVal: "ESME_RINVOPTPARAMVAL",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status_0x%02x", uint32(s))
}

// StatusError is a response that carried a non-zero command_status.
type StatusError struct {
	Command CommandID
	Status  Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("smpp: %s: %s (0x%02x)", e.Command, e.Status, uint32(e.Status))
}

// HeaderLen is the length of the PDU header.
const HeaderLen = 16

// MaxPDULen is the largest command_length this package reads: a full
// message_payload (64 KiB) fits with room to spare. A longer length is
// rejected before anything is allocated.
const MaxPDULen = 70 * 1024

// Interface version sent in binds.
const InterfaceVersion = 0x34

// Field length limits (C-Octet strings, NUL included).
const (
	maxSystemID   = 16
	maxPassword   = 9
	maxSystemType = 13
	maxAddrRange  = 41
	maxServType   = 6
	maxAddr       = 21
	maxTime       = 17
	maxMessageID  = 65
)

// Errors of the codec.
var (
	ErrTooLong   = errors.New("smpp: command_length over the maximum")
	ErrTooShort  = errors.New("smpp: command_length under the header length")
	ErrMalformed = errors.New("smpp: malformed PDU body")
)

// PDU is one SMPP PDU. It is a flat struct: the fields a command does not
// carry stay zero and are neither encoded nor decoded for it. Optional
// parameters (TLVs) are kept in order.
type PDU struct {
	ID     CommandID
	Status Status
	Seq    uint32

	// bind_* requests.
	SystemID         string // also in bind_*_resp
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON          byte
	AddrNPI          byte
	AddressRange     string

	// submit_sm and deliver_sm.
	ServiceType          string
	SourceTON            byte
	SourceNPI            byte
	Source               string
	DestTON              byte
	DestNPI              byte
	Dest                 string
	ESMClass             byte
	ProtocolID           byte
	Priority             byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	SMDefaultMsgID       byte
	ShortMessage         []byte

	// submit_sm_resp and deliver_sm_resp.
	MessageID string

	TLVs []TLV
}

// ReadPDU reads one PDU from r. A command_length over max (MaxPDULen when
// max <= 0) or under the header length is rejected before the body is
// allocated or read; the link is then unusable, as framing is lost.
func ReadPDU(r io.Reader, max int) (*PDU, error) {
	if max <= 0 || max > MaxPDULen {
		max = MaxPDULen
	}
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < HeaderLen {
		return nil, ErrTooShort
	}
	if n > uint32(max) {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooLong, n, max)
	}
	buf := make([]byte, n)
	copy(buf, h[:])
	if _, err := io.ReadFull(r, buf[HeaderLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(buf)
}

// Decode parses one whole PDU. A PDU with an unknown command id decodes
// with its header only (the caller answers generic_nack). A body that does
// not parse returns the header-only PDU together with an error wrapping
// ErrMalformed, so the caller can still answer it by sequence number.
func Decode(b []byte) (*PDU, error) {
	if len(b) < HeaderLen {
		return nil, ErrTooShort
	}
	n := binary.BigEndian.Uint32(b[0:4])
	if n < HeaderLen {
		return nil, ErrTooShort
	}
	if n > uint32(len(b)) || n > MaxPDULen {
		return nil, ErrTooLong
	}
	p := &PDU{
		ID:     CommandID(binary.BigEndian.Uint32(b[4:8])),
		Status: Status(binary.BigEndian.Uint32(b[8:12])),
		Seq:    binary.BigEndian.Uint32(b[12:16]),
	}
	d := decoder{b: b[HeaderLen:n]}
	switch p.ID {
	case BindReceiver, BindTransmitter, BindTransceiver:
		p.SystemID = d.cstring(maxSystemID)
		p.Password = d.cstring(maxPassword)
		p.SystemType = d.cstring(maxSystemType)
		p.InterfaceVersion = d.byte()
		p.AddrTON = d.byte()
		p.AddrNPI = d.byte()
		p.AddressRange = d.cstring(maxAddrRange)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if len(d.b) > 0 { // an error response may carry no body
			p.SystemID = d.cstring(maxSystemID)
		}
	case SubmitSM, DeliverSM:
		p.ServiceType = d.cstring(maxServType)
		p.SourceTON = d.byte()
		p.SourceNPI = d.byte()
		p.Source = d.cstring(maxAddr)
		p.DestTON = d.byte()
		p.DestNPI = d.byte()
		p.Dest = d.cstring(maxAddr)
		p.ESMClass = d.byte()
		p.ProtocolID = d.byte()
		p.Priority = d.byte()
		p.ScheduleDeliveryTime = d.cstring(maxTime)
		p.ValidityPeriod = d.cstring(maxTime)
		p.RegisteredDelivery = d.byte()
		p.ReplaceIfPresent = d.byte()
		p.DataCoding = d.byte()
		p.SMDefaultMsgID = d.byte()
		l := int(d.byte())
		p.ShortMessage = d.bytes(l)
	case SubmitSMResp, DeliverSMResp:
		if len(d.b) > 0 {
			p.MessageID = d.cstring(maxMessageID)
		}
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp:
	default:
		return p, nil // unknown or unsupported: header only
	}
	if d.err == nil {
		p.TLVs, d.err = decodeTLVs(d.b)
	}
	if d.err != nil {
		h := &PDU{ID: p.ID, Status: p.Status, Seq: p.Seq}
		return h, fmt.Errorf("%w: %s seq %d: %v", ErrMalformed, p.ID, p.Seq, d.err)
	}
	return p, nil
}

// decoder reads fields from a body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errors.New("body ends inside a field")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// cstring reads a NUL-terminated string of at most max octets, NUL included.
func (d *decoder) cstring(max int) string {
	if d.err != nil {
		return ""
	}
	for i := 0; i < len(d.b) && i < max; i++ {
		if d.b[i] == 0 {
			s := string(d.b[:i])
			d.b = d.b[i+1:]
			return s
		}
	}
	d.err = fmt.Errorf("C-Octet string not terminated within %d octets", max)
	return ""
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errors.New("short_message longer than the body")
		return nil
	}
	s := make([]byte, n)
	copy(s, d.b[:n])
	d.b = d.b[n:]
	return s
}

// Encode returns the wire form of p. It fails when a field is longer than
// the specification allows.
func (p *PDU) Encode() ([]byte, error) {
	e := encoder{b: make([]byte, HeaderLen, 64+len(p.ShortMessage))}
	switch p.ID {
	case BindReceiver, BindTransmitter, BindTransceiver:
		e.cstring("system_id", p.SystemID, maxSystemID)
		e.cstring("password", p.Password, maxPassword)
		e.cstring("system_type", p.SystemType, maxSystemType)
		e.b = append(e.b, p.InterfaceVersion, p.AddrTON, p.AddrNPI)
		e.cstring("address_range", p.AddressRange, maxAddrRange)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		e.cstring("system_id", p.SystemID, maxSystemID)
	case SubmitSM, DeliverSM:
		e.cstring("service_type", p.ServiceType, maxServType)
		e.b = append(e.b, p.SourceTON, p.SourceNPI)
		e.cstring("source_addr", p.Source, maxAddr)
		e.b = append(e.b, p.DestTON, p.DestNPI)
		e.cstring("destination_addr", p.Dest, maxAddr)
		e.b = append(e.b, p.ESMClass, p.ProtocolID, p.Priority)
		e.cstring("schedule_delivery_time", p.ScheduleDeliveryTime, maxTime)
		e.cstring("validity_period", p.ValidityPeriod, maxTime)
		e.b = append(e.b, p.RegisteredDelivery, p.ReplaceIfPresent, p.DataCoding, p.SMDefaultMsgID)
		if len(p.ShortMessage) > 254 && e.err == nil {
			e.err = fmt.Errorf("smpp: short_message of %d octets (max 254)", len(p.ShortMessage))
		}
		e.b = append(e.b, byte(len(p.ShortMessage)))
		e.b = append(e.b, p.ShortMessage...)
	case SubmitSMResp, DeliverSMResp:
		e.cstring("message_id", p.MessageID, maxMessageID)
	}
	for _, t := range p.TLVs {
		if len(t.Value) > 0xFFFF && e.err == nil {
			e.err = fmt.Errorf("smpp: TLV 0x%04x value of %d octets", t.Tag, len(t.Value))
		}
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(t.Tag))
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(t.Value)))
		e.b = append(e.b, t.Value...)
	}
	if e.err != nil {
		return nil, e.err
	}
	if len(e.b) > MaxPDULen {
		return nil, ErrTooLong
	}
	binary.BigEndian.PutUint32(e.b[0:4], uint32(len(e.b)))
	binary.BigEndian.PutUint32(e.b[4:8], uint32(p.ID))
	binary.BigEndian.PutUint32(e.b[8:12], uint32(p.Status))
	binary.BigEndian.PutUint32(e.b[12:16], p.Seq)
	return e.b, nil
}

type encoder struct {
	b   []byte
	err error
}

func (e *encoder) cstring(name, s string, max int) {
	if e.err == nil && (len(s)+1 > max || containsNUL(s)) {
		// The value is not quoted: it may be the password.
		e.err = fmt.Errorf("smpp: %s of %d octets too long (max %d) or holds NUL", name, len(s), max-1)
	}
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
