-- Service accounts: accounts that belong to a project rather than a person,
-- for integrations. Each is a user row (no password: it cannot sign in; its
-- e-mail is a made-up address under .invalid) that is a member of its one
-- project, and holds that project's keys, so what its keys do is recorded
-- under its name and outlives the person who made it.
CREATE TABLE service_accounts (
    user_id    BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL
);
CREATE INDEX service_accounts_by_project ON service_accounts (project_id);
