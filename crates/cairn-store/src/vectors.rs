//! Project memory on both backends. Unlike the rest of the store the SQL
//! differs: SQLite keeps embeddings in sqlite-vec `vec0` tables (one per
//! embedding length) searched by its KNN scan, PostgreSQL as pgvector
//! `vector`s compared by `<=>`. Both search exactly (a scan of the project's
//! chunks, no approximate index), and both skip chunks whose length differs
//! from the query's (an embedding model changed).

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

/// The project's chunks that are not a library file's text, oldest first.
const NOTES_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM memory_chunks WHERE project_id = $1 AND substr(source, 1, 5) <> 'file:' ORDER BY created_at, id"
);

fn blob(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// pgvector's text form: `[0.1,0.2,…]`.
fn vector_text(embedding: &[f32]) -> String {
    let parts: Vec<String> = embedding.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// SQLite keeps each embedding length's vectors in a sqlite-vec `vec0`
/// table of its own (made on first use), partitioned by project, whose rows
/// share their rowid with `memory_chunks`: its KNN scan reads vectors in
/// contiguous chunks, much faster than a function over BLOB rows.
fn vec_table(dims: usize) -> String {
    format!("memory_vec_{dims}")
}

fn missing_table(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.message().contains("no such table"))
}

#[derive(sqlx::FromRow)]
struct InsertedRow {
    #[sqlx(flatten)]
    row: MemoryRow,
    rowid: i64,
}

#[async_trait]
impl MemoryRepo for SqliteStore {
    async fn add_memory(&self, chunks: Vec<NewMemoryChunk>) -> cairn_core::Result<Vec<MemoryChunk>> {
        // IMMEDIATE: the transaction reads (the schema) before it writes, and a
        // deferred one fails with SQLITE_BUSY_SNAPSHOT, not waiting, when
        // another connection wrote in between.
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await.db()?;
        let mut added = Vec::with_capacity(chunks.len());
        let mut tables = std::collections::HashSet::new();
        for chunk in chunks {
            let dims = chunk.embedding.len();
            if tables.insert(dims) {
                // `dims` is a number: nothing of the caller's reaches the SQL text.
                let ddl = format!(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS {} USING vec0(project_id TEXT PARTITION KEY, \
                     embedding FLOAT[{dims}] distance_metric=cosine)",
                    vec_table(dims)
                );
                sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await.db()?;
            }
            let sql = concat!(
                "INSERT INTO memory_chunks (id, project_id, source, text, embedding, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING rowid, ",
                columns!()
            );
            let vector = blob(&chunk.embedding);
            let inserted: InsertedRow = sqlx::query_as(sql)
                .bind(MemoryId::new().0)
                .bind(chunk.project_id.0)
                .bind(chunk.source)
                .bind(chunk.text)
                .bind(&vector)
                .bind(chunk.created_by.map(|u| u.0))
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .db_entity("project")?;
            let insert = format!("INSERT INTO {} (rowid, project_id, embedding) VALUES ($1, $2, $3)", vec_table(dims));
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(inserted.rowid)
                .bind(chunk.project_id.0.to_string())
                .bind(vector)
                .execute(&mut *tx)
                .await
                .db()?;
            added.push(inserted.row.into());
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
        let sql = format!(
            "SELECT c.id, c.project_id, c.source, c.text, c.created_by, c.created_at, 1.0 - v.distance AS score \
             FROM (SELECT rowid, distance FROM {} WHERE embedding MATCH $1 AND k = $2 AND project_id = $3) v \
             JOIN memory_chunks c ON c.rowid = v.rowid ORDER BY v.distance",
            vec_table(embedding.len())
        );
        let found = sqlx::query_as::<_, ScoredRow>(sqlx::AssertSqlSafe(sql))
            .bind(blob(embedding))
            .bind(limit.max(0))
            .bind(project.0.to_string())
            .fetch_all(self.pool())
            .await;
        match found {
            Ok(rows) => Ok(rows.into_iter().map(|r| (r.row.into(), r.score as f32)).collect()),
            // Nothing of this length was ever remembered.
            Err(error) if missing_table(&error) => Ok(Vec::new()),
            Err(error) => Err(error).db(),
        }
    }

    async fn memory_notes(&self, project: ProjectId) -> cairn_core::Result<Vec<MemoryChunk>> {
        let rows: Vec<MemoryRow> = sqlx::query_as(NOTES_SQL).bind(project.0).fetch_all(self.pool()).await.db()?;
        Ok(rows.into_iter().map(MemoryChunk::from).collect())
    }

    async fn forget_memory(&self, project: ProjectId, source: &str) -> cairn_core::Result<u64> {
        self.forget(project, Some(source)).await
    }
}

impl SqliteStore {
    /// Forgets everything the project remembered. The chunks' rows would go
    /// with the project's (a foreign key), but not their vectors in the
    /// `vec0` tables, which know no foreign keys.
    pub(crate) async fn forget_project_memory(&self, project: ProjectId) -> cairn_core::Result<u64> {
        self.forget(project, None).await
    }

    /// Forgets the project's chunks of `source` (all of them without one),
    /// their vectors with them.
    async fn forget(&self, project: ProjectId, source: Option<&str>) -> cairn_core::Result<u64> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await.db()?;
        let gone: Vec<(i64, i64)> = sqlx::query_as(
            "DELETE FROM memory_chunks WHERE project_id = $1 AND ($2 IS NULL OR source = $2) \
             RETURNING rowid, length(embedding) / 4",
        )
        .bind(project.0)
        .bind(source)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        for (rowid, dims) in &gone {
            let delete = format!("DELETE FROM {} WHERE rowid = $1", vec_table(usize::try_from(*dims).unwrap_or(0)));
            sqlx::query(sqlx::AssertSqlSafe(delete)).bind(rowid).execute(&mut *tx).await.db()?;
        }
        tx.commit().await.db()?;
        Ok(gone.len() as u64)
    }
}

impl PostgresStore {
    /// Forgets everything the project remembered.
    pub(crate) async fn forget_project_memory(&self, project: ProjectId) -> cairn_core::Result<u64> {
        self.forget(project, None).await
    }

    /// Forgets the project's chunks of `source` (all of them without one).
    async fn forget(&self, project: ProjectId, source: Option<&str>) -> cairn_core::Result<u64> {
        let done = sqlx::query("DELETE FROM memory_chunks WHERE project_id = $1 AND ($2::text IS NULL OR source = $2)")
            .bind(project.0)
            .bind(source)
            .execute(self.pool())
            .await;
        match done {
            Ok(done) => Ok(done.rows_affected()),
            // Nothing was ever remembered here.
            Err(error) if no_table(&error) => Ok(0),
            Err(error) => Err(error).db(),
        }
    }
}

/// Makes the PostgreSQL table (and enables pgvector) if it is not there yet.
/// Under a transaction-scoped advisory lock: two first uses at once (a note
/// and a file's indexing) would otherwise race in `IF NOT EXISTS` and one
/// fail on a duplicate catalog entry.
async fn ensure_pg_memory(pool: &sqlx::PgPool) -> cairn_core::Result<()> {
    let mut tx = pool.begin().await.db()?;
    sqlx::query("SELECT pg_advisory_xact_lock(7243020517)").execute(&mut *tx).await.db()?;
    let ddl = [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE IF NOT EXISTS memory_chunks (id UUID PRIMARY KEY, \
         project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE, source TEXT NOT NULL, \
         text TEXT NOT NULL, embedding vector NOT NULL, created_by UUID, created_at TIMESTAMPTZ NOT NULL)",
        "CREATE INDEX IF NOT EXISTS memory_chunks_project ON memory_chunks (project_id, source)",
    ];
    for statement in ddl {
        if let Err(error) = sqlx::query(statement).execute(&mut *tx).await {
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
    tx.commit().await.db()
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

    async fn memory_notes(&self, project: ProjectId) -> cairn_core::Result<Vec<MemoryChunk>> {
        match sqlx::query_as::<_, MemoryRow>(NOTES_SQL).bind(project.0).fetch_all(self.pool()).await {
            Ok(rows) => Ok(rows.into_iter().map(MemoryChunk::from).collect()),
            // Nothing was ever remembered here.
            Err(error) if no_table(&error) => Ok(Vec::new()),
            Err(error) => Err(error).db(),
        }
    }

    async fn forget_memory(&self, project: ProjectId, source: &str) -> cairn_core::Result<u64> {
        self.forget(project, Some(source)).await
    }
}
