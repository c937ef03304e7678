package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func openTestRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := openRaw(filepath.Join(t.TempDir(), "raw.db"), time.Second, "journal_mode(WAL)", "foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := c.script(`CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, b BLOB, s TEXT);
		CREATE TABLE child (id TEXT REFERENCES t (id))`); err != nil {
		t.Fatal(err)
	}
	return c
}

type status string

// The values the store binds and scans come back as database/sql would
// give them: empty strings and blobs are not NULL, named types convert,
// NULLs reach sql.Null* and *[]byte.
func TestRawRoundTrip(t *testing.T) {
	c := openTestRaw(t)
	long := strings.Repeat("x", 10_000) // grows the bind buffer
	rows := []struct {
		id string
		n  any
		f  any
		b  any
		s  any
	}{
		{"a", int64(-7), 1.5, []byte{0, 1, 2}, "héllo"},
		{"b", 3, nil, []byte{}, ""},
		{"c", true, 2.0, nil, status("pending")},
		{"d", nil, nil, []byte(long), long},
	}
	for _, r := range rows {
		n, err := c.exec(`INSERT INTO t (id, n, f, b, s) VALUES (?, ?, ?, ?, ?)`, r.id, r.n, r.f, r.b, r.s)
		if err != nil || n != 1 {
			t.Fatalf("insert %s: %d rows, %v", r.id, n, err)
		}
	}
	type got struct {
		n      sql.NullInt64
		f      sql.NullFloat64
		b      []byte
		s      sql.NullString
		isNull bool
	}
	read := func(id string) got {
		var g got
		if err := c.queryRow(func(r rowScanner) error { return r.Scan(&g.n, &g.f, &g.b, &g.s, &g.isNull) },
			`SELECT n, f, b, s, b IS NULL FROM t WHERE id = ?`, id); err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		return g
	}
	if g := read("a"); g.n.Int64 != -7 || g.f.Float64 != 1.5 || string(g.b) != "\x00\x01\x02" || g.s.String != "héllo" {
		t.Errorf("a = %+v", g)
	}
	if g := read("b"); g.n.Int64 != 3 || g.f.Valid || g.b == nil || len(g.b) != 0 || !g.s.Valid || g.s.String != "" || g.isNull {
		t.Errorf("b = %+v, want n 3, f NULL, b empty (not NULL), s empty (not NULL)", g)
	}
	if g := read("c"); g.n.Int64 != 1 || g.b != nil || !g.isNull || g.s.String != "pending" {
		t.Errorf("c = %+v, want n 1 (true), b NULL, s pending", g)
	}
	if g := read("d"); g.n.Valid || string(g.b) != long || g.s.String != long {
		t.Errorf("d: n valid %v, %d blob bytes, %d text bytes", g.n.Valid, len(g.b), len(g.s.String))
	}

	// Plain and named destinations.
	var s status
	var n int
	var ok bool
	var f float64
	if err := c.queryRow(func(r rowScanner) error { return r.Scan(&s, &n, &ok, &f) },
		`SELECT s, n, n, f FROM t WHERE id = 'a'`); err != nil || s != "héllo" || n != -7 || !ok || f != 1.5 {
		t.Errorf("scan into status/int/bool/float64: %q %d %v %v (%v)", s, n, ok, f, err)
	}
	// NULL into a string is an error, as with database/sql.
	var str string
	if err := c.queryRow(func(r rowScanner) error { return r.Scan(&str) },
		`SELECT f FROM t WHERE id = 'b'`); err == nil {
		t.Error("NULL scanned into a string without an error")
	}
	if err := c.queryRow(func(r rowScanner) error { return r.Scan(&str) },
		`SELECT s FROM t WHERE id = 'zz'`); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("no row: %v, want sql.ErrNoRows", err)
	}
}

// Constraint errors carry SQLite's extended codes, which mapErr turns into
// the domain's errors; misuse is refused before it reaches SQLite.
func TestRawErrors(t *testing.T) {
	c := openTestRaw(t)
	s := &Store{}
	if _, err := c.exec(`INSERT INTO t (id) VALUES (?)`, "a"); err != nil {
		t.Fatal(err)
	}
	_, err := c.exec(`INSERT INTO t (id) VALUES (?)`, "a")
	if verifyd.ErrorCode(s.mapErr(err)) != verifyd.ECONFLICT {
		t.Errorf("duplicate key: %v (mapped %v), want ECONFLICT", err, s.mapErr(err))
	}
	_, err = c.exec(`INSERT INTO child (id) VALUES (?)`, "nope")
	if verifyd.ErrorCode(s.mapErr(err)) != verifyd.EREFERENCE {
		t.Errorf("foreign key: %v (mapped %v), want EREFERENCE", err, s.mapErr(err))
	}
	// The statement that failed is usable again.
	if n, err := c.exec(`INSERT INTO t (id) VALUES (?)`, "b"); err != nil || n != 1 {
		t.Errorf("insert after a failed one: %d, %v", n, err)
	}
	if _, err := c.exec(`INSERT INTO t (id) VALUES (?)`); err == nil {
		t.Error("missing argument accepted")
	}
	if _, err := c.exec(`INSERT INTO t (id) VALUES (?)`, struct{}{}); err == nil {
		t.Error("unsupported argument type accepted")
	}
	if _, err := c.exec(`DELETE FROM t WHERE id = 'a'; DELETE FROM t`); err == nil {
		t.Error("two statements accepted by exec")
	}
	var k int
	if err := c.queryRow(func(r rowScanner) error { return r.Scan(&k) }, `SELECT count(*) FROM t`); err != nil || k != 2 {
		t.Errorf("rows = %d (%v), want 2: the refused statements ran", k, err)
	}
	if _, err := c.exec(`SELECT nonsense FROM nowhere`); err == nil {
		t.Error("bad SQL prepared")
	}

	// One iteration per statement at a time.
	rows, err := c.query(`SELECT id FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.query(`SELECT id FROM t ORDER BY id`); err == nil {
		t.Error("a second iteration of an open statement started")
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil || strings.Join(ids, ",") != "a,b" {
		t.Errorf("ids %v, err %v", ids, err)
	}
	rows.Close()
	if rows.Next() {
		t.Error("Next after Close")
	}
	if err := rows.Scan(new(string)); err == nil {
		t.Error("Scan without a row")
	}
	rows, err = c.query(`SELECT id FROM t ORDER BY id`)
	if err != nil {
		t.Fatalf("statement not reusable after Close: %v", err)
	}
	rows.Close()
}
