-- Sign-in sessions, password recovery and API keys (SQLite; the PostgreSQL
-- twin in ../postgres must stay equivalent).

ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN client_addr TEXT;
CREATE INDEX audit_log_project ON audit_log (project_id, id);

-- Refresh tokens, by the SHA-256 of the token. A session is the chain of
-- tokens issued from one sign-in; each use spends a token and adds the next.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE password_resets (
    token_hash BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY,
    owner_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX api_keys_owner ON api_keys (owner_id, id);
