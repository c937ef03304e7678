// Package postgres is the cluster verifyd.Store, on PostgreSQL through
// github.com/jackc/pgx/v5 (pgxpool).
//
// # Several nodes, one database
//
// Any number of verifyd processes may share one database (and schema); the
// store makes every operation safe between them with row locks, not with
// anything held in a process:
//
//   - CreateVerification takes a transaction-level advisory lock on
//     (profile, phone) before it reads the newest verification of that pair
//     (FOR UPDATE), so two triggers for one number run one after the other
//     even when there is no row yet to lock.
//   - Attempt locks the verification row (FOR UPDATE; by phone, after the
//     same advisory lock) before Decide, so the counter is incremented
//     before the compare and at most one accept ever happens.
//   - ClaimJobs leases jobs with FOR UPDATE SKIP LOCKED; FinishJobs locks
//     the jobs (and hand-offs, handoff.go) it finishes and checks each
//     one's lease.
//   - TryLease is a row per lease name, taken or renewed by one upsert.
//
// # Round trips
//
// A transaction runs as pipelined batches on one connection: BEGIN rides
// with the first batch of statements and COMMIT with the last, so a trigger
// or a check costs two round trips (read and lock; write and commit) and a
// FinishJobs batch of any size costs two, its writes being set-based.
// Statements are prepared once per connection (pgx's statement cache).
//
// Concurrent triggers and checks go further: writer goroutines run up to
// 64 of them as one transaction of set-based statements, still two round
// trips (group commit, writer.go; WithWriters).
//
// # Availability
//
// Every operation runs under an operation timeout (WithOperationTimeout,
// default 5s) and connections are dialled with a connect timeout (default
// 3s), so when the server is unreachable or restarting an operation fails
// fast with verifyd.ErrUnavailable instead of hanging. The pool replaces
// dead connections on its own (idle connections are pinged before use), so
// the store resumes once PostgreSQL is back. Other database errors are
// wrapped internal errors: their text (which may name SQL) never reaches a
// client through verifyd.ErrorMessage.
//
// # Times
//
// Times are timestamptz with microsecond precision, read back in UTC.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/verifyd/verifyd"
)

// Store is a verifyd.Store on one PostgreSQL database (and schema).
type Store struct {
	pool      *pgxpool.Pool
	schema    string // created by Migrate when set (WithSchema)
	opTimeout time.Duration
	closed    atomic.Bool

	// Group commit of triggers and checks (writer.go); wq is nil when it
	// is off.
	wq      chan *wop
	wmu     sync.RWMutex // held (read) while sending on wq; Close closes it
	writers sync.WaitGroup
	stats   batchStats
}

var _ verifyd.Store = (*Store)(nil)

// settings is what the options change.
type settings struct {
	pool      *pgxpool.Config
	schema    string
	opTimeout time.Duration
	writers   int
}

// Option configures Open. Options override what the URL says.
type Option func(*settings)

// WithMaxConns sets the most connections the pool opens (default: the
// URL's pool_max_conns, else max(4, number of CPUs)); n <= 0 keeps the
// default.
func WithMaxConns(n int32) Option {
	return func(s *settings) {
		if n > 0 {
			s.pool.MaxConns = n
		}
	}
}

// WithMinConns sets how many connections the pool keeps open even when idle.
func WithMinConns(n int32) Option { return func(s *settings) { s.pool.MinConns = n } }

// WithMaxConnLifetime sets how long a connection lives before the pool
// replaces it.
func WithMaxConnLifetime(d time.Duration) Option {
	return func(s *settings) { s.pool.MaxConnLifetime = d }
}

// WithMaxConnIdleTime sets how long an idle connection is kept.
func WithMaxConnIdleTime(d time.Duration) Option {
	return func(s *settings) { s.pool.MaxConnIdleTime = d }
}

// WithHealthCheckPeriod sets how often the pool checks its idle connections.
func WithHealthCheckPeriod(d time.Duration) Option {
	return func(s *settings) { s.pool.HealthCheckPeriod = d }
}

// WithConnectTimeout sets how long dialling a connection may take (default:
// the URL's connect_timeout, else 3s).
func WithConnectTimeout(d time.Duration) Option {
	return func(s *settings) { s.pool.ConnConfig.ConnectTimeout = d }
}

// WithOperationTimeout bounds every operation, waiting for a connection
// included (default 5s; 0 leaves only the caller's context). When it
// passes, the operation fails with verifyd.ErrUnavailable.
func WithOperationTimeout(d time.Duration) Option { return func(s *settings) { s.opTimeout = d } }

// WithWriters sets how many writer goroutines batch concurrent triggers
// and checks (CreateVerification, Attempt) into shared transactions, each
// running one batch at a time on a pooled connection (default 1; see
// writer.go). n <= 0 turns batching off: every trigger and check is then
// its own transaction.
func WithWriters(n int) Option { return func(s *settings) { s.writers = n } }

// WithSchema keeps every table in schema name: each connection's
// search_path is set to it, and Open creates it if missing.
func WithSchema(name string) Option { return func(s *settings) { s.schema = name } }

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string; pool settings such as pool_max_conns and a
// search_path given there are honoured), applies pending migrations and
// returns the store. Close releases it.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 3 * time.Second
	}
	st := settings{pool: pc, opTimeout: 5 * time.Second, writers: defaultWriters}
	for _, o := range opts {
		o(&st)
	}
	if st.schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{st.schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, schema: st.schema, opTimeout: st.opTimeout}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.startWriters(st.writers)
	return s, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return verifyd.ErrUnavailable
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	return mapErr(ctx, s.pool.Ping(octx))
}

// Close closes every connection. It is idempotent; operations after it
// fail with verifyd.ErrUnavailable, and so do triggers and checks still
// queued for a writer. It waits for the batches that are running.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopWriters()
	s.pool.Close()
	return nil
}

// opCtx bounds one operation (every try of it) by the operation timeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opTimeout)
}

// maxTries bounds how often one operation runs: again after an error that
// proves nothing happened (pgconn.SafeToRetry: a dead pooled connection
// found on first use) or a deadlock or serialization failure (rolled back).
const maxTries = 3

// retryable reports whether an operation that failed with err on try (0
// based), having sent sent batches, may run again.
func retryable(err error, try, sent int) bool {
	if try+1 >= maxTries {
		return false
	}
	if pgconn.SafeToRetry(err) && sent <= 1 {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// txn is one transaction on one connection, sent as pipelined batches:
// BEGIN rides with the first batch and COMMIT with the last.
type txn struct {
	conn *pgx.Conn
	b    *pgx.Batch
	sent int // batches sent
}

// queue adds a statement to the next batch.
func (t *txn) queue(sql string, args ...any) *pgx.QueuedQuery {
	if t.b == nil {
		t.b = &pgx.Batch{}
		if t.sent == 0 {
			t.b.Queue("BEGIN")
		}
	}
	return t.b.Queue(sql, args...)
}

// flush sends the queued statements and runs their callbacks. Every
// statement of a batch runs on the server even if the callback of an
// earlier one fails; an error of the server skips the rest.
func (t *txn) flush(ctx context.Context) error {
	if t.b == nil {
		return nil
	}
	b := t.b
	t.b = nil
	t.sent++
	return t.conn.SendBatch(ctx, b).Close()
}

// commit sends the queued statements followed by COMMIT. Callbacks of that
// last batch must not decide anything: COMMIT runs whatever they return.
func (t *txn) commit(ctx context.Context) error {
	if t.b == nil && t.sent == 0 {
		return nil // nothing ran
	}
	t.queue("COMMIT")
	return t.flush(ctx)
}

// tx runs fn as one transaction on one pooled connection. fn ends it with
// t.commit; a transaction fn leaves open is rolled back. fn may run again
// (see retryable), so it must reset at its start whatever it sets. The
// operation timeout bounds every try together.
func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, t *txn) error) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.txIn(ctx, octx, fn)
}

// txIn is tx under octx, the operation's context (ctx bounded by the
// operation timeout) made by the caller.
func (s *Store) txIn(ctx, octx context.Context, fn func(ctx context.Context, t *txn) error) error {
	for try := 0; ; try++ {
		sent, err := s.tryTx(ctx, octx, fn)
		if err == nil {
			return nil
		}
		var de *verifyd.Error
		if errors.As(err, &de) || octx.Err() != nil || !retryable(err, try, sent) {
			return mapErr(ctx, err)
		}
	}
}

// tryTx runs fn once under octx; ctx is the caller's (for the rollback).
func (s *Store) tryTx(ctx, octx context.Context, fn func(ctx context.Context, t *txn) error) (sent int, err error) {
	if s.closed.Load() {
		return 0, verifyd.ErrUnavailable
	}
	c, err := s.pool.Acquire(octx)
	if err != nil {
		return 0, err
	}
	// Release destroys a connection that is broken or still in a
	// transaction, so a failed rollback cannot leak one into the pool.
	defer c.Release()
	t := &txn{conn: c.Conn()}
	err = fn(octx, t)
	if pc := c.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, rerr := pc.Exec(rctx, "ROLLBACK").ReadAll()
		if rerr != nil {
			_ = pc.Close(rctx) // Release destroys it either way
		}
		rcancel()
	}
	return t.sent, err
}

// run runs fn (single statements on the pool, outside a transaction) under
// the operation timeout, again when nothing happened (retryable).
func (s *Store) run(ctx context.Context, fn func(ctx context.Context) error) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	for try := 0; ; try++ {
		if s.closed.Load() {
			return verifyd.ErrUnavailable
		}
		err := fn(octx)
		if err == nil {
			return nil
		}
		var de *verifyd.Error
		if errors.As(err, &de) || octx.Err() != nil || !retryable(err, try, 0) {
			return mapErr(ctx, err)
		}
	}
}

// exec runs one statement and returns the number of rows it changed.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.run(ctx, func(ctx context.Context) error {
		ct, err := s.pool.Exec(ctx, sql, args...)
		n = ct.RowsAffected()
		return err
	})
	return n, err
}

// queryRow runs a one-row query and scans it with scan; no row is
// verifyd.ErrNotFound.
func (s *Store) queryRow(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	return s.run(ctx, func(ctx context.Context) error {
		err := scan(s.pool.QueryRow(ctx, sql, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			return verifyd.ErrNotFound
		}
		return err
	})
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, s *Store, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	err := s.run(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = collect(rows, scan)
		return err
	})
	return out, err
}

// collect scans every row with scan and closes rows; never nil.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// mapErr turns an error of an operation run for a caller's ctx into what
// the store returns: domain errors as they are; the caller's own
// cancellation as it is; a database that cannot be reached (or our
// operation timeout) verifyd.ErrUnavailable; a unique violation ECONFLICT,
// a foreign key violation EREFERENCE; anything else a wrapped internal
// error, whose text never reaches a client (verifyd.ErrorMessage).
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var de *verifyd.Error
	if errors.As(err, &de) {
		return err
	}
	if ctx != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %v: %w", err, verifyd.ErrUnavailable)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("postgres: %v: %w", err, verifyd.Errorf(verifyd.ECONFLICT, "Resource already exists."))
		case "23503": // foreign_key_violation
			return fmt.Errorf("postgres: %v: %w", err, verifyd.Errorf(verifyd.EREFERENCE, "Referenced resource not found."))
		}
	}
	return fmt.Errorf("postgres: %w", err)
}

// unavailable reports whether err means the database cannot serve now: it
// is unreachable, restarting or shutting down, the connection died, the
// server is out of connections or resources, or the operation ran out of
// time (a lock or a connection it waited for).
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			strings.HasPrefix(pe.Code, "53"), // insufficient_resources (too_many_connections, ...)
			pe.Code == "57P01",               // admin_shutdown
			pe.Code == "57P02",               // crash_shutdown
			pe.Code == "57P03",               // cannot_connect_now (starting up, shutting down)
			pe.Code == "57014",               // query_canceled (statement_timeout, cancel request)
			pe.Code == "55P03",               // lock_not_available (lock_timeout)
			pe.Code == "40P01",               // deadlock_detected (after retries)
			pe.Code == "40001":               // serialization_failure (after retries)
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

// utc returns t in UTC; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// truncUS drops what a timestamptz does not keep (below a microsecond).
// nullTime is t for a nullable column: NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNull reads a nullable time column.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
