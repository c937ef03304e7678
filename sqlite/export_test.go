package sqlite

import "time"

// BatchStats returns how many write transactions committed and how many
// operations they held.
func (s *Store) BatchStats() (batches, ops int64) { return s.batches.Load(), s.batchedOps.Load() }

// WriterBusy returns how long the writer goroutine has spent running batches.
func (s *Store) WriterBusy() time.Duration { return time.Duration(s.busy.Load()) }
