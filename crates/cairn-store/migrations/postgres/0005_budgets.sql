-- A project may cap what its agent runs spend on models (US dollars).
ALTER TABLE projects ADD COLUMN budget_usd DOUBLE PRECISION;
-- What each run has spent on models so far (US dollars).
ALTER TABLE runs ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
