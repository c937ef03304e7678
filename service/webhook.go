package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/verifyd/verifyd"
)

// signingKeyTTL bounds how long an account's active signing key is cached:
// a promotion made on another node is seen within it.
const signingKeyTTL = 10 * time.Second

// SigningKey returns the account's active webhook signing key, creating
// the account's first key pair if it has none (D35).
func (s *Service) SigningKey(ctx context.Context, accountID string) (ed25519.PrivateKey, error) {
	now := s.opts.Now()
	if key, ok := s.signing.get(accountID, now); ok {
		return key, nil
	}
	k, err := s.activeKey(ctx, accountID)
	if err != nil {
		return nil, err
	}
	priv, err := s.openKey(k)
	if err != nil {
		return nil, err
	}
	s.signing.put(accountID, priv, now)
	return priv, nil
}

// activeKey returns the account's active key, creating one if it has none.
func (s *Service) activeKey(ctx context.Context, accountID string) (*verifyd.WebhookKey, error) {
	for range 2 {
		ks, err := s.store.ListWebhookKeys(ctx, accountID)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			if k.State == verifyd.KeyActive {
				return k, nil
			}
		}
		k, err := s.newKey(accountID, verifyd.KeyActive)
		if err != nil {
			return nil, err
		}
		err = s.store.AddWebhookKey(ctx, k)
		if err == nil {
			return k, nil
		}
		if verifyd.ErrorCode(err) != verifyd.ECONFLICT {
			return nil, err
		}
		// Another node created it first: read it.
	}
	return nil, errors.New("no active webhook signing key")
}

func (s *Service) newKey(accountID, state string) (*verifyd.WebhookKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	id := verifyd.NewID()
	return &verifyd.WebhookKey{ID: id, AccountID: accountID, PublicKey: pub,
		SealedPrivate: s.keys.Seal(priv.Seed(), []byte(id)), State: state, CreatedAt: now, UpdatedAt: now}, nil
}

func (s *Service) openKey(k *verifyd.WebhookKey) (ed25519.PrivateKey, error) {
	seed, err := s.keys.Open(k.SealedPrivate, []byte(k.ID))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("webhook signing key %s does not open under the server keys", k.ID)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// WebhookKeys returns the account's signing keys (public halves matter),
// creating the first one if the account has none.
func (s *Service) WebhookKeys(ctx context.Context, accountID string) ([]*verifyd.WebhookKey, error) {
	if _, err := s.activeKey(ctx, accountID); err != nil {
		return nil, err
	}
	return s.store.ListWebhookKeys(ctx, accountID)
}

// AddNextWebhookKey creates a key in state next: published, not yet
// signing, so receivers can trust it before PromoteWebhookKey.
func (s *Service) AddNextWebhookKey(ctx context.Context, accountID string) (*verifyd.WebhookKey, error) {
	if _, err := s.activeKey(ctx, accountID); err != nil {
		return nil, err
	}
	k, err := s.newKey(accountID, verifyd.KeyNext)
	if err != nil {
		return nil, err
	}
	return k, s.store.AddWebhookKey(ctx, k)
}

// PromoteWebhookKey makes keyID the signing key and retires the old one.
func (s *Service) PromoteWebhookKey(ctx context.Context, accountID, keyID string) error {
	if err := s.store.PromoteWebhookKey(ctx, accountID, keyID, s.opts.Now()); err != nil {
		return err
	}
	s.signing.remove(accountID)
	return nil
}

// DeleteWebhookKey removes a retired or next key.
func (s *Service) DeleteWebhookKey(ctx context.Context, accountID, keyID string) error {
	return s.store.DeleteWebhookKey(ctx, accountID, keyID)
}

// ListWebhookDeliveries lists the account's webhook deliveries.
func (s *Service) ListWebhookDeliveries(ctx context.Context, acct *verifyd.Account, f verifyd.WebhookFilter) ([]*verifyd.WebhookDelivery, int, error) {
	return s.store.ListWebhookDeliveries(ctx, acct.ID, f)
}

// GetWebhookDelivery returns one delivery of the account and its attempts.
func (s *Service) GetWebhookDelivery(ctx context.Context, acct *verifyd.Account, eventID string) (*verifyd.WebhookDelivery, []*verifyd.WebhookAttempt, error) {
	if !verifyd.ValidID(eventID) {
		return nil, nil, verifyd.ErrNotFound
	}
	return s.store.GetWebhookDelivery(ctx, acct.ID, eventID)
}

// RedeliverWebhook starts a new delivery round for one finished event.
func (s *Service) RedeliverWebhook(ctx context.Context, acct *verifyd.Account, eventID string) (*verifyd.WebhookDelivery, error) {
	d, _, err := s.GetWebhookDelivery(ctx, acct, eventID)
	if err != nil {
		return nil, err
	}
	if d.State == verifyd.WebhookPending {
		return nil, verifyd.Errorf(verifyd.ECONFLICT, "The event is still being delivered.")
	}
	if _, err := s.store.RedeliverWebhooks(ctx, acct.ID, verifyd.WebhookFilter{EventID: eventID}, s.opts.Now()); err != nil {
		return nil, err
	}
	d, _, err = s.store.GetWebhookDelivery(ctx, acct.ID, eventID)
	return d, err
}

// RedeliverWebhooks starts a new round for the account's finished
// deliveries matching f (failed ones unless f.State says otherwise).
func (s *Service) RedeliverWebhooks(ctx context.Context, acct *verifyd.Account, f verifyd.WebhookFilter) (int, error) {
	if f.State == "" {
		f.State = verifyd.WebhookFailed
	}
	return s.store.RedeliverWebhooks(ctx, acct.ID, f, s.opts.Now())
}
