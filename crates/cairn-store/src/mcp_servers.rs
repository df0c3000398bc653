//! The MCP servers of projects, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::hooks::{McpServer, McpTransport, NewMcpServer};
use cairn_core::store::McpServerRepo;
use cairn_core::{McpServerId, ProjectId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::now;

#[derive(sqlx::FromRow)]
struct McpServerRow {
    id: Uuid,
    project_id: Uuid,
    name: String,
    url: String,
    command: String,
    secret_names: String,
    secrets_sealed: Option<Vec<u8>>,
    created_by: Uuid,
    created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, project_id, name, url, command, secret_names, secrets_sealed, created_by, created_at";

impl From<McpServerRow> for McpServer {
    fn from(r: McpServerRow) -> Self {
        // A stdio server's command is a JSON array; an HTTP server has none.
        let command: Vec<String> = serde_json::from_str(&r.command).unwrap_or_default();
        let transport = match command.is_empty() {
            true => McpTransport::Http { url: r.url },
            false => McpTransport::Stdio { command },
        };
        McpServer {
            id: McpServerId(r.id),
            project_id: ProjectId(r.project_id),
            name: r.name,
            transport,
            secret_names: serde_json::from_str(&r.secret_names).unwrap_or_default(),
            secrets_sealed: r.secrets_sealed,
            created_by: UserId(r.created_by),
            created_at: r.created_at,
        }
    }
}

macro_rules! mcp_server_repo {
    ($store:ty) => {
        #[async_trait]
        impl McpServerRepo for $store {
            async fn add_mcp_server(&self, new: NewMcpServer) -> cairn_core::Result<McpServer> {
                let (url, command) = match &new.transport {
                    McpTransport::Http { url } => (url.clone(), String::new()),
                    McpTransport::Stdio { command } => (String::new(), serde_json::Value::from(command.clone()).to_string()),
                };
                let sql = format!(
                    "INSERT INTO mcp_servers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
                );
                let row: McpServerRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(McpServerId::new().0)
                .bind(new.project.0)
                .bind(&new.name)
                .bind(url)
                .bind(command)
                .bind(serde_json::Value::from(new.secret_names.clone()).to_string())
                .bind(new.secrets_sealed)
                .bind(new.created_by.0)
                .bind(now())
                .fetch_one(self.pool())
                .await
                .db_entity("MCP server")?;
                Ok(row.into())
            }

            async fn mcp_servers(&self, project: ProjectId) -> cairn_core::Result<Vec<McpServer>> {
                let sql = format!("SELECT {COLUMNS} FROM mcp_servers WHERE project_id = $1 ORDER BY created_at, id");
                let rows: Vec<McpServerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(project.0)
                .fetch_all(self.pool())
                .await
                .db()?;
                Ok(rows.into_iter().map(McpServer::from).collect())
            }

            async fn remove_mcp_server(&self, project: ProjectId, id: McpServerId) -> cairn_core::Result<()> {
                let removed = sqlx::query("DELETE FROM mcp_servers WHERE id = $1 AND project_id = $2")
                    .bind(id.0)
                    .bind(project.0)
                    .execute(self.pool())
                    .await
                    .db()?;
                match removed.rows_affected() {
                    0 => Err(cairn_core::Error::NotFound { entity: "MCP server" }),
                    _ => Ok(()),
                }
            }
        }
    };
}

mcp_server_repo!(SqliteStore);
mcp_server_repo!(PostgresStore);
