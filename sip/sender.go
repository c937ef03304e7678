// Package sip delivers codes by phone call over a SIP trunk: voice calls that
// speak the code (channel "call") and flash calls whose caller ID carries it
// (channel "flashcall"). It wraps github.com/emiago/sipgo (SIP) and
// github.com/emiago/diago (calls, RTP). See docs/sip.md.
package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/verifyd/verifyd"
)

// Sender places calls through one SIP trunk. It implements verifyd.Sender
// and verifyd.Reconciler. Use New, then Open, then Close.
type Sender struct {
	cfg     Config
	log     *slog.Logger
	prompts prompts
	journal *journal
	sem     chan struct{} // one token per call in progress
	next    atomic.Uint64 // round robin over CallerIDs

	trunkHost string
	trunkPort int

	// set by Open
	ua   *sipgo.UserAgent
	dg   *diago.Diago
	life context.Context // cancelled by Close: stops serving and calls
	stop context.CancelFunc

	wg        sync.WaitGroup // calls in progress, including their CANCEL tails
	closeOnce sync.Once

	// afterAnswer, when set (tests), is called with the media of an answered
	// voice call before anything is played.
	afterAnswer func(*diago.DialogMedia)
}

var (
	_ verifyd.Sender     = (*Sender)(nil)
	_ verifyd.Reconciler = (*Sender)(nil)
)

// New checks cfg, loads the prompts and opens the call journal. It does not
// touch the network: Open does.
func New(cfg Config, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, _ := net.SplitHostPort(cfg.Trunk)
	p, _ := strconv.Atoi(port)
	pr, err := loadPrompts(cfg.PromptsDir)
	if err != nil {
		return nil, err
	}
	j, err := openJournal(cfg.JournalDir, cfg.JournalRetention, time.Now)
	if err != nil {
		return nil, fmt.Errorf("sip %s: call journal: %w", cfg.Name, err)
	}
	return &Sender{
		cfg: cfg, log: log.With("sender", cfg.Name), prompts: pr, journal: j,
		sem: make(chan struct{}, cfg.MaxCalls), trunkHost: host, trunkPort: p,
	}, nil
}

// Open binds the SIP transport (and, for udp and tcp, listens on it so the
// trunk's in-dialog requests such as a BYE reach us). It returns once the
// listener is up; serving stops on Close.
func (s *Sender) Open(ctx context.Context) error {
	if s.dg != nil {
		return errors.New("sip: already open")
	}
	bindHost, bindPort, _ := net.SplitHostPort(s.cfg.Listen)
	port, err := strconv.Atoi(bindPort)
	if err != nil {
		return fmt.Errorf("sip %s: listen port %q: %w", s.cfg.Name, bindPort, err)
	}
	hostname := s.cfg.ExternalHost
	if hostname == "" {
		hostname = bindHost
	}
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("verifyd"), sipgo.WithUserAgentHostname(hostname),
		sipgo.WithUserAgentTransactionLayerOptions(
			sipmsg.WithTransactionLayerLogger(s.log),
			sipmsg.WithTransactionLayerUnhandledResponseHandler(func(r *sipmsg.Response) {
				// Typically a retransmitted 2xx after our ACK went out.
				s.log.Debug("unmatched SIP response", "status", r.StatusCode, "call_id", callIDOf(r))
			}),
		),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(s.log)),
	}
	tran := diago.Transport{
		Transport: s.cfg.Transport, BindHost: bindHost, BindPort: port,
		ExternalHost: s.cfg.ExternalHost,
	}
	if s.cfg.Transport == "tls" {
		tc := s.cfg.TLS
		if tc == nil {
			tc = &tls.Config{ServerName: s.trunkHost, MinVersion: tls.VersionTLS12}
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(tc))
		tran.TLSConf, tran.TLSURINoSIPS = tc, true
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return fmt.Errorf("sip %s: %w", s.cfg.Name, err)
	}
	codecs := make([]media.Codec, 0, len(s.cfg.Codecs)+1)
	for _, name := range s.cfg.Codecs {
		c, _ := codecByName(name)
		codecs = append(codecs, c)
	}
	codecs = append(codecs, media.CodecTelephoneEvent8000)
	dg := diago.NewDiago(ua,
		diago.WithLogger(s.log),
		diago.WithTransport(tran),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: codecs}),
	)
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	refuse := func(d *diago.DialogServerSession) {
		// verifyd only calls out; an inbound call is declined.
		if err := d.Respond(603, "Decline", nil); err != nil {
			s.log.Debug("declining inbound call", "err", err)
		}
	}
	if s.cfg.Transport == "tls" {
		// No certificate to listen with: in-dialog requests arrive on our
		// outbound connection, which the transport layer serves anyway.
		dg.HandleFunc(refuse)
	} else if err := dg.ServeBackground(life, refuse); err != nil {
		stop()
		ua.Close()
		return fmt.Errorf("sip %s: listen %s: %w", s.cfg.Name, s.cfg.Listen, err)
	}
	if s.cfg.Transport == "udp" {
		awaitUDPListener(ua, s.log)
	}
	s.ua, s.dg, s.life, s.stop = ua, dg, life, stop
	s.log.Info("sip trunk ready", "trunk", s.cfg.Trunk, "transport", s.cfg.Transport, "listen", s.cfg.Listen)
	return nil
}

// awaitUDPListener waits (up to two seconds) until the UDP listener is in
// the transport's connection pool. diago's ServeBackground returns once the
// socket is bound but registers it from another goroutine; a request sent
// before that finds no connection for our address and binds a new socket
// to it, which fails with "address already in use" (seen in CI: a call
// placed 3 ms after Open).
func awaitUDPListener(ua *sipgo.UserAgent, log *slog.Logger) {
	pool := ua.TransportLayer().Pool("udp")
	deadline := time.Now().Add(2 * time.Second)
	for pool != nil && pool.Size() == 0 {
		if time.Now().After(deadline) {
			log.Warn("sip: UDP listener not registered after 2 s; the first calls may fail and be retried")
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Close stops new calls, ends the ones in progress (each hangs up or
// cancels), waits for them, and releases the transport and the journal.
// A CANCEL to a trunk that never answers it can hold Close for up to
// 64·T1 (32 s).
func (s *Sender) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.wg.Wait()
		if s.ua != nil {
			err = s.ua.Close()
		}
		err = errors.Join(err, s.journal.close())
	})
	return err
}

// Sent implements verifyd.Reconciler: it reports whether a call for message
// id may have reached the callee, that is whether the journal holds an INVITE
// for it that did not end in a failure that surely never reached the phone.
// A worker that died mid-call therefore never places the call twice.
func (s *Sender) Sent(_ context.Context, id string) (bool, error) {
	return s.journal.placed(id), nil
}

// Send places a voice call (m.Channel call) or a flash call (flashcall).
//
// Voice: answered and played → Status DeliveryDelivered. Busy, no answer,
// rejected (4xx, 6xx) or a hang-up before the code was heard → Status
// DeliveryFailed (the call left) with the SIP cause in Cause.
// Trunk unreachable, no response, 5xx, 408 or an authentication failure
// (401, 407, 403) → a plain error, so the router may try another sender. A
// message that cannot be called at all (bad number, extension or flash
// caller ID) → a permanent *verifyd.Error with code ECHANNEL.
//
// Flash: the far end rang (180/183), or answered (hung up at once) → Status
// DeliveryDelivered; only 100 Trying before the ring timeout → DeliverySent.
// Failures are classified as for voice.
//
// Send waits for a free call slot while ctx allows. It returns by the end of
// ctx or the call timeout, whichever is first; a CANCEL still in flight then
// finishes in the background (Close waits for it). A message whose call may
// already have reached the callee (see Sent) is not called again: Send
// returns DeliverySent with the earlier call's Call-ID.
func (s *Sender) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	if s.dg == nil {
		return nil, errors.New("sip: sender is not open")
	}
	switch m.Channel {
	case verifyd.Call:
		if m.Code == "" {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Voice call has no code to speak.")
		}
		if !validExtension(m.Extension) {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Extension %q has characters other than 0-9 * # A-D w W.", m.Extension)
		}
	case verifyd.Flashcall:
		if s.cfg.FlashPrefix == "" {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Flash calls are not configured on this trunk.")
		}
		if !isNumber(m.CallerID) || !strings.HasPrefix(m.CallerID, s.cfg.FlashPrefix) {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Flash-call caller ID is outside the trunk's configured range.")
		}
	default:
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "The SIP sender does not deliver channel %q.", m.Channel)
	}
	if !isNumber(m.To) {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Destination is not a phone number.")
	}
	if e, ok := s.journal.lookup(m.ID); ok && e.state != stateUnreached {
		s.log.Warn("call already placed for this delivery; not calling again", "message", m.ID, "call_id", e.callID)
		return &verifyd.SendResult{Sender: s.cfg.Name, ProviderMessageID: e.callID, Status: verifyd.DeliverySent}, nil
	}

	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("sip %s: all %d call slots busy: %w", s.cfg.Name, s.cfg.MaxCalls, context.Cause(ctx))
	case <-s.life.Done():
		return nil, fmt.Errorf("sip %s: sender closed", s.cfg.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	stopAfter := context.AfterFunc(s.life, cancel)
	defer stopAfter()

	c := &call{s: s, m: m, callID: newCallID()}
	done := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		defer close(done)
		c.run(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		default:
			// The call is past its time; only the INVITE's CANCEL tail can
			// still be running. Report what is known now.
			c.abandon()
		}
	}
	res, err := c.result()
	if verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		// The trunk took the call; the callee's side refused or missed it.
		// That is a delivery failure (API.md D7: the verification stays
		// pending, verify.failed), not a send failure: no other route.
		res = c.ok(verifyd.DeliveryFailed)
		res.Cause = verifyd.ErrorMessage(err)
		return res, nil
	}
	return res, err
}

// newCallID returns a random Call-ID, known before the INVITE so the journal
// can record it.
func newCallID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// callIDOf returns the Call-ID of a SIP message, "" if it has none.
func callIDOf(r *sipmsg.Response) string {
	if h := r.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// codecByName maps a configured codec name to diago's codec.
func codecByName(name string) (media.Codec, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return media.CodecAudioUlaw, true
	case "PCMA":
		return media.CodecAudioAlaw, true
	}
	return media.Codec{}, false
}

// recipient returns the Request-URI for a number: sip:<number>@<trunk>.
func (s *Sender) recipient(number string) sipmsg.Uri {
	if s.cfg.StripPlus {
		number = strings.TrimPrefix(number, "+")
	}
	return sipmsg.Uri{Scheme: "sip", User: number, Host: s.trunkHost, Port: s.trunkPort,
		UriParams: sipmsg.NewParams(), Headers: sipmsg.NewParams()}
}

// voiceCallerID returns the next configured caller ID, or "" for none.
func (s *Sender) voiceCallerID() string {
	if len(s.cfg.CallerIDs) == 0 {
		return ""
	}
	return s.cfg.CallerIDs[(s.next.Add(1)-1)%uint64(len(s.cfg.CallerIDs))]
}

// classify turns a final non-2xx SIP answer into Send's error: permanent
// (*verifyd.Error, ECHANNEL) when the callee or their network refused,
// transient when the trunk failed or refused us.
func (s *Sender) classify(res *sipmsg.Response) error {
	code := res.StatusCode
	cause := fmt.Sprintf("SIP %d %s", code, clip(res.Reason, 48))
	switch {
	case code == 401 || code == 407 || code == 403:
		return fmt.Errorf("sip %s: trunk refused our credentials (%s)", s.cfg.Name, cause)
	case code == 408 || (code >= 500 && code < 600):
		return fmt.Errorf("sip %s: trunk failed the call (%s)", s.cfg.Name, cause)
	case code == 486 || code == 600:
		return verifyd.Errorf(verifyd.ECHANNEL, "Call not answered: busy (%s).", cause)
	case code == 603:
		return verifyd.Errorf(verifyd.ECHANNEL, "Call declined (%s).", cause)
	case code == 480:
		return verifyd.Errorf(verifyd.ECHANNEL, "Call not answered: callee unavailable (%s).", cause)
	case code == 404 || code == 484 || code == 604:
		return verifyd.Errorf(verifyd.ECHANNEL, "Number not reachable (%s).", cause)
	default:
		return verifyd.Errorf(verifyd.ECHANNEL, "Call rejected (%s).", cause)
	}
}

// clip returns s without control characters, at most n bytes long.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}
