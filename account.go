package verifyd

import (
	"context"
	"time"
)

// Account owns API keys, profiles, templates and verifications. Every read
// and write of those is scoped to one account.
type Account struct {
	ID        string
	Name      string
	Disabled  bool
	CreatedAt time.Time
}

// APIKey is a bearer credential of one account. Only a SHA-256 hash of the
// secret is stored; Prefix is a short, non-secret head for listing.
type APIKey struct {
	ID        string
	AccountID string
	Name      string
	Prefix    string
	Hash      []byte
	CreatedAt time.Time
	RevokedAt *time.Time
}

// AccountStore persists accounts and API keys.
type AccountStore interface {
	// CreateAccount inserts a. ECONFLICT if the ID exists.
	CreateAccount(ctx context.Context, a *Account) error
	// GetAccount returns the account or ENOTFOUND.
	GetAccount(ctx context.Context, id string) (*Account, error)
	// ListAccounts returns every account, oldest first.
	ListAccounts(ctx context.Context) ([]*Account, error)
	// CreateAPIKey inserts k.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// FindAPIKey returns the unrevoked key whose hash is hash, with its
	// account; ENOTFOUND if none.
	FindAPIKey(ctx context.Context, hash []byte) (*APIKey, *Account, error)
	// ListAPIKeys returns all keys (revoked too) of accountID, or of every
	// account when accountID is "", oldest first.
	ListAPIKeys(ctx context.Context, accountID string) ([]*APIKey, error)
	// RevokeAPIKey marks the key revoked at `at`; ENOTFOUND if unknown or
	// already revoked.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
}
