package main

import (
	"context"
	"fmt"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/sqlite"
)

// migrator is a store that can apply its migrations on demand.
type migrator interface {
	verifyd.Store
	Migrate(ctx context.Context) error
}

// openStore opens the store --db names (applying migrations): a postgres://
// URL selects PostgreSQL, anything else is an SQLite file path. This is the
// only place that names both engines.
func openStore(ctx context.Context, cfg config) (migrator, error) {
	if cfg.isPostgres() {
		opts := []postgres.Option{postgres.WithMaxConns(int32(cfg.DBMaxConns)), postgres.WithWriters(cfg.DBWriters)}
		if cfg.DBSchema != "" {
			opts = append(opts, postgres.WithSchema(cfg.DBSchema))
		}
		s, err := postgres.Open(ctx, cfg.DB, opts...)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, nil
	}
	s, err := sqlite.Open(ctx, cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.DB, err)
	}
	return s, nil
}
