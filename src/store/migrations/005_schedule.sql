-- Check-ins: a queued message is not delivered before `deliver_at`.
ALTER TABLE messages ADD COLUMN deliver_at TEXT;
CREATE INDEX messages_scheduled ON messages (deliver_at) WHERE deliver_at IS NOT NULL;
