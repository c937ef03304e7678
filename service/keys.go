package service

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// Keys are the server's secrets. ServerKeys[0] is current; older keys are
// kept during a rotation so codes and jobs sealed under them still work.
type Keys struct {
	server  [][]byte
	sealers []cipher.AEAD
}

// NewKeys builds Keys from server keys (current first, each ≥ 32 bytes).
// Webhook signing keys are per account, stored sealed under these.
func NewKeys(serverKeys [][]byte) (*Keys, error) {
	if len(serverKeys) == 0 {
		return nil, errors.New("no server key")
	}
	k := &Keys{}
	for _, sk := range serverKeys {
		if len(sk) < 32 {
			return nil, errors.New("server key shorter than 32 bytes")
		}
		k.server = append(k.server, sk)
		block, err := aes.NewCipher(derive(sk, "verifyd job seal v1"))
		if err != nil {
			return nil, err
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.sealers = append(k.sealers, gcm)
	}
	return k, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// HashCode returns the HMAC-SHA-256 of code bound to one verification, under
// the current server key. Only this is stored.
func (k *Keys) HashCode(verificationID, code string) []byte {
	return hashCode(k.server[0], verificationID, code)
}

func hashCode(key []byte, verificationID, code string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("verifyd code v1\x00"))
	m.Write([]byte(verificationID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// MatchCode compares code with a stored hash in constant time, under every
// server key (current and previous), always doing the same work.
func (k *Keys) MatchCode(stored []byte, verificationID, code string) bool {
	ok := 0
	for _, key := range k.server {
		ok |= subtle.ConstantTimeCompare(stored, hashCode(key, verificationID, code))
	}
	return ok == 1
}

// Seal encrypts plaintext with AES-256-GCM under the current server key,
// bound to ad (the job ID). The nonce is prepended.
func (k *Keys) Seal(plaintext, ad []byte) []byte {
	g := k.sealers[0]
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plaintext)+g.Overhead())
	_, _ = rand.Read(nonce)
	return g.Seal(nonce, nonce, plaintext, ad)
}

// Open decrypts a Seal output under any server key.
func (k *Keys) Open(sealed, ad []byte) ([]byte, error) {
	for _, g := range k.sealers {
		if len(sealed) < g.NonceSize() {
			break
		}
		if p, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], ad); err == nil {
			return p, nil
		}
	}
	return nil, errors.New("sealed payload does not open under any server key")
}
