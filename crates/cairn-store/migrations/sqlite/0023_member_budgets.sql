-- A member's spending limit on models per calendar month: in one project
-- (project_id set) or across every project (project_id NULL).
CREATE TABLE member_budgets (
    id          BLOB PRIMARY KEY,
    project_id  BLOB REFERENCES projects (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    monthly_usd REAL NOT NULL,
    set_by      BLOB NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX member_budgets_by_user ON member_budgets (user_id);
CREATE INDEX member_budgets_by_project ON member_budgets (project_id);
