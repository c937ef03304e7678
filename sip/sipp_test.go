package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd/internal/netprobe"
)

// sipp is one run of the sipp test peer (Debian package sip-tester) playing
// a UAS scenario from testdata on loopback ports of its own.
type sipp struct {
	port      int // SIP
	mediaPort int // RTP echo (and +2)
	dir       string
	cmd       *exec.Cmd
	out       bytes.Buffer
	done      chan struct{}
	waitErr   error
}

// requireSipp skips the test when sipp is missing, unless
// VERIFYD_REQUIRE_PEERS=1 makes that a failure.
func requireSipp(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		msg := "sipp not installed (apt-get install -y sip-tester); SIP peer tests skipped"
		if os.Getenv("VERIFYD_REQUIRE_PEERS") == "1" {
			tb.Fatal(msg + " but VERIFYD_REQUIRE_PEERS=1")
		}
		tb.Skip(msg)
	}
}

// startSipp runs sipp with scenario and returns once it listens.
func startSipp(tb testing.TB, scenario string, extra ...string) *sipp {
	tb.Helper()
	requireSipp(tb)
	p := &sipp{port: freeUDPPort(tb), mediaPort: freeMediaPorts(tb), dir: tb.TempDir(), done: make(chan struct{})}
	args := []string{
		"-sf", filepath.Join("testdata", scenario),
		"-i", "127.0.0.1", "-p", strconv.Itoa(p.port), "-m", "1", "-nostdin",
		"-rtp_echo", "-mi", "127.0.0.1", "-mp", strconv.Itoa(p.mediaPort),
		"-trace_msg", "-message_file", filepath.Join(p.dir, "msgs.log"),
		"-trace_logs", "-log_file", filepath.Join(p.dir, "actions.log"),
		"-trace_err", "-error_file", filepath.Join(p.dir, "errors.log"),
		"-timeout", "40", "-timeout_error",
	}
	p.cmd = exec.Command("sipp", append(args, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start sipp: %v", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			p.dump(tb)
		}
	})
	// sipp listens once the port is bound (seen without binding it:
	// netprobe).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if bound, ok := netprobe.UDPBound(p.port); !ok {
			tb.Fatal("cannot read /proc/net/udp to see sipp listen")
		} else if bound {
			break
		}
		select {
		case <-p.done:
			p.dump(tb)
			tb.Fatalf("sipp exited before listening: %v", p.waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatal("sipp did not bind its port within 10 s")
		}
	}
	return p
}

// wait returns sipp's exit code (0: the scenario ran to its end).
func (p *sipp) wait(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		tb.Fatal("sipp still running after 60 s")
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		tb.Fatalf("sipp: %v", p.waitErr)
	}
	return 0
}

// mustSucceed waits for sipp and fails the test unless the scenario passed.
func (p *sipp) mustSucceed(tb testing.TB) {
	tb.Helper()
	if code := p.wait(tb); code != 0 {
		tb.Fatalf("sipp exit code %d, want 0", code)
	}
}

// actions returns sipp's <log> output.
func (p *sipp) actions(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "actions.log"))
	if err != nil {
		tb.Fatalf("sipp action log: %v", err)
	}
	return string(b)
}

// messages returns sipp's trace of the SIP messages it sent and received.
func (p *sipp) messages(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "msgs.log"))
	if err != nil {
		tb.Fatalf("sipp message log: %v", err)
	}
	return string(b)
}

// logged returns the value logged by sipp as NAME=value.
func (p *sipp) logged(tb testing.TB, name string) string {
	tb.Helper()
	for line := range strings.Lines(p.actions(tb)) {
		if i := strings.Index(line, name+"="); i >= 0 {
			v, _, _ := strings.Cut(line[i+len(name)+1:], " ")
			return strings.TrimSpace(v)
		}
	}
	tb.Fatalf("sipp logged no %s", name)
	return ""
}

// loggedLine returns the rest of the line sipp logged after prefix.
func (p *sipp) loggedLine(tb testing.TB, prefix string) string {
	tb.Helper()
	for line := range strings.Lines(p.actions(tb)) {
		if i := strings.Index(line, prefix); i >= 0 {
			return strings.TrimSpace(line[i+len(prefix):])
		}
	}
	tb.Fatalf("sipp logged no %s", prefix)
	return ""
}

func (p *sipp) dump(tb testing.TB) {
	tb.Logf("sipp output:\n%s", p.out.String())
	for _, f := range []string{"msgs.log", "actions.log", "errors.log"} {
		if b, err := os.ReadFile(filepath.Join(p.dir, f)); err == nil {
			tb.Logf("sipp %s:\n%s", f, b)
		}
	}
}

// portMu keeps parallel tests from being handed the same port twice.
var portMu sync.Mutex
var portsGiven = map[int]bool{}

// freeUDPPort asks the OS for a free loopback UDP port.
func freeUDPPort(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	tb.Fatal("no free UDP port")
	return 0
}

// freeMediaPorts returns a port p with p and p+2 free (sipp's RTP echo
// binds both).
func freeMediaPorts(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+2))
		c.Close()
		if err != nil || portsGiven[port] || portsGiven[port+2] {
			continue
		}
		c2.Close()
		portsGiven[port], portsGiven[port+2] = true, true
		return port
	}
	tb.Fatal("no free UDP port pair")
	return 0
}

// testConfig returns a config for a trunk on 127.0.0.1:port, credentials
// matching the testdata scenarios.
func testConfig(tb testing.TB, port int) Config {
	cfg := DefaultConfig()
	cfg.Name = "sipp"
	cfg.Trunk = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg.Listen = "127.0.0.1:0"
	cfg.Username, cfg.Password = "verifyd", "s3cret"
	cfg.CallerIDs = []string{"+15550001111"}
	cfg.FlashPrefix = "+1555"
	cfg.RingTimeout = 3 * time.Second
	cfg.CallTimeout = 40 * time.Second
	cfg.FlashRingTimeout = 5 * time.Second
	cfg.JournalDir = tb.TempDir()
	return cfg
}

// openSender returns an open sender for cfg, closed at cleanup. Its log is
// printed if the test fails.
func openSender(tb testing.TB, cfg Config) *Sender {
	tb.Helper()
	buf := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("sender log:\n%s", buf.String())
		}
	})
	return s
}

// lockedBuffer is a log sink safe for the sender's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
