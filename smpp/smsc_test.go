package smpp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// The tests in this file run against node-smpp, an SMSC nobody here wrote,
// driven by testdata/smsc.cjs on a loopback port.

// smscEvent is one JSON line of smsc.cjs.
type smscEvent struct {
	Event              string   `json:"event"`
	Port               int      `json:"port"`
	Session            int      `json:"session"`
	Command            string   `json:"command"`
	SystemID           string   `json:"system_id"`
	Status             int      `json:"status"`
	Seq                int      `json:"seq"`
	ID                 string   `json:"id"`
	SourceAddr         string   `json:"source_addr"`
	SourceTON          int      `json:"source_addr_ton"`
	SourceNPI          int      `json:"source_addr_npi"`
	Dest               string   `json:"destination_addr"`
	DestTON            int      `json:"dest_addr_ton"`
	DestNPI            int      `json:"dest_addr_npi"`
	ESMClass           int      `json:"esm_class"`
	DataCoding         int      `json:"data_coding"`
	RegisteredDelivery int      `json:"registered_delivery"`
	Text               string   `json:"text"`
	UDH                []string `json:"udh"`
	PayloadText        *string  `json:"payload_text"`
	MessageID          string   `json:"message_id"`
}

type smsc struct {
	t       *testing.T
	port    int
	mu      sync.Mutex
	events  []smscEvent
	changed chan struct{}
	stderr  strings.Builder
}

// skipPeer skips a test whose outside peer is absent, unless
// VERIFYD_REQUIRE_PEERS is set (as .ci/run does): then it fails.
func skipPeer(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("VERIFYD_REQUIRE_PEERS") != "" {
		t.Fatal(why + " (VERIFYD_REQUIRE_PEERS is set)")
	}
	t.Skip(why)
}

// startSMSC runs testdata/smsc.cjs with env and waits for its listening
// line. The process is killed at cleanup.
func startSMSC(t *testing.T, env ...string) *smsc {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipPeer(t, "node not found: the node-smpp SMSC tests need it")
	}
	mods, _ := filepath.Abs(filepath.Join("..", "interop", "node_modules"))
	if _, err := os.Stat(filepath.Join(mods, "smpp", "package.json")); err != nil {
		skipPeer(t, "interop/node_modules/smpp missing: run `npm ci` in interop/")
	}
	cmd := exec.Command(node, filepath.Join("testdata", "smsc.cjs"))
	cmd.Env = append(os.Environ(), "SMSC_NODE_MODULES="+mods, "SMSC_PORT=0")
	cmd.Env = append(cmd.Env, env...)
	s := &smsc{t: t, changed: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &s.mu, b: &s.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e smscEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, e)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("SMSC events:\n%s\nstderr: %s", s.dump(), s.stderrText())
		}
	})
	e := s.wait("listening", func(e smscEvent) bool { return e.Event == "listening" })
	s.port = e.Port
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (s *smsc) stderrText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

func (s *smsc) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sb strings.Builder
	for _, e := range s.events {
		b, _ := json.Marshal(e)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String()
}

func (s *smsc) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// all returns the events matching f.
func (s *smsc) all(f func(smscEvent) bool) []smscEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []smscEvent
	for _, e := range s.events {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitN waits (10 s at most) until n events match f and returns them.
func (s *smsc) waitN(what string, n int, f func(smscEvent) bool) []smscEvent {
	s.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if got := s.all(f); len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.t.Fatalf("SMSC: waited 10 s for %d × %s, have %d", n, what, len(s.all(f)))
		}
	}
}

func (s *smsc) wait(what string, f func(smscEvent) bool) smscEvent {
	s.t.Helper()
	return s.waitN(what, 1, f)[0]
}

func is(name string) func(smscEvent) bool { return func(e smscEvent) bool { return e.Event == name } }

// sink is a test ReceiptSink.
type sink struct {
	mu       sync.Mutex
	receipts []verifyd.Receipt
	changed  chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{})} }

func (k *sink) Receipt(_ context.Context, r *verifyd.Receipt) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.receipts = append(k.receipts, *r)
	close(k.changed)
	k.changed = make(chan struct{})
	return nil
}

func (k *sink) snapshot() []verifyd.Receipt {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]verifyd.Receipt(nil), k.receipts...)
}

// waitN waits until the sink holds n receipts.
func (k *sink) waitN(t *testing.T, n int) []verifyd.Receipt {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		ch, got := k.changed, len(k.receipts)
		k.mu.Unlock()
		if got >= n {
			return k.snapshot()
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("sink: waited 10 s for %d receipts, have %d: %+v", n, got, k.snapshot())
		}
	}
}

// testConfig is a fast-timing config for the SMSC at addr.
func testConfig(addr string) Config {
	return Config{
		Name: "smpp-test", Addr: addr, SystemID: "test", Password: "secret",
		SourceAddr: "+15550001111", EnquireInterval: time.Second, ResponseTimeout: 2 * time.Second,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, RetryBackoff: 5 * time.Millisecond,
	}
}

// startSender starts a Sender and waits until all its binds are up.
func startSender(t *testing.T, cfg Config, k verifyd.ReceiptSink) *Sender {
	t.Helper()
	s := mustSender(t, cfg, k)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitBound(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSender(t *testing.T, cfg Config, k verifyd.ReceiptSink) *Sender {
	t.Helper()
	s, err := New(cfg, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func send(t *testing.T, s *Sender, m *verifyd.Message) *verifyd.SendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Send(ctx, m)
	if err != nil {
		t.Fatalf("Send(%q): %v", m.Text, err)
	}
	return r
}

// received reassembles what the SMSC decoded for the submit_sm events of
// one message (by concatenation UDH, or the single part).
func received(t *testing.T, parts []smscEvent) string {
	t.Helper()
	if len(parts) == 1 && len(parts[0].UDH) == 0 {
		if parts[0].PayloadText != nil {
			return *parts[0].PayloadText
		}
		return parts[0].Text
	}
	texts := make([]string, len(parts))
	for _, p := range parts {
		if len(p.UDH) != 1 || len(p.UDH[0]) != 10 || !strings.HasPrefix(p.UDH[0], "0003") {
			t.Fatalf("part UDH %v", p.UDH)
		}
		var ref, total, seq int
		fmt.Sscanf(p.UDH[0][4:], "%02x%02x%02x", &ref, &total, &seq)
		if total != len(parts) || seq < 1 || seq > total || texts[seq-1] != "" {
			t.Fatalf("UDH %s of %d parts", p.UDH[0], len(parts))
		}
		if p.ESMClass&0x40 == 0 {
			t.Fatalf("part without UDHI: esm_class %#x", p.ESMClass)
		}
		texts[seq-1] = p.Text
	}
	return strings.Join(texts, "")
}

func isStatus(err error, code string) bool { return verifyd.ErrorCode(err) == code }

var errSinkDown = errors.New("sink down")
