package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/verifyd/verifyd"
)

// Progress of a call, from the responses seen.
const (
	progressNone     = iota // nothing back from the trunk
	progressTrying          // 100 Trying: the trunk took the INVITE
	progressRinging         // 180/183 (any other 1xx): the callee is alerted
	progressAnswered        // 2xx
)

// tailTimeout bounds the ACK and BYE sent after a call's own time is up.
const tailTimeout = 5 * time.Second

var (
	errRingTimeout = errors.New("ring timeout")
	errFlashRang   = errors.New("flash call rang")
	errHungUp      = errors.New("far end hung up")
)

// call is one delivery attempt. run places it; result reads its outcome,
// also before run is done (Send's deadline passed while a CANCEL is still
// in flight).
type call struct {
	s      *Sender
	m      *verifyd.Message
	callID string

	progress atomic.Int32

	mu        sync.Mutex
	finished  bool
	abandoned bool
	rounds    int // complete readings of the code played
	res       *verifyd.SendResult
	err       error
}

// run places the call, journals it and stores the outcome.
func (c *call) run(ctx context.Context) {
	log := c.s.log.With("message", c.m.ID, "channel", c.m.Channel, "call_id", c.callID)
	var res *verifyd.SendResult
	var err error
	if jerr := c.s.journal.record(stateBegun, c.m.ID, c.callID); jerr != nil {
		err = fmt.Errorf("sip %s: call journal: %w", c.s.cfg.Name, jerr)
	} else {
		if c.m.Channel == verifyd.Flashcall {
			res, err = c.flash(ctx)
		} else {
			res, err = c.voice(ctx)
		}
		state := stateUnreached
		if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL || c.progress.Load() >= progressRinging {
			state = stateReached
		}
		if jerr := c.s.journal.record(state, c.m.ID, c.callID); jerr != nil {
			// The begin record stands: the id counts as placed.
			log.Error("call journal", "err", jerr)
		}
	}
	c.mu.Lock()
	c.res, c.err, c.finished = res, err, true
	abandoned := c.abandoned
	c.mu.Unlock()
	switch {
	case err != nil:
		log.Info("call failed", "err", err, "permanent", verifyd.ErrorCode(err) == verifyd.ECHANNEL, "late", abandoned)
	default:
		log.Info("call done", "status", res.Status, "late", abandoned)
	}
}

// abandon marks the call as reported before run finished.
func (c *call) abandon() {
	c.mu.Lock()
	c.abandoned = true
	c.mu.Unlock()
}

// result returns run's outcome, or, if run is still busy, the outcome the
// call has reached so far.
func (c *call) result() (*verifyd.SendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return c.res, c.err
	}
	return c.outcome(context.DeadlineExceeded, c.rounds)
}

// outcome maps an INVITE or playback that ended with err to Send's result,
// given what the call reached. rounds counts complete readings of the code.
func (c *call) outcome(err error, rounds int) (*verifyd.SendResult, error) {
	p := c.progress.Load()
	if c.m.Channel == verifyd.Flashcall {
		switch {
		case p >= progressRinging:
			return c.ok(verifyd.DeliveryDelivered), nil
		case p == progressTrying:
			return c.ok(verifyd.DeliverySent), nil
		}
	} else {
		switch {
		case p == progressAnswered && rounds > 0:
			return c.ok(verifyd.DeliveryDelivered), nil
		case p == progressAnswered:
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Call answered but ended before the code was played.")
		case p == progressRinging:
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Call not answered: no answer within %s (CANCEL).", c.s.cfg.RingTimeout)
		case p == progressTrying:
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Call not answered: no ringing reported within %s (CANCEL).", c.s.cfg.RingTimeout)
		}
	}
	return nil, fmt.Errorf("sip %s: no response from trunk %s: %w", c.s.cfg.Name, c.s.cfg.Trunk, err)
}

func (c *call) ok(status string) *verifyd.SendResult {
	return &verifyd.SendResult{Sender: c.s.cfg.Name, ProviderMessageID: c.callID, Parts: 1, Status: status}
}

// inviteFailed maps an error from INVITE to Send's result. Once the callee
// was alerted a failure is never transient: a retry would ring again.
func (c *call) inviteFailed(err error) (*verifyd.SendResult, error) {
	var res *sipmsg.Response
	if pe := (*sipgo.ErrDialogResponse)(nil); errors.As(err, &pe) {
		res = pe.Res
	} else if ve := (sipgo.ErrDialogResponse{}); errors.As(err, &ve) {
		res = ve.Res
	}
	if res == nil {
		return c.outcome(err, 0)
	}
	cerr := c.s.classify(res)
	if verifyd.ErrorCode(cerr) != verifyd.ECHANNEL && c.progress.Load() >= progressRinging {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Call failed after ringing (SIP %d %s).", res.StatusCode, clip(res.Reason, 48))
	}
	return nil, cerr
}

// inviteOptions returns the INVITE's options: credentials, our Call-ID, From
// (and P-Asserted-Identity when a caller ID is presented), and a response
// hook that tracks progress and calls onRing at the first 180/183.
func (c *call) inviteOptions(callerID string, onRing func()) diago.InviteClientOptions {
	cid := sipmsg.CallIDHeader(c.callID)
	opts := diago.InviteClientOptions{
		Username: c.s.cfg.Username,
		Password: c.s.cfg.Password,
		Headers:  []sipmsg.Header{&cid},
	}
	user := callerID
	if user == "" {
		user = c.s.cfg.Username
	}
	if user == "" {
		user = "verifyd"
	}
	opts.WithCaller("", user, c.s.cfg.Domain)
	if callerID != "" {
		opts.Headers = append(opts.Headers, sipmsg.NewHeader("P-Asserted-Identity", "<sip:"+callerID+"@"+c.s.cfg.Domain+">"))
	}
	var rang atomic.Bool
	opts.OnResponse = func(res *sipmsg.Response) error {
		switch {
		case res.StatusCode == 100:
			c.raise(progressTrying)
		case res.IsProvisional():
			c.raise(progressRinging)
			if onRing != nil && rang.CompareAndSwap(false, true) {
				onRing()
			}
		}
		return nil
	}
	return opts
}

// raise moves progress up to p.
func (c *call) raise(p int32) {
	for {
		old := c.progress.Load()
		if old >= p || c.progress.CompareAndSwap(old, p) {
			return
		}
	}
}

// ringContext returns the context an INVITE waits for its answer under. It
// is cancelled after timeout, when parent ends, or by the returned cancel.
// With nothing heard from the trunk yet the cancel is forced (no CANCEL can
// be sent before a provisional response, RFC 3261 §9.1, and sipgo would
// otherwise wait out Timer B); else sipgo sends CANCEL and awaits the 487.
func (c *call) ringContext(parent context.Context, timeout time.Duration) (ctx context.Context, cancel func(cause error), stop func()) {
	ctx, cancelCause := context.WithCancelCause(context.WithoutCancel(parent))
	cancel = func(cause error) {
		if c.progress.Load() == progressNone {
			cause = sipgo.WaitAnswerForceCancelErr
		}
		cancelCause(cause)
	}
	t := time.AfterFunc(timeout, func() { cancel(errRingTimeout) })
	stopParent := context.AfterFunc(parent, func() { cancel(context.Cause(parent)) })
	return ctx, cancel, func() {
		t.Stop()
		stopParent()
		cancelCause(nil)
	}
}

// tail returns a context for the ACK and BYE that end a call, alive a little
// past parent so a call is hung up even when its time is up.
func tail(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), tailTimeout)
}

// hangupLate ends a call the far end answered although we were cancelling
// it: ACK the 2xx, then BYE at once.
func (c *call) hangupLate(d *diago.DialogClientSession, parent context.Context) {
	if d.InviteResponse == nil || !d.InviteResponse.IsSuccess() {
		return
	}
	c.raise(progressAnswered)
	ctx, cancel := tail(parent)
	defer cancel()
	if err := d.DialogClientSession.Ack(ctx); err != nil {
		c.s.log.Warn("ACK of a late answer", "call_id", c.callID, "err", err)
		return
	}
	if err := d.DialogClientSession.Bye(ctx); err != nil {
		c.s.log.Warn("BYE of a late answer", "call_id", c.callID, "err", err)
	}
}

// flash places a flash call: INVITE presenting m.CallerID, CANCEL at the
// first 180/183 (after FlashHold) or after FlashRingTimeout, never answered;
// a far end that answers anyway gets a BYE at once.
func (c *call) flash(ctx context.Context) (*verifyd.SendResult, error) {
	d, err := c.s.dg.NewDialog(c.s.recipient(c.m.To), diago.NewDialogOptions{Transport: c.s.cfg.Transport})
	if err != nil {
		return nil, fmt.Errorf("sip %s: new dialog: %w", c.s.cfg.Name, err)
	}
	defer d.Close()
	var hold *time.Timer
	var ringCancel func(error)
	onRing := func() {
		hold = time.AfterFunc(c.s.cfg.FlashHold, func() { ringCancel(errFlashRang) })
	}
	opts := c.inviteOptions(c.m.CallerID, onRing)
	rctx, cancel, stop := c.ringContext(ctx, c.s.cfg.FlashRingTimeout)
	ringCancel = cancel
	defer stop()
	med, err := d.Invite(rctx, opts)
	if hold != nil {
		hold.Stop()
	}
	if err != nil {
		if d.InviteResponse != nil && d.InviteResponse.IsSuccess() {
			c.hangupLate(d, ctx)
			return c.ok(verifyd.DeliveryDelivered), nil
		}
		return c.inviteFailed(err)
	}
	// Answered before any ringing was reported: never hold a flash call.
	c.raise(progressAnswered)
	defer med.Close()
	tctx, tcancel := tail(ctx)
	defer tcancel()
	if err := d.Ack(tctx); err != nil {
		c.s.log.Warn("ACK of an answered flash call", "call_id", c.callID, "err", err)
	} else if err := d.Hangup(tctx); err != nil {
		c.s.log.Warn("BYE of an answered flash call", "call_id", c.callID, "err", err)
	}
	return c.ok(verifyd.DeliveryDelivered), nil
}

// voice places a voice call: INVITE, on answer dial m.Extension, speak the
// code twice in m.Language, BYE.
func (c *call) voice(ctx context.Context) (*verifyd.SendResult, error) {
	d, err := c.s.dg.NewDialog(c.s.recipient(c.m.To), diago.NewDialogOptions{Transport: c.s.cfg.Transport})
	if err != nil {
		return nil, fmt.Errorf("sip %s: new dialog: %w", c.s.cfg.Name, err)
	}
	defer d.Close()
	opts := c.inviteOptions(c.s.voiceCallerID(), nil)
	rctx, _, stop := c.ringContext(ctx, c.s.cfg.RingTimeout)
	med, err := d.Invite(rctx, opts)
	stop()
	if err != nil {
		if d.InviteResponse != nil && d.InviteResponse.IsSuccess() {
			c.hangupLate(d, ctx) // answered while we cancelled: nobody hears anything
		}
		return c.inviteFailed(err)
	}
	c.raise(progressAnswered)
	defer med.Close()
	tctx, tcancel := tail(ctx)
	defer tcancel()
	if err := d.Ack(tctx); err != nil {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Call answered but could not be acknowledged.")
	}
	if c.s.afterAnswer != nil {
		c.s.afterAnswer(med)
	}
	err = c.speak(ctx, d, med)
	hungUp := d.Context().Err() != nil
	if !hungUp {
		if berr := d.Hangup(tctx); berr != nil {
			c.s.log.Warn("BYE", "call_id", c.callID, "err", berr)
		}
	}
	c.mu.Lock()
	rounds := c.rounds
	c.mu.Unlock()
	if err != nil && rounds == 0 {
		if hungUp {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "Callee hung up before the code was played.")
		}
		c.s.log.Warn("playing the code", "call_id", c.callID, "err", err)
	}
	return c.outcome(err, rounds)
}

// speak dials the extension, then plays the code twice. It stops when ctx
// ends or the far end hangs up.
func (c *call) speak(ctx context.Context, d *diago.DialogClientSession, med *diago.DialogMedia) error {
	pb, err := med.PlaybackCreate()
	if err != nil {
		return err
	}
	play := func(pcm []byte) error {
		_, err := pb.Play(&stopReader{ctx: ctx, dialog: d.Context(), r: bytes.NewReader(pcm)}, "audio/pcm")
		return err
	}
	if c.m.Extension != "" {
		if err := c.dial(ctx, d, med, play); err != nil {
			return err
		}
		if err := play(silence(repeatGapMs)); err != nil {
			return err
		}
	}
	_, set := c.s.prompts.match(c.m.Language)
	reading := set.reading(c.m.Code)
	for round := range 2 {
		if round > 0 {
			if err := play(silence(repeatGapMs)); err != nil {
				return err
			}
		}
		if err := play(reading); err != nil {
			return err
		}
		c.mu.Lock()
		c.rounds = round + 1
		c.mu.Unlock()
	}
	// Let the last packets leave before the BYE.
	return play(silence(200))
}

// dial sends m.Extension: RFC 4733 events when telephone-event was
// negotiated, else in-band tones; w and W pause 0.5 s and 1 s.
func (c *call) dial(ctx context.Context, d *diago.DialogClientSession, med *diago.DialogMedia, play func([]byte) error) error {
	dtmf, derr := med.AudioWriterDTMF()
	for _, r := range c.m.Extension {
		var err error
		switch {
		case r == 'w':
			err = play(silence(500))
		case r == 'W':
			err = play(silence(1000))
		case derr == nil:
			if err = stopErr(ctx, d.Context()); err == nil {
				err = dtmf.WriteDTMF(r)
			}
			if err == nil {
				err = play(silence(80))
			}
		default:
			if err = play(dtmfTone(r, 100)); err == nil {
				err = play(silence(80))
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stopReader reads r until ctx ends or the dialog ends (far-end BYE).
// Playback is paced in real time, so it stops within one 20 ms frame.
type stopReader struct {
	ctx, dialog context.Context
	r           io.Reader
}

func (s *stopReader) Read(p []byte) (int, error) {
	if err := stopErr(s.ctx, s.dialog); err != nil {
		return 0, err
	}
	return s.r.Read(p)
}

func stopErr(ctx, dialog context.Context) error {
	if dialog.Err() != nil {
		return errHungUp
	}
	return ctx.Err()
}
