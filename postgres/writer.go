package postgres

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/verifyd/verifyd"
)

// Group commit of the two hot writes, triggers (CreateVerification) and
// checks (Attempt).
//
// Alone, each is a transaction of its own: two round trips and five or so
// statements, whose per-statement, per-transaction and per-wakeup cost in
// the server is far above the row work. So concurrent ones are queued and
// a few writer goroutines (WithWriters) each take whatever is queued (up
// to maxBatch, never waiting for more) and run it as ONE transaction of a
// constant number of set-based statements, in two round trips (batch.run):
//
//  1. BEGIN; the advisory locks of every (profile, phone) of the batch, in
//     the order of the lock keys (qBatchLock); the newest verification of
//     each (profile, phone) and the verifications of the checks by ID,
//     locked in ID order (qBatchRows); the failure counts (qBatchFailures).
//  2. The logic of each operation in Go, exactly that of the operation
//     alone (createStep, attemptStep); then its writes, one statement per
//     table (batchWrites), and COMMIT.
//
// Two operations on one (profile, phone) never run in one batch: the later
// one is carried to the writer's next batch, where it sees the earlier
// one's writes (a hot number runs one trigger or check per batch).
//
// A writer that finds a single operation queued runs it as its own
// transaction, as without batching (cheaper than a batch of one). A
// trigger with an Idempotency record runs alone too. When the server refuses
// a batch (a constraint, a deadlock, ...), nothing of it was committed, and
// each of its operations runs alone (createAlone, attemptAlone) in its
// caller's goroutine, where its own error, if any, is returned as it would
// have been without batching; Guard, Rows, Respond and Decide may thus run
// twice. When the database cannot be reached, every operation of the batch
// fails with ErrUnavailable (after a write round trip that failed it is
// not known whether the batch committed, just as for an operation alone).
//
// An operation whose caller's context (or the operation timeout) ends
// while it is queued returns at once and never runs; once a writer took
// it, its outcome is the truth, and the batch is bounded by the earliest
// deadline of its operations (and the operation timeout).
//
// # Deadlocks
//
// Every verification row a batch locks belongs to a (profile, phone) whose
// advisory lock it already holds, and it takes all its advisory locks,
// sorted, before any row lock, and all its row locks in ID order in one
// statement; what it writes afterwards are those rows and new rows.
// FinishJobs and DeleteProfile lock their verifications in ID order in one
// statement too, and the other lockers of verifications hold at most one
// (Attempt and CreateVerification alone, after the advisory lock,
// RecordReceipt, ExpireVerification) or skip locked rows (ExpirePending,
// PurgeFinished). So waits for advisory locks go up the key order, waits
// for rows up the ID order, and no transaction that holds a row waits for
// an advisory lock: no cycle. A deadlock the server finds anyway (two
// batches inserting one chosen verification ID, say) is an error of the
// batch, and its operations run alone.

const (
	// defaultWriters is the number of writer goroutines by default. One
	// writer makes the biggest batches, so the least server CPU per
	// operation; more writers overlap their round trips, and two callers
	// alone are not made to wait for each other. Measured on a 2-core
	// machine running the server too (BenchmarkCreateVerification and
	// BenchmarkAttempt, server CPU per operation, 1/2/4 writers against
	// each operation alone): with 16 callers 0.31/0.39/0.64 (triggers) and
	// 0.31/0.42/0.54 (checks); with 64 callers 0.18/0.23/0.28 and
	// 0.24/0.28/0.40. Wall time per operation from 16 callers was mostly
	// best with 2 writers, from 64 with 1 (by 10-15 %); from 2 callers one
	// writer serializes them (1.8x the wall time of alone), two do not.
	// End to end (verifyd at c=16 over HTTP, three alternating pairs each)
	// one writer once made 1.06-1.13x the triggers per second of two; after
	// deliveries were recorded more cheaply (2026-12-07, fifth session) two
	// made 1.21-1.27x the checks per second of one and 0.97-1.19x the
	// triggers on one node: with one, a node's writes are one server
	// process's work, which can use one core, and the machine sat 0.6-0.7
	// cores idle during checks (0.3-0.4 with two). But two nodes on one
	// server with two writers each made 0.84x the checks and 0.99x the
	// triggers of one writer each, trigger p99 26.6 ms instead of 22.8 (one
	// pair of bench/run.sh runs): smaller batches, more transactions. The
	// default stays one; a lone node may run two (verifyd --db-writers).
	defaultWriters = 1
	// maxBatch bounds the operations of one batch.
	maxBatch = 64
	// queueLen bounds the operations queued for the writers; callers wait
	// (within their operation timeout) for room beyond it.
	queueLen = 1024
)

// wop is one trigger (create) or check (attempt) queued for a writer.
type wop struct {
	ctx     context.Context // the caller's
	octx    context.Context // ctx bounded by the operation timeout
	create  *verifyd.CreateParams
	attempt *verifyd.AttemptParams
	state   atomic.Int32 // opQueued, opTaken or opAbandoned
	done    chan wout
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// wout is the outcome of a wop.
type wout struct {
	fallback bool  // not run: the caller runs it alone
	alone    bool  // ran alone (runAlone): err is mapped
	err      error // unmapped, unless alone
	panicked bool  // a callback panicked with panicVal
	panicVal any
	created  created
	attempt  verifyd.AttemptResult
}

// batchStats counts what the writers did.
type batchStats struct {
	batches   atomic.Int64 // committed
	ops       atomic.Int64 // operations run in committed batches
	maxOps    atomic.Int64 // the most operations run in one committed batch
	alone     atomic.Int64 // operations a writer took alone (run as their own transaction)
	carried   atomic.Int64 // operations carried to a next batch
	fallbacks atomic.Int64 // batches whose operations then ran alone
	failed    atomic.Int64 // batches whose operations failed with the batch's error
}

// startWriters starts n writer goroutines (none: batching is off).
func (s *Store) startWriters(n int) {
	if n <= 0 {
		return
	}
	s.wq = make(chan *wop, queueLen)
	for range n {
		s.writers.Add(1)
		go s.writer()
	}
}

// stopWriters closes the queue and waits for the writers: operations still
// queued fail with ErrUnavailable (s.closed is set).
func (s *Store) stopWriters() {
	if s.wq == nil {
		return
	}
	s.wmu.Lock()
	close(s.wq)
	s.wmu.Unlock()
	s.writers.Wait()
}

// submit queues o and waits for its outcome; err is the outcome's error,
// mapped for the caller. A callback's panic is the caller's. When
// out.fallback is set, the caller runs o alone.
func (s *Store) submit(o *wop) (out wout, err error) {
	o.done = make(chan wout, 1)
	s.wmu.RLock()
	if s.closed.Load() {
		s.wmu.RUnlock()
		return wout{}, verifyd.ErrUnavailable
	}
	select {
	case s.wq <- o:
		s.wmu.RUnlock()
	case <-o.octx.Done():
		s.wmu.RUnlock()
		return wout{}, mapErr(o.ctx, o.octx.Err())
	}
	select {
	case out = <-o.done:
	case <-o.octx.Done():
		if o.state.CompareAndSwap(opQueued, opAbandoned) {
			return wout{}, mapErr(o.ctx, o.octx.Err()) // never ran, never will
		}
		out = <-o.done // taken: its outcome is the truth
	}
	if out.panicked {
		panic(out.panicVal)
	}
	if out.alone {
		return out, out.err
	}
	return out, mapErr(o.ctx, out.err)
}

// writer runs queued operations in batches until the queue is closed.
func (s *Store) writer() {
	defer s.writers.Done()
	batch := make([]*wop, 0, maxBatch)
	var carry []*wop
	for {
		batch = append(batch[:0], carry...)
		if len(batch) == 0 {
			o, ok := <-s.wq
			if !ok {
				return
			}
			batch = append(batch, o)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.wq:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		live := make([]*wop, 0, len(batch))
		for _, o := range batch {
			if o.state.CompareAndSwap(opQueued, opTaken) {
				live = append(live, o)
			}
		}
		clear(batch)
		carry = carry[:0]
		if len(live) > 0 {
			carry = s.runBatch(live, carry)
		}
	}
}

// carry puts o back in the queued state (it did not run: its caller may
// give up on it) for the writer's next batch.
func (s *Store) carry(carry []*wop, o *wop) []*wop {
	s.stats.carried.Add(1)
	o.state.Store(opQueued)
	return append(carry, o)
}

// runBatch runs live as one transaction, answers each operation that ran
// (or must run alone) and returns carry with those carried to the next
// batch.
func (s *Store) runBatch(live, carry []*wop) []*wop {
	if s.closed.Load() {
		for _, o := range live {
			o.done <- wout{err: verifyd.ErrUnavailable}
		}
		return carry
	}
	// Operations whose (profile, phone) an earlier one has wait for the
	// next batch (checks by ID: once read, in batch.run).
	run := make([]*wop, 0, len(live))
	seen := make(map[lockKey]bool, len(live))
	for _, o := range live {
		var k lockKey
		switch {
		case o.create != nil:
			k = lockKey{o.create.Verification.ProfileID, o.create.Verification.PhoneNumber}
		case o.attempt.ID == "":
			k = lockKey{o.attempt.ProfileID, o.attempt.PhoneNumber}
		default:
			run = append(run, o)
			continue
		}
		if seen[k] {
			carry = s.carry(carry, o)
			continue
		}
		seen[k] = true
		run = append(run, o)
	}

	if len(run) == 1 {
		s.runAlone(run[0])
		return carry
	}
	b := &batch{ops: run}
	bctx, cancel := s.batchCtx(run)
	sent, err := s.tryTx(context.Background(), bctx, b.run)
	timedOut := bctx.Err() != nil
	cancel()
	if err == nil {
		// Counted before any caller is answered, so that a caller sees
		// its batch in the stats.
		ran := len(run)
		for _, c := range b.carried {
			if c {
				ran--
			}
		}
		s.stats.batches.Add(1)
		s.stats.ops.Add(int64(ran))
		for m := s.stats.maxOps.Load(); int64(ran) > m && !s.stats.maxOps.CompareAndSwap(m, int64(ran)); {
			m = s.stats.maxOps.Load()
		}
		for i, o := range run {
			if b.carried[i] {
				carry = s.carry(carry, o)
				continue
			}
			o.done <- b.outs[i]
		}
		return carry
	}
	if batchFallback(err, sent, timedOut) {
		s.stats.fallbacks.Add(1)
		for _, o := range run {
			if oerr := o.octx.Err(); oerr != nil {
				o.done <- wout{err: oerr}
			} else {
				o.done <- wout{fallback: true}
			}
		}
		return carry
	}
	s.stats.failed.Add(1)
	for _, o := range run {
		o.done <- wout{err: err}
	}
	return carry
}

// runAlone runs o as its own transaction (createAlone, attemptAlone), in
// the writer: a batch of one would cost more (its statements are made for
// many).
func (s *Store) runAlone(o *wop) {
	s.stats.alone.Add(1)
	out := wout{alone: true}
	func() {
		defer func() {
			if r := recover(); r != nil {
				out = wout{panicked: true, panicVal: r}
			}
		}()
		if o.create != nil {
			out.created, out.err = s.createAlone(o.ctx, o.octx, *o.create)
		} else {
			out.attempt, out.err = s.attemptAlone(o.ctx, o.octx, *o.attempt)
		}
	}()
	o.done <- out
}

// batchCtx bounds a batch by the operation timeout and the earliest
// deadline of its operations, so that it never keeps a caller waiting
// past its own.
func (s *Store) batchCtx(run []*wop) (context.Context, context.CancelFunc) {
	var dl time.Time
	if s.opTimeout > 0 {
		dl = time.Now().Add(s.opTimeout)
	}
	for _, o := range run {
		if d, ok := o.octx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
			dl = d
		}
	}
	if dl.IsZero() {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), dl)
}

// batchFallback reports whether the operations of a batch that failed with
// err, having sent sent round trips, run alone: when the server refused a
// statement (nothing was committed) other than because it is going away,
// and when the batch failed before its writes were sent for any reason but
// an unreachable database (a dead pooled connection, its deadline, ...).
func batchFallback(err error, sent int, timedOut bool) bool {
	var de *verifyd.Error
	if errors.As(err, &de) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return !strings.HasPrefix(pe.Code, "08") && !strings.HasPrefix(pe.Code, "53") && !strings.HasPrefix(pe.Code, "57P0")
	}
	if sent > 1 {
		return false // the writes and COMMIT were sent: whether they committed is not known
	}
	return timedOut || pgconn.SafeToRetry(err) || !unavailable(err)
}
