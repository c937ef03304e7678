package smpp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a link returns.
var (
	ErrLinkClosed      = errors.New("smpp: link closed")
	ErrResponseTimeout = errors.New("smpp: no response in time; link closed")
	ErrUnbound         = errors.New("smpp: SMSC unbound")
)

// notSentError wraps an error that happened before a request left: it is
// safe to retry on another link.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "smpp: request not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// receiptQueue is how many deliver_sm a link holds for its receipt worker;
// past that it answers ESME_RX_T_APPN (retry later) at once.
const receiptQueue = 64

// linkConfig is what a link needs from the Sender.
type linkConfig struct {
	addr            string
	tls             *tls.Config
	bind            *PDU // the bind request (Seq is set by dial)
	window          int
	enquireInterval time.Duration
	responseTimeout time.Duration
	log             *slog.Logger
	// deliver handles one deliver_sm and returns the deliver_sm_resp
	// status. It runs on the link's receipt worker.
	deliver func(*PDU) Status
}

// link is one bound session to the SMSC. Its three goroutines (reader,
// enquirer, receipt worker) end when it closes; wait waits for them.
type link struct {
	cfg  linkConfig
	nc   net.Conn
	smsc string // system_id the SMSC gave in its bind response

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	seq     uint32
	pending map[uint32]chan *PDU
	err     error

	window      chan struct{}
	outstanding atomic.Int32
	lastRx      atomic.Int64 // unix nanos of the last PDU read
	delivers    chan *PDU
	done        chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup
}

// dialLink connects, binds, and starts the link's goroutines.
func dialLink(ctx context.Context, cfg linkConfig) (*link, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, cfg.responseTimeout)
	defer cancel()
	nc, err := d.DialContext(dctx, "tcp", cfg.addr)
	if err != nil {
		return nil, err
	}
	if cfg.tls != nil {
		tc := cfg.tls.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(cfg.addr); err == nil {
				tc.ServerName = host
			}
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("smpp: TLS handshake: %w", err)
		}
		nc = tlsConn
	}
	l := &link{
		cfg:      cfg,
		nc:       nc,
		seq:      1,
		pending:  make(map[uint32]chan *PDU),
		window:   make(chan struct{}, max(cfg.window, 1)),
		delivers: make(chan *PDU, receiptQueue),
		done:     make(chan struct{}),
	}
	br := bufio.NewReader(nc)
	if err := l.bind(dctx, br); err != nil {
		nc.Close()
		return nil, err
	}
	l.lastRx.Store(time.Now().UnixNano())
	l.wg.Add(3)
	go func() { defer l.wg.Done(); l.readLoop(br) }()
	go func() { defer l.wg.Done(); l.enquireLoop() }()
	go func() { defer l.wg.Done(); l.receiptWorker() }()
	return l, nil
}

// bind sends the bind request and reads its response before any other
// traffic. An enquire_link the SMSC sends meanwhile is answered.
func (l *link) bind(ctx context.Context, br *bufio.Reader) error {
	req := *l.cfg.bind
	req.Seq = 1
	if err := l.write(&req); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	l.nc.SetReadDeadline(deadline)
	defer l.nc.SetReadDeadline(time.Time{})
	for {
		p, err := ReadPDU(br, MaxPDULen)
		if err != nil {
			return fmt.Errorf("smpp: reading bind response: %w", err)
		}
		switch {
		case p.ID == EnquireLink:
			if err := l.write(&PDU{ID: EnquireLinkResp, Seq: p.Seq}); err != nil {
				return err
			}
			continue
		case p.ID == req.ID.Resp() || p.ID == GenericNack:
			if p.Status != StatusOK {
				return &StatusError{Command: p.ID, Status: p.Status}
			}
			l.smsc = p.SystemID
			return nil
		}
		return fmt.Errorf("smpp: unexpected %s while binding", p.ID)
	}
}

// write sends one PDU; a write that does not finish in the response
// timeout closes the link.
func (l *link) write(p *PDU) error {
	b, err := p.Encode()
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.nc.SetWriteDeadline(time.Now().Add(l.cfg.responseTimeout))
	if _, err := l.nc.Write(b); err != nil {
		l.close(err)
		return err
	}
	return nil
}

// request sends p (its Seq is assigned here) and waits for the response.
// With useWindow it first takes a window slot, so at most window requests
// are outstanding. A response with a non-zero status returns the response
// and a *StatusError. No response within the timeout closes the link.
func (l *link) request(ctx context.Context, p *PDU, useWindow bool) (*PDU, error) {
	l.outstanding.Add(1)
	defer l.outstanding.Add(-1)
	if useWindow {
		select {
		case l.window <- struct{}{}:
			defer func() { <-l.window }()
		case <-ctx.Done():
			return nil, &notSentError{ctx.Err()}
		case <-l.done:
			return nil, &notSentError{l.closedErr()}
		}
	}
	ch := make(chan *PDU, 1)
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return nil, &notSentError{l.err}
	}
	seq := l.nextSeq()
	l.pending[seq] = ch
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		delete(l.pending, seq)
		l.mu.Unlock()
	}
	q := *p
	q.Seq = seq
	if err := l.write(&q); err != nil {
		forget()
		return nil, &notSentError{err}
	}
	t := time.NewTimer(l.cfg.responseTimeout)
	defer t.Stop()
	answer := func(r *PDU) (*PDU, error) {
		if r.Status != StatusOK {
			return r, &StatusError{Command: r.ID, Status: r.Status}
		}
		if r.ID != p.ID.Resp() {
			return r, fmt.Errorf("smpp: %s answered with %s", p.ID, r.ID)
		}
		return r, nil
	}
	// answered reports a response that arrived as the wait ended another
	// way (select picks at random among ready cases): the SMSC's answer
	// wins, or an accepted message would be reported failed and sent again.
	answered := func() (*PDU, bool) {
		select {
		case r := <-ch:
			return r, true
		default:
			return nil, false
		}
	}
	select {
	case r := <-ch:
		return answer(r)
	case <-t.C:
		forget()
		if r, ok := answered(); ok {
			return answer(r)
		}
		l.cfg.log.Warn("smpp: no response in time, closing link", "command", p.ID.String(), "seq", seq)
		l.close(ErrResponseTimeout)
		return nil, ErrResponseTimeout
	case <-ctx.Done():
		forget()
		if r, ok := answered(); ok {
			return answer(r)
		}
		return nil, ctx.Err()
	case <-l.done:
		if r, ok := answered(); ok {
			return answer(r)
		}
		return nil, l.closedErr()
	}
}

// nextSeq returns the next sequence number (1…0x7FFFFFFF). l.mu is held.
func (l *link) nextSeq() uint32 {
	l.seq++
	if l.seq > 0x7FFFFFFF {
		l.seq = 1
	}
	return l.seq
}

func (l *link) closedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		return ErrLinkClosed
	}
	return fmt.Errorf("%w: %w", ErrLinkClosed, l.err)
}

// close ends the link once, recording why.
func (l *link) close(why error) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		if why == nil {
			why = ErrLinkClosed
		}
		l.err = why
		l.mu.Unlock()
		close(l.done)
		l.nc.Close()
	})
}

// unbind asks the SMSC to end the session politely, then closes.
func (l *link) unbind() {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.responseTimeout)
	defer cancel()
	if _, err := l.request(ctx, &PDU{ID: Unbind}, false); err != nil {
		l.cfg.log.Debug("smpp: unbind", "err", err)
	}
	l.close(ErrLinkClosed)
}

func (l *link) wait() { l.wg.Wait() }

func (l *link) readLoop(br *bufio.Reader) {
	for {
		p, err := ReadPDU(br, MaxPDULen)
		if err != nil && !(errors.Is(err, ErrMalformed) && p != nil) {
			l.close(err)
			return
		}
		l.lastRx.Store(time.Now().UnixNano())
		if err != nil {
			l.cfg.log.Warn("smpp: malformed PDU", "err", err)
		}
		l.dispatch(p, err != nil)
	}
}

// dispatch handles one PDU read from the SMSC. malformed PDUs carry only
// their header.
func (l *link) dispatch(p *PDU, malformed bool) {
	if p.ID.IsResponse() {
		l.mu.Lock()
		ch, ok := l.pending[p.Seq]
		delete(l.pending, p.Seq)
		l.mu.Unlock()
		if !ok {
			l.cfg.log.Debug("smpp: response to no outstanding request", "command", p.ID.String(), "seq", p.Seq)
			return
		}
		if malformed && p.Status == StatusOK {
			p.Status = StatusSysErr
		}
		ch <- p
		return
	}
	var resp *PDU
	switch p.ID {
	case EnquireLink:
		resp = &PDU{ID: EnquireLinkResp, Seq: p.Seq}
	case Unbind:
		l.write(&PDU{ID: UnbindResp, Seq: p.Seq})
		l.close(ErrUnbound)
		return
	case DeliverSM:
		if malformed {
			// Nothing to report; answer anyway so the SMSC does not
			// resend a PDU that will never parse.
			resp = &PDU{ID: DeliverSMResp, Seq: p.Seq, Status: StatusXRAppn}
			break
		}
		select {
		case l.delivers <- p:
			return
		default:
			resp = &PDU{ID: DeliverSMResp, Seq: p.Seq, Status: StatusXTAppn}
		}
	case AlertNotification:
		return // no response is defined
	default:
		resp = &PDU{ID: GenericNack, Seq: p.Seq, Status: StatusInvCmdID}
		if malformed {
			resp.Status = StatusInvCmdLen
		}
	}
	l.write(resp)
}

// receiptWorker hands deliver_sm to the Sender one at a time and answers
// each with deliver_sm_resp, whatever the handler says.
func (l *link) receiptWorker() {
	for {
		select {
		case <-l.done:
			return
		case p := <-l.delivers:
			st := l.safeDeliver(p)
			l.write(&PDU{ID: DeliverSMResp, Seq: p.Seq, Status: st})
		}
	}
}

// safeDeliver runs the handler; a panic in it (a sink bug) is logged and
// answered as a temporary error instead of killing the process.
func (l *link) safeDeliver(p *PDU) (st Status) {
	defer func() {
		if r := recover(); r != nil {
			l.cfg.log.Error("smpp: receipt handler panicked", "panic", fmt.Sprint(r))
			st = StatusXTAppn
		}
	}()
	return l.cfg.deliver(p)
}

// enquireLoop sends enquire_link when nothing was read for an interval; a
// missing response closes the link (in request).
func (l *link) enquireLoop() {
	t := time.NewTicker(l.cfg.enquireInterval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case now := <-t.C:
			idle := now.Sub(time.Unix(0, l.lastRx.Load()))
			if idle < l.cfg.enquireInterval {
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			_, err := l.request(ctx, &PDU{ID: EnquireLink}, false)
			cancel()
			if err != nil && !errors.Is(err, ErrResponseTimeout) {
				l.cfg.log.Debug("smpp: enquire_link", "err", err)
			}
		}
	}
}
