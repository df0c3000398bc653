//! Project memory on both backends: similarity search ranks chunks by cosine
//! similarity against vectors whose answer is known, keeps projects apart,
//! skips chunks of another length, and forgets by source. PostgreSQL runs
//! with pgvector (`CAIRN_TEST_PGVECTOR_URL`); one without it says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cairn_core::model::{NewMemoryChunk, NewProject};
use cairn_core::store::Store;
use cairn_core::{Error, ProjectId};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{TempDir, TestPostgres};

async fn open(url: &str) -> Arc<dyn Store> {
    let db = Database::open(url, &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    db.store()
}

async fn project(store: &Arc<dyn Store>, name: &str) -> ProjectId {
    let user = cairn_testkit::seed::user(store.as_ref(), &format!("{name}@example.com")).await;
    store.create_project(NewProject { name: name.into(), owner: user.id }).await.unwrap().id
}

fn chunk(project: ProjectId, source: &str, text: &str, embedding: Vec<f32>) -> NewMemoryChunk {
    NewMemoryChunk { project_id: project, source: source.into(), text: text.into(), embedding, created_by: None }
}

async fn ranks_forgets_and_keeps_projects_apart(store: Arc<dyn Store>) {
    let mine = project(&store, "mine").await;
    let theirs = project(&store, "theirs").await;
    // Nothing remembered yet: an empty answer, not an error.
    assert!(store.search_memory(mine, &[1.0, 0.0, 0.0], 5).await.unwrap().is_empty());
    store
        .add_memory(vec![
            chunk(mine, "note", "opposite", vec![-1.0, 0.0, 0.0]),
            chunk(mine, "note", "same", vec![2.0, 0.0, 0.0]),
            chunk(mine, "file:a.txt", "orthogonal", vec![0.0, 3.0, 0.0]),
            chunk(mine, "note", "diagonal", vec![1.0, 1.0, 0.0]),
            chunk(mine, "note", "another model's", vec![1.0, 0.0, 0.0, 0.0]),
            chunk(theirs, "note", "their secret", vec![1.0, 0.0, 0.0]),
        ])
        .await
        .unwrap();
    let found = store.search_memory(mine, &[1.0, 0.0, 0.0], 10).await.unwrap();
    let ranked: Vec<(&str, f32)> = found.iter().map(|(c, s)| (c.text.as_str(), *s)).collect();
    let texts: Vec<&str> = ranked.iter().map(|(t, _)| *t).collect();
    assert_eq!(texts, ["same", "diagonal", "orthogonal", "opposite"], "by cosine similarity, this project's only");
    let expected = [1.0, std::f32::consts::FRAC_1_SQRT_2, 0.0, -1.0];
    for ((text, score), want) in ranked.iter().zip(expected) {
        assert!((score - want).abs() < 1e-4, "{text}: {score} vs {want}");
    }
    assert_eq!(store.search_memory(mine, &[1.0, 0.0, 0.0], 2).await.unwrap().len(), 2, "the limit holds");
    assert_eq!(found[0].0.project_id, mine);

    assert_eq!(store.forget_memory(mine, "file:a.txt").await.unwrap(), 1);
    let left = store.search_memory(mine, &[0.0, 1.0, 0.0], 10).await.unwrap();
    assert!(left.iter().all(|(c, _)| c.source == "note"), "the file's chunks are gone");
    let missing = store.add_memory(vec![chunk(ProjectId::new(), "note", "x", vec![1.0])]).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
}

#[tokio::test]
async fn memory_on_sqlite_with_sqlite_vec() {
    let dir = TempDir::new("memory");
    ranks_forgets_and_keeps_projects_apart(open(&dir.sqlite_url()).await).await;
}

#[tokio::test]
async fn memory_on_postgres_with_pgvector() {
    let pg = TestPostgres::create_with_vector().await;
    ranks_forgets_and_keeps_projects_apart(open(&pg.url).await).await;
}

#[tokio::test]
async fn a_postgres_without_pgvector_says_memory_needs_it() {
    let pg = TestPostgres::create().await;
    let store = open(&pg.url).await;
    let mine = project(&store, "plain").await;
    let available: bool = {
        let probe = Database::open(&pg.url, &OpenOptions::default()).await.unwrap();
        match probe {
            Database::Postgres(pool) => sqlx_probe(&pool).await,
            Database::Sqlite(_) => unreachable!(),
        }
    };
    let added = store.add_memory(vec![chunk(mine, "note", "x", vec![1.0, 0.0])]).await;
    if available {
        added.unwrap();
    } else {
        let error = added.unwrap_err();
        assert!(matches!(error, Error::Unavailable { .. }) && error.to_string().contains("pgvector"), "{error}");
        assert!(store.search_memory(mine, &[1.0, 0.0], 3).await.unwrap().is_empty());
    }
}

/// Whether this server could enable pgvector.
async fn sqlx_probe(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        .fetch_one(pool)
        .await
        .unwrap()
        > 0
}
