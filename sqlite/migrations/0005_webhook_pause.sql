-- When the deliverer finds a profile's receiver saturated it pauses the
-- profile: events written until then are first due at wh_paused_until
-- instead of at once, so a slow receiver's backlog costs no claims (µs;
-- 0 = not paused).
ALTER TABLE profiles ADD COLUMN wh_paused_until INTEGER NOT NULL DEFAULT 0;
