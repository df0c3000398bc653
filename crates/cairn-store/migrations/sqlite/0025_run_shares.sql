-- Read-only links to one run: anyone holding the token sees that run (its
-- messages, steps and files it showed) without signing in, until the link
-- expires or an owner revokes it. Only the token's SHA-256 is kept.
CREATE TABLE run_shares (
    id         BLOB PRIMARY KEY,
    run_id     BLOB NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX run_shares_by_run ON run_shares (run_id);
