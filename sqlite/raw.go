package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// rawConn is the writer's connection: SQLite's C API (modernc.org/sqlite/lib,
// the same engine the database/sql driver wraps) driven directly. The
// writer goroutine runs every write through it, one statement after
// another, so it needs none of what database/sql adds per statement (a
// connection lock, context watching, column names and declared types read
// for every query, driver.Value boxing, conversions by reflection): on the
// check path that was as much CPU as SQLite's own work (profiled).
//
// A rawConn is not safe for concurrent use: one goroutine (the writer, or
// Open and Close while the writer is not running) uses it at a time.
type rawConn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]*rawStmt
	// out is C memory for the out-parameters of open and prepare (two
	// pointers); buf holds
	// the bytes of the text or blob being bound (SQLite copies them:
	// SQLITE_TRANSIENT), grown as needed.
	out  uintptr
	buf  uintptr
	nbuf int
}

// rawStmt is a statement prepared on a rawConn, kept as long as it is.
type rawStmt struct {
	c       *rawConn
	p       uintptr
	nparams int
	ncols   int
	rows    rawRows // the one iteration a statement can have at a time
	busy    bool    // rows is open
}

// rawError is an error of SQLite: its (extended) result code and message.
type rawError struct {
	code int
	msg  string
}

func (e *rawError) Error() string { return e.msg }

// Code returns SQLite's extended result code.
func (e *rawError) Code() int { return e.code }

// openRaw opens the database file at path (created if missing) and applies
// pragmas (each "name(value)", as in the database/sql DSN).
func openRaw(path string, busyTimeout time.Duration, pragmas ...string) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS(), stmts: map[string]*rawStmt{}}
	if c.out = lib.Xsqlite3_malloc64(c.tls, 16); c.out == 0 {
		c.tls.Close()
		return nil, errors.New("sqlite: out of memory")
	}
	zpath, err := libc.CString(path)
	if err != nil {
		c.close()
		return nil, err
	}
	*(*uintptr)(cptr(c.out)) = 0
	rc := lib.Xsqlite3_open_v2(c.tls, zpath, c.out,
		lib.SQLITE_OPEN_READWRITE|lib.SQLITE_OPEN_CREATE|lib.SQLITE_OPEN_NOMUTEX|lib.SQLITE_OPEN_EXRESCODE, 0)
	libc.Xfree(c.tls, zpath)
	c.db = *(*uintptr)(cptr(c.out))
	if rc != lib.SQLITE_OK {
		err := c.errorOf(rc)
		c.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	lib.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	lib.Xsqlite3_busy_timeout(c.tls, c.db, int32(busyTimeout.Milliseconds()))
	for _, p := range pragmas {
		if err := c.script(`PRAGMA ` + strings.Replace(strings.TrimSuffix(p, ")"), "(", " = ", 1)); err != nil {
			c.close()
			return nil, fmt.Errorf("sqlite: open %s: pragma %s: %w", path, p, err)
		}
	}
	return c, nil
}

// close finalizes every statement and closes the connection.
func (c *rawConn) close() error {
	var err error
	for q, st := range c.stmts {
		lib.Xsqlite3_finalize(c.tls, st.p)
		delete(c.stmts, q)
	}
	if c.db != 0 {
		if rc := lib.Xsqlite3_close_v2(c.tls, c.db); rc != lib.SQLITE_OK {
			err = c.errorOf(rc)
		}
		c.db = 0
	}
	lib.Xsqlite3_free(c.tls, c.buf)
	lib.Xsqlite3_free(c.tls, c.out)
	c.buf, c.nbuf, c.out = 0, 0, 0
	c.tls.Close()
	return err
}

// errorOf returns the error of result code rc, with the connection's message.
func (c *rawConn) errorOf(rc int32) error {
	msg := libc.GoString(lib.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if m := libc.GoString(lib.Xsqlite3_errmsg(c.tls, c.db)); m != "" && m != msg {
			msg += ": " + m
		}
	}
	return &rawError{code: int(rc), msg: fmt.Sprintf("%s (%d)", msg, rc)}
}

// script runs sql, which may hold several statements and no parameters.
func (c *rawConn) script(sql string) error {
	z, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, z)
	if rc := lib.Xsqlite3_exec(c.tls, c.db, z, 0, 0, 0); rc != lib.SQLITE_OK {
		return c.errorOf(rc)
	}
	return nil
}

// prepare returns query prepared (once: statements live as long as the
// connection). query must be one statement.
func (c *rawConn) prepare(query string) (*rawStmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	z, err := libc.CString(query)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, z)
	*(*uintptr)(cptr(c.out)) = 0
	rc := lib.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, lib.SQLITE_PREPARE_PERSISTENT, c.out, c.out+8)
	if rc != lib.SQLITE_OK {
		return nil, c.errorOf(rc)
	}
	p := *(*uintptr)(cptr(c.out))
	if p == 0 {
		return nil, fmt.Errorf("sqlite: prepare: no statement in %q", query)
	}
	if tail := libc.GoString(*(*uintptr)(cptr(c.out + 8))); strings.Trim(tail, " \t\r\n;") != "" {
		lib.Xsqlite3_finalize(c.tls, p)
		return nil, fmt.Errorf("sqlite: prepare: more than one statement in %q", query)
	}
	st := &rawStmt{c: c, p: p, nparams: int(lib.Xsqlite3_bind_parameter_count(c.tls, p)),
		ncols: int(lib.Xsqlite3_column_count(c.tls, p))}
	st.rows.st = st
	c.stmts[query] = st
	return st, nil
}

// exec runs a statement and returns the number of rows it changed.
func (c *rawConn) exec(query string, args ...any) (int64, error) {
	st, err := c.start(query, args)
	if err != nil {
		return 0, err
	}
	rc := lib.Xsqlite3_step(c.tls, st.p)
	for rc == lib.SQLITE_ROW {
		rc = lib.Xsqlite3_step(c.tls, st.p)
	}
	if rc != lib.SQLITE_DONE {
		err := c.errorOf(rc)
		lib.Xsqlite3_reset(c.tls, st.p)
		return 0, err
	}
	n := lib.Xsqlite3_changes64(c.tls, c.db)
	lib.Xsqlite3_reset(c.tls, st.p)
	return n, nil
}

// query runs a statement that returns rows; the caller must Close them.
func (c *rawConn) query(query string, args ...any) (*rawRows, error) {
	st, err := c.start(query, args)
	if err != nil {
		return nil, err
	}
	st.busy = true
	st.rows.err, st.rows.done = nil, false
	return &st.rows, nil
}

// queryRow runs a query and scans its first row (an error if it has none).
func (c *rawConn) queryRow(scan func(rowScanner) error, query string, args ...any) error {
	rows, err := c.query(query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	return scan(rows)
}

// start prepares query and binds args, positionally (?NNN is argument NNN).
func (c *rawConn) start(query string, args []any) (*rawStmt, error) {
	st, err := c.prepare(query)
	if err != nil {
		return nil, err
	}
	if st.busy {
		return nil, fmt.Errorf("sqlite: statement in use (its rows are open): %q", query)
	}
	if len(args) != st.nparams {
		return nil, fmt.Errorf("sqlite: %d arguments for %d parameters in %q", len(args), st.nparams, query)
	}
	for i, a := range args {
		if err := st.bind(int32(i+1), a); err != nil {
			lib.Xsqlite3_reset(c.tls, st.p)
			return nil, fmt.Errorf("sqlite: argument %d of %q: %w", i+1, query, err)
		}
	}
	return st, nil
}

func (st *rawStmt) bind(i int32, a any) error {
	c := st.c
	var rc int32
	switch v := a.(type) {
	case nil:
		rc = lib.Xsqlite3_bind_null(c.tls, st.p, i)
	case string:
		p, err := c.bytes(len(v))
		if err != nil {
			return err
		}
		copy(unsafe.Slice((*byte)(cptr(p)), len(v)), v)
		rc = lib.Xsqlite3_bind_text(c.tls, st.p, i, p, int32(len(v)), lib.SQLITE_TRANSIENT)
	case int64:
		rc = lib.Xsqlite3_bind_int64(c.tls, st.p, i, v)
	case int:
		rc = lib.Xsqlite3_bind_int64(c.tls, st.p, i, int64(v))
	case bool:
		rc = lib.Xsqlite3_bind_int64(c.tls, st.p, i, int64(b2i(v)))
	case float64:
		rc = lib.Xsqlite3_bind_double(c.tls, st.p, i, v)
	case []byte:
		if v == nil {
			rc = lib.Xsqlite3_bind_null(c.tls, st.p, i)
			break
		}
		p, err := c.bytes(len(v))
		if err != nil {
			return err
		}
		copy(unsafe.Slice((*byte)(cptr(p)), len(v)), v)
		rc = lib.Xsqlite3_bind_blob(c.tls, st.p, i, p, int32(len(v)), lib.SQLITE_TRANSIENT)
	default:
		// Named types, pointers, driver.Valuers: what database/sql would
		// make of them.
		dv, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return err
		}
		switch dv.(type) {
		case nil, string, int64, bool, float64, []byte:
			return st.bind(i, dv)
		}
		return fmt.Errorf("unsupported type %T", a)
	}
	if rc != lib.SQLITE_OK {
		return c.errorOf(rc)
	}
	return nil
}

// bytes returns buf, grown to at least n bytes (never NULL: SQLite binds a
// NULL pointer as SQL NULL, not as an empty string).
func (c *rawConn) bytes(n int) (uintptr, error) {
	if n < 64 {
		n = 64
	}
	if n > c.nbuf {
		p := lib.Xsqlite3_realloc64(c.tls, c.buf, uint64(n))
		if p == 0 {
			return 0, errors.New("out of memory")
		}
		c.buf, c.nbuf = p, n
	}
	return c.buf, nil
}

// rawRows iterates the rows of a query, like *sql.Rows.
type rawRows struct {
	st   *rawStmt
	err  error
	done bool
	row  bool
}

// Next steps to the next row; false at the end or on an error (Err).
func (r *rawRows) Next() bool {
	r.row = false
	if r.done || r.err != nil || !r.st.busy {
		return false
	}
	switch rc := lib.Xsqlite3_step(r.st.c.tls, r.st.p); rc {
	case lib.SQLITE_ROW:
		r.row = true
		return true
	case lib.SQLITE_DONE:
		r.done = true
	default:
		r.err = r.st.c.errorOf(rc)
	}
	return false
}

// Err returns the error that ended the iteration, if any.
func (r *rawRows) Err() error { return r.err }

// Close resets the statement for its next use.
func (r *rawRows) Close() error {
	if !r.st.busy {
		return nil
	}
	r.st.busy, r.row = false, false
	// After an error reset repeats it: the error was already reported.
	lib.Xsqlite3_reset(r.st.c.tls, r.st.p)
	return nil
}

// Scan copies the current row's columns into dest, converting as
// database/sql's Rows.Scan does for the types this package scans into.
func (r *rawRows) Scan(dest ...any) error {
	if !r.row {
		return errors.New("sqlite: Scan called without a row")
	}
	if len(dest) != r.st.ncols {
		return fmt.Errorf("sqlite: Scan: %d destinations for %d columns", len(dest), r.st.ncols)
	}
	for i, d := range dest {
		if err := r.scanCol(int32(i), d); err != nil {
			return fmt.Errorf("sqlite: Scan column %d: %w", i, err)
		}
	}
	return nil
}

func (r *rawRows) scanCol(i int32, d any) error {
	tls, p := r.st.c.tls, r.st.p
	typ := lib.Xsqlite3_column_type(tls, p, i)
	switch d := d.(type) {
	case *string:
		switch typ {
		case lib.SQLITE_TEXT, lib.SQLITE_BLOB:
			*d = string(r.colBytes(i, typ))
		case lib.SQLITE_INTEGER:
			*d = strconv.FormatInt(lib.Xsqlite3_column_int64(tls, p, i), 10)
		case lib.SQLITE_FLOAT:
			*d = strconv.FormatFloat(lib.Xsqlite3_column_double(tls, p, i), 'g', -1, 64)
		default:
			return errors.New("converting NULL to string is unsupported")
		}
		return nil
	case *int64:
		if typ == lib.SQLITE_INTEGER {
			*d = lib.Xsqlite3_column_int64(tls, p, i)
			return nil
		}
	case *int:
		if typ == lib.SQLITE_INTEGER {
			*d = int(lib.Xsqlite3_column_int64(tls, p, i))
			return nil
		}
	case *bool:
		if typ == lib.SQLITE_INTEGER {
			*d = lib.Xsqlite3_column_int64(tls, p, i) != 0
			return nil
		}
	case *[]byte:
		switch typ {
		case lib.SQLITE_NULL:
			*d = nil
			return nil
		case lib.SQLITE_TEXT, lib.SQLITE_BLOB:
			*d = append([]byte{}, r.colBytes(i, typ)...)
			return nil
		}
	}
	// Everything else the way database/sql converts a driver value.
	return convertAssign(d, r.value(i, typ))
}

// colBytes returns column i as bytes in SQLite's memory, valid until the
// next step or reset: copy them.
func (r *rawRows) colBytes(i, typ int32) []byte {
	tls, p := r.st.c.tls, r.st.p
	var ptr uintptr
	if typ == lib.SQLITE_BLOB {
		ptr = lib.Xsqlite3_column_blob(tls, p, i)
	} else {
		ptr = lib.Xsqlite3_column_text(tls, p, i)
	}
	n := int(lib.Xsqlite3_column_bytes(tls, p, i))
	if ptr == 0 || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cptr(ptr)), n)
}

// value returns column i as a driver.Value (copied).
func (r *rawRows) value(i, typ int32) driver.Value {
	tls, p := r.st.c.tls, r.st.p
	switch typ {
	case lib.SQLITE_INTEGER:
		return lib.Xsqlite3_column_int64(tls, p, i)
	case lib.SQLITE_FLOAT:
		return lib.Xsqlite3_column_double(tls, p, i)
	case lib.SQLITE_TEXT:
		return string(r.colBytes(i, typ))
	case lib.SQLITE_BLOB:
		return append([]byte{}, r.colBytes(i, typ)...)
	}
	return nil
}

// convertAssign stores src (a driver.Value) in dest, as database/sql's
// Rows.Scan would, for what scanCol leaves: sql.Scanner implementations and
// pointers to named string, integer, float and bool types.
func convertAssign(dest any, src driver.Value) error {
	if s, ok := dest.(sql.Scanner); ok {
		return s.Scan(src)
	}
	dv := reflect.ValueOf(dest)
	if dv.Kind() != reflect.Pointer || dv.IsNil() {
		return fmt.Errorf("destination not a pointer: %T", dest)
	}
	e := dv.Elem()
	if src == nil {
		return fmt.Errorf("converting NULL to %s is unsupported", e.Kind())
	}
	var str string
	switch v := src.(type) {
	case string:
		str = v
	case []byte:
		str = string(v)
	case int64:
		str = strconv.FormatInt(v, 10)
	case float64:
		str = strconv.FormatFloat(v, 'g', -1, 64)
	}
	var err error
	switch e.Kind() {
	case reflect.String:
		e.SetString(str)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		if n, err = strconv.ParseInt(str, 10, e.Type().Bits()); err == nil {
			e.SetInt(n)
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		if f, err = strconv.ParseFloat(str, e.Type().Bits()); err == nil {
			e.SetFloat(f)
		}
	case reflect.Bool:
		var b bool
		if b, err = strconv.ParseBool(str); err == nil {
			e.SetBool(b)
		}
	default:
		return fmt.Errorf("unsupported Scan destination %T", dest)
	}
	if err != nil {
		return fmt.Errorf("converting %T to %s: %w", src, e.Kind(), err)
	}
	return nil
}

// cptr returns the address u of C memory (SQLite's, outside the Go heap)
// as an unsafe.Pointer.
func cptr(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }
