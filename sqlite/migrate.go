package sqlite

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations holds the *.sql files, applied in name order.
var migrations, _ = fs.Sub(migrationFiles, "migrations")

// migrate applies, in one transaction, every migration of fsys not yet in
// schema_migrations: a failing migration leaves the schema as it was.
func migrate(c *rawConn, fsys fs.FS) error {
	if err := c.script(`BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if err := migrateTx(c, fsys); err != nil {
		_ = c.script(`ROLLBACK`)
		return err
	}
	if err := c.script(`COMMIT`); err != nil {
		_ = c.script(`ROLLBACK`)
		return fmt.Errorf("sqlite: migrate: commit: %w", err)
	}
	return nil
}

// migrateTx applies the pending migrations of fsys on c, inside its
// transaction.
func migrateTx(c *rawConn, fsys fs.FS) error {
	if err := c.script(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		var n int
		if err := c.queryRow(func(r rowScanner) error { return r.Scan(&n) },
			`SELECT count(*) FROM schema_migrations WHERE version = ?`, version); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
		if err := c.script(string(body)); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
		if _, err := c.exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
	}
	return nil
}
