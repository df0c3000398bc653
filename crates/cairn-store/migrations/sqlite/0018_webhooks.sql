-- A project's webhook endpoints. The signing secret is stored only sealed
-- (the auth crate's key ring); after a rotation the previous one still
-- signs, beside the new, until previous_until.
CREATE TABLE webhooks (
    id              BLOB PRIMARY KEY,
    project_id      BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    secret_sealed   BLOB NOT NULL,
    previous_sealed BLOB,
    previous_until  TEXT,
    enabled         BOOLEAN NOT NULL,
    created_by      BLOB NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL
);
CREATE INDEX webhooks_by_project ON webhooks (project_id);

-- Messages to endpoints: a durable queue. A pending delivery is due at
-- next_attempt_at; a dispatcher claims it by moving leased_until on, so one
-- process tries it at a time; each attempt's outcome is kept (the log).
CREATE TABLE webhook_deliveries (
    id              BLOB PRIMARY KEY,
    webhook_id      BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    response_code   INTEGER,
    duration_ms     INTEGER,
    last_error      TEXT,
    next_attempt_at TEXT,
    leased_until    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
