package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/verifyd/verifyd"
)

// APIKeyPrefix starts every API key verifyd issues.
const APIKeyPrefix = "vfy_"

func hashKey(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Authenticate returns the account a bearer key belongs to: EUNAUTHORIZED
// for a missing, unknown or revoked key, EFORBIDDEN for a disabled account.
func (s *Service) Authenticate(ctx context.Context, secret string) (*verifyd.Account, error) {
	if secret == "" || len(secret) > 200 {
		return nil, errUnauthorized
	}
	h := hashKey(secret)
	now := s.opts.Now()
	acct, ok := s.auth.get(h, now)
	if !ok {
		_, found, err := s.store.FindAPIKey(ctx, h[:])
		if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, err
		}
		acct = found
		s.auth.put(h, acct, now)
	}
	if acct.Disabled {
		return nil, &verifyd.Error{Code: verifyd.EFORBIDDEN, Message: "The account is disabled."}
	}
	return acct, nil
}

var errUnauthorized = &verifyd.Error{Code: verifyd.EUNAUTHORIZED, Message: "Authentication failed: a valid API key is required as 'Authorization: Bearer <key>'."}

// CreateAccount creates an account named name.
func (s *Service) CreateAccount(ctx context.Context, name string) (*verifyd.Account, error) {
	a := &verifyd.Account{ID: verifyd.NewID(), Name: name, CreatedAt: s.opts.Now().UTC()}
	return a, s.store.CreateAccount(ctx, a)
}

// Accounts lists every account.
func (s *Service) Accounts(ctx context.Context) ([]*verifyd.Account, error) {
	return s.store.ListAccounts(ctx)
}

// CreateAPIKey issues a new key for the account and returns its secret,
// which is shown once and never stored: 32 random bytes, base64url.
func (s *Service) CreateAPIKey(ctx context.Context, accountID, name string) (string, *verifyd.APIKey, error) {
	if _, err := s.store.GetAccount(ctx, accountID); err != nil {
		return "", nil, err
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := hashKey(secret)
	k := &verifyd.APIKey{
		ID: verifyd.NewID(), AccountID: accountID, Name: name,
		Prefix: secret[:len(APIKeyPrefix)+6], Hash: h[:], CreatedAt: s.opts.Now().UTC(),
	}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

// APIKeys lists the keys of accountID ("" = all accounts).
func (s *Service) APIKeys(ctx context.Context, accountID string) ([]*verifyd.APIKey, error) {
	return s.store.ListAPIKeys(ctx, accountID)
}

// RevokeAPIKey revokes a key by ID (or by its listed prefix).
func (s *Service) RevokeAPIKey(ctx context.Context, idOrPrefix string) error {
	id := idOrPrefix
	if strings.HasPrefix(idOrPrefix, APIKeyPrefix) {
		keys, err := s.store.ListAPIKeys(ctx, "")
		if err != nil {
			return err
		}
		id = ""
		for _, k := range keys {
			if k.Prefix == idOrPrefix && k.RevokedAt == nil {
				id = k.ID
			}
		}
		if id == "" {
			return verifyd.ErrNotFound
		}
	}
	if err := s.store.RevokeAPIKey(ctx, id, s.opts.Now().UTC()); err != nil {
		return err
	}
	s.auth.reset()
	return nil
}
