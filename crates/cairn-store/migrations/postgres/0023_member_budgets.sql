-- A member's spending limit on models per calendar month: in one project
-- (project_id set) or across every project (project_id NULL).
CREATE TABLE member_budgets (
    id          UUID PRIMARY KEY,
    project_id  UUID REFERENCES projects (id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    monthly_usd DOUBLE PRECISION NOT NULL,
    set_by      UUID NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX member_budgets_by_user ON member_budgets (user_id);
CREATE INDEX member_budgets_by_project ON member_budgets (project_id);
