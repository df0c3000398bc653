//! Project memory on both backends. Unlike the rest of the store the SQL
//! differs: SQLite keeps embeddings as float32 BLOBs compared by sqlite-vec's
//! `vec_distance_cosine`, PostgreSQL as pgvector `vector`s compared by `<=>`.
//! Both search exactly (a scan of the project's chunks, no approximate
//! index), and both skip chunks whose length differs from the query's (an
//! embedding model changed).

use async_trait::async_trait;
use cairn_core::model::{MemoryChunk, NewMemoryChunk};
use cairn_core::store::MemoryRepo;
use cairn_core::{Dependency, MemoryId, ProjectId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DbResult;
use crate::repo::{PostgresStore, SqliteStore};
use crate::rows::now;

#[derive(sqlx::FromRow)]
struct MemoryRow {
    id: Uuid,
    project_id: Uuid,
    source: String,
    text: String,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
}

impl From<MemoryRow> for MemoryChunk {
    fn from(r: MemoryRow) -> Self {
        MemoryChunk {
            id: MemoryId(r.id),
            project_id: ProjectId(r.project_id),
            source: r.source,
            text: r.text,
            created_by: r.created_by.map(UserId),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ScoredRow {
    #[sqlx(flatten)]
    row: MemoryRow,
    score: f64,
}

macro_rules! columns {
    () => {
        "id, project_id, source, text, created_by, created_at"
    };
}

fn blob(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// pgvector's text form: `[0.1,0.2,…]`.
fn vector_text(embedding: &[f32]) -> String {
    let parts: Vec<String> = embedding.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn dims(embedding: &[f32]) -> i64 {
    i64::try_from(embedding.len()).unwrap_or(i64::MAX)
}

#[async_trait]
impl MemoryRepo for SqliteStore {
    async fn add_memory(&self, chunks: Vec<NewMemoryChunk>) -> cairn_core::Result<Vec<MemoryChunk>> {
        let mut tx = self.pool().begin().await.db()?;
        let mut added = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let sql = concat!(
                "INSERT INTO memory_chunks (id, project_id, source, text, embedding, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                columns!()
            );
            let row: MemoryRow = sqlx::query_as(sql)
                .bind(MemoryId::new().0)
                .bind(chunk.project_id.0)
                .bind(chunk.source)
                .bind(chunk.text)
                .bind(blob(&chunk.embedding))
                .bind(chunk.created_by.map(|u| u.0))
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .db_entity("project")?;
            added.push(row.into());
        }
        tx.commit().await.db()?;
        Ok(added)
    }

    async fn search_memory(
        &self,
        project: ProjectId,
        embedding: &[f32],
        limit: i64,
    ) -> cairn_core::Result<Vec<(MemoryChunk, f32)>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            ", 1.0 - vec_distance_cosine(embedding, $2) AS score FROM memory_chunks \
             WHERE project_id = $1 AND vec_length(embedding) = $3 ORDER BY score DESC LIMIT $4"
        );
        let rows: Vec<ScoredRow> = sqlx::query_as(sql)
            .bind(project.0)
            .bind(blob(embedding))
            .bind(dims(embedding))
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await
            .db()?;
        Ok(rows.into_iter().map(|r| (r.row.into(), r.score as f32)).collect())
    }

    async fn forget_memory(&self, project: ProjectId, source: &str) -> cairn_core::Result<u64> {
        let done = sqlx::query("DELETE FROM memory_chunks WHERE project_id = $1 AND source = $2")
            .bind(project.0)
            .bind(source)
            .execute(self.pool())
            .await
            .db()?;
        Ok(done.rows_affected())
    }
}

/// Makes the PostgreSQL table (and enables pgvector) if it is not there yet.
async fn ensure_pg_memory(pool: &sqlx::PgPool) -> cairn_core::Result<()> {
    let ddl = [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE IF NOT EXISTS memory_chunks (id UUID PRIMARY KEY, \
         project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE, source TEXT NOT NULL, \
         text TEXT NOT NULL, embedding vector NOT NULL, created_by UUID, created_at TIMESTAMPTZ NOT NULL)",
        "CREATE INDEX IF NOT EXISTS memory_chunks_project ON memory_chunks (project_id, source)",
    ];
    for statement in ddl {
        if let Err(error) = sqlx::query(statement).execute(pool).await {
            let missing = error.as_database_error().is_some_and(|e| {
                matches!(e.code().as_deref(), Some("0A000" | "58P01" | "42704")) || e.message().contains("vector")
            });
            if missing {
                return Err(cairn_core::Error::Unavailable {
                    dependency: Dependency::Database,
                    reason: "PostgreSQL lacks the vector extension (pgvector), which project memory needs".into(),
                });
            }
            return Err(error).db();
        }
    }
    Ok(())
}

/// Nothing was ever remembered here: no table yet (or not even pgvector's type).
fn no_table(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| matches!(e.code().as_deref(), Some("42P01" | "42704")))
}

#[async_trait]
impl MemoryRepo for PostgresStore {
    async fn add_memory(&self, chunks: Vec<NewMemoryChunk>) -> cairn_core::Result<Vec<MemoryChunk>> {
        ensure_pg_memory(self.pool()).await?;
        let mut tx = self.pool().begin().await.db()?;
        let mut added = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let sql = concat!(
                "INSERT INTO memory_chunks (id, project_id, source, text, embedding, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5::vector, $6, $7) RETURNING ",
                columns!()
            );
            let row: MemoryRow = sqlx::query_as(sql)
                .bind(MemoryId::new().0)
                .bind(chunk.project_id.0)
                .bind(chunk.source)
                .bind(chunk.text)
                .bind(vector_text(&chunk.embedding))
                .bind(chunk.created_by.map(|u| u.0))
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .db_entity("project")?;
            added.push(row.into());
        }
        tx.commit().await.db()?;
        Ok(added)
    }

    async fn search_memory(
        &self,
        project: ProjectId,
        embedding: &[f32],
        limit: i64,
    ) -> cairn_core::Result<Vec<(MemoryChunk, f32)>> {
        // The query vector is parsed once (a materialised CTE): cast inline,
        // the text parameter would be parsed again for every row.
        let sql = concat!(
            "WITH q AS MATERIALIZED (SELECT $2::vector AS v) SELECT ",
            columns!(),
            ", 1 - (embedding <=> q.v) AS score FROM memory_chunks, q \
             WHERE project_id = $1 AND vector_dims(embedding) = $3 ORDER BY embedding <=> q.v LIMIT $4"
        );
        let found = sqlx::query_as::<_, ScoredRow>(sql)
            .bind(project.0)
            .bind(vector_text(embedding))
            .bind(i32::try_from(embedding.len()).unwrap_or(i32::MAX))
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await;
        match found {
            Ok(rows) => Ok(rows.into_iter().map(|r| (r.row.into(), r.score as f32)).collect()),
            // Nothing was ever remembered here.
            Err(error) if no_table(&error) => Ok(Vec::new()),
            Err(error) => Err(error).db(),
        }
    }

    async fn forget_memory(&self, project: ProjectId, source: &str) -> cairn_core::Result<u64> {
        let done = sqlx::query("DELETE FROM memory_chunks WHERE project_id = $1 AND source = $2")
            .bind(project.0)
            .bind(source)
            .execute(self.pool())
            .await;
        match done {
            Ok(done) => Ok(done.rows_affected()),
            Err(error) if no_table(&error) => Ok(0),
            Err(error) => Err(error).db(),
        }
    }
}
