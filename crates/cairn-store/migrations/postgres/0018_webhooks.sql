-- A project's webhook endpoints. The signing secret is stored only sealed
-- (the auth crate's key ring); after a rotation the previous one still
-- signs, beside the new, until previous_until.
CREATE TABLE webhooks (
    id              UUID PRIMARY KEY,
    project_id      UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          JSONB NOT NULL,
    secret_sealed   BYTEA NOT NULL,
    previous_sealed BYTEA,
    previous_until  TIMESTAMPTZ,
    enabled         BOOLEAN NOT NULL,
    created_by      UUID NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_by_project ON webhooks (project_id);

-- Messages to endpoints: a durable queue. A pending delivery is due at
-- next_attempt_at; a dispatcher claims it by moving leased_until on, so one
-- process tries it at a time; each attempt's outcome is kept (the log).
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    webhook_id      UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    response_code   INTEGER,
    duration_ms     BIGINT,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ,
    leased_until    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
