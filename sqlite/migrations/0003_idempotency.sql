-- Stored trigger responses for Idempotency-Key (API.md D13): one row per
-- (account, key), written in the transaction of its verification and
-- replayed until expires_at (24 h). No foreign key: a replay returns the
-- stored bytes even after retention purged the verification. Expired rows
-- are deleted a few at a time by later inserts (expires_at index).
CREATE TABLE idempotency_keys (
	account_id      TEXT NOT NULL,
	key             TEXT NOT NULL,
	fingerprint     BLOB NOT NULL,
	verification_id TEXT NOT NULL,
	response        BLOB NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
