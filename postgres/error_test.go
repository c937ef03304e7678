package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/verifyd/verifyd"
)

// dialError returns the error pgconn gives for a server nobody listens on.
func dialError(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err == nil {
		c.Close(ctx)
		t.Fatal("connected to port 1")
	}
	return err
}

func TestMapErr(t *testing.T) {
	const secret = "SELECT secret_column FROM secret_table"
	syntax := &pgconn.PgError{Severity: "ERROR", Code: "42601", Message: "syntax error at or near " + secret}
	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"domain error kept", verifyd.ErrNotFound, verifyd.ENOTFOUND},
		{"wrapped domain error kept", fmt.Errorf("x: %w", verifyd.ErrLeaseLost), verifyd.ECONFLICT},
		{"connect refused", dialError(t), verifyd.EUNAVAILABLE},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, verifyd.EUNAVAILABLE},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, verifyd.EUNAVAILABLE},
		{"starting up", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, verifyd.EUNAVAILABLE},
		{"connection failure", &pgconn.PgError{Code: "08006"}, verifyd.EUNAVAILABLE},
		{"too many connections", &pgconn.PgError{Code: "53300"}, verifyd.EUNAVAILABLE},
		{"deadlock after retries", &pgconn.PgError{Code: "40P01"}, verifyd.EUNAVAILABLE},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, verifyd.EUNAVAILABLE},
		{"EOF", fmt.Errorf("read: %w", io.EOF), verifyd.EUNAVAILABLE},
		{"unexpected EOF", io.ErrUnexpectedEOF, verifyd.EUNAVAILABLE},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, verifyd.EUNAVAILABLE},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), verifyd.EUNAVAILABLE},
		{"conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), verifyd.EUNAVAILABLE},
		{"closed pool", puddle.ErrClosedPool, verifyd.EUNAVAILABLE},
		{"operation timeout", fmt.Errorf("acquire: %w", context.DeadlineExceeded), verifyd.EUNAVAILABLE},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint \"accounts_pkey\""}, verifyd.ECONFLICT},
		{"foreign key violation", &pgconn.PgError{Code: "23503"}, verifyd.EREFERENCE},
		{"syntax error", syntax, verifyd.EINTERNAL},
		{"undefined table", &pgconn.PgError{Code: "42P01", Message: "relation \"secret_table\" does not exist"}, verifyd.EINTERNAL},
		{"plain error", errors.New(secret), verifyd.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mapErr(context.Background(), tc.err)
			if code := verifyd.ErrorCode(got); code != tc.code {
				t.Fatalf("mapErr(%v) = %v: code %q, want %q", tc.err, got, code, tc.code)
			}
			if msg := verifyd.ErrorMessage(got); strings.Contains(msg, "secret") || strings.Contains(msg, "SELECT") {
				t.Fatalf("client message %q shows internals", msg)
			}
			if tc.code == verifyd.EUNAVAILABLE && verifyd.ErrorMessage(got) != verifyd.ErrUnavailable.Message {
				t.Fatalf("client message %q, want the unavailable one", verifyd.ErrorMessage(got))
			}
			if !errors.Is(got, tc.err) && tc.code == verifyd.EINTERNAL {
				t.Fatalf("internal error %v does not wrap %v (the log loses the cause)", got, tc.err)
			}
		})
	}
	if mapErr(context.Background(), nil) != nil {
		t.Fatal("mapErr(nil) != nil")
	}

	// The caller's own cancellation is returned as it is, not as an outage.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := mapErr(ctx, fmt.Errorf("query: %w", context.Canceled)); !errors.Is(got, context.Canceled) ||
		verifyd.ErrorCode(got) == verifyd.EUNAVAILABLE {
		t.Fatalf("mapErr after the caller cancelled = %v, want context.Canceled", got)
	}
}

func TestRetryable(t *testing.T) {
	deadlock := &pgconn.PgError{Code: "40P01"}
	if !retryable(deadlock, 0, 2) || retryable(deadlock, maxTries-1, 2) {
		t.Fatal("a deadlock is retried, a bounded number of times")
	}
	if retryable(&pgconn.PgError{Code: "23505"}, 0, 1) || retryable(errors.New("x"), 0, 0) {
		t.Fatal("a constraint violation or a plain error is retried")
	}
}
