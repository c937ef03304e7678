package smpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verifyd/verifyd"
)

// ErrNoBind is returned by Send when no bind came up in time.
var ErrNoBind = errors.New("smpp: no bind up")

// Sender submits messages over SMPP binds and reports delivery receipts to
// a verifyd.ReceiptSink. It implements verifyd.Sender.
//
// Lifecycle: New, then Start(ctx) once; Close unbinds and stops every
// goroutine (one loop per bind, three per bound link).
type Sender struct {
	cfg   Config
	sink  verifyd.ReceiptSink
	log   *slog.Logger
	binds []*bind
	track *tracker

	ref atomic.Uint32 // concatenation reference
	rr  atomic.Uint32 // round-robin start among equally loaded binds

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a bind goes up or down
	started bool

	ctx       context.Context // ends at Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ verifyd.Sender = (*Sender)(nil)

// New returns a Sender for cfg. sink takes receipts (nil drops them); log
// may be nil (no logging).
func New(cfg Config, sink verifyd.ReceiptSink, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{
		cfg:     cfg,
		sink:    sink,
		log:     log.With("sender", cfg.Name),
		track:   newTracker(cfg.TrackSize, cfg.TrackTTL, cfg.Now),
		changed: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	modes := []CommandID{BindTransceiver}
	if cfg.BindMode == BindTXRX {
		modes = []CommandID{BindTransmitter, BindReceiver}
	}
	for i := range cfg.Binds {
		for _, m := range modes {
			s.binds = append(s.binds, &bind{s: s, index: i + 1, mode: m, bucket: newBucket(cfg.TPS, 1, cfg.Now)})
		}
	}
	return s, nil
}

// Start starts the binds in the background and returns at once: an SMSC
// that is down or refuses the bind is retried with backoff, and Send
// reports ErrNoBind meanwhile. The binds stop when ctx ends or at Close.
func (s *Sender) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("smpp: sender already started")
	}
	if s.ctx.Err() != nil {
		return errors.New("smpp: sender closed")
	}
	s.started = true
	stop := context.AfterFunc(ctx, s.cancel)
	s.wg.Go(func() { <-s.ctx.Done(); stop() })
	for _, b := range s.binds {
		s.wg.Go(func() { b.run(s.ctx) })
	}
	return nil
}

// Close unbinds every link and waits for all goroutines. It is idempotent.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// WaitBound waits until every bind is up (or ctx ends).
func (s *Sender) WaitBound(ctx context.Context) error {
	for {
		ch := s.changedChan()
		up := 0
		for _, b := range s.binds {
			if b.link() != nil {
				up++
			}
		}
		if up == len(s.binds) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("smpp: %d of %d binds up: %w", up, len(s.binds), ctx.Err())
		}
	}
}

func (s *Sender) changedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Sender) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// linkConfig is the per-link configuration of a bind in mode.
func (s *Sender) linkConfig(mode CommandID, log *slog.Logger) linkConfig {
	c := &s.cfg
	return linkConfig{
		addr: c.Addr, tls: c.TLS, window: c.Window,
		enquireInterval: c.EnquireInterval, responseTimeout: c.ResponseTimeout, log: log,
		bind: &PDU{ID: mode, SystemID: c.SystemID, Password: c.Password, SystemType: c.SystemType,
			InterfaceVersion: InterfaceVersion},
		deliver: s.deliver,
	}
}

// pick returns the transmitting bind with the fewest outstanding requests
// (ties go round robin) and its link, or nil.
func (s *Sender) pick() (*bind, *link) {
	n := len(s.binds)
	start := int(s.rr.Add(1))
	var best *bind
	var bestLink *link
	for i := range n {
		b := s.binds[(start+i)%n]
		if !b.transmits() {
			continue
		}
		l := b.link()
		if l == nil {
			continue
		}
		if bestLink == nil || l.outstanding.Load() < bestLink.outstanding.Load() {
			best, bestLink = b, l
		}
	}
	return best, bestLink
}

// waitLink returns a bound link, waiting at most the response timeout.
func (s *Sender) waitLink(ctx context.Context) (*bind, *link, error) {
	t := time.NewTimer(s.cfg.ResponseTimeout)
	defer t.Stop()
	for {
		ch := s.changedChan()
		if b, l := s.pick(); l != nil {
			return b, l, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, nil, fmt.Errorf("%w: sender closed", ErrNoBind)
		case <-t.C:
			return nil, nil, ErrNoBind
		}
	}
}

// Send submits m.Text to m.To, in as many parts as it needs, with a
// delivery receipt requested. ProviderMessageID is the first part's id.
// A refusal that will not change on retry (bad address, text the SMSC
// rejects) is a *verifyd.Error with code ECHANNEL; anything else (no bind,
// throttled past the retries, timeout) is a plain error. A failure after
// some parts left means those parts may be sent again on retry.
func (s *Sender) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	dest, err := destAddress(m.To)
	if err != nil {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Invalid destination for SMPP: %v.", err)
	}
	srcText := m.AlphaSender
	if srcText == "" {
		srcText = s.cfg.SourceAddr
	}
	src, err := sourceAddress(srcText)
	if err != nil {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Invalid sender for SMPP: %v.", err)
	}
	segs, parts, err := Split(m.Text, byte(s.ref.Add(1)), s.cfg.UseMessagePayload)
	if err != nil {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Message text too long for SMS.")
	}
	msg := s.track.begin(len(segs))
	defer s.track.end()
	var first string
	for i, seg := range segs {
		p := &PDU{
			ID: SubmitSM, SourceTON: src.ton, SourceNPI: src.npi, Source: src.addr,
			DestTON: 1, DestNPI: 1, Dest: dest, ESMClass: seg.ESMClass,
			RegisteredDelivery: 1, DataCoding: seg.DataCoding, ShortMessage: seg.ShortMessage,
		}
		if seg.Payload != nil {
			p.SetTLV(TagMessagePayload, seg.Payload)
		}
		id, err := s.submit(ctx, p)
		if err != nil {
			if len(segs) > 1 {
				return nil, fmt.Errorf("part %d of %d: %w", i+1, len(segs), err)
			}
			return nil, err
		}
		id = s.cfg.IDForm.canonSubmit(id)
		if i == 0 {
			first = id
		}
		s.track.addPart(msg, i, id)
	}
	return &verifyd.SendResult{Sender: s.cfg.Name, ProviderMessageID: first, Parts: parts, Status: verifyd.DeliverySent}, nil
}

// submit sends one submit_sm and returns the SMSC's message id. It retries
// throttling answers with backoff, and requests that never left on another
// link.
func (s *Sender) submit(ctx context.Context, p *PDU) (string, error) {
	backoff := s.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		b, l, err := s.waitLink(ctx)
		if err != nil {
			return "", err
		}
		if err := b.bucket.wait(ctx); err != nil {
			return "", err
		}
		r, err := l.request(ctx, p, true)
		if err == nil {
			if r.MessageID == "" {
				return "", errors.New("smpp: submit_sm_resp without message_id")
			}
			return r.MessageID, nil
		}
		var se *StatusError
		var ns *notSentError
		switch {
		case errors.As(err, &se) && (se.Status == StatusThrottled || se.Status == StatusMsgQFul):
			if attempt >= s.cfg.Retries {
				return "", fmt.Errorf("smpp: still refused after %d retries: %w", attempt, err)
			}
			s.log.Debug("smpp: submit refused, retrying", "status", se.Status.String(), "wait", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			}
			backoff *= 2
		case errors.As(err, &se) && permanent(se.Status):
			return "", &verifyd.Error{Code: verifyd.ECHANNEL,
				Message: fmt.Sprintf("The carrier refused the message (%s).", se.Status)}
		case errors.As(err, &ns) && ctx.Err() == nil && attempt < s.cfg.Retries:
			continue // never left: try the next link
		default:
			return "", err
		}
	}
}

// permanent reports whether a submit_sm_resp status means the message will
// never be taken as it is.
func permanent(st Status) bool {
	switch st {
	case StatusInvMsgLen, StatusInvCmdID, StatusInvPrtFlg, StatusInvRegDlvFlg, StatusInvSrcAdr,
		StatusInvDstAdr, StatusInvSerTyp, StatusInvEsmClass, StatusInvSrcTON, StatusInvSrcNPI,
		StatusInvDstTON, StatusInvDstNPI, StatusInvSched, StatusInvExpiry, StatusInvOptParStream,
		StatusOptParNotAllwd, StatusInvParLen, StatusMissingOptParam, StatusInvOptParamVal:
		return true
	}
	return false
}

// deliver handles a deliver_sm and returns the deliver_sm_resp status:
// OK for receipts taken, unknown or unparsable, and for mobile-originated
// messages (not handled); ESME_RX_T_APPN when the sink failed for a reason
// that may pass, so the SMSC offers the receipt again later.
func (s *Sender) deliver(p *PDU) Status {
	if !IsReceipt(p) {
		s.log.Debug("smpp: mobile-originated message ignored", "esm_class", p.ESMClass)
		return StatusOK
	}
	r, ok := ParseReceipt(p)
	if !ok {
		s.log.Warn("smpp: receipt without a message id", "esm_class", p.ESMClass)
		return StatusOK
	}
	status := r.Status()
	primary, report, commit := s.resolve(s.cfg.IDForm.canonReceipt(r.ID), status)
	if !report || s.sink == nil {
		return StatusOK
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ResponseTimeout)
	defer cancel()
	err := s.sink.Receipt(ctx, &verifyd.Receipt{
		Sender: s.cfg.Name, ProviderMessageID: primary, Status: status, Cause: r.Cause(), At: s.cfg.Now(),
	})
	switch verifyd.ErrorCode(err) {
	case "":
		commit()
		return StatusOK
	case verifyd.ENOTFOUND, verifyd.EINVALID, verifyd.ECONFLICT:
		s.log.Debug("smpp: receipt not taken", "message_id", primary, "err", err)
		return StatusOK
	}
	s.log.Warn("smpp: receipt sink failed; SMSC asked to retry", "message_id", primary, "err", err)
	return StatusXTAppn
}

// receiptGrace is how long a receipt for an unknown id waits for a send in
// flight to register it.
const receiptGrace = 2 * time.Second

// resolve maps a receipt id through the tracker, waiting up to
// receiptGrace while sends are in flight for an id not yet registered.
func (s *Sender) resolve(id, status string) (string, bool, func()) {
	var t *time.Timer
	for {
		ch, inflight := s.track.waitChange()
		primary, report, commit, found := s.track.resolve(id, status)
		if found || !inflight {
			return primary, report, commit
		}
		if t == nil {
			t = time.NewTimer(receiptGrace)
			defer t.Stop()
		}
		select {
		case <-ch:
		case <-t.C:
			return primary, report, commit
		case <-s.ctx.Done():
			return primary, report, commit
		}
	}
}

// address is a source or destination address with its TON and NPI.
type address struct {
	ton, npi byte
	addr     string
}

// sourceAddress classifies a sender: "" lets the SMSC choose; an E.164
// number (with or without "+") is TON 1 NPI 1 without the "+"; anything
// else is alphanumeric, TON 5 NPI 0, ASCII, at most 11 characters.
func sourceAddress(s string) (address, error) {
	if s == "" {
		return address{}, nil
	}
	if d, ok := strings.CutPrefix(s, "+"); ok || allDigits(s) {
		if !allDigits(d) || len(d) > maxAddr-1 {
			return address{}, fmt.Errorf("number %q is not E.164", s)
		}
		return address{ton: 1, npi: 1, addr: d}, nil
	}
	if len(s) > 11 {
		return address{}, fmt.Errorf("alphanumeric sender %q longer than 11 characters", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return address{}, fmt.Errorf("alphanumeric sender %q holds a character outside ASCII", s)
		}
	}
	return address{ton: 5, npi: 0, addr: s}, nil
}

// destAddress is the E.164 destination without "+" (sent TON 1 NPI 1).
func destAddress(to string) (string, error) {
	d := strings.TrimPrefix(to, "+")
	if d == "" || !allDigits(d) || len(d) > maxAddr-1 {
		return "", fmt.Errorf("%q is not an E.164 number", to)
	}
	return d, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
