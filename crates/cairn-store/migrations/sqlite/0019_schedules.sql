-- Scheduled runs: a cron expression in a time zone that posts a message,
-- to one thread or a new one each time, as a service account of the
-- project. A process takes a tick by moving next_run_at on from the value
-- it read, so one run starts per tick however many processes poll.
CREATE TABLE schedules (
    id          BLOB PRIMARY KEY,
    project_id  BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    message     TEXT NOT NULL,
    thread_id   BLOB REFERENCES threads (id) ON DELETE CASCADE,
    run_as      BLOB NOT NULL REFERENCES users (id),
    missed      TEXT NOT NULL,
    paused      BOOLEAN NOT NULL,
    next_run_at TEXT NOT NULL,
    last_run_at TEXT,
    last_run_id BLOB,
    last_error  TEXT,
    created_by  BLOB NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;
CREATE INDEX schedules_by_project ON schedules (project_id);
