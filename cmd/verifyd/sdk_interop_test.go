package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSDKInterop runs interop/sdk.test.mjs — the official Telnyx Node SDK,
// pinned in interop/package-lock.json — against the real verifyd binary: it
// builds the binary, creates two accounts' API keys with it, starts `serve`
// on a free loopback port with the console sender writing to a file, runs
// `node --test` with the server's address, keys and console file in the
// environment, and stops the server with SIGTERM, which must exit 0.
//
// It needs node on PATH and interop/node_modules (npm ci in interop/);
// without them it skips. INTEROP_TEST_NAME_PATTERN, if set, is passed to
// node as --test-name-pattern.
func TestSDKInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skipPeer(t, "SDK interop: node is not on PATH")
	}
	interop, err := filepath.Abs(filepath.Join("..", "..", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(interop, "node_modules", "telnyx")); err != nil {
		skipPeer(t, fmt.Sprintf("SDK interop: %s missing; run `npm ci` in %s", filepath.Join(interop, "node_modules", "telnyx"), interop))
	}

	timeout := 5 * time.Minute
	if dl, ok := t.Deadline(); ok && time.Until(dl)-10*time.Second < timeout {
		timeout = time.Until(dl) - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "verifyd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	db := filepath.Join(dir, "v.db")
	consoleOut := filepath.Join(dir, "console.jsonl")
	env := sdkCleanEnv()
	admin := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(args, "--db", db)...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("verifyd %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
		}
		return sdkLastLine(t, stdout.String())
	}
	keyA := admin("apikey", "create", "--name", "interop-a")
	acctB := admin("account", "create", "--name", "interop-b")
	keyB := admin("apikey", "create", "--name", "interop-b", "--account", acctB)
	if keyA == keyB {
		t.Fatalf("apikey create printed the same key twice: %q", keyA)
	}

	srv := sdkStartServer(t, ctx, bin, env, "serve", "--addr", "127.0.0.1:0", "--db", db, "--console-out", consoleOut)

	nodeArgs := []string{"--test", "--test-reporter=spec"}
	pattern := os.Getenv("INTEROP_TEST_NAME_PATTERN") // run only matching SDK tests
	if pattern != "" {
		nodeArgs = append(nodeArgs, "--test-name-pattern", pattern)
	}
	test := exec.CommandContext(ctx, node, append(nodeArgs, "sdk.test.mjs")...)
	test.Dir = interop
	test.Env = append(sdkCleanEnv(),
		"VERIFYD_URL=http://"+srv.addr+"/v2",
		"VERIFYD_API_KEY="+keyA,
		"VERIFYD_API_KEY_B="+keyB,
		"VERIFYD_CONSOLE_OUT="+consoleOut,
		"NO_COLOR=1",
	)
	out, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test (SDK against verifyd) failed: %v\n%s\n--- verifyd stderr (tail) ---\n%s", err, out, srv.stderrTail(40))
	}
	pass, skipped := sdkNodeCount(out, "pass"), sdkNodeCount(out, "skipped")
	if pass <= 0 || (skipped != 0 && pattern == "") {
		t.Fatalf("node --test passed %d tests and skipped %d; expected all to run:\n%s", pass, skipped, out)
	}
	t.Logf("node --test: %d SDK tests passed against verifyd at %s", pass, srv.addr)
	if testing.Verbose() {
		t.Logf("node output:\n%s", out)
	}

	srv.stop(t)
}

// sdkCleanEnv is the environment without VERIFYD_* settings of the caller, so
// the server under test uses only the flags given here.
func sdkCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VERIFYD_") && !strings.HasPrefix(kv, "TELNYX_") {
			env = append(env, kv)
		}
	}
	return env
}

// sdkLastLine returns the last non-empty line of s: where the admin commands
// print the key or ID.
func sdkLastLine(t *testing.T, s string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if l == "" || strings.ContainsAny(l, " \t") {
		t.Fatalf("expected a key or ID alone on the last line, got:\n%s", s)
	}
	return l
}

// sdkNodeCount reads a summary count ("ℹ pass 12" or "# pass 12") from node's
// test runner output; -1 if absent.
func sdkNodeCount(out []byte, what string) int {
	re := regexp.MustCompile(`(?m)^\S*\s*` + what + ` (\d+)\s*$`)
	m := re.FindSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

type sdkServer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done

	mu     sync.Mutex
	stderr []string
}

func (s *sdkServer) stderrTail(n int) string {
	return s.stderrTailExcept(n, "")
}

// stderrTailExcept is stderrTail without the lines that contain skip (none
// skipped if skip is empty), so that a test's polling does not crowd out
// what the server did.
func (s *sdkServer) stderrTailExcept(n int, skip string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := s.stderr
	if skip != "" {
		lines = nil
		for _, l := range s.stderr {
			if !strings.Contains(l, skip) {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sdkStartServer starts the binary and waits for its {"msg":"listening"} log
// line, which gives the address it bound.
func sdkStartServer(t *testing.T, ctx context.Context, bin string, env []string, args ...string) *sdkServer {
	t.Helper()
	s := &sdkServer{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	s.cmd.Env = env
	s.cmd.Stdout = new(bytes.Buffer)
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start verifyd: %v", err)
	}
	listening := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr = append(s.stderr, line)
			s.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				select {
				case listening <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait must not run before the pipe is drained
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	select {
	case s.addr = <-listening:
		return s
	case <-s.done:
		t.Fatalf("verifyd exited before listening: %v\nstderr:\n%s", s.err, s.stderrTail(40))
	case <-deadline.C:
		t.Fatalf("verifyd did not log \"listening\" within 30 s\nstderr:\n%s", s.stderrTail(40))
	case <-ctx.Done():
		t.Fatalf("verifyd did not start: %v", ctx.Err())
	}
	return nil
}

// stop sends SIGTERM and expects a clean exit (status 0) within 20 s.
func (s *sdkServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("verifyd did not exit within 20 s of SIGTERM\nstderr:\n%s", s.stderrTail(40))
	}
	if s.err != nil {
		var ee *exec.ExitError
		code := -1
		if errors.As(s.err, &ee) {
			code = ee.ExitCode()
		}
		t.Fatalf("verifyd exited with %v (code %d) after SIGTERM, want 0\nstderr:\n%s", s.err, code, s.stderrTail(40))
	}
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
