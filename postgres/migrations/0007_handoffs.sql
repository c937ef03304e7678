-- A delivery job handed to the local worker in its trigger's transaction
-- (inserted running, leased to that worker) is kept here instead of in
-- jobs. A jobs row cost each trigger a heap tuple and three index entries
-- (jobs_pkey, jobs_running, jobs_verification — the last at a random place)
-- and, once deleted, the vacuuming of all three; a row here has two, both
-- appended (the job ID is a UUIDv7, the lease end grows). The table holds
-- only the hand-offs in flight. A hand-off whose lease lapses (its node
-- died, or a send outlived the lease) is moved into jobs by the next claim
-- of any node; one whose outcome is a retry or a dead job is moved into
-- jobs by that outcome; from there on it is any job.
CREATE TABLE handoffs (
	job             text PRIMARY KEY,
	verification_id text NOT NULL,
	account_id      text NOT NULL,
	payload         bytea,
	locked_by       text NOT NULL,
	locked_until    timestamptz NOT NULL,
	attempt         integer NOT NULL,
	max_attempts    integer NOT NULL,
	at              timestamptz NOT NULL -- the job's run_at and created_at
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
CREATE INDEX handoffs_lease ON handoffs (locked_until);
