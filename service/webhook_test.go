package service_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

// An account's first signing key is made on first use and cached; a
// promoted key signs at once on this node, and the old one is retired.
func TestSigningKeyRotation(t *testing.T) {
	f := newFixture(t, service.Options{})
	k1, err := f.svc.SigningKey(f.ctx, f.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := f.svc.SigningKey(f.ctx, f.acct.ID); !bytes.Equal(again, k1) {
		t.Fatal("a second call returned another key")
	}
	next, err := f.svc.AddNextWebhookKey(f.ctx, f.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := f.svc.SigningKey(f.ctx, f.acct.ID); !bytes.Equal(cur, k1) {
		t.Fatal("a key in state next signs")
	}
	if err := f.svc.PromoteWebhookKey(f.ctx, f.acct.ID, next.ID); err != nil {
		t.Fatal(err)
	}
	k2, _ := f.svc.SigningKey(f.ctx, f.acct.ID)
	if !bytes.Equal(k2.Public().(ed25519.PublicKey), next.PublicKey) {
		t.Fatal("the promoted key does not sign on this node")
	}
	ks, _ := f.svc.WebhookKeys(f.ctx, f.acct.ID)
	states := map[string]string{}
	for _, k := range ks {
		states[k.ID] = k.State
		if bytes.Contains(k.SealedPrivate, k1.Seed()) || bytes.Contains(k.SealedPrivate, k2.Seed()) {
			t.Fatal("a private key is stored in the clear")
		}
	}
	if len(ks) != 2 || states[next.ID] != verifyd.KeyActive {
		t.Fatalf("keys after the promotion: %v", states)
	}
	for id, st := range states {
		if id != next.ID && st != verifyd.KeyRetired {
			t.Fatalf("the old key is %s, want retired", st)
		}
	}
}
