-- Packages the agent installs: a project may let its sandboxes install
-- Python packages from the deployment's index, starting from its
-- requirements (a requirements.txt, checked by the API).
ALTER TABLE projects ADD COLUMN packages BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE projects ADD COLUMN requirements TEXT NOT NULL DEFAULT '';
