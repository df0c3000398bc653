-- Cairn's initial schema (SQLite). The PostgreSQL twin in ../postgres must stay
-- equivalent: the contract tests run the same repository code against both.

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE projects (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE threads (
    id             BLOB PRIMARY KEY,
    project_id     BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    created_by     BLOB NOT NULL REFERENCES users (id),
    created_at     TEXT NOT NULL,
    last_event_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX threads_project ON threads (project_id, id);

CREATE TABLE messages (
    id         BLOB PRIMARY KEY,
    thread_id  BLOB NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    author_id  BLOB REFERENCES users (id) ON DELETE SET NULL,
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_thread ON messages (thread_id, id);

CREATE TABLE runs (
    id         BLOB PRIMARY KEY,
    thread_id  BLOB NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    created_by BLOB NOT NULL REFERENCES users (id),
    error      TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX runs_thread ON runs (thread_id, id);

-- The append-only event log of a thread; seq is consecutive per thread.
CREATE TABLE events (
    thread_id  BLOB NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    run_id     BLOB,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

CREATE TABLE checkpoints (
    run_id     BLOB NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);

-- File metadata of the project library; the bytes live in the object store.
CREATE TABLE files (
    id           BLOB PRIMARY KEY,
    project_id   BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    created_by   BLOB REFERENCES users (id) ON DELETE SET NULL,
    run_id       BLOB REFERENCES runs (id) ON DELETE SET NULL,
    step         INTEGER,
    created_at   TEXT NOT NULL,
    UNIQUE (project_id, path, version)
);

CREATE TABLE audit_log (
    id         BLOB PRIMARY KEY,
    actor_id   BLOB,
    project_id BLOB,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The embedded durable work queue (the all-in-one shape's stand-in for Redis Streams).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT NOT NULL,
    payload          BLOB NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    available_at     INTEGER NOT NULL, -- milliseconds since the Unix epoch
    lease_owner      TEXT,
    lease_expires_at INTEGER,          -- milliseconds since the Unix epoch
    last_error       TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (queue, state, id);
