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

/// Deleting a thread forgets what its runs remembered; deleting a project
/// forgets all of its memory, another project's untouched.
async fn deletions_forget(store: Arc<dyn Store>) -> (ProjectId, ProjectId) {
    use cairn_core::lifecycle::DeletionKind;
    use cairn_core::model::NewThread;
    let mine = project(&store, "doomed").await;
    let theirs = project(&store, "kept").await;
    let owner = store.members(mine).await.unwrap()[0].user_id;
    let new_thread = NewThread { project_id: mine, title: "T".into(), created_by: owner, model: None };
    let thread = store.create_thread(new_thread).await.unwrap();
    let from_thread = format!("thread:{}", thread.id);
    store
        .add_memory(vec![
            chunk(mine, &from_thread, "said in the thread", vec![1.0, 0.0, 0.0]),
            chunk(mine, "note", "a note", vec![0.0, 1.0, 0.0]),
            chunk(theirs, "note", "theirs", vec![1.0, 0.0, 0.0]),
        ])
        .await
        .unwrap();
    store.add_memory(vec![chunk(mine, "file:a.txt", "a file's text", vec![0.0, 0.0, 1.0])]).await.unwrap();
    let notes: Vec<String> = store.memory_notes(mine).await.unwrap().into_iter().map(|c| c.text).collect();
    assert_eq!(notes, ["said in the thread", "a note"], "notes, oldest first, without the files' text");
    store.request_deletion(DeletionKind::Thread, thread.id.0, owner).await.unwrap();
    store.purge_thread(thread.id).await.unwrap();
    let left: Vec<String> = store.memory_notes(mine).await.unwrap().into_iter().map(|c| c.text).collect();
    assert_eq!(left, ["a note"], "the thread's memory is forgotten, the project's note stays");
    assert_eq!(store.search_memory(mine, &[1.0, 0.0, 0.0], 10).await.unwrap().len(), 2, "the note and the file");
    store.request_deletion(DeletionKind::Project, mine.0, owner).await.unwrap();
    store.purge_project(mine).await.unwrap();
    assert!(store.search_memory(mine, &[0.0, 1.0, 0.0], 10).await.unwrap().is_empty());
    assert_eq!(store.search_memory(theirs, &[1.0, 0.0, 0.0], 10).await.unwrap().len(), 1);
    (mine, theirs)
}

#[tokio::test]
async fn deletions_forget_memory_on_sqlite_vectors_included() {
    let dir = TempDir::new("memory");
    let db = Database::open(&dir.sqlite_url(), &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let (mine, theirs) = deletions_forget(db.store()).await;
    let Database::Sqlite(pool) = &db else { unreachable!() };
    // The vec0 tables know no foreign keys: the purge removes their rows itself.
    assert_eq!(cairn_testkit::leftovers::sqlite_vectors(pool, mine.0).await, 0);
    assert_eq!(cairn_testkit::leftovers::sqlite_vectors(pool, theirs.0).await, 1);
}

#[tokio::test]
async fn deletions_forget_memory_on_postgres() {
    let pg = TestPostgres::create_with_vector().await;
    deletions_forget(open(&pg.url).await).await;
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
