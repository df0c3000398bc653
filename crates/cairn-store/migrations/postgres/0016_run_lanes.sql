-- The result of one lane of a planned run's batch of tasks, worked by
-- whichever worker took it from the queue: the supervisor reads it (and a
-- batch run again after a crash finds the lanes already done).
CREATE TABLE run_lanes (
    run_id     UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       BIGINT NOT NULL,
    lane       BIGINT NOT NULL,
    state      JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, step, lane)
);
