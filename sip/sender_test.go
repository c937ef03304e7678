package sip

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/verifyd/verifyd"
)

var ipv4 = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// voiceMessage returns a voice-call message for a delivery job.
func voiceMessage(id string) *verifyd.Message {
	return &verifyd.Message{ID: id, Channel: verifyd.Call, To: "+447400123456", Code: "493817", Language: "de-DE"}
}

// echoCounter reads the RTP payload sipp echoes back (PCMU) until the call's
// media closes.
type echoCounter struct {
	mu      sync.Mutex
	bytes   int
	sumSq   float64
	done    chan struct{}
	started chan struct{}
}

func newEchoCounter(s *Sender) *echoCounter {
	e := &echoCounter{done: make(chan struct{}), started: make(chan struct{})}
	s.afterAnswer = func(med *diago.DialogMedia) {
		r, err := med.AudioReader()
		close(e.started)
		if err != nil {
			close(e.done)
			return
		}
		go func() { // owned by the test: it waits on e.done
			defer close(e.done)
			buf := make([]byte, 1500)
			for {
				n, err := r.Read(buf)
				if err != nil {
					return
				}
				e.mu.Lock()
				e.bytes += n
				for _, b := range buf[:n] {
					v := float64(ulawDecode(b))
					e.sumSq += v * v
				}
				e.mu.Unlock()
			}
		}()
	}
	return e
}

func (e *echoCounter) wait(tb testing.TB) (n int, rms float64) {
	tb.Helper()
	select {
	case <-e.started:
	default:
		tb.Fatal("the call was never answered")
	}
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		tb.Fatal("RTP reader did not stop after the call ended")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bytes == 0 {
		return 0, 0
	}
	return e.bytes, math.Sqrt(e.sumSq / float64(e.bytes))
}

// ulawDecode decodes one G.711 µ-law byte to a linear sample.
func ulawDecode(u byte) int16 {
	u = ^u
	t := (int(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func TestSender_Voice(t *testing.T) {
	t.Parallel()
	t.Run("AnsweredAfter401", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_auth401_answer.xml")
		s := openSender(t, testConfig(t, peer.port))
		echo := newEchoCounter(s)
		m := voiceMessage("job-voice-1")
		start := time.Now()
		res, err := s.Send(context.Background(), m)
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if res.Status != verifyd.DeliveryDelivered || res.Sender != "sipp" || res.ProviderMessageID == "" {
			t.Fatalf("result %+v", res)
		}
		peer.mustSucceed(t)
		if got := peer.logged(t, "AUTH-VALID"); got != "true" {
			t.Fatalf("sipp AUTH-VALID=%s", got)
		}
		// Loopback only: Via, Contact and SDP name no other address.
		msgs := peer.messages(t)
		if !strings.Contains(msgs, "c=IN IP4 127.0.0.1") {
			t.Fatal("no loopback SDP connection line in the INVITE")
		}
		for _, ip := range ipv4.FindAllString(msgs, -1) {
			if ip != "127.0.0.1" {
				t.Fatalf("non-loopback address %s in the SIP messages", ip)
			}
		}
		// What was played: two readings of the code in German, 1 s apart,
		// 200 ms of trailing silence; PCMU carries one byte per sample.
		_, set := s.prompts.match("de-DE")
		wantSamples := (2*len(set.reading(m.Code)) + len(silence(repeatGapMs)) + len(silence(200))) / bytesPerSample
		n, rms := echo.wait(t)
		t.Logf("played %.2f s; echoed %d bytes (%.2f s), rms %.0f, call took %s",
			float64(wantSamples)/sampleRate, n, float64(n)/sampleRate, rms, time.Since(start).Round(time.Millisecond))
		if n < wantSamples*85/100 || n > wantSamples*105/100 {
			t.Fatalf("echoed %d bytes of audio, want about %d", n, wantSamples)
		}
		if rms < 200 {
			t.Fatalf("echoed audio rms %.0f: silence", rms)
		}
		if ok, _ := s.Sent(context.Background(), m.ID); !ok {
			t.Fatal("Sent = false after a delivered call")
		}
	})

	t.Run("Extension", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_auth401_answer.xml")
		s := openSender(t, testConfig(t, peer.port))
		m := voiceMessage("job-voice-ext")
		m.Code, m.Extension, m.Language = "42", "12w#", "ru"
		res, err := s.Send(context.Background(), m)
		if err != nil || res.Status != verifyd.DeliveryDelivered {
			t.Fatalf("Send = %+v, %v", res, err)
		}
		peer.mustSucceed(t)
	})

	t.Run("Busy", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_busy.xml")
		s := openSender(t, testConfig(t, peer.port))
		m := voiceMessage("job-busy")
		mustFailDelivery(t, s, m, "SIP 486")
		peer.mustSucceed(t)
		// The delivery job is never called twice, even if asked again.
		res, err := s.Send(context.Background(), m)
		if err != nil || res.Status != verifyd.DeliverySent {
			t.Fatalf("second Send = %+v, %v; want sent without a call", res, err)
		}
	})

	t.Run("ProxyAuth407", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_auth407_busy.xml")
		s := openSender(t, testConfig(t, peer.port))
		mustFailDelivery(t, s, voiceMessage("job-407"), "SIP 486") // busy after answering the 407
		peer.mustSucceed(t)
		if got := peer.logged(t, "PROXY-AUTH-USER"); got != "verifyd" {
			t.Fatalf("Proxy-Authorization username %q", got)
		}
		// The digest maths, checked independently (RFC 2617 without qop).
		hdr := peer.loggedLine(t, "PROXY-AUTH-HEADER:")
		param := func(name string) string {
			_, v, _ := strings.Cut(hdr, name+`="`)
			v, _, _ = strings.Cut(v, `"`)
			return v
		}
		md5hex := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
		ha1 := md5hex("verifyd:" + param("realm") + ":s3cret")
		ha2 := md5hex("INVITE:" + param("uri"))
		if want := md5hex(ha1 + ":" + param("nonce") + ":" + ha2); param("response") != want || param("nonce") != "5b7c2d0e3f4a51627384950b" {
			t.Fatalf("Proxy-Authorization %s: response %s, want %s", hdr, param("response"), want)
		}
	})

	t.Run("NoAnswer", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_ring_cancel.xml")
		cfg := testConfig(t, peer.port)
		cfg.RingTimeout = time.Second
		s := openSender(t, cfg)
		start := time.Now()
		mustFailDelivery(t, s, voiceMessage("job-noanswer"), "no answer")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Send took %s with a 1 s ring timeout", d)
		}
		peer.mustSucceed(t) // sipp got the CANCEL and our ACK of its 487
	})

	t.Run("SlowCancelEndsSendOnTime", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_ring_cancel_slow.xml")
		cfg := testConfig(t, peer.port)
		cfg.RingTimeout, cfg.CallTimeout = 500*time.Millisecond, 1500*time.Millisecond
		s := openSender(t, cfg)
		m := voiceMessage("job-slowcancel")
		start := time.Now()
		mustFailDelivery(t, s, m, "no answer")
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("Send took %s with a 1.5 s call timeout", d)
		}
		// The CANCEL's tail goes on under the sender and completes.
		peer.mustSucceed(t)
		if ok, _ := s.Sent(context.Background(), m.ID); !ok {
			t.Fatal("Sent = false for a call that rang")
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_auth401_answer.xml")
		cfg := testConfig(t, peer.port)
		cfg.Password = "wrong"
		s := openSender(t, cfg)
		m := voiceMessage("job-badauth")
		_, err := s.Send(context.Background(), m)
		if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL || !strings.Contains(err.Error(), "403") {
			t.Fatalf("Send error %v, want a transient error naming 403", err)
		}
		peer.mustSucceed(t)
		if got := peer.logged(t, "AUTH-VALID"); got != "false" {
			t.Fatalf("sipp AUTH-VALID=%s", got)
		}
		if ok, _ := s.Sent(context.Background(), m.ID); ok {
			t.Fatal("Sent = true for a call the trunk refused: a retry must be allowed")
		}
	})

	t.Run("FarEndHangsUp", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_answer_hangup.xml")
		s := openSender(t, testConfig(t, peer.port))
		start := time.Now()
		mustFailDelivery(t, s, voiceMessage("job-hangup"), "hung up")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Send took %s: playback did not stop at the far end's BYE", d)
		}
		peer.mustSucceed(t)
	})
}

func TestSender_Flash(t *testing.T) {
	t.Parallel()
	flash := func(id string) *verifyd.Message {
		return &verifyd.Message{ID: id, Channel: verifyd.Flashcall, To: "+447400123456", CallerID: "+15557654321", Code: "4321"}
	}
	t.Run("RingThenCancel", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_ring_cancel.xml")
		s := openSender(t, testConfig(t, peer.port))
		m := flash("job-flash")
		res, err := s.Send(context.Background(), m)
		if err != nil || res.Status != verifyd.DeliveryDelivered {
			t.Fatalf("Send = %+v, %v", res, err)
		}
		peer.mustSucceed(t)
		if msgs := peer.messages(t); !strings.Contains(msgs, "Call-ID: "+res.ProviderMessageID) {
			t.Fatalf("provider message id %q is not the Call-ID sipp saw", res.ProviderMessageID)
		}
		for _, h := range []string{"FROM-USER", "PAI-USER"} {
			if got := peer.logged(t, h); got != m.CallerID || !strings.HasSuffix(got, m.Code) {
				t.Fatalf("sipp %s=%s, want %s ending in the code %s", h, got, m.CallerID, m.Code)
			}
		}
	})

	t.Run("AnsweredAnyway", func(t *testing.T) {
		t.Parallel()
		peer := startSipp(t, "uas_answer_at_once.xml")
		s := openSender(t, testConfig(t, peer.port))
		res, err := s.Send(context.Background(), flash("job-flash-answered"))
		if err != nil || res.Status != verifyd.DeliveryDelivered {
			t.Fatalf("Send = %+v, %v", res, err)
		}
		peer.mustSucceed(t) // got ACK and BYE
	})

	t.Run("CallerIDOutsideRange", func(t *testing.T) {
		t.Parallel()
		s := openSender(t, testConfig(t, freeUDPPort(t)))
		m := flash("job-flash-range")
		m.CallerID = "+4930123456"
		if _, err := s.Send(context.Background(), m); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
			t.Fatalf("Send error %v, want permanent", err)
		}
	})
}

func TestSender_TrunkUnreachable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, freeUDPPort(t)) // nobody listens there
	cfg.RingTimeout = 500 * time.Millisecond
	s := openSender(t, cfg)
	m := voiceMessage("job-unreachable")
	start := time.Now()
	_, err := s.Send(context.Background(), m)
	if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("Send error %v, want transient", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Send took %s with a 0.5 s ring timeout", d)
	}
	if ok, _ := s.Sent(context.Background(), m.ID); ok {
		t.Fatal("Sent = true for a call that reached nobody")
	}
}

func TestSender_SlotsFull(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, freeUDPPort(t))
	cfg.MaxCalls = 1
	s := openSender(t, cfg)
	s.sem <- struct{}{} // the one slot is taken
	defer func() { <-s.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, voiceMessage("job-full"))
	if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send error %v, want transient slots busy", err)
	}
	if _, ok := s.journal.lookup("job-full"); ok {
		t.Fatal("a call that never started was journaled")
	}
}

func TestSender_RefusesOtherChannels(t *testing.T) {
	t.Parallel()
	s := openSender(t, testConfig(t, freeUDPPort(t)))
	m := voiceMessage("job-sms")
	m.Channel = verifyd.SMS
	if _, err := s.Send(context.Background(), m); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
		t.Fatalf("Send error %v, want ECHANNEL", err)
	}
	m = voiceMessage("job-ext")
	m.Extension = "12x"
	if _, err := s.Send(context.Background(), m); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
		t.Fatalf("Send error %v, want ECHANNEL for a bad extension", err)
	}
}

// mustFailDelivery sends m and expects the call to have left and failed at
// the callee's side: Status delivery_failed with cause in Cause, the Call-ID
// as the provider message id, and the call journalled as placed (never called again).
func mustFailDelivery(t *testing.T, s *Sender, m *verifyd.Message, cause string) {
	t.Helper()
	res, err := s.Send(context.Background(), m)
	if err != nil || res.Status != verifyd.DeliveryFailed || res.ProviderMessageID == "" || !strings.Contains(res.Cause, cause) {
		t.Fatalf("Send = %+v, %v; want delivery_failed, cause naming %q", res, err, cause)
	}
	if ok, _ := s.Sent(context.Background(), m.ID); !ok {
		t.Fatal("Sent = false for a call that reached the callee's side")
	}
}
