package main

// End-to-end voice and flash calls on the real binary: verifyd started with
// a --config whose call and flashcall routes go to a SIP trunk that is sipp
// (Debian sip-tester) on loopback, playing scenarios from sip/testdata and
// testdata/. SIP, SDP and RTP stay on 127.0.0.1.

import (
	"bytes"
	"context"
	"database/sql"
	bin "encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verifyd/verifyd/internal/netprobe"
)

// sipPeer is one sipp process playing a UAS scenario on its own loopback
// port.
type sipPeer struct {
	port int
	dir  string
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// startSIPPeer runs sipp with scenario (a path relative to this package)
// and returns once it listens. It skips when sipp is not installed, unless
// VERIFYD_REQUIRE_PEERS is set.
func startSIPPeer(t *testing.T, scenario string, extra ...string) *sipPeer {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		skipPeer(t, "sipp not installed (apt-get install -y sip-tester): the SIP end-to-end tests need it")
	}
	p := &sipPeer{port: freeLoopbackUDP(t), dir: t.TempDir(), done: make(chan struct{})}
	args := append([]string{
		"-sf", scenario, "-i", "127.0.0.1", "-p", strconv.Itoa(p.port), "-nostdin",
		"-mi", "127.0.0.1",
		"-trace_msg", "-message_file", filepath.Join(p.dir, "msgs.log"),
		"-trace_logs", "-log_file", filepath.Join(p.dir, "actions.log"),
		"-trace_err", "-error_file", filepath.Join(p.dir, "errors.log"),
	}, extra...)
	p.cmd = exec.Command("sipp", args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sipp: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("sipp output:\n%s", p.out.String())
			for _, f := range []string{"msgs.log", "actions.log", "errors.log"} {
				if b, err := os.ReadFile(filepath.Join(p.dir, f)); err == nil {
					t.Logf("sipp %s:\n%s", f, b)
				}
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for { // sipp listens once its port is bound (seen without binding it: netprobe)
		if bound, ok := netprobe.UDPBound(p.port); !ok {
			t.Fatal("cannot read /proc/net/udp to see sipp listen")
		} else if bound {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("sipp exited before listening: %v\n%s", p.err, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("sipp did not bind its port within 10 s")
		}
	}
}

// exitCode waits (60 s at most) for sipp and returns its exit code: 0 when
// every call ran the scenario to its end.
func (p *sipPeer) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("sipp still running after 60 s")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("sipp: %v", p.err)
	}
	return 0
}

func (p *sipPeer) mustSucceed(t *testing.T) {
	t.Helper()
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("sipp exit code %d, want 0 (the scenario did not run to its end)", code)
	}
}

// file returns one of sipp's logs as written so far (sipp writes them as
// it goes).
func (p *sipPeer) file(name string) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, name))
	return string(b)
}

// logged returns the value sipp logged as NAME=value.
func (p *sipPeer) logged(t *testing.T, name string) string {
	t.Helper()
	for line := range strings.Lines(p.file("actions.log")) {
		if i := strings.Index(line, name+"="); i >= 0 {
			v, _, _ := strings.Cut(line[i+len(name)+1:], " ")
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("sipp logged no %s", name)
	return ""
}

// invites returns the INVITE request lines sipp received.
func (p *sipPeer) invites() []string {
	return regexp.MustCompile(`(?m)^INVITE sip:\S+ SIP/2.0`).FindAllString(p.file("msgs.log"), -1)
}

// waitMessage polls sipp's message trace until it contains s (20 s at most).
func (p *sipPeer) waitMessage(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.file("msgs.log"), s) {
		if time.Now().After(deadline) {
			t.Fatalf("sipp's message trace has no %q after 20 s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var loopbackPorts struct {
	sync.Mutex
	given map[int]bool
}

// freeLoopbackUDP returns a free UDP port on 127.0.0.1 not handed out
// before in this test binary.
func freeLoopbackUDP(t *testing.T) int {
	t.Helper()
	loopbackPorts.Lock()
	defer loopbackPorts.Unlock()
	if loopbackPorts.given == nil {
		loopbackPorts.given = map[int]bool{}
	}
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !loopbackPorts.given[port] {
			loopbackPorts.given[port] = true
			return port
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// sipConfig is a config file routing call and flashcall to one SIP trunk
// at 127.0.0.1:port; the password comes from VERIFYD_TEST_SIP_PASSWORD.
func sipConfig(port int, ringTimeout time.Duration) string {
	return fmt.Sprintf(`
senders:
  - name: trunk
    type: sip
    sip:
      trunk: 127.0.0.1:%d
      username: verifyd
      password: ${VERIFYD_TEST_SIP_PASSWORD}
      listen: 127.0.0.1:0
      caller_ids: ["+15550001111"]
      flash_prefix: "+1555"
      flash_digits: 4
      ring_timeout: %s
      call_timeout: 30s
      flash_ring_timeout: 5s
routes:
  - {channel: call, senders: [trunk]}
  - {channel: flashcall, senders: [trunk]}
`, port, ringTimeout)
}

// startSIPEnv starts verifyd with sipConfig; destinations in GB are allowed.
func startSIPEnv(t *testing.T, port int, ringTimeout time.Duration) *carrierEnv {
	t.Helper()
	return startCarrierEnv(t, sipConfig(port, ringTimeout), []string{"VERIFYD_TEST_SIP_PASSWORD=s3cret"},
		"--default-destinations", "GB")
}

// triggerChannel starts a verification on channel with the extra JSON
// fields and returns its ID.
func (e *carrierEnv) triggerChannel(t *testing.T, channel, phone, extra string) string {
	t.Helper()
	st, body := e.do(t, "POST", "/v2/verifications/"+channel,
		fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q%s}`, phone, e.profile, extra))
	if st != 200 {
		t.Fatalf("trigger %s: %d %v", channel, st, body)
	}
	return body["data"].(map[string]any)["id"].(string)
}

// verification returns GET /v2/verifications/{id}'s data.
func (e *carrierEnv) verification(t *testing.T, id string) map[string]any {
	t.Helper()
	st, body := e.do(t, "GET", "/v2/verifications/"+id, "")
	if st != 200 {
		t.Fatalf("GET verification %s: %d %v", id, st, body)
	}
	return body["data"].(map[string]any)
}

// waitDeliveryWithin is waitDelivery with a deadline fit for calls.
func (e *carrierEnv) waitDeliveryWithin(t *testing.T, id, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last any
	for time.Now().Before(deadline) {
		if last = e.verification(t, id)["delivery_status"]; last == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("verification %s: delivery_status %v after %s, want %s", id, last, within, want)
}

// waitHook waits for the webhook typ of verification id, within.
func (h *hookRecorder) waitWithin(t *testing.T, id, typ string, within time.Duration) hookEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		h.mu.Lock()
		for _, e := range h.events {
			if e.VerificationID == id && e.Type == typ {
				h.mu.Unlock()
				return e
			}
		}
		got := fmt.Sprint(h.events)
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("webhook %s of %s not received within %s; got %s", typ, id, within, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attempts returns (sender, outcome, error) of each delivery attempt of
// verification id, read from the server's SQLite database (read-only; the
// API does not list attempts).
func (e *carrierEnv) attempts(t *testing.T, id string) [][3]string {
	t.Helper()
	args := e.srv.cmd.Args
	i := slices.Index(args, "--db")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no --db in %v", args)
	}
	db, err := sql.Open("sqlite", "file:"+args[i+1]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT sender, outcome, error FROM delivery_attempts WHERE verification_id = ? ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][3]string
	for rows.Next() {
		var a [3]string
		if err := rows.Scan(&a[0], &a[1], &a[2]); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rtpTap is a UDP socket on loopback standing in for the callee's media
// port: it counts the G.711 payload the caller sends.
type rtpTap struct {
	port int
	conn net.PacketConn

	mu                sync.Mutex
	packets, payload  int
	nonSilent         int // payload bytes other than µ-law silence
	first             time.Time
	payloadTypes, src map[string]bool
	stopped           chan struct{}
}

func startRTPTap(t *testing.T) *rtpTap {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rtpTap{port: c.LocalAddr().(*net.UDPAddr).Port, conn: c, payloadTypes: map[string]bool{},
		src: map[string]bool{}, stopped: make(chan struct{})}
	go func() {
		defer close(r.stopped)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 || buf[0]>>6 != 2 {
				continue // not RTP
			}
			hdr := 12 + 4*int(buf[0]&0x0f)
			if n < hdr {
				continue
			}
			pt := buf[1] & 0x7f
			r.mu.Lock()
			if r.packets == 0 {
				r.first = time.Now()
			}
			r.packets++
			r.src[from.String()] = true
			r.payloadTypes[strconv.Itoa(int(pt))] = true
			if pt == 0 { // PCMU
				r.payload += n - hdr
				for _, b := range buf[hdr:n] {
					if b != 0xff && b != 0x7f {
						r.nonSilent++
					}
				}
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.stopped })
	return r
}

// promptSamples returns the samples of one reading of code in English, as
// sip builds it: intro, 0.4 s, the digits with 0.25 s between them.
func promptSamples(t *testing.T, code string) int {
	t.Helper()
	wav := func(name string) int {
		b, err := os.ReadFile(filepath.Join("..", "..", "sip", "prompts", "en", name+".wav"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 12; i+8 <= len(b); { // RIFF chunks
			size := int(bin.LittleEndian.Uint32(b[i+4:]))
			if string(b[i:i+4]) == "data" {
				return size / 2
			}
			i += 8 + size + size%2
		}
		t.Fatalf("%s.wav has no data chunk", name)
		return 0
	}
	n := wav("intro") + 8000*400/1000
	for i, d := range code {
		if i > 0 {
			n += 8000 * 250 / 1000
		}
		n += wav(string(d))
	}
	return n
}

// TestSIP_VoiceCall: a call verification goes through the router to the
// trunk; sipp challenges with 401, checks the digest, rings and answers;
// verifyd plays the code twice to the answer's media address, hangs up, and
// the verification is delivered. The code then checks as accepted.
func TestSIP_VoiceCall(t *testing.T) {
	t.Parallel()
	tap := startRTPTap(t)
	peer := startSIPPeer(t, filepath.Join("testdata", "uas_auth401_answer_tap.xml"), "-m", "1",
		"-key", "tap_port", strconv.Itoa(tap.port), "-timeout", "60", "-timeout_error")
	e := startSIPEnv(t, peer.port, 10*time.Second)

	const phone, code = "+447400123450", "4711"
	id := e.triggerChannel(t, "call", phone, `,"custom_code":"`+code+`"`)
	e.waitDeliveryWithin(t, id, "delivered", 40*time.Second)
	e.hooks.waitWithin(t, id, "verify.delivered", 15*time.Second)
	peer.mustSucceed(t) // 401, re-INVITE, 180, 200, our ACK and BYE
	if got := peer.logged(t, "AUTH-VALID"); got != "true" {
		t.Fatalf("sipp AUTH-VALID=%s: the digest verifyd sent is wrong", got)
	}
	if got := peer.logged(t, "INVITE-TO"); got != phone {
		t.Fatalf("INVITE to %q, want %s", got, phone)
	}
	if msgs := peer.file("msgs.log"); strings.Contains(msgs, "s3cret") || !strings.Contains(msgs, "From: <sip:+15550001111@") {
		t.Fatalf("INVITE leaks the password or lacks the configured caller ID:\n%s", msgs)
	}

	// Two readings and the pause between them, in 20 ms frames.
	reading := promptSamples(t, code)
	want := 2*reading + 8000
	tap.mu.Lock()
	payload, nonSilent, packets, pts, srcs := tap.payload, tap.nonSilent, tap.packets, tap.payloadTypes, len(tap.src)
	tap.mu.Unlock()
	if payload < want-160 || payload > want+8000 || packets < want/160 {
		t.Fatalf("RTP: %d PCMU payload bytes in %d packets, want about %d samples (2 readings of %s)", payload, packets, want, code)
	}
	if nonSilent < payload/4 || !pts["0"] || srcs != 1 {
		t.Fatalf("RTP: %d of %d payload bytes not silent, payload types %v, %d sources", nonSilent, payload, pts, srcs)
	}
	// Loopback only: SDP connection addresses and the RTP source.
	conns := regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`).FindAllStringSubmatch(peer.file("msgs.log"), -1)
	if len(conns) < 2 {
		t.Fatalf("%d SDP connection lines in sipp's trace, want the offer's and the answer's", len(conns))
	}
	for _, c := range conns {
		if c[1] != "127.0.0.1" {
			t.Fatalf("SDP connection address %s, want 127.0.0.1", c[1])
		}
	}
	tap.mu.Lock()
	for src := range tap.src {
		if host, _, _ := net.SplitHostPort(src); host != "127.0.0.1" {
			t.Errorf("RTP from %s, want 127.0.0.1", src)
		}
	}
	tap.mu.Unlock()

	st, body := e.do(t, "POST", "/v2/verifications/"+id+"/actions/verify", `{"code":"`+code+`"}`)
	if st != 200 || body["data"].(map[string]any)["response_code"] != "accepted" {
		t.Fatalf("verify %s: %d %v", code, st, body)
	}
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="sent",sender="trunk"}`); n != 1 {
		t.Fatalf("attempts sent/trunk = %v, want 1", n)
	}
	e.srv.stop(t)
}

// TestSIP_FlashCall: the flash call rings sipp, which gets a CANCEL; the
// caller ID in From and P-Asserted-Identity ends with the code, and those
// digits check as accepted by phone number.
func TestSIP_FlashCall(t *testing.T) {
	t.Parallel()
	peer := startSIPPeer(t, filepath.Join("..", "..", "sip", "testdata", "uas_ring_cancel.xml"), "-m", "1",
		"-timeout", "30", "-timeout_error")
	e := startSIPEnv(t, peer.port, 10*time.Second)

	const phone = "+447400123451"
	id := e.triggerChannel(t, "flashcall", phone, "")
	e.waitDeliveryWithin(t, id, "delivered", 20*time.Second)
	peer.mustSucceed(t) // INVITE, 100, 180, CANCEL, 200, 487, ACK
	from, pai := peer.logged(t, "FROM-USER"), peer.logged(t, "PAI-USER")
	if from != pai || !regexp.MustCompile(`^\+1555\d{7}$`).MatchString(from) {
		t.Fatalf("caller ID: From %q, P-Asserted-Identity %q; want the same +1555 number", from, pai)
	}
	if !strings.Contains(peer.file("msgs.log"), "CANCEL sip:"+phone+"@") {
		t.Fatal("sipp's trace has no CANCEL for the flash call")
	}
	code := from[len(from)-4:]

	// A wrong code first: the right one must still be accepted after it.
	wrong := fmt.Sprintf("%04d", (mustAtoi(t, code)+1)%10000)
	check := func(c string) string {
		st, body := e.do(t, "POST", "/v2/verifications/by_phone_number/"+phone+"/actions/verify",
			fmt.Sprintf(`{"code":%q,"verify_profile_id":%q}`, c, e.profile))
		if st != 200 {
			t.Fatalf("verify by phone %s: %d %v", c, st, body)
		}
		return fmt.Sprint(body["data"].(map[string]any)["response_code"])
	}
	if got := check(wrong); got != "rejected" {
		t.Fatalf("wrong code %s: %s, want rejected", wrong, got)
	}
	if got := check(code); got != "accepted" {
		t.Fatalf("caller-ID digits %s: %s, want accepted", code, got)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSIP_Busy: a 486 is delivery_failed with verify.failed; the
// verification stays pending (D7: the callee may be called again) and
// nothing checks it for the caller. The call is placed once.
func TestSIP_Busy(t *testing.T) {
	t.Parallel()
	peer := startSIPPeer(t, filepath.Join("..", "..", "sip", "testdata", "uas_busy.xml"), "-m", "1",
		"-timeout", "30", "-timeout_error")
	e := startSIPEnv(t, peer.port, 10*time.Second)

	id := e.triggerChannel(t, "call", "+447400123452", `,"custom_code":"2580"`)
	e.waitDeliveryWithin(t, id, "delivery_failed", 20*time.Second)
	if ev := e.hooks.waitWithin(t, id, "verify.failed", 15*time.Second); ev.DeliveryStatus != "delivery_failed" {
		t.Fatalf("verify.failed payload delivery_status %q", ev.DeliveryStatus)
	}
	peer.mustSucceed(t) // INVITE, 100, 486, ACK
	if v := e.verification(t, id); v["status"] != "pending" {
		t.Fatalf("verification after busy: %v, want pending", v)
	}
	if n := len(peer.invites()); n != 1 {
		t.Fatalf("sipp got %d INVITEs, want 1 (no failover or retry after a busy callee)", n)
	}
	// The attempt records the SIP cause.
	if a := e.attempts(t, id); len(a) != 1 || a[0][0] != "trunk" || a[0][1] != "delivery_failed" || !strings.Contains(a[0][2], "SIP 486 Busy Here") {
		t.Fatalf("delivery attempts %q, want one delivery_failed on trunk naming SIP 486 Busy Here", a)
	}
	e.hooks.mu.Lock()
	for _, ev := range e.hooks.events {
		if ev.VerificationID == id && (ev.Type == "verify.delivered" || ev.Type == "verify.completed") {
			t.Errorf("busy call produced %s", ev.Type)
		}
	}
	e.hooks.mu.Unlock()
}

// TestSIP_Kill9MidCallNotRedialled: verifyd is killed with SIGKILL while its
// call rings; restarted on the same database and call journal, it takes the
// job over (in doubt) and reconciles it from the journal instead of dialling
// again: sipp sees one INVITE.
func TestSIP_Kill9MidCallNotRedialled(t *testing.T) {
	t.Parallel()
	peer := startSIPPeer(t, filepath.Join("testdata", "uas_ring_hold.xml"), "-timeout", "180")
	e := startSIPEnv(t, peer.port, 25*time.Second)

	id := e.triggerChannel(t, "call", "+447400123453", `,"custom_code":"1357"`)
	peer.waitMessage(t, "SIP/2.0 180 Ringing") // the call is up and ringing
	if err := e.srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.srv.done

	// Same binary, arguments and environment: same database, same journal.
	old := e.srv
	e.srv = sdkStartServer(t, context.Background(), old.cmd.Path, old.cmd.Env, old.cmd.Args[1:]...)
	// On SQLite the restarted node releases the dead one's leases at once;
	// the job comes back in doubt and is reconciled as sent.
	e.waitDeliveryWithin(t, id, "sent", 30*time.Second)
	e.hooks.waitWithin(t, id, "verify.sent", 15*time.Second)
	if n := len(peer.invites()); n != 1 {
		t.Fatalf("sipp got %d INVITEs for one delivery job across a restart, want 1:\n%s", n, strings.Join(peer.invites(), "\n"))
	}
	if v := e.verification(t, id); v["status"] != "pending" {
		t.Fatalf("verification after reconcile: %v, want pending", v)
	}
	if a := e.attempts(t, id); len(a) != 1 || a[0][0] != "reconciled" || a[0][1] != "sent" {
		t.Fatalf("delivery attempts %q, want one, reconciled as sent", a)
	}
	// The restarted node never handed the job to the trunk sender.
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="sent",sender="trunk"}`); n > 0 {
		t.Fatalf("the restarted node counts %v attempts on the trunk, want none", n)
	}
	e.srv.stop(t)
}
