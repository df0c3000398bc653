//! Deleting threads, projects and accounts, on SQLite and PostgreSQL: a
//! deleted target is hidden at once, its job is claimed by one worker at a
//! time and taken over when that worker dies, and a purge leaves no row
//! behind (checked in the database directly, not through the store) while
//! what was spent still counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cairn_core::Error;
use cairn_core::lifecycle::{DeletionKind, DeletionStatus};
use cairn_core::model::{
    MessageRole, NewApiKey, NewCheckpoint, NewEvent, NewMessage, NewRefreshToken, NewRun, NewThread, RefreshOutcome,
    Role,
};
use cairn_core::store::Store;
use cairn_store::{Database, OpenOptions};
use cairn_testkit::leftovers::{Pool, leftovers};
use cairn_testkit::seed::{Seeded, owner_with_thread, user};
use cairn_testkit::{TempDir, TestPostgres};
use serde_json::json;
use time::OffsetDateTime;

enum Backing {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres(#[allow(dead_code)] TestPostgres),
}

async fn open(url: &str) -> (Arc<dyn Store>, Database) {
    let db = Database::open(url, &OpenOptions::default()).await.expect("open database");
    db.migrate().await.expect("migrate");
    (db.store(), db)
}

fn pool(db: &Database) -> Pool<'_> {
    match db {
        Database::Sqlite(pool) => Pool::Sqlite(pool),
        Database::Postgres(pool) => Pool::Postgres(pool),
    }
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = cairn_testkit::TempDir::new("lifecycle");
                let (store, db) = super::open(&dir.sqlite_url()).await;
                let _backing = super::Backing::Sqlite(dir);
                super::$name(store, &db).await;
            })+
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let pg = cairn_testkit::TestPostgres::create().await;
                let (store, db) = super::open(&pg.url).await;
                let _backing = super::Backing::Postgres(pg);
                super::$name(store, &db).await;
            })+
        }
    };
}

on_both!(
    a_deleted_thread_is_hidden_at_once_and_purged_without_a_trace,
    a_deletion_is_claimed_once_and_taken_over_when_its_worker_dies,
    a_deleted_project_takes_everything_hanging_off_it,
    a_deleted_account_is_erased_and_its_credentials_end,
    the_audit_log_refuses_changes_even_in_the_database,
    member_budgets_are_set_per_project_and_across_projects,
    retention_removes_finished_runs_step_details_and_keeps_answers,
);

fn month_start() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.date().replace_day(1).unwrap().midnight().assume_utc()
}

/// A run of `thread` by `by` that spent `cost`, with a checkpoint, a lane
/// result, events and a message: everything a run leaves.
async fn busy_run(
    store: &Arc<dyn Store>,
    thread: &cairn_core::model::Thread,
    by: cairn_core::UserId,
    cost: f64,
) -> uuid::Uuid {
    let run = store.create_run(NewRun { thread_id: thread.id, created_by: by, trace_parent: None }).await.unwrap();
    store.add_run_cost(run.id, cost).await.unwrap();
    store.put_checkpoint(NewCheckpoint { run_id: run.id, step: 1, state: json!({ "n": 1 }) }, None).await.unwrap();
    store.put_lane_result(run.id, 1, 0, json!({ "lane": 0 }), None).await.unwrap();
    let message = NewMessage {
        thread_id: thread.id,
        role: MessageRole::User,
        author: Some(by),
        content: "hello".into(),
        attachments: vec![],
        origin: None,
    };
    store.append_message(message, None).await.unwrap();
    let event = NewEvent { run_id: Some(run.id), kind: "output".into(), payload: json!({}), schema_version: 2 };
    store.append_events(thread.id, vec![event], None).await.unwrap();
    run.id.0
}

async fn a_deleted_thread_is_hidden_at_once_and_purged_without_a_trace(store: Arc<dyn Store>, db: &Database) {
    let Seeded { user: owner, project, thread } = owner_with_thread(&*store, "del@example.com").await;
    let kept = store
        .create_thread(NewThread { project_id: project.id, title: "Kept".into(), created_by: owner.id, model: None })
        .await
        .unwrap();
    let run = busy_run(&store, &thread, owner.id, 0.75).await;
    busy_run(&store, &kept, owner.id, 0.25).await;

    let deletion = store.request_deletion(DeletionKind::Thread, thread.id.0, owner.id).await.unwrap();
    assert_eq!(
        (deletion.kind, deletion.status, deletion.project_id, deletion.target),
        (DeletionKind::Thread, DeletionStatus::Pending, project.id, thread.id.0)
    );
    // Hidden before anything is removed.
    assert!(matches!(store.thread(thread.id).await, Err(Error::NotFound { entity: "thread" })));
    assert_eq!(store.threads(project.id).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>(), [kept.id]);
    assert!(store.rename_thread(thread.id, "x".into()).await.is_err());
    let twice = store.request_deletion(DeletionKind::Thread, thread.id.0, owner.id).await;
    assert!(matches!(twice, Err(Error::NotFound { entity: "thread" })), "{twice:?}");
    assert_eq!(store.project_thread_ids(project.id).await.unwrap(), [thread.id, kept.id], "the job still sees it");

    let before = leftovers(pool(db), &[], &[thread.id.0], &[run]).await;
    assert_eq!(
        before.len(),
        6,
        "the thread, its messages, events, runs, checkpoints and lanes are there to find: {before:?}"
    );
    store.purge_thread(thread.id).await.unwrap();
    store.purge_thread(thread.id).await.unwrap(); // a second attempt finds nothing to do
    assert_eq!(leftovers(pool(db), &[], &[thread.id.0], &[run]).await, Vec::<String>::new());
    assert_eq!(store.threads(project.id).await.unwrap().len(), 1, "the other thread is untouched");
    // What the deleted thread's run spent still counts, for the project and the member.
    assert!((store.project_cost(project.id).await.unwrap() - 1.0).abs() < 1e-9);
    let spent = store.spent_by_member(Some(project.id), owner.id, month_start()).await.unwrap();
    assert!((spent - 1.0).abs() < 1e-9, "{spent}");
    assert!((store.spent_by_member(None, owner.id, month_start()).await.unwrap() - 1.0).abs() < 1e-9);
    let next_month = month_start() + time::Duration::days(32);
    assert_eq!(store.spent_by_member(None, owner.id, next_month).await.unwrap(), 0.0);

    let done = store.finish_deletion(deletion.id).await.unwrap();
    assert_eq!((done.status, done.finished_at.is_some()), (DeletionStatus::Done, true));
    assert!(store.claim_deletion(Duration::from_secs(60)).await.unwrap().is_none(), "nothing left to do");
}

async fn a_deletion_is_claimed_once_and_taken_over_when_its_worker_dies(store: Arc<dyn Store>, _db: &Database) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "claim@example.com").await;
    let deletion = store.request_deletion(DeletionKind::Thread, thread.id.0, owner.id).await.unwrap();
    let lease = Duration::from_millis(300);
    let claims = futures::future::join_all((0..6).map(|_| store.claim_deletion(lease))).await;
    let won: Vec<_> = claims.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(won.len(), 1, "one worker at a time");
    assert_eq!((won[0].id, won[0].status, won[0].attempts), (deletion.id, DeletionStatus::Running, 1));
    store.deletion_progress(deletion.id, 1, 3, lease).await.unwrap();
    let seen = store.deletion(deletion.id).await.unwrap();
    assert_eq!((seen.steps_done, seen.steps_total), (1, 3));
    assert!(store.claim_deletion(lease).await.unwrap().is_none(), "held by its lease");
    // The worker dies: its lease runs out and another takes the job over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = store.claim_deletion(lease).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts, taken.steps_done), (deletion.id, 2, 1));
    // A failed attempt is due again later, with its error kept.
    store.deletion_failed(deletion.id, "the object store is down".into(), Duration::from_secs(3600)).await.unwrap();
    assert!(store.claim_deletion(lease).await.unwrap().is_none(), "not due yet");
    let failed = store.deletion(deletion.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (DeletionStatus::Running, Some("the object store is down"))
    );
    store.deletion_failed(deletion.id, "again".into(), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.claim_deletion(lease).await.unwrap().unwrap().attempts, 3);
    let missing = store.deletion(cairn_core::DeletionId::new()).await;
    assert!(matches!(missing, Err(Error::NotFound { entity: "deletion" })), "{missing:?}");
}

async fn a_deleted_project_takes_everything_hanging_off_it(store: Arc<dyn Store>, db: &Database) {
    use cairn_core::hooks::NewWebhook;
    let Seeded { user: owner, project, thread } = owner_with_thread(&*store, "proj@example.com").await;
    let member = user(&*store, "member@example.com").await;
    store.set_member(project.id, member.id, Role::Editor).await.unwrap();
    let run = busy_run(&store, &thread, member.id, 0.5).await;
    let account = store.create_service_account(project.id, "CI".into(), Role::Editor, owner.id).await.unwrap();
    let key = NewApiKey {
        owner: account.id,
        project_id: project.id,
        role: Role::Editor,
        name: "ci".into(),
        secret_hash: vec![1],
        expires_at: None,
    };
    let key = store.create_api_key(key).await.unwrap();
    let hook = NewWebhook {
        project_id: project.id,
        url: "https://hooks.example.com/".into(),
        events: vec!["run.succeeded".into()],
        secret_sealed: vec![1],
        created_by: owner.id,
    };
    store.create_webhook(hook).await.unwrap();
    store.queue_deliveries(project.id, "run.succeeded", json!({})).await.unwrap();
    let mcp = cairn_core::hooks::NewMcpServer {
        project: project.id,
        name: "docs".into(),
        transport: cairn_core::hooks::McpTransport::Http { url: "https://mcp.example.com/".into() },
        secret_names: vec!["Authorization".into()],
        secrets_sealed: Some(vec![1]),
        created_by: owner.id,
    };
    store.add_mcp_server(mcp).await.unwrap();
    let other =
        store.create_project(cairn_core::model::NewProject { name: "Other".into(), owner: owner.id }).await.unwrap();

    store.request_deletion(DeletionKind::Project, project.id.0, owner.id).await.unwrap();
    assert!(matches!(store.project(project.id).await, Err(Error::NotFound { entity: "project" })));
    assert_eq!(store.member_role(project.id, owner.id).await.unwrap(), None, "no access check passes");
    let listed: Vec<_> = store.projects_for_user(member.id).await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(store.projects_for_user(owner.id).await.unwrap().len(), 1, "the other project stays");

    for thread in store.project_thread_ids(project.id).await.unwrap() {
        store.purge_thread(thread).await.unwrap();
    }
    store.purge_project(project.id).await.unwrap();
    store.purge_project(project.id).await.unwrap();
    assert_eq!(leftovers(pool(db), &[project.id.0], &[thread.id.0], &[run]).await, Vec::<String>::new());
    assert!(matches!(store.api_key(key.id).await, Err(Error::NotFound { .. })), "its keys are gone");
    let erased = store.user(account.id).await.unwrap();
    assert!(erased.disabled && erased.email.ends_with("@deleted.invalid") && erased.display_name == "Deleted user");
    assert_eq!(store.member_role(other.id, owner.id).await.unwrap(), Some(Role::Owner));
    // The member's spending in the deleted project still counts across projects.
    let spent = store.spent_by_member(None, member.id, month_start()).await.unwrap();
    assert!((spent - 0.5).abs() < 1e-9, "{spent}");
}

async fn a_deleted_account_is_erased_and_its_credentials_end(store: Arc<dyn Store>, _db: &Database) {
    let Seeded { user: gone, project, thread } = owner_with_thread(&*store, "Gone@Example.com").await;
    let stays = user(&*store, "stays@example.com").await;
    store.set_member(project.id, stays.id, Role::Owner).await.unwrap();
    busy_run(&store, &thread, gone.id, 0.0).await;
    let key = NewApiKey {
        owner: gone.id,
        project_id: project.id,
        role: Role::Viewer,
        name: "k".into(),
        secret_hash: vec![7],
        expires_at: None,
    };
    let key = store.create_api_key(key).await.unwrap();
    let session = cairn_core::SessionId::new();
    let expires_at = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let token = NewRefreshToken { user_id: gone.id, session, token_hash: b"refresh".to_vec(), expires_at };
    store.insert_refresh_token(token).await.unwrap();

    let erased = store.delete_account(gone.id).await.unwrap();
    assert_eq!(erased.id, gone.id);
    assert!(erased.disabled && !erased.is_admin && erased.password_hash.is_empty());
    assert_eq!(erased.display_name, "Deleted user");
    assert!(!erased.email.contains("gone"), "the e-mail is erased: {}", erased.email);
    assert!(erased.token_version > gone.token_version, "access tokens issued before are refused");
    assert!(matches!(store.user_by_email("gone@example.com").await, Err(Error::NotFound { .. })));
    assert!(matches!(store.api_key(key.id).await, Err(Error::NotFound { .. })));
    let refreshed = store.use_refresh_token(b"refresh", OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(refreshed, RefreshOutcome::Invalid);
    assert_eq!(store.member_role(project.id, gone.id).await.unwrap(), None);
    assert_eq!(store.member_role(project.id, stays.id).await.unwrap(), Some(Role::Owner), "the project stays");
    let messages = store.messages(thread.id).await.unwrap();
    assert_eq!(messages[0].author, Some(gone.id), "what they wrote keeps its (erased) author");
    let again = store.delete_account(gone.id).await;
    assert!(matches!(again, Err(Error::NotFound { entity: "user" })), "{again:?}");
    // The e-mail is free for a new account.
    user(&*store, "gone@example.com").await;
}

async fn the_audit_log_refuses_changes_even_in_the_database(store: Arc<dyn Store>, db: &Database) {
    use cairn_core::model::NewAuditEntry;
    let entry = NewAuditEntry::new(None, None, "user.deleted", json!({ "user": "u" }), None);
    let entry = store.record_audit(entry).await.unwrap();
    let sql = "UPDATE audit_log SET action = 'nothing.happened' WHERE id = $1";
    let changed = match db {
        Database::Sqlite(pool) => sqlx::query(sql).bind(entry.id.0).execute(pool).await.map(|_| ()),
        Database::Postgres(pool) => sqlx::query(sql).bind(entry.id.0).execute(pool).await.map(|_| ()),
    };
    let error = changed.expect_err("an audit entry cannot be changed");
    assert!(error.to_string().contains("append-only"), "{error}");
    let kept = store.audit_log(&Default::default(), 1).await.unwrap();
    assert_eq!(kept[0].action, "user.deleted");
}

async fn member_budgets_are_set_per_project_and_across_projects(store: Arc<dyn Store>, _db: &Database) {
    let Seeded { user: owner, project, thread } = owner_with_thread(&*store, "budget@example.com").await;
    let member = user(&*store, "spender@example.com").await;
    store.set_member(project.id, member.id, Role::Editor).await.unwrap();
    store.set_member_budget(Some(project.id), member.id, Some(2.0), owner.id).await.unwrap();
    store.set_member_budget(Some(project.id), member.id, Some(3.0), owner.id).await.unwrap();
    store.set_member_budget(None, member.id, Some(10.0), owner.id).await.unwrap();
    let mut budgets: Vec<_> =
        store.member_budgets(member.id).await.unwrap().into_iter().map(|b| (b.project_id, b.monthly_usd)).collect();
    budgets.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(budgets, [(Some(project.id), 3.0), (None, 10.0)], "set again, replaced");
    assert_eq!(store.project_member_budgets(project.id).await.unwrap().len(), 1);
    store.set_member_budget(None, member.id, None, owner.id).await.unwrap();
    assert_eq!(store.member_budgets(member.id).await.unwrap().len(), 1, "removed");

    busy_run(&store, &thread, member.id, 1.25).await;
    busy_run(&store, &thread, owner.id, 0.5).await;
    let spending = store.project_spending(project.id, month_start()).await.unwrap();
    let mut spent: Vec<(cairn_core::UserId, f64)> = spending.iter().map(|(u, _, c)| (*u, *c)).collect();
    spent.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(spent, [(owner.id, 0.5), (member.id, 1.25)]);
    assert!(spending.iter().all(|(_, month, _)| *month == month_start()));
    // Still counted once the thread is gone.
    store.request_deletion(DeletionKind::Thread, thread.id.0, owner.id).await.unwrap();
    store.purge_thread(thread.id).await.unwrap();
    let after: f64 = store.project_spending(project.id, month_start()).await.unwrap().iter().map(|(_, _, c)| c).sum();
    assert!((after - 1.75).abs() < 1e-9, "{after}");
}

async fn retention_removes_finished_runs_step_details_and_keeps_answers(store: Arc<dyn Store>, _db: &Database) {
    use cairn_core::model::RunStatus;
    let Seeded { user: owner, project, thread } = owner_with_thread(&*store, "keep@example.com").await;
    let finished =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let running =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let mut events = Vec::new();
    for (run, kind) in [
        (finished.id, "code"),
        (finished.id, "output"),
        (finished.id, "artifact"),
        (finished.id, "usage"),
        (running.id, "code"),
    ] {
        events.push(NewEvent { run_id: Some(run), kind: kind.into(), payload: json!({}), schema_version: 2 });
    }
    store.append_events(thread.id, events, None).await.unwrap();
    for run in [finished.id, running.id] {
        store.put_checkpoint(NewCheckpoint { run_id: run, step: 1, state: json!({}) }, None).await.unwrap();
    }
    let answered = NewEvent {
        run_id: Some(finished.id),
        kind: "run.status".into(),
        payload: json!({ "answer": "42" }),
        schema_version: 2,
    };
    store.set_run_status_logged(finished.id, RunStatus::Succeeded, None, None, Some(answered), None).await.unwrap();
    store.set_run_status(running.id, RunStatus::Running, None, None).await.unwrap();

    let before_it_ended = OffsetDateTime::now_utc() - time::Duration::hours(1);
    assert_eq!(store.prune_run_details(project.id, before_it_ended, 10).await.unwrap().runs, 0, "too recent");
    let later = OffsetDateTime::now_utc() + time::Duration::days(1);
    let pruned = store.prune_run_details(project.id, later, 10).await.unwrap();
    assert_eq!((pruned.runs, pruned.events, pruned.checkpoints), (1, 2, 1), "the finished run's code and output");
    let kinds: Vec<(Option<cairn_core::RunId>, String)> =
        store.events_after(thread.id, 0, 100).await.unwrap().into_iter().map(|e| (e.run_id, e.kind)).collect();
    let of = |run| kinds.iter().filter(|(r, _)| *r == Some(run)).map(|(_, k)| k.as_str()).collect::<Vec<_>>();
    assert_eq!(of(finished.id), ["artifact", "usage", "run.status"], "its answer, files and spending stay");
    assert_eq!(of(running.id), ["code"], "a running run keeps everything");
    assert!(store.run(finished.id).await.unwrap().details_removed_at.is_some());
    assert!(store.run(running.id).await.unwrap().details_removed_at.is_none());
    assert!(store.checkpoints(finished.id).await.unwrap().is_empty());
    assert_eq!(store.checkpoints(running.id).await.unwrap().len(), 1);
    assert_eq!(store.prune_run_details(project.id, later, 10).await.unwrap().runs, 0, "once");
    assert_eq!(store.retention_settings().await.unwrap(), [(project.id, None)]);

    let entry =
        store.record_audit(cairn_core::model::NewAuditEntry::new(None, None, "x.y", json!({}), None)).await.unwrap();
    assert_eq!(store.prune_audit(entry.created_at).await.unwrap(), 0);
    assert_eq!(store.prune_audit(later).await.unwrap(), 1);
}
