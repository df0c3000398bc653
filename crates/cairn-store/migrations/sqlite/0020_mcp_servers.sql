-- MCP servers (streamable HTTP) whose tools a project's agent may call:
-- their tools are listed when a run begins and called through the agent's
-- guarded HTTP client.
CREATE TABLE mcp_servers (
    id         BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);
