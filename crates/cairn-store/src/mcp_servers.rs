//! The MCP servers of projects, the same SQL on both backends.

use async_trait::async_trait;
use cairn_core::hooks::McpServer;
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
    created_by: Uuid,
    created_at: OffsetDateTime,
}

impl From<McpServerRow> for McpServer {
    fn from(r: McpServerRow) -> Self {
        McpServer {
            id: McpServerId(r.id),
            project_id: ProjectId(r.project_id),
            name: r.name,
            url: r.url,
            created_by: UserId(r.created_by),
            created_at: r.created_at,
        }
    }
}

macro_rules! mcp_server_repo {
    ($store:ty) => {
        #[async_trait]
        impl McpServerRepo for $store {
            async fn add_mcp_server(
                &self,
                project: ProjectId,
                name: &str,
                url: &str,
                created_by: UserId,
            ) -> cairn_core::Result<McpServer> {
                let row: McpServerRow = sqlx::query_as(
                    "INSERT INTO mcp_servers (id, project_id, name, url, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, project_id, name, url, created_by, created_at",
                )
                .bind(McpServerId::new().0)
                .bind(project.0)
                .bind(name)
                .bind(url)
                .bind(created_by.0)
                .bind(now())
                .fetch_one(self.pool())
                .await
                .db_entity("MCP server")?;
                Ok(row.into())
            }

            async fn mcp_servers(&self, project: ProjectId) -> cairn_core::Result<Vec<McpServer>> {
                let rows: Vec<McpServerRow> = sqlx::query_as(
                    "SELECT id, project_id, name, url, created_by, created_at FROM mcp_servers \
                     WHERE project_id = $1 ORDER BY created_at, id",
                )
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
