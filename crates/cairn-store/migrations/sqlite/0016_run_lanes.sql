-- The result of one lane of a planned run's batch of tasks, worked by
-- whichever worker took it from the queue: the supervisor reads it (and a
-- batch run again after a crash finds the lanes already done).
CREATE TABLE run_lanes (
    run_id     BLOB NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    lane       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step, lane)
);
