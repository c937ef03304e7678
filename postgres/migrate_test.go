package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestMigrateFailureLeavesSchema applies a good migration, then one that
// fails half-way: nothing of the failing one stays, and it is not recorded.
func TestMigrateFailureLeavesSchema(t *testing.T) {
	url := os.Getenv("VERIFYD_TEST_POSTGRES_URL")
	if url == "" {
		if os.Getenv("VERIFYD_REQUIRE_PEERS") != "" {
			t.Fatal("VERIFYD_TEST_POSTGRES_URL is not set (VERIFYD_REQUIRE_PEERS is set)")
		}
		t.Skip("PostgreSQL: VERIFYD_TEST_POSTGRES_URL is not set")
	}
	ctx := context.Background()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "verifyd_test_" + hex.EncodeToString(b[:])
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 2
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
		pool.Close()
	})

	good := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x int); INSERT INTO a VALUES (1);`)}}
	if err := migrate(ctx, pool, schema, good); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	bad := fstest.MapFS{
		"0001_a.sql": good["0001_a.sql"],
		"0002_b.sql": {Data: []byte(`CREATE TABLE b (x int); INSERT INTO a VALUES (2); SELECT 1/0;`)},
	}
	if err := migrate(ctx, pool, schema, bad); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	var tables, rows, versions int
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'b'),
		(SELECT count(*) FROM a),
		(SELECT count(*) FROM schema_migrations)`, schema).Scan(&tables, &rows, &versions); err != nil {
		t.Fatal(err)
	}
	if tables != 0 || rows != 1 || versions != 1 {
		t.Fatalf("after a failed migration: table b %d, rows of a %d, versions %d; want 0, 1, 1", tables, rows, versions)
	}
	// Applied again it is a no-op: 0001 runs once.
	if err := migrate(ctx, pool, schema, good); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM a`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("rows of a after migrating again: %d, %v", rows, err)
	}
}
