-- MCP servers over stdio, started in the thread's sandbox (`command`: a JSON
-- array of the program and its arguments; `url` is empty for them), and
-- secrets for any MCP server (HTTP headers, or a stdio server's
-- environment): their names in the clear for owners to see, their values
-- sealed by the key ring.
ALTER TABLE mcp_servers ADD COLUMN command TEXT NOT NULL DEFAULT '';
ALTER TABLE mcp_servers ADD COLUMN secret_names TEXT NOT NULL DEFAULT '[]';
ALTER TABLE mcp_servers ADD COLUMN secrets_sealed BLOB;
