-- verifyd schema, PostgreSQL. Times are timestamptz (microseconds, UTC on
-- read). IDs are the text UUIDs the callers give (text, not uuid: an ID in
-- another case or shape must be "not found", never a type error).

CREATE TABLE accounts (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	disabled   boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
	id         text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	name       text NOT NULL,
	prefix     text NOT NULL,
	hash       bytea NOT NULL,
	created_at timestamptz NOT NULL,
	revoked_at timestamptz
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at, id);

CREATE TABLE profiles (
	id                        text PRIMARY KEY,
	account_id                text NOT NULL REFERENCES accounts (id),
	name                      text NOT NULL,
	webhook_url               text NOT NULL,
	webhook_failover_url      text NOT NULL,
	language                  text NOT NULL,
	daily_spend_limit         double precision,
	daily_spend_limit_enabled boolean NOT NULL,
	-- json, not jsonb: kept verbatim (jsonb refuses \u0000 in strings).
	channels                  json NOT NULL,
	created_at                timestamptz NOT NULL,
	updated_at                timestamptz NOT NULL,
	deleted_at                timestamptz
);
CREATE INDEX profiles_account_name ON profiles (account_id, name);
CREATE INDEX profiles_account_created ON profiles (account_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE templates (
	id         text PRIMARY KEY,
	account_id text NOT NULL REFERENCES accounts (id),
	text       text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE INDEX templates_account ON templates (account_id, created_at, id);

-- The hot table. Every index costs each trigger an insert, and a change of
-- status (accept, expiry, supersede) an entry in every index (status is in
-- the partial indexes' predicates, so those updates are never HOT), so
-- there are only those the hot lookups need:
--   - the primary key serves GetVerification and Attempt by ID;
--   - (profile_id, phone_number, created_at DESC, id DESC) serves the newest
--     lookup of every trigger and of checks by phone, and
--     ListVerificationsByPhone (one seek per profile of the account);
--   - the partial indexes on pending rows (ExpirePending, DeleteProfile)
--     stay as small as the pending set;
--   - verifications_finished serves PurgeFinished: a pending row is not in
--     it, so a trigger does not pay for it.
-- A counted wrong code changes attempts and updated_at only, no indexed
-- column: with the free space fillfactor leaves, that update is HOT.
-- profile_id has no foreign key: its check would take a KEY SHARE lock on
-- the profile row for every trigger (multixacts under concurrency), and
-- profiles are never deleted (deleted_at), so it would guard nothing.
CREATE TABLE verifications (
	id                text PRIMARY KEY,
	account_id        text NOT NULL,
	profile_id        text NOT NULL,
	type              text NOT NULL,
	phone_number      text NOT NULL,
	code_hash         bytea,
	custom_code       boolean NOT NULL,
	extension         text NOT NULL,
	timeout_secs      integer NOT NULL,
	status            text NOT NULL,
	attempts          integer NOT NULL,
	completion_reason text NOT NULL,
	delivery_status   text NOT NULL,
	created_at        timestamptz NOT NULL,
	updated_at        timestamptz NOT NULL,
	expires_at        timestamptz NOT NULL
) WITH (fillfactor = 85);
CREATE INDEX verifications_profile_phone ON verifications (profile_id, phone_number, created_at DESC, id DESC);
CREATE INDEX verifications_pending_expiry ON verifications (expires_at) WHERE status = 'pending';
CREATE INDEX verifications_pending_profile ON verifications (profile_id) WHERE status = 'pending';
CREATE INDEX verifications_finished ON verifications (created_at) WHERE status <> 'pending';

-- The durable queue. Claims walk the partial indexes (available by run_at,
-- running by lease end), which hold only unfinished jobs; failed jobs are
-- kept for inspection until their verification is purged (by
-- verification_id).
CREATE TABLE jobs (
	id              text PRIMARY KEY,
	kind            text NOT NULL,
	account_id      text NOT NULL,
	verification_id text NOT NULL,
	payload         bytea,
	attempt         integer NOT NULL,
	max_attempts    integer NOT NULL,
	state           text NOT NULL,
	run_at          timestamptz NOT NULL,
	locked_by       text NOT NULL,
	locked_until    timestamptz, -- NULL: not leased
	last_error      text NOT NULL,
	created_at      timestamptz NOT NULL,
	in_doubt        boolean NOT NULL DEFAULT false -- set by each claim: it took over a lapsed lease
);
CREATE INDEX jobs_available ON jobs (run_at, id) WHERE state = 'available';
CREATE INDEX jobs_running ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_verification ON jobs (verification_id);

-- seq orders the log (events of one instant keep their write order).
CREATE TABLE events (
	seq             bigint GENERATED ALWAYS AS IDENTITY,
	id              text NOT NULL,
	account_id      text NOT NULL,
	profile_id      text NOT NULL,
	verification_id text NOT NULL,
	type            text NOT NULL,
	occurred_at     timestamptz NOT NULL,
	payload         bytea NOT NULL
);
CREATE INDEX events_verification ON events (verification_id, seq);

CREATE TABLE delivery_attempts (
	seq                 bigint GENERATED ALWAYS AS IDENTITY,
	id                  text NOT NULL,
	verification_id     text NOT NULL,
	job_id              text NOT NULL,
	sender              text NOT NULL,
	provider_message_id text NOT NULL,
	parts               integer NOT NULL,
	outcome             text NOT NULL,
	error               text NOT NULL,
	at                  timestamptz NOT NULL
);
CREATE INDEX delivery_attempts_verification ON delivery_attempts (verification_id, at, seq);

-- at grows with time, so check_failures_at only appends; it drives pruning.
CREATE TABLE check_failures (
	profile_id   text NOT NULL,
	phone_number text NOT NULL,
	at           timestamptz NOT NULL
);
CREATE INDEX check_failures_profile_phone ON check_failures (profile_id, phone_number, at);
CREATE INDEX check_failures_at ON check_failures (at);

-- Named leases for periodic work (TryLease): one node at a time.
CREATE TABLE leases (
	name   text PRIMARY KEY,
	holder text NOT NULL,
	until  timestamptz NOT NULL
);
