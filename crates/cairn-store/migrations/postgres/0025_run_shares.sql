-- Read-only links to one run: anyone holding the token sees that run (its
-- messages, steps and files it showed) without signing in, until the link
-- expires or an owner revokes it. Only the token's SHA-256 is kept.
CREATE TABLE run_shares (
    id         UUID PRIMARY KEY,
    run_id     UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX run_shares_by_run ON run_shares (run_id);
