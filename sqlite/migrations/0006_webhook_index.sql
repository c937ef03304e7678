-- One index instead of two for the webhook side of the event log: every
-- event with a webhook paid for an (account_id, seq) and an (id) entry. The
-- deliverer finishes deliveries by (account_id, id), the API reads and lists
-- an account's deliveries by it (event IDs are UUIDv7, in time order, so the
-- index appends).
DROP INDEX events_webhook_account;
DROP INDEX events_webhook_id;
CREATE INDEX events_webhook_account_id ON events (account_id, id) WHERE wh_state != '';
