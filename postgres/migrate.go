package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations holds the *.sql files, applied in name order.
var migrations, _ = fs.Sub(migrationFiles, "migrations")

// Migrate applies pending migrations (Open already did; this is for
// `verifyd migrate` and is a no-op when the schema is current). Each
// migration runs in its own transaction, with its schema_migrations row,
// under a transaction-level advisory lock on the schema: nodes starting
// together apply each migration once, and a failing migration leaves the
// schema as it was. With WithSchema the schema is created if missing.
func (s *Store) Migrate(ctx context.Context) error {
	if s.closed.Load() {
		return verifyd.ErrUnavailable
	}
	return migrate(ctx, s.pool, s.schema, migrations)
}

// beginner is what migrate needs of a pool.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

func migrate(ctx context.Context, db beginner, schema string, fsys fs.FS) error {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", name, err)
		}
		if err := migrateOne(ctx, db, schema, strings.TrimSuffix(name, ".sql"), string(body)); err != nil {
			return err
		}
	}
	return nil
}

// migrateOne applies one migration in one transaction unless
// schema_migrations already has it.
func migrateOne(ctx context.Context, db beginner, schema, version, body string) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: %w", version, err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	// The lock is per schema (the one named, else the search_path's first
	// existing one): stores in different schemas migrate independently.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('verifyd.migrate:' ||
		coalesce(nullif($1, ''), current_schema(), current_setting('search_path')), 0))`, schema); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: lock: %w", version, err))
	}
	if schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return mapErr(ctx, fmt.Errorf("migrate: create schema: %w", err))
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate: %w", err))
	}
	var done bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).
		Scan(&done); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: %w", version, err))
	}
	if done {
		return nil // the deferred rollback ends the read-only transaction
	}
	// The simple protocol runs a file of several statements.
	if _, err := tx.Conn().PgConn().Exec(ctx, body).ReadAll(); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: %w", version, err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: %w", version, err))
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, fmt.Errorf("migrate %s: commit: %w", version, err))
	}
	return nil
}
