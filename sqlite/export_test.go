package sqlite

// BatchStats returns how many write transactions committed and how many
// operations they held.
func (s *Store) BatchStats() (batches, ops int64) { return s.batches.Load(), s.batchedOps.Load() }
