-- Webhook delivery (D34): the event log is the outbox. An event is written
-- with wh_state 'pending' when its profile has a webhook_url at that moment,
-- else '' (never delivered); rows written before this migration keep ''.
ALTER TABLE events ADD COLUMN wh_state TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN wh_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN wh_round_start INTEGER NOT NULL DEFAULT 0;
-- When the delivery is next due; a claim moves it to the end of the lease,
-- so a lease that lapses makes the delivery due again.
ALTER TABLE events ADD COLUMN wh_next_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN wh_locked_by TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN wh_last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN wh_updated_at INTEGER NOT NULL DEFAULT 0;

-- Due deliveries. New ones enter at wh_next_at 0 (due at once) in seq
-- order, so the index appends; events without a webhook never enter it.
CREATE INDEX events_webhook_due ON events (wh_next_at, seq) WHERE wh_state = 'pending';
-- The account's delivery log, newest first, and lookups by event ID (IDs
-- are UUIDv7, time-ordered: both indexes append).
CREATE INDEX events_webhook_account ON events (account_id, seq) WHERE wh_state != '';
CREATE INDEX events_webhook_id ON events (id) WHERE wh_state != '';

-- One row per POST of an event. event_id is time-ordered (UUIDv7), so the
-- index appends.
CREATE TABLE webhook_attempts (
	seq           INTEGER PRIMARY KEY,
	event_id      TEXT NOT NULL,
	account_id    TEXT NOT NULL,
	attempt       INTEGER NOT NULL,
	url           TEXT NOT NULL,
	status_code   INTEGER NOT NULL,
	latency_us    INTEGER NOT NULL,
	error         TEXT NOT NULL,
	response_head TEXT NOT NULL,
	at            INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, seq);

-- Ed25519 signing keys, one active per account (D35). The private half is
-- sealed under the server key.
CREATE TABLE webhook_keys (
	id             TEXT PRIMARY KEY,
	account_id     TEXT NOT NULL REFERENCES accounts (id),
	public_key     BLOB NOT NULL,
	sealed_private BLOB NOT NULL,
	state          TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);
CREATE INDEX webhook_keys_account ON webhook_keys (account_id, created_at);
CREATE UNIQUE INDEX webhook_keys_active ON webhook_keys (account_id) WHERE state = 'active';
