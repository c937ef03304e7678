-- A delivery job handed to the local worker in its trigger's transaction
-- (inserted running, leased to that worker) is kept here instead of in
-- jobs, keyed by its verification's seq. A jobs row cost each trigger an
-- insert into three B-trees (the table, its random id index and
-- jobs_running_lease) and a delete from the same three; a row here is one
-- B-tree, appended at its right edge (seqs grow) and deleted when the send
-- is recorded. The table holds only the hand-offs in flight, so there is
-- no index: ClaimJobs walks it for lapsed leases. A hand-off whose lease
-- lapses (its process died, or a send outlived the lease), or whose outcome
-- is a retry, a dead job or a failed verification, is moved into jobs
-- first and goes on from there as any claimed job. (The columns are kept
-- off the verifications row: a sealed payload there made the row three
-- times wider until the send was recorded, and the table's pages were left
-- a third full.)
CREATE TABLE handoffs (
	seq          INTEGER PRIMARY KEY, -- the verification's
	job          TEXT NOT NULL,       -- the job's id
	payload      BLOB,
	locked_by    TEXT NOT NULL,
	locked_until INTEGER NOT NULL,
	attempt      INTEGER NOT NULL,
	max_attempts INTEGER NOT NULL,
	at           INTEGER NOT NULL     -- the job's run_at and created_at
);
