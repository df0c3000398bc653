-- What each placed sandbox is doing, as its host reports with every
-- heartbeat (or a caller that paused or resumed it): running or paused, busy,
-- last active. Workers count a member's running sandboxes over every host
-- from it, and pause the least recently used idle one at the cap.
ALTER TABLE sandbox_placements ADD COLUMN running BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE sandbox_placements ADD COLUMN busy BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sandbox_placements ADD COLUMN active_at TIMESTAMPTZ;
