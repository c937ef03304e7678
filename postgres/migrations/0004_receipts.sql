-- Delivery receipts (SMPP deliver_sm, provider status callbacks) find the
-- attempt that handed the message over by (sender, provider message id).
CREATE INDEX delivery_attempts_provider ON delivery_attempts (sender, provider_message_id);
