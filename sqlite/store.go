// Package sqlite is the embedded verifyd.Store, on SQLite compiled to pure Go
// (modernc.org/sqlite): the read pool through its database/sql driver, the
// writer through SQLite's C API in that module (rawConn).
//
// # One process, one writer
//
// SQLite mode is single-process: Open takes an exclusive flock on
// path+".lock" and fails if another process holds it. Inside the process the
// Store keeps one dedicated writer connection and a pool of read-only
// connections; the database runs in WAL mode, so readers never wait for the
// writer.
//
// # Group commit
//
// Every write goes through one writer goroutine owned by the Store. It takes
// whatever operations are queued (up to a batch limit), runs them in ONE
// transaction, each inside its own SAVEPOINT, commits once and then answers
// every caller. An operation that fails is rolled back to its savepoint
// alone and gets its own error; a commit that fails fails every operation of
// the batch. A caller whose context ends while its operation is still queued
// gets the context's error and the operation never runs; once the writer has
// taken it, the caller waits for the real outcome. Guard and Decide callbacks
// run on the writer goroutine: they must be quick and must not call the
// Store.
//
// # Durability
//
// The database runs with synchronous=NORMAL in WAL mode: a committed
// operation survives a crash of the process (the WAL is in the OS page
// cache), but the last transactions before a power loss or kernel crash may
// be lost. The database is never corrupted either way. That is the promise
// verifyd makes in SQLite mode; use PostgreSQL for more.
//
// # Times
//
// Times are stored as INTEGER unix microseconds, UTC; 0 means the zero time.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verifyd/verifyd"
	sqlite3 "modernc.org/sqlite"
)

// Store is a verifyd.Store on one SQLite database file.
type Store struct {
	path string
	lock *os.File

	wc     *rawConn // the one writer connection; used by the writer goroutine only
	rdb    *sql.DB  // read-only connections
	rstmts sync.Map // query -> *sql.Stmt on rdb

	mu     sync.RWMutex // guards closed and sends on ops
	closed bool
	ops    chan *op
	done   chan struct{} // closed when the writer goroutine returns
	isDown atomic.Bool

	cdb        *sql.DB       // the checkpointer's connection
	committed  chan struct{} // the writer committed (cap 1, never blocks)
	stopCkpt   chan struct{}
	ckptDone   chan struct{}
	ckptPeriod time.Duration

	maxBatch int

	batches, batchedOps atomic.Int64 // for tests and benchmarks
	busy                atomic.Int64 // nanoseconds the writer spent running batches
}

var _ verifyd.Store = (*Store)(nil)

type config struct {
	readers         int
	maxBatch        int
	busyTimeout     time.Duration
	checkpointEvery time.Duration
}

// Option configures Open.
type Option func(*config)

// WithReaders sets the size of the read-only connection pool (default
// 2*GOMAXPROCS, at least 4).
func WithReaders(n int) Option { return func(c *config) { c.readers = n } }

// WithMaxBatch sets how many queued writes one transaction takes at most
// (default 256).
func WithMaxBatch(n int) Option { return func(c *config) { c.maxBatch = n } }

// WithBusyTimeout sets how long a connection waits for a lock before the
// operation fails with verifyd.ErrUnavailable (default 5s).
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithCheckpointEvery sets how often, while writes happen, a background
// goroutine copies the WAL back into the database file (default 100ms).
func WithCheckpointEvery(d time.Duration) Option { return func(c *config) { c.checkpointEvery = d } }

// Open opens (creating it if needed) the database at path, applies pending
// migrations, makes jobs left running by a previous process reclaimable at
// once, and starts the writer goroutine. Close stops it.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{readers: max(4, 2*runtime.GOMAXPROCS(0)), maxBatch: 256, busyTimeout: 5 * time.Second,
		checkpointEvery: 100 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: a file path is required (the store uses several connections)", path)
	}
	if cfg.readers < 1 || cfg.maxBatch < 1 || cfg.checkpointEvery <= 0 {
		return nil, errors.New("sqlite: open: readers and max batch must be positive")
	}

	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	// A new database is created private (0600): it holds phone numbers. SQLite
	// gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
	s := &Store{path: path, lock: lock, maxBatch: cfg.maxBatch}
	if err := s.open(ctx, cfg); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.ops = make(chan *op, 4*cfg.maxBatch)
	s.done = make(chan struct{})
	s.committed = make(chan struct{}, 1)
	s.stopCkpt = make(chan struct{})
	s.ckptDone = make(chan struct{})
	s.ckptPeriod = cfg.checkpointEvery
	go s.writer()
	go s.checkpointer()
	return s, nil
}

func (s *Store) open(ctx context.Context, cfg config) error {
	name := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(s.path)
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", cfg.busyTimeout.Milliseconds())

	var err error
	// The writer's page cache is 16 MB, not more: at the end of every
	// transaction SQLite truncates its cache to the database size, and a
	// B-tree balance that swaps page numbers parks a page at the lock-byte
	// page number (1 GiB / page size) on the way, so that truncation walks
	// the cache's whole hash table, which grows with the cache. At 64 MB
	// that walk was 10–20 % of the writer's time on checks (profiled); the
	// OS page cache serves what 16 MB does not hold.
	s.wc, err = openRaw(s.path, cfg.busyTimeout, "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)",
		"temp_store(MEMORY)", "cache_size(-16000)",
		// The checkpointer goroutine keeps the WAL short; this is a backstop.
		"wal_autocheckpoint(20000)")
	if err != nil {
		return err
	}
	if err := migrate(s.wc, migrations); err != nil {
		return err
	}
	// Single process: whoever held these leases is dead.
	if _, err := s.wc.exec(`UPDATE jobs SET locked_until = 0 WHERE state = 'running'`); err != nil {
		return fmt.Errorf("sqlite: open %s: release running jobs: %w", s.path, err)
	}
	if _, err := s.wc.exec(`UPDATE handoffs SET locked_until = 0`); err != nil {
		return fmt.Errorf("sqlite: open %s: release handed-off jobs: %w", s.path, err)
	}

	s.rdb, err = sql.Open("sqlite", name+"?"+busy+"&_pragma=query_only(1)&_pragma=cache_size(-16000)")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(cfg.readers)
	s.rdb.SetMaxIdleConns(cfg.readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}

	s.cdb, err = sql.Open("sqlite", name+"?"+busy+"&_pragma=synchronous(NORMAL)")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetConnMaxLifetime(0)
	s.cdb.SetConnMaxIdleTime(0)
	return nil
}

// checkpointer copies the WAL into the database file in the background
// (PRAGMA wal_checkpoint(PASSIVE), which never blocks the writer or the
// readers), at most once per period and only after commits, so that the
// writer goroutine never pays for checkpoints. Close stops it.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	t := time.NewTimer(s.ckptPeriod)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-s.committed:
		}
		t.Reset(s.ckptPeriod)
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
		}
		// A failure is retried after the next commit; the writer's own
		// wal_autocheckpoint bounds the WAL meanwhile.
		_, _ = s.cdb.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// Migrate applies pending migrations (Open already did; this is for
// `verifyd migrate` and is a no-op when the schema is current).
func (s *Store) Migrate(ctx context.Context) error {
	return s.write(ctx, func(w *wtx) error { return migrateTx(w.s.wc, migrations) })
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.isDown.Load() {
		return verifyd.ErrUnavailable
	}
	var n int
	return s.mapErr(s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&n))
}

// Close stops the writer goroutine after it has run every queued operation,
// closes the database and releases the process lock. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isDown.Store(true)
	close(s.ops)
	s.mu.Unlock()
	<-s.done
	close(s.stopCkpt)
	<-s.ckptDone
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	s.rstmts.Range(func(_, v any) bool { errs = append(errs, v.(*sql.Stmt).Close()); return true })
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.wc != nil {
		// A clean close of the last connection checkpoints and removes the WAL.
		errs = append(errs, s.wc.close())
		s.wc = nil
	}
	if s.lock != nil {
		errs = append(errs, unlockFile(s.lock))
	}
	return errors.Join(errs...)
}

// rstmt returns the statement for query prepared on the read pool.
func (s *Store) rstmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.rstmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.rstmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// query runs a read on the read pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.isDown.Load() {
		return nil, verifyd.ErrUnavailable
	}
	st, err := s.rstmt(ctx, query)
	if err != nil {
		return nil, s.mapErr(err)
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, s.mapErr(err)
}

// queryRow runs a one-row read on the read pool and scans it with scan;
// sql.ErrNoRows becomes verifyd.ErrNotFound.
func (s *Store) queryRow(ctx context.Context, scan func(rowScanner) error, query string, args ...any) error {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return s.mapErr(err)
		}
		return verifyd.ErrNotFound
	}
	if err := scan(rows); err != nil {
		return s.mapErr(err)
	}
	return s.mapErr(rows.Close())
}

type rowScanner interface{ Scan(dest ...any) error }

// SQLite result codes (primary code is the low byte of an extended code).
const (
	codeBusy       = 5
	codeLocked     = 6
	codeForeignKey = 787  // SQLITE_CONSTRAINT_FOREIGNKEY
	codePrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	codeUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
	msgDBClosed    = "sql: database is closed"
)

// mapErr turns driver errors into domain errors: busy/locked and closed
// databases are verifyd.ErrUnavailable, key conflicts ECONFLICT, foreign key
// violations EREFERENCE; anything else stays a wrapped (internal) error whose
// text never reaches a client through verifyd.ErrorMessage.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var de *verifyd.Error
	if errors.As(err, &de) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code := 0
	var se *sqlite3.Error
	var re *rawError
	if errors.As(err, &se) {
		code = se.Code()
	} else if errors.As(err, &re) {
		code = re.code
	}
	if code != 0 {
		switch {
		case code&0xff == codeBusy, code&0xff == codeLocked:
			return fmt.Errorf("sqlite: %v: %w", err, verifyd.ErrUnavailable)
		case code == codePrimaryKey, code == codeUnique:
			return fmt.Errorf("sqlite: %v: %w", err, verifyd.Errorf(verifyd.ECONFLICT, "Resource already exists."))
		case code == codeForeignKey:
			return fmt.Errorf("sqlite: %v: %w", err, verifyd.Errorf(verifyd.EREFERENCE, "Referenced resource not found."))
		}
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), msgDBClosed) || s.isDown.Load() {
		return fmt.Errorf("sqlite: %v: %w", err, verifyd.ErrUnavailable)
	}
	return fmt.Errorf("sqlite: %w", err)
}

// tm encodes t as unix microseconds; the zero time is 0.
func tm(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromTM decodes tm.
func fromTM(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
