package postgres_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/storetest"
)

// benchConns is the pool of a benchmark store: as many connections as the
// parallel callers, so that ns/op measures the database, not the pool.
const benchConns = 16

// benchModes runs bench once per way of writing triggers and checks: each
// its own transaction ("alone"), and batched by 1, 2 and 4 writers.
// Compare the sub-benchmarks of one run (ratios): the machine is shared.
//
// Besides ns/op (wall time, which other work on the machine skews) each
// reports the CPU time per operation of this process (go-µs/op) and of the
// server processes of the store's connections (pg-µs/op, read from /proc:
// reported when the server runs on this machine), counted from the moment
// the timer started (bench calls start), and the operations per batch.
func benchModes(b *testing.B, bench func(b *testing.B, s *postgres.Store, start func())) {
	for _, m := range []struct {
		name    string
		writers int
	}{{"alone", 0}, {"writers=1", 1}, {"writers=2", 2}, {"writers=4", 4}} {
		b.Run(m.name, func(b *testing.B) {
			s, startCPU, reportCPU := benchStore(b, postgres.WithMaxConns(benchConns), postgres.WithWriters(m.writers))
			var st0 postgres.BatchStats
			bench(b, s, func() { startCPU(); st0 = s.BatchStats() })
			reportCPU()
			if st := s.BatchStats(); st.Batches > st0.Batches {
				b.ReportMetric(float64(st.Ops-st0.Ops)/float64(st.Batches-st0.Batches), "ops/batch")
			}
		})
	}
}

// benchStore opens a store whose connections carry a name of their own.
// start notes the CPU time spent so far by this process and by the store's
// server processes; report stops the timer and reports the CPU time spent
// since, per operation: go-µs/op, and pg-µs/op (read from /proc, reported
// when the server runs on this machine).
func benchStore(b *testing.B, opts ...postgres.Option) (s *postgres.Store, start, report func()) {
	url := testURL(b)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	app := fmt.Sprintf("verifyd-bench-%d", time.Now().UnixNano())
	s = mustOpenURL(b, url+sep+"application_name="+app, opts...)
	var pg0 map[int]time.Duration
	var self0 time.Duration
	start = func() { pg0, self0 = serverCPU(b, url, app), selfCPU() }
	report = func() {
		b.StopTimer()
		self := selfCPU() - self0
		var pg time.Duration
		pg1 := serverCPU(b, url, app)
		for pid, d := range pg1 {
			pg += d - pg0[pid]
		}
		if len(pg1) > 0 {
			b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-µs/op")
		}
		b.ReportMetric(float64(self.Microseconds())/float64(b.N), "go-µs/op")
	}
	return s, start, report
}

// BenchmarkCreateVerification measures triggers: one CreateVerification
// (advisory lock, newest lookup, insert, job: two round trips) each, from
// parallel callers.
func BenchmarkCreateVerification(b *testing.B) { benchModes(b, benchCreateVerification) }

func benchCreateVerification(b *testing.B, s *postgres.Store, start func()) {
	ctx := context.Background()
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	var n atomic.Int64
	b.SetParallelism(benchPar() / max(1, runtimeProcs()))
	b.ResetTimer()
	start()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			// Phones spread like real ones; one trigger in eight is a
			// resend, which supersedes.
			ph := i
			if i%8 == 7 {
				ph = i - 1
			}
			v := storetest.NewVerification(p, fmt.Sprintf("+1%010d", ph*2654435761%10000000000), now)
			if _, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now,
				Guard: func(*verifyd.Verification) error { return nil }}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAttempt measures checks: one Attempt by ID each (a counted
// wrong code and a recorded failure: two round trips) from parallel
// callers, over a pool of pending verifications.
func BenchmarkAttempt(b *testing.B) { benchModes(b, benchAttempt) }

func benchAttempt(b *testing.B, s *postgres.Store, start func()) {
	ctx := context.Background()
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	const pool = 1000
	vs := make([]*verifyd.Verification, pool)
	for i := range vs {
		vs[i] = storetest.NewVerification(p, fmt.Sprintf("+1555%07d", i), storetest.T0)
		vs[i].ExpiresAt = storetest.T0.Add(24 * time.Hour)
		storetest.MustCreateVerification(b, s, vs[i])
	}
	reject := func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideReject, nil }
	var n atomic.Int64
	b.SetParallelism(benchPar() / max(1, runtimeProcs()))
	b.ResetTimer()
	start()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			v := vs[i%pool]
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			if _, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ID: v.ID, Now: now, MaxAttempts: 1 << 30,
				FailuresSince: now.Add(-10 * time.Minute), Decide: reject}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheck measures checks as POST /v2/verifications/check makes
// them: one Attempt by (profile, phone) with the right code each, which
// accepts its pending verification and writes its verify.completed event.
// The verifications (one per op) are created before the timer starts.
func BenchmarkCheck(b *testing.B) { benchModes(b, benchCheck) }

func benchCheck(b *testing.B, s *postgres.Store, start func()) {
	ctx := context.Background()
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	phones := make([]string, b.N)
	for i := range phones {
		phones[i] = fmt.Sprintf("+1%010d", int64(i+1)*2654435761%10000000000)
		now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
		v := storetest.NewVerification(p, phones[i], now)
		v.ExpiresAt = storetest.T0.Add(24 * time.Hour)
		storetest.MustCreateVerification(b, s, v)
	}
	accept := func(v *verifyd.Verification, _ int) (verifyd.Decision, error) {
		if v == nil {
			return verifyd.DecideReject, nil
		}
		return verifyd.DecideAccept, nil
	}
	checkAt := storetest.T0.Add(time.Hour)
	var n atomic.Int64
	b.SetParallelism(benchPar() / max(1, runtimeProcs()))
	b.ResetTimer()
	start()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) - 1
			res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: phones[i],
				Now: checkAt, MaxAttempts: 5, FailuresSince: checkAt.Add(-10 * time.Minute), Decide: accept})
			if err != nil {
				b.Error(err)
				return
			}
			if !res.Accepted {
				b.Errorf("check %d not accepted: %+v", i, res.Verification)
				return
			}
		}
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// serverCPU returns the CPU time (user and system) spent so far by each
// server process of a connection named app (application_name), read from
// /proc; empty when they cannot be read (the server runs elsewhere).
func serverCPU(tb testing.TB, url, app string) map[int]time.Duration {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		tb.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: utime and stime are fields 14 and 15.
		st := string(b)
		f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(u+s) * (time.Second / 100) // USER_HZ
	}
	return out
}

// selfCPU is the CPU time (user and system) this process spent so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPar is the number of parallel callers of a benchmark: benchConns,
// or $VERIFYD_BENCH_CALLERS (more callers, bigger batches).
func benchPar() int {
	if n, err := strconv.Atoi(os.Getenv("VERIFYD_BENCH_CALLERS")); err == nil {
		return n
	}
	return benchConns
}

// BenchmarkFinishJobs measures the record of deliveries as the worker makes
// it: FinishJobs with batches of 16 sent outcomes (one attempt each, the
// verification's delivery status moved to sent), one batch after the
// other, over jobs claimed beforehand. The profile has no webhook (no
// event is written) or has one ("webhook": a message.sent event each);
// "backlog" has 20,000 more jobs running, leased to another worker (a slow
// carrier, other nodes): the cost of a record must not grow with them.
// ns/op, go-µs/op and pg-µs/op are per job.
func BenchmarkFinishJobs(b *testing.B) {
	for _, c := range []struct {
		name    string
		hooked  bool
		backlog int
	}{{"no_webhook", false, 0}, {"webhook", true, 0}, {"backlog", false, 20000}} {
		b.Run(c.name, func(b *testing.B) {
			s, startCPU, reportCPU := benchStore(b, postgres.WithMaxConns(4))
			ctx := context.Background()
			a := storetest.MustCreateAccount(b, s)
			p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0, func(p *verifyd.Profile) {
				if !c.hooked {
					p.WebhookURL, p.WebhookFailoverURL = "", ""
				}
			})
			claimAt := storetest.T0.Add(time.Hour)
			claim := func(worker string, n int) []*verifyd.Job {
				for i := range n {
					now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
					storetest.MustCreateVerification(b, s, storetest.NewVerification(p, fmt.Sprintf("+%s%010d", worker[1:], int64(i+1)*2654435761%10000000000), now))
				}
				var jobs []*verifyd.Job
				for len(jobs) < n {
					js, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: worker, Now: claimAt, Lease: time.Hour, Limit: 1000})
					if err != nil || len(js) == 0 {
						b.Fatalf("ClaimJobs: %d jobs, %v", len(js), err)
					}
					jobs = append(jobs, js...)
				}
				return jobs
			}
			claim("w2", c.backlog)
			jobs := claim("w1", b.N)
			b.ResetTimer()
			startCPU()
			const batch = 16
			for lo := 0; lo < len(jobs); lo += batch {
				hi := min(lo+batch, len(jobs))
				outs := make([]verifyd.JobOutcome, 0, hi-lo)
				for _, j := range jobs[lo:hi] {
					outs = append(outs, verifyd.JobOutcome{JobID: j.ID, Worker: "w1", Now: claimAt, DeliveryStatus: verifyd.DeliverySent,
						Attempts: []*verifyd.DeliveryAttempt{{ID: verifyd.NewOrderedID(), VerificationID: j.VerificationID, JobID: j.ID,
							Sender: "console", ProviderMessageID: "m-" + j.ID, Outcome: verifyd.DeliverySent, At: claimAt}}})
				}
				for i, err := range s.FinishJobs(ctx, outs) {
					if err != nil {
						b.Fatalf("FinishJobs %s: %v", outs[i].JobID, err)
					}
				}
			}
			reportCPU()
		})
	}
}
