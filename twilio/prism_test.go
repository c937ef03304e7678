package twilio_test

// The Twilio sender against Stoplight Prism (npm @stoplight/prism-cli)
// mocking Twilio's own OpenAPI description of API v2010 (shipped in npm
// @twilio-alpha/mcp): Prism checks our request against Twilio's schema
// (path, auth presence, form fields and their types) and answers with the
// spec's example message, which the sender must parse.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/twilio"
)

// twilioSpec is the OpenAPI file inside interop/node_modules.
const twilioSpec = "@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"

func skipPeer(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("VERIFYD_REQUIRE_PEERS") != "" {
		t.Fatal(why + " (VERIFYD_REQUIRE_PEERS is set)")
	}
	t.Skip(why)
}

// startPrism runs `prism mock` on Twilio's spec on a free loopback port and
// returns its base URL; it is killed at cleanup.
func startPrism(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Prism")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skipPeer(t, "node not found: the Twilio peer test needs Prism")
	}
	mods, _ := filepath.Abs(filepath.Join("..", "interop", "node_modules"))
	cli := filepath.Join(mods, "@stoplight", "prism-cli", "dist", "index.js")
	spec := filepath.Join(mods, filepath.FromSlash(twilioSpec))
	for _, f := range []string{cli, spec} {
		if _, err := os.Stat(f); err != nil {
			skipPeer(t, f+" missing: run `cd interop && npm ci`")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cmd := exec.Command(node, cli, "mock", "-h", "127.0.0.1", "-p", strconv.Itoa(port), spec)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tail []string
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "Prism is listening on") {
				once.Do(func() { close(ready) })
			}
			if strings.Contains(line, "info      ") && !strings.Contains(line, "Prism is listening") {
				continue // the route list at start-up
			}
			mu.Lock()
			tail = append(tail, line)
			if len(tail) > 50 {
				tail = tail[1:]
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("prism output (tail):\n%s", strings.Join(tail, "\n"))
			mu.Unlock()
		}
	})
	select {
	case <-ready:
	case <-done:
		t.Fatal("prism exited before listening")
	case <-time.After(90 * time.Second):
		t.Fatal("prism not listening within 90 s")
	}
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// exchange is one HTTP exchange seen by recordingTransport.
type exchange struct {
	status int
	header http.Header
	body   []byte
}

// recordingTransport keeps every response, so the test can read Prism's
// verdict on our request (status, sl-violations header, problem body).
type recordingTransport struct {
	mu   sync.Mutex
	seen []exchange
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rt.mu.Lock()
	rt.seen = append(rt.seen, exchange{resp.StatusCode, resp.Header.Clone(), body})
	rt.mu.Unlock()
	return resp, nil
}

func (rt *recordingTransport) last(t *testing.T) exchange {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.seen) == 0 {
		t.Fatal("no request reached Prism")
	}
	return rt.seen[len(rt.seen)-1]
}

// TestPrism_CreateMessage: the requests our sender makes are valid against
// Twilio's OpenAPI file (Prism answers 201 with no violations), and the
// spec's example message parses into a SendResult. A request the spec
// refuses is refused by Prism too (the peer really validates).
func TestPrism_CreateMessage(t *testing.T) {
	base := startPrism(t)
	rt := &recordingTransport{}
	client := &http.Client{Transport: rt, Timeout: 30 * time.Second}
	const sid = "AC0123456789abcdef0123456789abcdef"
	msg := &verifyd.Message{ID: "job-1", Channel: verifyd.SMS, To: "+447400123456", Text: "123456 is your Shop code", AlphaSender: "Shop"}

	cases := []struct {
		name string
		cfg  twilio.Config
	}{
		{"From and StatusCallback", twilio.Config{From: "+15550001111", CallbackURL: "https://verify.example.com/callbacks/twilio/tw"}},
		{"MessagingServiceSid", twilio.Config{MessagingServiceSID: "MG0123456789abcdef0123456789abcdef"}},
		{"alphanumeric sender", twilio.Config{From: "+15550001111", UseAlphaSender: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Name, cfg.BaseURL, cfg.AccountSID, cfg.AuthToken, cfg.HTTPClient = "tw", base, sid, "token", client
			s, err := twilio.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Send(context.Background(), msg)
			ex := rt.last(t)
			if v := ex.header.Get("sl-violations"); v != "" {
				t.Fatalf("Prism found our request in violation of Twilio's spec: %s", v)
			}
			if err != nil {
				t.Fatalf("Send: %v (Prism answered %d: %s)", err, ex.status, ex.body)
			}
			if ex.status != http.StatusCreated {
				t.Fatalf("Prism answered %d, want 201: %s", ex.status, ex.body)
			}
			// The spec's example message resource.
			if res.Sender != "tw" || !strings.HasPrefix(res.ProviderMessageID, "SM") || len(res.ProviderMessageID) != 34 ||
				res.Parts != 1 || res.Status != verifyd.DeliverySent {
				t.Fatalf("SendResult = %+v", res)
			}
		})
	}

	// An account SID the spec's pattern refuses: Prism answers 422 with its
	// validation errors, and the sender reports a permanent refusal.
	s, err := twilio.New(twilio.Config{Name: "tw", BaseURL: base, AccountSID: "AC123", AuthToken: "token", From: "+15550001111", HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(context.Background(), msg)
	ex := rt.last(t)
	if ex.status != http.StatusUnprocessableEntity || !bytes.Contains(ex.body, []byte("accountsid")) {
		t.Fatalf("Prism on a malformed account SID: %d %s", ex.status, ex.body)
	}
	if verifyd.ErrorCode(err) != verifyd.ECHANNEL {
		t.Fatalf("Send with a request Twilio's spec refuses: %v, want ECHANNEL", err)
	}
}
