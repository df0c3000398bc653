-- Deleting threads, projects and accounts. A deleted thread or project is
-- hidden at once (deleted_at) and removed by a deletion job that a
-- background worker claims with a lease; a deleted account keeps its row,
-- erased, so what it wrote keeps an author.
ALTER TABLE threads ADD COLUMN deleted_at TEXT;
ALTER TABLE projects ADD COLUMN deleted_at TEXT;
ALTER TABLE users ADD COLUMN deleted_at TEXT;

CREATE TABLE deletions (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('thread', 'project')),
    target       BLOB NOT NULL,
    project_id   BLOB NOT NULL,
    requested_by BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done')),
    steps_done   INTEGER NOT NULL DEFAULT 0,
    steps_total  INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    due_at       TEXT NOT NULL,
    leased_until TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX deletions_open ON deletions (due_at) WHERE status <> 'done';

-- What the runs of deleted threads spent, by project, member and month, so
-- budgets keep counting it (no foreign keys: it outlives the project).
CREATE TABLE spend_carried (
    project_id  BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    month_start TEXT NOT NULL,
    cost_usd    REAL NOT NULL,
    PRIMARY KEY (project_id, user_id, month_start)
);
CREATE INDEX spend_carried_by_user ON spend_carried (user_id, month_start);
