-- verifyd schema, SQLite. Times are INTEGER unix microseconds, UTC (0 = unset).

CREATE TABLE accounts (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	disabled   INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	account_id TEXT NOT NULL REFERENCES accounts (id),
	name       TEXT NOT NULL,
	prefix     TEXT NOT NULL,
	hash       BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

CREATE TABLE profiles (
	id                        TEXT PRIMARY KEY,
	account_id                TEXT NOT NULL REFERENCES accounts (id),
	name                      TEXT NOT NULL,
	webhook_url               TEXT NOT NULL,
	webhook_failover_url      TEXT NOT NULL,
	language                  TEXT NOT NULL,
	daily_spend_limit         REAL,
	daily_spend_limit_enabled INTEGER NOT NULL,
	channels                  TEXT NOT NULL, -- JSON object: channel -> settings
	created_at                INTEGER NOT NULL,
	updated_at                INTEGER NOT NULL,
	deleted_at                INTEGER
);
-- Not partial: it also serves lookups that include deleted profiles.
CREATE INDEX profiles_account_name ON profiles (account_id, name);
CREATE INDEX profiles_account_created ON profiles (account_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE templates (
	id         TEXT PRIMARY KEY,
	account_id TEXT NOT NULL REFERENCES accounts (id),
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX templates_account ON templates (account_id, created_at, id);

-- Every index on this table costs each trigger a B-tree insert, and those
-- keyed by random values (UUIDs, phone numbers) a page written to the WAL,
-- so there are as few as the hot lookups need:
--   - the unique id serves GetVerification (id = ? AND account_id = ?); an
--     (account_id, id) index would find nothing it does not;
--   - seq (the rowid, growing) is what the event log and delivery attempts
--     are keyed by, so their indexes only append (a random UUID key writes
--     one random page to the WAL per row);
--   - (profile_id, phone_number, created_at DESC, id DESC) serves the newest
--     lookup of every trigger and of checks by phone, and also
--     ListVerificationsByPhone (one seek per profile of the account, then a
--     sort of that phone's few rows), so there is no (account_id,
--     phone_number) index;
--   - the partial index on pending rows only appends (expires_at grows) and
--     shrinks as verifications complete; it serves the expiry sweep.
--     DeleteProfile (rare) finds a profile's pending verifications through
--     the (profile_id, ...) prefix of the phone index instead of an index
--     of its own.
CREATE TABLE verifications (
	seq               INTEGER PRIMARY KEY,
	id                TEXT NOT NULL UNIQUE,
	account_id        TEXT NOT NULL,
	profile_id        TEXT NOT NULL REFERENCES profiles (id),
	type              TEXT NOT NULL,
	phone_number      TEXT NOT NULL,
	code_hash         BLOB,
	custom_code       INTEGER NOT NULL,
	extension         TEXT NOT NULL,
	timeout_secs      INTEGER NOT NULL,
	status            TEXT NOT NULL,
	attempts          INTEGER NOT NULL,
	completion_reason TEXT NOT NULL,
	delivery_status   TEXT NOT NULL,
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL
);
CREATE INDEX verifications_profile_phone ON verifications (profile_id, phone_number, created_at DESC, id DESC);
CREATE INDEX verifications_pending_expiry ON verifications (expires_at) WHERE status = 'pending';

CREATE TABLE jobs (
	id              TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	account_id      TEXT NOT NULL,
	verification_id TEXT NOT NULL,
	payload         BLOB,
	attempt         INTEGER NOT NULL,
	max_attempts    INTEGER NOT NULL,
	state           TEXT NOT NULL,
	run_at          INTEGER NOT NULL,
	locked_by       TEXT NOT NULL,
	locked_until    INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	in_doubt        INTEGER NOT NULL DEFAULT 0 -- set by each claim: it took over a lapsed lease
);
-- Partial indexes by state: a job handed off to the local worker is inserted
-- running and deleted when sent, so it never touches jobs_available.
CREATE INDEX jobs_available ON jobs (run_at) WHERE state = 'available';
-- Lapsed leases: jobs are inserted already running (hand-off to the local
-- worker), so the claim's lapsed-lease branch must not walk every running job.
CREATE INDEX jobs_running_lease ON jobs (locked_until) WHERE state = 'running';

-- seq orders the log (events of one instant keep their write order).
-- verification_seq is the verification's seq: events are written for recent
-- verifications, so its index appends.
CREATE TABLE events (
	seq              INTEGER PRIMARY KEY,
	id               TEXT NOT NULL,
	account_id       TEXT NOT NULL,
	profile_id       TEXT NOT NULL,
	verification_id  TEXT NOT NULL,
	verification_seq INTEGER NOT NULL,
	type             TEXT NOT NULL,
	occurred_at      INTEGER NOT NULL,
	payload          BLOB NOT NULL
);
CREATE INDEX events_verification ON events (verification_seq, seq);

-- Keyed like events; id is not indexed (nothing looks an attempt up by it).
-- verification_seq is NULL for an attempt of an unknown verification.
CREATE TABLE delivery_attempts (
	seq                 INTEGER PRIMARY KEY,
	id                  TEXT NOT NULL,
	verification_id     TEXT NOT NULL,
	verification_seq    INTEGER,
	job_id              TEXT NOT NULL,
	sender              TEXT NOT NULL,
	provider_message_id TEXT NOT NULL,
	parts               INTEGER NOT NULL,
	outcome             TEXT NOT NULL,
	error               TEXT NOT NULL,
	at                  INTEGER NOT NULL
);
CREATE INDEX delivery_attempts_verification ON delivery_attempts (verification_seq, at);

CREATE TABLE check_failures (
	seq          INTEGER PRIMARY KEY,
	profile_id   TEXT NOT NULL,
	phone_number TEXT NOT NULL,
	at           INTEGER NOT NULL
);
CREATE INDEX check_failures_profile_phone ON check_failures (profile_id, phone_number, at);
