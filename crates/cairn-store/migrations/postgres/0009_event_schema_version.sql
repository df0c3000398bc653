-- The version of the run event protocol an event's payload was written in
-- (1: before the protocol was typed; the agent's RunEvent reads both).
ALTER TABLE events ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1;
