-- Cairn's initial schema (PostgreSQL). The SQLite twin in ../sqlite must stay
-- equivalent: the contract tests run the same repository code against both.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE projects (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE threads (
    id             UUID PRIMARY KEY,
    project_id     UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    created_by     UUID NOT NULL REFERENCES users (id),
    created_at     TIMESTAMPTZ NOT NULL,
    last_event_seq BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX threads_project ON threads (project_id, id);

CREATE TABLE messages (
    id         UUID PRIMARY KEY,
    thread_id  UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    author_id  UUID REFERENCES users (id) ON DELETE SET NULL,
    content    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_thread ON messages (thread_id, id);

CREATE TABLE runs (
    id         UUID PRIMARY KEY,
    thread_id  UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    error      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_thread ON runs (thread_id, id);

-- The append-only event log of a thread; seq is consecutive per thread.
CREATE TABLE events (
    thread_id  UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    run_id     UUID,
    kind       TEXT NOT NULL,
    payload    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

CREATE TABLE checkpoints (
    run_id     UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       BIGINT NOT NULL,
    state      JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, step)
);

-- File metadata of the project library; the bytes live in the object store.
CREATE TABLE files (
    id           UUID PRIMARY KEY,
    project_id   UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    created_by   UUID REFERENCES users (id) ON DELETE SET NULL,
    run_id       UUID REFERENCES runs (id) ON DELETE SET NULL,
    step         BIGINT,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, path, version)
);

CREATE TABLE audit_log (
    id         UUID PRIMARY KEY,
    actor_id   UUID,
    project_id UUID,
    action     TEXT NOT NULL,
    detail     JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- The embedded durable work queue (the all-in-one shape's stand-in for Redis Streams).
CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    queue            TEXT NOT NULL,
    payload          BYTEA NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    available_at     BIGINT NOT NULL, -- milliseconds since the Unix epoch
    lease_owner      TEXT,
    lease_expires_at BIGINT,          -- milliseconds since the Unix epoch
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_ready ON jobs (queue, state, id);
