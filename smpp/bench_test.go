package smpp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// discardSink takes receipts and counts them.
type discardSink struct{ n atomic.Int64 }

func (k *discardSink) Receipt(context.Context, *verifyd.Receipt) error { k.n.Add(1); return nil }

// startBenchSMSC runs testdata/smsc.cjs (its event lines discarded) and
// returns its port and PID.
func startBenchSMSC(b *testing.B, env ...string) (int, int) {
	b.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node not found")
	}
	mods, _ := filepath.Abs(filepath.Join("..", "interop", "node_modules"))
	if _, err := os.Stat(filepath.Join(mods, "smpp", "package.json")); err != nil {
		b.Skip("interop/node_modules/smpp missing: run `npm ci` in interop/")
	}
	cmd := exec.Command(node, filepath.Join("testdata", "smsc.cjs"))
	cmd.Env = append(append(os.Environ(), "SMSC_NODE_MODULES="+mods, "SMSC_PORT=0"), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	port := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e struct {
				Event string `json:"event"`
				Port  int    `json:"port"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "listening" {
				port <- e.Port
			}
		}
	}()
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	select {
	case p := <-port:
		return p, cmd.Process.Pid
	case <-time.After(15 * time.Second):
		b.Fatal("SMSC not listening within 15 s")
		return 0, 0
	}
}

// cpuSelf is this process's user+system CPU time.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is the user+system CPU time of process pid (Linux /proc, 100 Hz
// ticks), or 0 if unreadable.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// BenchmarkSender_NodeSMPP measures the ESME's own throughput against
// node-smpp (smsc.cjs, receipts on): one bind_transceiver with a window of
// 10, no TPS limit, 64 concurrent Send calls of a one-part GSM message.
// It reports messages/s, the client's CPU per message (this process:
// sender, receipts, benchmark loop) and the SMSC's (node) CPU per message,
// which shows where the limit is.
//
//	go test -run '^$' -bench Sender_NodeSMPP -benchtime 20000x ./smpp/
func BenchmarkSender_NodeSMPP(b *testing.B) {
	port, pid := startBenchSMSC(b)
	sink := &discardSink{}
	s, err := New(Config{Addr: fmt.Sprintf("127.0.0.1:%d", port), SystemID: "test", Password: "secret",
		SourceAddr: "Verifyd", Window: 10}, sink, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitBound(ctx); err != nil {
		b.Fatal(err)
	}
	const workers = 64
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0, node0, t0 := cpuSelf(), cpuOf(pid), time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				m := &verifyd.Message{ID: strconv.FormatInt(i, 10), To: fmt.Sprintf("+4474%08d", i),
					Text: fmt.Sprintf("%06d is your Shop verification code.", i%1000000)}
				if _, err := s.Send(context.Background(), m); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu, node := time.Since(t0), cpuSelf()-cpu0, cpuOf(pid)-node0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sends failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "client-cpu-µs/msg")
	if node > 0 {
		b.ReportMetric(float64(node.Microseconds())/float64(b.N), "smsc-cpu-µs/msg")
	}
}
