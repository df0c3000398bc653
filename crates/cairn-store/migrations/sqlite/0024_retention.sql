-- Retention: a project may keep finished runs' step details for a number
-- of days of its own (NULL: the deployment's setting); a run whose details
-- were removed says when.
ALTER TABLE projects ADD COLUMN retention_days INTEGER;
ALTER TABLE runs ADD COLUMN details_removed_at TEXT;
