-- MCP servers (streamable HTTP) whose tools a project's agent may call:
-- their tools are listed when a run begins and called through the agent's
-- guarded HTTP client.
CREATE TABLE mcp_servers (
    id         UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);
