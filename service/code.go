package service

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// CodeSource returns a numeric code of length digits.
type CodeSource func(length int) (string, error)

// RandomCode draws a code from crypto/rand without modulo bias: it rejects
// draws at or above the largest multiple of 10^length that fits in 64 bits.
func RandomCode(length int) (string, error) {
	if length < 1 || length > 18 {
		return "", fmt.Errorf("code length %d out of range", length)
	}
	mod := uint64(1)
	for range length {
		mod *= 10
	}
	limit := ^uint64(0) - (^uint64(0) % mod) // a multiple of mod
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if n := binary.BigEndian.Uint64(b[:]); n < limit {
			return fmt.Sprintf("%0*d", length, n%mod), nil
		}
	}
}
