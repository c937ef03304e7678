package verifyd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// Store is everything the core persists. Implementations: sqlite (embedded
// default) and postgres (cluster); both pass the storetest suite.
type Store interface {
	AccountStore
	ProfileStore
	VerificationStore
	JobStore
	ReceiptStore
	EventStore
	WebhookStore
	MaintenanceStore
	IdempotencyStore
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// NewID returns a random UUIDv4 (D15).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// NewVerificationID returns the ID of a new verification: a UUIDv4 (D15)
// whose first 16 random bits are drawn once per 10 ms (per process) and
// shared by the IDs of those 10 ms; the other 106 are drawn per ID.
//
// IDs of one such period thus sit side by side in the index on IDs, so
// that a trigger's insert there lands on the page the previous ones just
// wrote, as an append does, instead of on a random page: with fully random
// IDs that one insert cost a random B-tree page per trigger (read, and
// written at the next commit). Unlike a UUIDv7 an ID alone tells nothing
// of when it was made (the shared bits are random, not a clock). What
// does leak: two IDs with the same first four hex digits were probably
// made within the same 10 ms by one node — the account that made both
// reads that in their created_at anyway — so an account that kept making
// verifications, and noted each ID's prefix and time, could date to the
// 10 ms another account's ID that it got hold of outside the API (a
// prefix recurs about every 11 minutes, so only with such a log). 106
// random bits per ID keep IDs unguessable.
func NewVerificationID() string { return newVerificationID(time.Now().UnixMilli() / 10) }

// idPeriod is the current period (<<16) and the 16-bit prefix of its
// verification IDs.
var idPeriod atomic.Uint64

func newVerificationID(period int64) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	e := idPeriod.Load()
	if int64(e>>16) != period {
		// A new period: this ID's own first bits become its prefix (or,
		// when another goroutine got there first, whatever that one set).
		n := uint64(period)<<16 | uint64(b[0])<<8 | uint64(b[1])
		if !idPeriod.CompareAndSwap(e, n) {
			n = idPeriod.Load()
		}
		e = n
	}
	b[0], b[1] = byte(e>>8), byte(e)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// NewOrderedID returns a UUIDv7 (RFC 9562): a millisecond timestamp, then
// random bits. For internal keys that clients never see (jobs, messages):
// inserted in time order, they land on the last page of their index instead
// of a random one, which is most of what an insert costs. Verification IDs
// are not UUIDv7: a time-ordered ID would leak creation time (D15); see
// NewVerificationID.
func NewOrderedID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// ValidID reports whether s is a UUID in canonical textual form.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// TimeLayout is the REST timestamp shape (D37): UTC, microseconds, no zone.
const TimeLayout = "2006-01-02T15:04:05.000000"

// FormatTime formats t in the REST timestamp shape.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// FormatEventTime formats t in the webhook occurred_at shape (D37).
func FormatEventTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+00:00") }
