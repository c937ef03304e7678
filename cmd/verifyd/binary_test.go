package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds verifyd once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verifyd-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "verifyd")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// lastLine runs the binary and returns the last line of its stdout.
func lastLine(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary(t), args...).Output()
	if err != nil {
		t.Fatalf("verifyd %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// server is a verifyd process under test.
type server struct {
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:PORT
	done chan error

	logMu sync.Mutex
	logs  []string // the last warnings and errors the server logged
}

// recentLogs returns the last warnings and errors the server logged.
func (s *server) recentLogs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return strings.Join(s.logs, "\n")
}

// startServer starts `verifyd serve` on a free loopback port and waits for
// its "listening" log line.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct{ Msg, Addr, Level string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				addr <- l.Addr
			}
			if l.Level == "WARN" || l.Level == "ERROR" {
				s.logMu.Lock()
				if s.logs = append(s.logs, sc.Text()); len(s.logs) > 20 {
					s.logs = s.logs[1:]
				}
				s.logMu.Unlock()
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case err := <-s.done:
		t.Fatalf("verifyd exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("verifyd did not listen within 30 s")
	}
	return s
}

func (s *server) do(t *testing.T, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// consoleLines reads the console file: verification_id → number of lines.
func consoleLines(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m struct {
			VerificationID string `json:"verification_id"`
		}
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("console line is not JSON: %q", l)
		}
		seen[m.VerificationID]++
	}
	return seen
}

// TestKill9_EveryAcceptedVerificationDeliveredOnce triggers verifications
// while the server is killed with SIGKILL, restarts it on the same database,
// and checks that every verification the API accepted reaches the console
// sender exactly once.
func TestKill9_EveryAcceptedVerificationDeliveredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	db, out := filepath.Join(dir, "v.db"), filepath.Join(dir, "console.jsonl")
	key := lastLine(t, "apikey", "create", "--name", "t", "--db", db)
	srv := startServer(t, "--db", db, "--console-out", out)
	code, body := srv.do(t, key, "POST", "/v2/verify_profiles", `{"name":"crash","sms":{"whitelisted_destinations":["GB"]}}`)
	if code != 200 {
		t.Fatalf("create profile: %d %v", code, body)
	}
	profile := body["data"].(map[string]any)["id"].(string)

	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	killAt := 150
	killed := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				phone := fmt.Sprintf("+4474%02d%06d", w, i)
				req, _ := http.NewRequest("POST", srv.URL+"/v2/verifications/sms",
					strings.NewReader(`{"phone_number":"`+phone+`","verify_profile_id":"`+profile+`"}`))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var r struct{ Data struct{ ID string } }
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					accepted[r.Data.ID] = true
					if len(accepted) == killAt {
						srv.cmd.Process.Signal(syscall.SIGKILL)
						close(killed)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("only %d triggers accepted; the kill never happened", len(accepted))
	}
	<-srv.done
	before := consoleLines(t, out)
	t.Logf("accepted %d, delivered before the kill %d", len(accepted), len(before))

	startServer(t, "--db", db, "--console-out", out)
	waitDeliveredOnce(t, out, accepted, 60*time.Second)
}

// waitDeliveredOnce polls the console file until every accepted
// verification has a line, then checks no verification has two; it fails
// if some are still missing at the deadline.
func waitDeliveredOnce(t *testing.T, console string, accepted map[string]bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		seen := consoleLines(t, console)
		missing := 0
		for id := range accepted {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			for id, n := range seen {
				if n != 1 {
					t.Errorf("verification %s delivered %d times", id, n)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted verifications never delivered", missing, len(accepted))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
