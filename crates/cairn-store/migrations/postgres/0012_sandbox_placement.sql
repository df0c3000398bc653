-- Sandbox hosts of the distributed shape register here with their capacity
-- and keep a heartbeat; each sandbox's host is recorded, so every worker and
-- gateway finds it. A placement outlives its host's row: a host that died is
-- forgotten and its sandboxes are placed again elsewhere.
CREATE TABLE sandbox_hosts (
    url TEXT PRIMARY KEY,
    capacity BIGINT NOT NULL,
    running BIGINT NOT NULL,
    draining BOOLEAN NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE sandbox_placements (
    sandbox_id UUID PRIMARY KEY,
    host_url TEXT NOT NULL,
    owner_id UUID NOT NULL,
    thread_id UUID,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sandbox_placements_owner ON sandbox_placements (owner_id);
CREATE INDEX sandbox_placements_host ON sandbox_placements (host_url);
