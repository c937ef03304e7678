package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/verifyd/verifyd"
)

// op is one queued write. fn runs inside the batch transaction, in its own
// savepoint.
type op struct {
	fn    func(w *wtx) error
	state atomic.Int32 // opQueued, opTaken or opAbandoned
	done  chan error
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// keep is returned by an operation whose work so far must be committed
// even though the operation fails with err (a time expiry before a refusing
// Guard or Decide).
type keep struct{ err error }

func (k *keep) Error() string { return k.err.Error() }

// wtx is the batch transaction, as seen by one operation.
type wtx struct {
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // tx-bound statements of this batch
}

// ctx is the context statements run with on the writer: operations are
// never interrupted half-way (the caller's ctx is honoured while queued),
// and a context without Done spares the driver a watcher goroutine.
var bg = context.Background()

// stmt returns query prepared once on the writer connection, bound to the
// batch transaction.
func (w *wtx) stmt(query string) (*sql.Stmt, error) {
	st, ok := w.stmts[query]
	if ok {
		return st, nil
	}
	var err error
	if shared, ok := w.s.wstmts[query]; ok {
		st = w.tx.StmtContext(bg, shared)
	} else {
		// First use: the writer connection is busy with this transaction, so
		// prepare on it for this batch and on the DB once the batch is over.
		if st, err = w.tx.PrepareContext(bg, query); err != nil {
			return nil, err
		}
		w.s.unprepared = append(w.s.unprepared, query)
	}
	w.stmts[query] = st
	return st, nil
}

// prepareNew prepares, on the writer DB, the statements batches used for the
// first time, so later batches reuse them.
func (s *Store) prepareNew() {
	for _, q := range s.unprepared {
		if _, ok := s.wstmts[q]; ok {
			continue
		}
		if st, err := s.wdb.PrepareContext(bg, q); err == nil {
			s.wstmts[q] = st
		}
	}
	s.unprepared = s.unprepared[:0]
}

// exec runs a statement and returns the number of rows it changed.
func (w *wtx) exec(query string, args ...any) (int64, error) {
	st, err := w.stmt(query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(bg, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// query runs a statement that returns rows.
func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(bg, args...)
}

// queryRow runs a one-row query and scans it; found is false if no row.
func (w *wtx) queryRow(scan func(rowScanner) error, query string, args ...any) (found bool, err error) {
	rows, err := w.query(query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := scan(rows); err != nil {
		return false, err
	}
	return true, rows.Close()
}

// write queues fn for the writer goroutine and waits for its outcome.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return verifyd.ErrUnavailable
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()

	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err() // never ran, never will
		}
		return <-o.done // running: its outcome is the truth
	}
}

// writer is the writer goroutine: it runs queued operations in batches
// until ops is closed and drained.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*op, 0, s.maxBatch)
	for {
		o, ok := <-s.ops
		if !ok {
			return
		}
		batch = append(batch[:0], o)
	fill:
		for len(batch) < s.maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		start := time.Now()
		s.runBatch(batch)
		s.busy.Add(int64(time.Since(start)))
		clear(batch)
		// The callers just answered wait in this P's run queue; let them
		// run and queue their next writes, so the next batch is a full one
		// instead of whatever trickled in meanwhile.
		runtime.Gosched()
		if len(s.unprepared) > 0 {
			s.prepareNew()
		}
	}
}

func (s *Store) runBatch(batch []*op) {
	live := batch[:0:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opTaken) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	failAll := func(err error) {
		err = s.mapErr(err)
		for _, o := range live {
			o.done <- err
		}
	}

	tx, err := s.wdb.BeginTx(bg, nil)
	if err != nil {
		failAll(err)
		return
	}
	w := &wtx{s: s, tx: tx, stmts: make(map[string]*sql.Stmt, 16)}
	errs := make([]error, len(live))
	for i, o := range live {
		if _, err := w.exec(`SAVEPOINT op`); err != nil {
			_ = tx.Rollback()
			failAll(err)
			return
		}
		err := call(o.fn, w)
		var k *keep
		switch {
		case err == nil:
		case errors.As(err, &k):
			err = k.err
		default:
			if _, rerr := w.exec(`ROLLBACK TO op`); rerr != nil {
				_ = tx.Rollback()
				failAll(rerr)
				return
			}
		}
		if _, rerr := w.exec(`RELEASE op`); rerr != nil {
			_ = tx.Rollback()
			failAll(rerr)
			return
		}
		errs[i] = s.mapErr(err)
	}
	if err := tx.Commit(); err != nil {
		failAll(err)
		return
	}
	s.batches.Add(1)
	s.batchedOps.Add(int64(len(live)))
	select {
	case s.committed <- struct{}{}:
	default:
	}
	for i, o := range live {
		o.done <- errs[i]
	}
}

// call runs fn, turning a panic (in a Guard or Decide callback, say) into
// an error of that operation alone.
func call(fn func(*wtx) error, w *wtx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: write operation panicked: %v", r)
		}
	}()
	return fn(w)
}
