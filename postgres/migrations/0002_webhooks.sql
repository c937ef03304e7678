-- Webhook delivery (D34): the event log is the outbox. An event is written
-- with wh_state 'pending' when its profile has a webhook_url at that moment,
-- else '' (never delivered); rows written before this migration keep ''.
-- The defaults are constants, so adding the columns rewrites nothing.
--
-- wh_next_at is when the delivery is next due; a claim moves it to the end
-- of the lease (wh_locked_by names the holder), so a lease that lapses makes
-- the delivery due again. New events get the zero time (0001-01-01, Go's
-- zero time.Time): due at once. wh_updated_at is the zero time until the
-- delivery first changes.
ALTER TABLE events
	ADD COLUMN wh_state       text NOT NULL DEFAULT '',
	ADD COLUMN wh_attempts    integer NOT NULL DEFAULT 0,
	ADD COLUMN wh_round_start integer NOT NULL DEFAULT 0,
	ADD COLUMN wh_next_at     timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
	ADD COLUMN wh_locked_by   text NOT NULL DEFAULT '',
	ADD COLUMN wh_last_error  text NOT NULL DEFAULT '',
	ADD COLUMN wh_updated_at  timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00';

-- Due deliveries. New ones enter at the zero time in seq order, so the
-- index appends; events without a webhook never enter it, and finished
-- deliveries leave it.
CREATE INDEX events_webhook_due ON events (wh_next_at, seq) WHERE wh_state = 'pending';
-- The account's delivery log, newest first, and lookups by event ID (IDs
-- are UUIDv7, time-ordered: both indexes append).
CREATE INDEX events_webhook_account ON events (account_id, seq) WHERE wh_state <> '';
CREATE INDEX events_webhook_id ON events (id) WHERE wh_state <> '';

-- One row per POST of an event; purged with the event (PurgeFinished).
CREATE TABLE webhook_attempts (
	seq           bigint GENERATED ALWAYS AS IDENTITY,
	event_id      text NOT NULL,
	account_id    text NOT NULL,
	attempt       integer NOT NULL,
	url           text NOT NULL,
	status_code   integer NOT NULL,
	latency_us    bigint NOT NULL,
	error         text NOT NULL,
	response_head text NOT NULL,
	at            timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, seq);

-- Ed25519 signing keys, at most one active per account (D35). The private
-- half is sealed under the server key.
CREATE TABLE webhook_keys (
	id             text PRIMARY KEY,
	account_id     text NOT NULL REFERENCES accounts (id),
	public_key     bytea NOT NULL,
	sealed_private bytea NOT NULL,
	state          text NOT NULL,
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL
);
CREATE INDEX webhook_keys_account ON webhook_keys (account_id, created_at, id);
CREATE UNIQUE INDEX webhook_keys_active ON webhook_keys (account_id) WHERE state = 'active';
