package postgres

// BatchStats is what the writers of a Store did (writer.go).
type BatchStats struct {
	Batches   int64 // committed batches
	Ops       int64 // operations run in committed batches
	MaxOps    int64 // the most operations run in one committed batch
	Alone     int64 // operations a writer took alone (run as their own transaction)
	Carried   int64 // operations carried to a next batch
	Fallbacks int64 // batches whose operations then ran alone
	Failed    int64 // batches whose operations failed with the batch's error
}

// BatchStats returns what the writers did so far.
func (s *Store) BatchStats() BatchStats {
	st := &s.stats
	return BatchStats{Batches: st.batches.Load(), Ops: st.ops.Load(), MaxOps: st.maxOps.Load(),
		Alone: st.alone.Load(), Carried: st.carried.Load(), Fallbacks: st.fallbacks.Load(), Failed: st.failed.Load()}
}

// Queued returns the number of operations queued for the writers.
func (s *Store) Queued() int { return len(s.wq) }
