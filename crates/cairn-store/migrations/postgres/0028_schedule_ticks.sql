-- A schedule's tick is posted exactly once even when the process that took
-- it dies: the tick taken is kept as pending until what it did is recorded
-- (another process takes over a pending tick that has waited too long), and
-- the message it posts carries the tick as its origin, unique, so a tick
-- posted before its process died is found rather than posted again.
ALTER TABLE schedules ADD COLUMN pending_tick TIMESTAMPTZ;
ALTER TABLE schedules ADD COLUMN pending_since TIMESTAMPTZ;
ALTER TABLE messages ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX messages_origin ON messages (origin) WHERE origin IS NOT NULL;
