//! What a deletion left behind, read directly from the database (not through
//! the store, whose reads skip what is hidden): every row that still names a
//! deleted project, thread or run.

use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

/// A database to look into.
#[derive(Debug, Clone, Copy)]
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// The tables (and their column) that name a project, a thread or a run.
const BY_PROJECT: &[(&str, &str)] = &[
    ("projects", "id"),
    ("memberships", "project_id"),
    ("threads", "project_id"),
    ("files", "project_id"),
    ("api_keys", "project_id"),
    ("webhooks", "project_id"),
    ("schedules", "project_id"),
    ("mcp_servers", "project_id"),
    ("service_accounts", "project_id"),
    ("memory_chunks", "project_id"),
];
const BY_THREAD: &[(&str, &str)] =
    &[("threads", "id"), ("messages", "thread_id"), ("runs", "thread_id"), ("events", "thread_id")];
const BY_RUN: &[(&str, &str)] =
    &[("checkpoints", "run_id"), ("run_lanes", "run_id"), ("files", "run_id"), ("run_shares", "run_id")];

async fn count(pool: Pool<'_>, table: &str, column: &str, id: Uuid) -> Option<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    let counted = match pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await,
    };
    match counted {
        Ok(n) => Some(n),
        // PostgreSQL makes the memory table on first use.
        Err(error) if table == "memory_chunks" && error.to_string().contains("does not exist") => None,
        Err(error) => panic!("cannot count {table}: {error}"),
    }
}

/// Rows left that name one of the projects, threads or runs, as
/// `table.column = id: n`; empty when nothing is left.
pub async fn leftovers(pool: Pool<'_>, projects: &[Uuid], threads: &[Uuid], runs: &[Uuid]) -> Vec<String> {
    let mut left = Vec::new();
    for (ids, tables) in [(projects, BY_PROJECT), (threads, BY_THREAD), (runs, BY_RUN)] {
        for id in ids {
            for (table, column) in tables {
                if let Some(n) = count(pool, table, column, *id).await.filter(|n| *n > 0) {
                    left.push(format!("{table}.{column} = {id}: {n}"));
                }
            }
        }
    }
    left
}

/// Vectors left in SQLite's `vec0` tables (which know no foreign keys) for
/// a project.
pub async fn sqlite_vectors(pool: &SqlitePool, project: Uuid) -> i64 {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'memory_vec_[0-9]*'")
            .fetch_all(pool)
            .await
            .expect("list the vector tables");
    let mut n = 0;
    for table in tables.iter().filter(|t| t.trim_start_matches("memory_vec_").chars().all(|c| c.is_ascii_digit())) {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE project_id = $1");
        let counted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(project.to_string())
            .fetch_one(pool)
            .await
            .expect("count vectors");
        n += counted;
    }
    n
}
