package verifyd

import (
	"context"
	"time"
)

// MaintenanceStore is the periodic work of a deployment: it must run on one
// node at a time, which TryLease decides.
type MaintenanceStore interface {
	// TryLease takes the named lease for holder until now+ttl, or renews it
	// if holder already has it; it returns false while another holder's
	// lease has not lapsed. A single-process store may always say true.
	TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// PurgeFinished deletes up to limit of the oldest verifications that
	// are no longer pending and were created before `before`, with their
	// events, delivery attempts and any job left of them; phone numbers of
	// purged rows are gone. It must not hold up the hot path (batches,
	// index-driven). Returns how many verifications it deleted; the caller
	// repeats while that equals limit.
	PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error)
	// PruneCheckFailures deletes failure records older than before; returns
	// how many.
	PruneCheckFailures(ctx context.Context, before time.Time) (int, error)
}
