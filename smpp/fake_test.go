package smpp

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// These tests use a tiny SMSC written here with this package's own codec,
// for behaviour node-smpp cannot be made to show: a held-back window and
// sink failures.

// listenLoopback listens on a free port of 127.0.0.1; the caller closes it.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// fakeSMSC accepts one session on 127.0.0.1, answers its bind, and hands
// every PDU but enquire_link and unbind to handle (on the connection's
// goroutine), the bind after it was answered.
func fakeSMSC(t *testing.T, handle func(w func(*PDU), p *PDU)) string {
	t.Helper()
	ln := listenLoopback(t)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var wmu sync.Mutex
		w := func(p *PDU) {
			b, _ := p.Encode()
			wmu.Lock()
			c.Write(b)
			wmu.Unlock()
		}
		for {
			p, err := ReadPDU(br, 0)
			if err != nil {
				return
			}
			switch p.ID {
			case BindTransceiver:
				w(&PDU{ID: BindTransceiverResp, Seq: p.Seq, SystemID: "fake"})
				handle(w, p)
			case EnquireLink:
				w(&PDU{ID: EnquireLinkResp, Seq: p.Seq})
			case Unbind:
				w(&PDU{ID: UnbindResp, Seq: p.Seq})
				return
			default:
				handle(w, p)
			}
		}
	})
	return ln.Addr().String()
}

func TestSender_Window(t *testing.T) {
	const window, total = 2, 6
	ln := listenLoopback(t)
	defer ln.Close()
	maxHeld := make(chan int, 1)
	go func() {
		// The SMSC holds its answers while the window is full and looks
		// for one request too many within 100 ms before answering one.
		c, err := ln.Accept()
		if err != nil {
			maxHeld <- -1
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var held []*PDU
		most, answered := 0, 0
		w := func(p *PDU) { b, _ := p.Encode(); c.Write(b) }
		for answered < total {
			if len(held) >= window {
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			} else {
				c.SetReadDeadline(time.Time{})
			}
			p, err := ReadPDU(br, 0)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				w(&PDU{ID: SubmitSMResp, Seq: held[0].Seq, MessageID: "x"})
				held, answered = held[1:], answered+1
				continue
			}
			if err != nil {
				break
			}
			switch p.ID {
			case BindTransceiver:
				w(&PDU{ID: BindTransceiverResp, Seq: p.Seq})
			case SubmitSM:
				held = append(held, p)
				most = max(most, len(held))
				if len(held)+answered == total { // no more can come
					for _, h := range held {
						w(&PDU{ID: SubmitSMResp, Seq: h.Seq, MessageID: "x"})
					}
					answered += len(held)
					held = nil
				}
			case EnquireLink:
				w(&PDU{ID: EnquireLinkResp, Seq: p.Seq})
			}
		}
		maxHeld <- most
	}()
	cfg := testConfig(ln.Addr().String())
	cfg.Window = window
	s := startSender(t, cfg, nil)
	if err := sendAtOnce(s, total); err != nil {
		t.Fatal(err)
	}
	if most := <-maxHeld; most != window {
		t.Fatalf("at most %d requests outstanding, want exactly the window %d", most, window)
	}
}

// errSink fails every receipt with err.
type errSink struct{ err error }

func (e errSink) Receipt(context.Context, *verifyd.Receipt) error { return e.err }

func TestSender_ReceiptSinkErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want Status
	}{
		{"taken", nil, StatusOK},
		{"unknown message", verifyd.ErrNotFound, StatusOK},
		{"store down", errSinkDown, StatusXTAppn},
		{"unavailable", verifyd.ErrUnavailable, StatusXTAppn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := make(chan *PDU, 1)
			addr := fakeSMSC(t, func(w func(*PDU), p *PDU) {
				switch p.ID {
				case BindTransceiver: // a receipt for an id nobody submitted
					w(&PDU{ID: DeliverSM, Seq: 77, ESMClass: esmTypeReceipt,
						ShortMessage: []byte("id:42 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:")})
				case DeliverSMResp:
					got <- p
				}
			})
			startSender(t, testConfig(addr), errSink{c.err})
			select {
			case r := <-got:
				if r.Seq != 77 || r.Status != c.want {
					t.Fatalf("deliver_sm_resp seq %d status %s, want %s", r.Seq, r.Status, c.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no deliver_sm_resp")
			}
		})
	}
}

// An SMSC that answers and hangs up at once: the answer wins over the
// closed link (a Send that got its submit_sm_resp succeeded; reporting it
// failed would send the message again elsewhere). Each round, the answers
// and the close reach the client in one burst, so that the answer and the
// close are often both ready when a sending goroutine next runs (without
// the fix, about half the runs under -race failed within 100 rounds).
func TestSender_AnswerBeforeCloseWins(t *testing.T) {
	const rounds, perRound = 100, 4
	ln := listenLoopback(t)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var held []*PDU
				for {
					p, err := ReadPDU(br, 0)
					if err != nil {
						return
					}
					switch p.ID {
					case BindTransceiver:
						b, _ := (&PDU{ID: BindTransceiverResp, Seq: p.Seq}).Encode()
						c.Write(b)
					case SubmitSM:
						if held = append(held, p); len(held) < perRound {
							continue
						}
						var out []byte
						for _, h := range held {
							b, _ := (&PDU{ID: SubmitSMResp, Seq: h.Seq, MessageID: "x"}).Encode()
							out = append(out, b...)
						}
						c.Write(out)
						return // and hang up
					}
				}
			}()
		}
	}()
	cfg := testConfig(ln.Addr().String())
	cfg.Window = perRound
	for round := range rounds {
		s := startSender(t, cfg, nil) // a fresh bind each round: the last one was hung up
		if err := sendAtOnce(s, perRound); err != nil {
			t.Fatalf("round %d: a send the SMSC answered failed: %v", round, err)
		}
		s.Close()
	}
}

// sendAtOnce sends n messages concurrently and returns the first error.
func sendAtOnce(s *Sender, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.Send(context.Background(), &verifyd.Message{To: to, Text: "w"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
