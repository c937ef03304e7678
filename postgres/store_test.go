package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/storetest"
)

// testURL returns the URL of the test database, or skips tb (fails it when
// VERIFYD_REQUIRE_PEERS is set: CI has PostgreSQL).
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("VERIFYD_TEST_POSTGRES_URL")
	if url == "" {
		why := "PostgreSQL: VERIFYD_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)"
		if os.Getenv("VERIFYD_REQUIRE_PEERS") != "" {
			tb.Fatal(why + " (VERIFYD_REQUIRE_PEERS is set)")
		}
		tb.Skip(why)
	}
	return url
}

// newSchema returns a fresh schema name, dropped at cleanup.
func newSchema(tb testing.TB, url string) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "verifyd_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() { dropSchema(tb, url, schema) })
	return schema
}

func dropSchema(tb testing.TB, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
	}
}

// connSlots bounds the test stores open at once, so that parallel tests
// stay well under the server's max_connections (100 by default) whatever
// -parallel is: each store opens up to testConns connections.
var connSlots = make(chan struct{}, 12)

const testConns = 4

// mustOpen opens a store on a fresh schema of the test database, closed
// and dropped at cleanup.
func mustOpen(tb testing.TB, opts ...postgres.Option) *postgres.Store {
	tb.Helper()
	return mustOpenURL(tb, testURL(tb), opts...)
}

// mustOpenURL is mustOpen on the test database at url (the test URL with
// parameters added).
func mustOpenURL(tb testing.TB, url string, opts ...postgres.Option) *postgres.Store {
	tb.Helper()
	return mustOpenSchema(tb, url, newSchema(tb, url), opts...)
}

// mustOpenSchema is mustOpenURL on a given (fresh) schema.
func mustOpenSchema(tb testing.TB, url, schema string, opts ...postgres.Option) *postgres.Store {
	tb.Helper()
	connSlots <- struct{}{}
	tb.Cleanup(func() { <-connSlots })
	opts = append([]postgres.Option{postgres.WithSchema(schema), postgres.WithMaxConns(testConns)}, opts...)
	s, err := postgres.Open(context.Background(), url, opts...)
	if err != nil {
		tb.Fatalf("postgres.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(tb testing.TB) verifyd.Store { return mustOpen(tb) })
}

// TestMigrateConcurrently opens several stores on one new schema at once,
// as nodes starting together do: each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(ctx, url, postgres.WithSchema(schema), postgres.WithMaxConns(2))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a current schema: %v", err)
	}
	a := storetest.MustCreateAccount(t, stores[0])
	if _, err := stores[3].GetAccount(ctx, a.ID); err != nil {
		t.Fatalf("GetAccount through another store: %v", err)
	}
}

// TestURLSearchPath honours a search_path given in the URL.
func TestURLSearchPath(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	c.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := postgres.Open(ctx, url+sep+"search_path="+schema+"&pool_max_conns=2")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	a := storetest.MustCreateAccount(t, s)
	c, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "accounts"}.Sanitize()+` WHERE id = $1`, a.ID).
		Scan(&n); err != nil || n != 1 {
		t.Fatalf("account in schema %s: %d, %v", schema, n, err)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	a := storetest.MustCreateAccount(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetAccount(ctx, a.ID); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("GetAccount after Close: %v, want unavailable", err)
	}
	if err := s.Ping(ctx); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("Ping after Close: %v, want unavailable", err)
	}
	if _, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w", Now: storetest.T0, Lease: time.Minute, Limit: 1}); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("ClaimJobs after Close: %v, want unavailable", err)
	}
}

// TestUnreachableFailsFast opens nothing: a store on a port nobody listens
// on fails Open at once with EUNAVAILABLE.
func TestUnreachableFailsFast(t *testing.T) {
	start := time.Now()
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable")
	if verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("Open of an unreachable server: %v, want unavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open of an unreachable server took %v", d)
	}
}
