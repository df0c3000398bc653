-- Fencing: a worker claims a run by moving its lease generation on, and its
-- checkpoint, event, message and status writes carry the generation it got.
-- A worker whose lease was taken over holds an older one: its writes are
-- refused.
ALTER TABLE runs ADD COLUMN lease_generation BIGINT NOT NULL DEFAULT 0;
