package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func TestMigrateFailureLeavesSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	c, err := openRaw(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// What the migrations left is read on another connection.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)}}
	if err := migrate(c, good); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	bad := fstest.MapFS{
		"0001_a.sql": good["0001_a.sql"],
		"0002_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER); CREATE INDEX b_x ON b (x);`)},
		"0003_c.sql": {Data: []byte(`CREATE TABLE c (x INTEGER); THIS IS NOT SQL;`)},
	}
	if err := migrate(c, bad); err == nil {
		t.Fatal("migrate with a broken migration succeeded")
	}
	var names []string
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if got := len(names); got != 2 || names[0] != "a" || names[1] != "schema_migrations" {
		t.Fatalf("tables after a failed migration: %v, want [a schema_migrations]", names)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows = %d (%v), want 1", n, err)
	}
	// Applying again is a no-op.
	if err := migrate(c, good); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
}
