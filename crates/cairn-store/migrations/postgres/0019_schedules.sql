-- Scheduled runs: a cron expression in a time zone that posts a message,
-- to one thread or a new one each time, as a service account of the
-- project. A process takes a tick by moving next_run_at on from the value
-- it read, so one run starts per tick however many processes poll.
CREATE TABLE schedules (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    message     TEXT NOT NULL,
    thread_id   UUID REFERENCES threads (id) ON DELETE CASCADE,
    run_as      UUID NOT NULL REFERENCES users (id),
    missed      TEXT NOT NULL,
    paused      BOOLEAN NOT NULL,
    next_run_at TIMESTAMPTZ NOT NULL,
    last_run_at TIMESTAMPTZ,
    last_run_id UUID,
    last_error  TEXT,
    created_by  UUID NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;
CREATE INDEX schedules_by_project ON schedules (project_id);
