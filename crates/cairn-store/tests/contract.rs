//! The store contract: every test runs against SQLite and against the running
//! PostgreSQL, through the same `Store` trait the rest of Cairn uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cairn_core::Error;
use cairn_core::hooks::{McpTransport, NewMcpServer, NewWebhook, Notice, WebhookUpdate};
use cairn_core::model::{
    MessageRole, ModelUsage, NewApiKey, NewAuditEntry, NewCheckpoint, NewEvent, NewFile, NewMessage, NewProject,
    NewRefreshToken, NewRun, NewThread, NewUser, ProjectUpdate, RefreshOutcome, Role, RunStatus, User,
};
use cairn_core::store::Store;
use cairn_store::{Database, OpenOptions};
use cairn_testkit::seed::{Seeded, new_user, owner_with_thread, user};
use cairn_testkit::{TcpProxy, TempDir, TestPostgres};
use serde_json::json;

/// Keeps whatever backs the store alive for the test's duration.
enum Backing {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres(#[allow(dead_code)] TestPostgres),
}

async fn open(url: &str) -> Arc<dyn Store> {
    let db = Database::open(url, &OpenOptions::default()).await.expect("open database");
    db.migrate().await.expect("migrate");
    db.store()
}

async fn sqlite() -> (Arc<dyn Store>, Backing) {
    let dir = TempDir::new("store");
    (open(&dir.sqlite_url()).await, Backing::Sqlite(dir))
}

async fn postgres() -> (Arc<dyn Store>, Backing) {
    let pg = TestPostgres::create().await;
    (open(&pg.url).await, Backing::Postgres(pg))
}

macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _backing) = super::sqlite().await;
                assert_eq!(store.backend(), "sqlite");
                super::$name(store).await;
            })+
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _backing) = super::postgres().await;
                assert_eq!(store.backend(), "postgres");
                super::$name(store).await;
            })+
        }
    };
}

contract!(
    users_are_found_by_id_and_by_email_in_any_case,
    an_email_is_registered_once,
    a_new_project_has_its_creator_as_owner,
    members_are_added_changed_and_removed,
    a_service_account_is_a_member_that_cannot_sign_in,
    a_due_webhook_delivery_is_claimed_by_one_dispatcher_at_a_time,
    a_schedules_tick_is_taken_once,
    a_projects_mcp_servers_are_named_once,
    messages_keep_their_order_and_authors,
    events_are_numbered_consecutively_per_thread,
    concurrent_appenders_never_share_or_skip_a_number,
    finished_runs_keep_their_final_status,
    a_status_and_its_event_are_written_together,
    a_rerun_step_replaces_its_checkpoint,
    checkpoints_of_concurrent_runs_all_land,
    a_worker_whose_run_was_claimed_since_writes_nothing,
    a_claim_waits_for_a_fenced_write_in_flight,
    sandbox_hosts_keep_a_heartbeat_and_sandboxes_their_placement,
    a_hosts_report_keeps_its_placements_true,
    a_lanes_first_result_stays,
    a_waiting_runs_checkpoint_is_edited_only_while_it_waits,
    runs_are_counted_by_status,
    the_audit_log_pages_newest_first,
    references_to_missing_rows_are_refused,
    the_first_user_is_the_admin,
    users_are_listed_disabled_promoted_and_given_new_passwords,
    a_refresh_token_rotates_once_and_its_reuse_ends_the_session,
    concurrent_uses_of_one_refresh_token_rotate_once,
    sessions_end_on_logout_and_for_a_whole_account,
    a_recovery_token_works_once_and_not_after_it_expires,
    api_keys_are_created_listed_and_revoked_by_their_owner,
    uploading_to_a_path_again_adds_a_version,
    files_are_listed_by_prefix_moved_and_deleted,
    projects_and_threads_are_renamed_and_runs_add_up_their_cost,
    a_threads_runs_are_listed_oldest_first,
    threads_are_listed_by_activity_and_found_by_title_or_message,
    a_runs_share_links_are_found_by_token_and_revoked,
    usage_is_added_up_from_the_usage_events_by_user_and_by_project,
);

async fn users_are_found_by_id_and_by_email_in_any_case(store: Arc<dyn Store>) {
    let created = user(&*store, "Ada@Example.com").await;
    assert_eq!(created.email, "ada@example.com");
    assert!(!created.disabled && !created.is_admin);
    assert_eq!(store.user(created.id).await.unwrap(), created);
    assert_eq!(store.user_by_email("ADA@example.COM").await.unwrap(), created);
    assert!(matches!(store.user_by_email("nobody@example.com").await, Err(Error::NotFound { entity: "user" })));
}

async fn an_email_is_registered_once(store: Arc<dyn Store>) {
    user(&*store, "grace@example.com").await;
    let again = store.create_user(NewUser { display_name: "Other".to_owned(), ..new_user("GRACE@example.com") }).await;
    assert!(matches!(again, Err(Error::Conflict { entity: "user" })), "{again:?}");
}

async fn a_new_project_has_its_creator_as_owner(store: Arc<dyn Store>) {
    let owner = user(&*store, "owner@example.com").await;
    let stranger = user(&*store, "stranger@example.com").await;
    let project = store.create_project(NewProject { name: "Research".into(), owner: owner.id }).await.unwrap();
    assert_eq!(store.project(project.id).await.unwrap(), project);
    assert_eq!(store.member_role(project.id, owner.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(store.member_role(project.id, stranger.id).await.unwrap(), None);
    assert_eq!(store.projects_for_user(owner.id).await.unwrap(), vec![(project, Role::Owner)]);
    assert!(store.projects_for_user(stranger.id).await.unwrap().is_empty());
}

async fn members_are_added_changed_and_removed(store: Arc<dyn Store>) {
    let owner = user(&*store, "o@example.com").await;
    let member = user(&*store, "m@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: owner.id }).await.unwrap();
    store.set_member(project.id, member.id, Role::Viewer).await.unwrap();
    assert_eq!(store.member_role(project.id, member.id).await.unwrap(), Some(Role::Viewer));
    let changed = store.set_member(project.id, member.id, Role::Editor).await.unwrap();
    assert_eq!(changed.role, Role::Editor);
    let roles: Vec<_> = store.members(project.id).await.unwrap().into_iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(roles, vec![(owner.id, Role::Owner), (member.id, Role::Editor)]);
    store.remove_member(project.id, member.id).await.unwrap();
    assert_eq!(store.member_role(project.id, member.id).await.unwrap(), None);
    let again = store.remove_member(project.id, member.id).await;
    assert!(matches!(again, Err(Error::NotFound { entity: "membership" })), "{again:?}");
}

async fn a_service_account_is_a_member_that_cannot_sign_in(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "sa@example.com").await;
    let project = thread.project_id;
    let account = store.create_service_account(project, "CI".into(), Role::Editor, owner.id).await.unwrap();
    assert_eq!((account.display_name.as_str(), account.password_hash.as_str()), ("CI", ""));
    assert!(account.email.ends_with("@service.invalid") && !account.is_admin && !account.disabled);
    assert_eq!(store.member_role(project, account.id).await.unwrap(), Some(Role::Editor));
    assert_eq!(store.service_accounts(project).await.unwrap(), [account.id]);
    assert_eq!(store.user_by_email(&account.email).await.unwrap().id, account.id);
    let nowhere = store.create_service_account(cairn_core::ProjectId::new(), "X".into(), Role::Viewer, owner.id).await;
    assert!(nowhere.is_err(), "a service account of no project is refused whole");
    assert_eq!(store.service_accounts(project).await.unwrap().len(), 1);
}

async fn a_due_webhook_delivery_is_claimed_by_one_dispatcher_at_a_time(store: Arc<dyn Store>) {
    use cairn_core::hooks::{Attempt, DeliveryStatus, NewWebhook, WebhookUpdate};
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "wh@example.com").await;
    let project = thread.project_id;
    let new = NewWebhook {
        project_id: project,
        url: "https://hooks.example.com/cairn".into(),
        events: vec!["run.succeeded".into()],
        secret_sealed: vec![1, 2, 3],
        created_by: owner.id,
    };
    let hook = store.create_webhook(new).await.unwrap();
    assert!(store.queue_deliveries(project, "member.added", json!({})).await.unwrap().is_empty(), "not subscribed");
    let queued = store.queue_deliveries(project, "run.succeeded", json!({ "type": "run.succeeded" })).await.unwrap();
    assert_eq!((queued.len(), queued[0].status, queued[0].attempts), (1, DeliveryStatus::Pending, 0));
    let lease = Duration::from_secs(60);
    // Eight dispatchers at once: one gets it.
    let claims = futures::future::join_all((0..8).map(|_| store.claim_delivery(lease))).await;
    let won: Vec<_> = claims.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(won.len(), 1);
    assert_eq!((won[0].id, won[0].attempts), (queued[0].id, 1));
    assert!(store.claim_delivery(lease).await.unwrap().is_none(), "held by its lease");
    // Failed, due again later: not yet claimable; due now: claimed again.
    let failed = |retry_at| Attempt { response_code: Some(500), duration_ms: 12, error: Some("500".into()), retry_at };
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let pending = store.finish_attempt(won[0].id, failed(Some(later))).await.unwrap();
    assert_eq!(
        (pending.status, pending.response_code, pending.duration_ms),
        (DeliveryStatus::Pending, Some(500), Some(12))
    );
    assert!(store.claim_delivery(lease).await.unwrap().is_none());
    store.redeliver(won[0].id).await.unwrap();
    let again = store.claim_delivery(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    // A lease that ran out: another dispatcher takes it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = store.claim_delivery(lease).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (won[0].id, 3));
    let done = Attempt { response_code: Some(204), duration_ms: 3, error: None, retry_at: None };
    let delivered = store.finish_attempt(taken.id, done).await.unwrap();
    assert_eq!(
        (delivered.status, delivered.next_attempt_at, delivered.last_error),
        (DeliveryStatus::Delivered, None, None)
    );
    assert!(store.claim_delivery(lease).await.unwrap().is_none());
    let given_up = store.queue_deliveries(project, "run.succeeded", json!({})).await.unwrap();
    store.claim_delivery(lease).await.unwrap().unwrap();
    let failed_for_good = store.finish_attempt(given_up[0].id, failed(None)).await.unwrap();
    assert_eq!(failed_for_good.status, DeliveryStatus::Failed);
    assert_eq!(
        store.deliveries(hook.id, 10).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(),
        [given_up[0].id, won[0].id]
    );
    // A disabled endpoint gets nothing queued; a rotation keeps the old secret.
    store.update_webhook(hook.id, WebhookUpdate { enabled: Some(false), ..Default::default() }).await.unwrap();
    assert!(store.queue_deliveries(project, "run.succeeded", json!({})).await.unwrap().is_empty());
    let rotated = store.rotate_webhook_secret(hook.id, vec![9], later).await.unwrap();
    assert_eq!((rotated.secret_sealed, rotated.previous_sealed), (vec![9], Some(vec![1, 2, 3])));
    store.delete_webhook(hook.id).await.unwrap();
    assert!(matches!(store.delivery(won[0].id).await, Err(Error::NotFound { .. })), "its log goes with it");
}

async fn a_schedules_tick_is_taken_once(store: Arc<dyn Store>) {
    use cairn_core::schedule::{MissedTicks, NewSchedule, ScheduleUpdate};
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "sched@example.com").await;
    let project = thread.project_id;
    let account = store.create_service_account(project, "Cron".into(), Role::Editor, owner.id).await.unwrap();
    let due = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(1);
    let new = NewSchedule {
        project_id: project,
        name: "Nightly".into(),
        cron: "* * * * *".into(),
        timezone: "UTC".into(),
        message: "Report.".into(),
        thread_id: Some(thread.id),
        run_as: account.id,
        missed: MissedTicks::RunOnce,
        next_run_at: due,
        created_by: owner.id,
    };
    let schedule = store.create_schedule(new).await.unwrap();
    assert_eq!(store.schedules(project).await.unwrap(), std::slice::from_ref(&schedule));
    let now = time::OffsetDateTime::now_utc();
    let found = store.due_schedules(now, 10).await.unwrap();
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), [schedule.id]);
    let next = due + time::Duration::minutes(1);
    let takes =
        futures::future::join_all((0..6).map(|_| store.take_tick(schedule.id, found[0].next_run_at, next))).await;
    assert_eq!(takes.into_iter().filter(|t| *t.as_ref().unwrap()).count(), 1, "one caller takes the tick");
    assert!(store.due_schedules(now, 10).await.unwrap().is_empty());
    let taken = store.schedule(schedule.id).await.unwrap();
    assert_eq!(taken.next_run_at, next);
    assert!(taken.last_run_at.is_some());
    // The tick stays pending until recorded; stale, one caller takes it over.
    assert_eq!(taken.pending_tick, Some(due));
    let since = taken.pending_since.unwrap();
    assert!(store.stale_ticks(since, 10).await.unwrap().is_empty(), "not before it is stale");
    let later = since + time::Duration::seconds(1);
    let stale = store.stale_ticks(later, 10).await.unwrap();
    assert_eq!(stale.iter().map(|s| s.id).collect::<Vec<_>>(), [schedule.id]);
    let retakes = futures::future::join_all((0..6).map(|_| store.retake_tick(schedule.id, since))).await;
    assert_eq!(retakes.into_iter().filter(|t| *t.as_ref().unwrap()).count(), 1, "one caller takes it over");
    let retaken = store.schedule(schedule.id).await.unwrap();
    assert!(retaken.pending_since.unwrap() > since && retaken.pending_tick == Some(due));
    store.record_tick(schedule.id, None, Some("the service account was deleted".into())).await.unwrap();
    let recorded = store.schedule(schedule.id).await.unwrap();
    assert_eq!(recorded.last_error.as_deref(), Some("the service account was deleted"));
    assert_eq!((recorded.pending_tick, recorded.pending_since), (None, None));
    assert!(store.stale_ticks(later + time::Duration::hours(1), 10).await.unwrap().is_empty());
    assert!(!store.retake_tick(schedule.id, retaken.pending_since.unwrap()).await.unwrap());
    // A message of an origin is posted once, and found by it.
    let once = |text: &str| NewMessage {
        thread_id: thread.id,
        role: MessageRole::User,
        author: Some(account.id),
        content: text.into(),
        attachments: Vec::new(),
        origin: Some(format!("schedule:{}:1", schedule.id)),
    };
    let posted = store.append_message(once("Report."), None).await.unwrap();
    let again = store.append_message(once("Report, again."), None).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    let found = store.message_by_origin(&format!("schedule:{}:1", schedule.id)).await.unwrap();
    assert_eq!(found, Some(posted));
    assert_eq!(store.message_by_origin("schedule:none:1").await.unwrap(), None);
    assert_eq!(store.messages(thread.id).await.unwrap().len(), 1);
    // Paused: never due, its tick not taken.
    let paused = ScheduleUpdate { paused: Some(true), next_run_at: Some(due), ..Default::default() };
    store.update_schedule(schedule.id, paused).await.unwrap();
    assert!(store.due_schedules(now, 10).await.unwrap().is_empty());
    assert!(!store.take_tick(schedule.id, due, next).await.unwrap());
    store.delete_schedule(schedule.id).await.unwrap();
    assert!(matches!(store.schedule(schedule.id).await, Err(Error::NotFound { .. })));
}

async fn a_projects_mcp_servers_are_named_once(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "mcp@example.com").await;
    let project = thread.project_id;
    let http = |name: &str, url: &str| NewMcpServer {
        project,
        name: name.to_owned(),
        transport: McpTransport::Http { url: url.to_owned() },
        secret_names: Vec::new(),
        secrets_sealed: None,
        created_by: owner.id,
    };
    let calc = store.add_mcp_server(http("calc", "https://mcp.example.com/calc")).await.unwrap();
    let again = store.add_mcp_server(http("calc", "https://elsewhere.example.com/mcp")).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    store.add_mcp_server(http("docs", "https://mcp.example.com/docs")).await.unwrap();
    // A stdio server keeps its command, and its secrets sealed beside their names.
    let stdio = NewMcpServer {
        transport: McpTransport::Stdio { command: vec!["python".into(), "-m".into(), "notes_mcp".into()] },
        secret_names: vec!["NOTES_TOKEN".into()],
        secrets_sealed: Some(vec![7, 8, 9]),
        ..http("notes", "")
    };
    store.add_mcp_server(stdio.clone()).await.unwrap();
    let listed = store.mcp_servers(project).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["calc", "docs", "notes"]);
    assert_eq!(listed[0].transport, McpTransport::Http { url: "https://mcp.example.com/calc".into() });
    assert_eq!((&listed[0].secret_names, &listed[0].secrets_sealed), (&Vec::new(), &None));
    assert_eq!(listed[2].transport, stdio.transport);
    assert_eq!((&listed[2].secret_names, &listed[2].secrets_sealed), (&stdio.secret_names, &stdio.secrets_sealed));
    let other = owner_with_thread(&*store, "mcp2@example.com").await.thread.project_id;
    assert!(
        matches!(store.remove_mcp_server(other, calc.id).await, Err(Error::NotFound { .. })),
        "not another project's"
    );
    store.remove_mcp_server(project, calc.id).await.unwrap();
    assert_eq!(store.mcp_servers(project).await.unwrap().len(), 2);
}

async fn messages_keep_their_order_and_authors(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    assert_eq!(store.threads(thread.project_id).await.unwrap(), vec![thread.clone()]);
    let mut written = Vec::new();
    for (role, author, text) in [
        (MessageRole::User, Some(owner.id), "chart the trend"),
        (MessageRole::Assistant, None, "here it is"),
        (MessageRole::User, Some(owner.id), "thanks"),
    ] {
        let attachments = if author.is_some() { vec!["data/sales.csv".to_owned()] } else { Vec::new() };
        let message =
            NewMessage { thread_id: thread.id, role, author, content: text.into(), attachments, origin: None };
        written.push(store.append_message(message, None).await.unwrap());
    }
    assert_eq!(store.messages(thread.id).await.unwrap(), written);
}

fn event(kind: &str, n: i64) -> NewEvent {
    NewEvent { run_id: None, kind: kind.into(), payload: json!({ "n": n }), schema_version: 2 }
}

async fn events_are_numbered_consecutively_per_thread(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let other = store
        .create_thread(NewThread {
            project_id: thread.project_id,
            title: "Other".into(),
            created_by: owner.id,
            model: Some("local/qwen3".into()),
        })
        .await
        .unwrap();
    assert_eq!(store.thread(other.id).await.unwrap().model.as_deref(), Some("local/qwen3"), "a thread keeps its model");
    assert_eq!(thread.model, None);
    let first = store.append_events(thread.id, vec![event("a", 1), event("b", 2)], None).await.unwrap();
    let elsewhere = store.append_events(other.id, vec![event("x", 1)], None).await.unwrap();
    let second = store.append_events(thread.id, vec![event("c", 3)], None).await.unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(elsewhere[0].seq, 1, "each thread has its own numbering");
    assert_eq!(second[0].seq, 3);
    assert!(store.append_events(thread.id, Vec::new(), None).await.unwrap().is_empty());

    let after_one = store.events_after(thread.id, 1, 100).await.unwrap();
    assert_eq!(after_one.iter().map(|e| (e.seq, e.kind.as_str())).collect::<Vec<_>>(), vec![(2, "b"), (3, "c")]);
    assert_eq!((after_one[1].payload.clone(), after_one[1].schema_version), (json!({ "n": 3 }), 2));
    assert_eq!(store.events_after(thread.id, 0, 1).await.unwrap().len(), 1, "limit is honoured");
    assert_eq!(store.thread(thread.id).await.unwrap().last_event_seq, 3);
}

async fn concurrent_appenders_never_share_or_skip_a_number(store: Arc<dyn Store>) {
    let Seeded { thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let tasks: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let batch = vec![event("w", writer * 100 + i), event("w", writer * 100 + i)];
                    store.append_events(thread.id, batch, None).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let all = store.events_after(thread.id, 0, 1000).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=160).collect::<Vec<_>>());
    // A batch is stored as one block: its two events are neighbours.
    for pair in all.chunks(2) {
        assert_eq!(pair[0].payload, pair[1].payload);
    }
}

async fn finished_runs_keep_their_final_status(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let trace = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
    let run = store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: trace.clone() });
    let run = run.await.unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    let running = store.set_run_status(run.id, RunStatus::Running, None, None).await.unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.trace_parent, trace, "a run keeps the trace it began in");
    let failed =
        store.set_run_status(run.id, RunStatus::Failed, Some("provider timed out".into()), None).await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("provider timed out"));
    let late = store.set_run_status(run.id, RunStatus::Succeeded, None, None).await;
    assert!(matches!(late, Err(Error::Conflict { .. })), "{late:?}");
    assert_eq!(store.run(run.id).await.unwrap().status, RunStatus::Failed);
    let missing = store.set_run_status(cairn_core::RunId::new(), RunStatus::Running, None, None).await;
    assert!(matches!(missing, Err(Error::NotFound { entity: "run" })), "{missing:?}");
}

async fn a_status_and_its_event_are_written_together(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "s@example.com").await;
    let run = store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None });
    let run = run.await.unwrap();
    store.append_events(thread.id, vec![event("token", 1)], None).await.unwrap();
    let fence = store.claim_run(run.id).await.unwrap();
    let said = |status: &str| NewEvent {
        run_id: Some(run.id),
        kind: "run.status".into(),
        payload: json!({ "status": status }),
        schema_version: 2,
    };
    // The project's webhooks: one subscribed to finished runs and saved
    // files, one to members only, one disabled.
    let hook = |events: &[&str]| NewWebhook {
        project_id: thread.project_id,
        url: "https://hooks.example.com/cairn".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        secret_sealed: vec![1],
        created_by: owner.id,
    };
    let runs_hook = store.create_webhook(hook(&["run.succeeded", "artifact.saved"])).await.unwrap();
    let members_hook = store.create_webhook(hook(&["member.added"])).await.unwrap();
    let off = store.create_webhook(hook(&["run.succeeded"])).await.unwrap();
    let update = WebhookUpdate { url: None, events: None, enabled: Some(false) };
    store.update_webhook(off.id, update).await.unwrap();
    let notice = |kind: &'static str| Some(Notice { kind, data: json!({ "run": run.id }) });
    let (done, logged) = store
        .set_run_status_logged(
            run.id,
            RunStatus::Succeeded,
            None,
            Some(fence),
            Some(said("succeeded")),
            notice("run.succeeded"),
        )
        .await
        .unwrap();
    let logged = logged.unwrap();
    assert_eq!((done.status, logged.seq, logged.run_id), (RunStatus::Succeeded, 2, Some(run.id)));
    assert_eq!(store.thread(thread.id).await.unwrap().last_event_seq, 2);
    // Its webhook delivery was queued with it, to the subscribed hook only.
    let queued = store.deliveries(runs_hook.id, 10).await.unwrap();
    assert_eq!((queued.len(), queued[0].event_type.as_str()), (1, "run.succeeded"));
    assert_eq!(
        (queued[0].payload["type"].clone(), queued[0].payload["data"]["run"].clone()),
        (json!("run.succeeded"), json!(run.id))
    );
    assert!(queued[0].payload["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{:?}", queued[0].payload);
    assert!(
        store.deliveries(members_hook.id, 10).await.unwrap().is_empty()
            && store.deliveries(off.id, 10).await.unwrap().is_empty()
    );
    // Refused status changes log nothing and queue nothing: a finished run,
    // a superseded fence.
    let late = store
        .set_run_status_logged(run.id, RunStatus::Failed, None, None, Some(said("failed")), notice("run.succeeded"))
        .await;
    assert!(matches!(late, Err(Error::Conflict { .. })), "{late:?}");
    let other = store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None });
    let other = other.await.unwrap();
    let first = store.claim_run(other.id).await.unwrap();
    store.claim_run(other.id).await.unwrap();
    let fenced = store.set_run_status_logged(
        other.id,
        RunStatus::Running,
        None,
        Some(first),
        Some(said("running")),
        notice("run.succeeded"),
    );
    assert!(matches!(fenced.await, Err(Error::LeaseLost { .. })));
    let log = store.events_after(thread.id, 0, 100).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2], "no event of a refused change");
    assert_eq!(log[1].payload["status"], "succeeded");
    assert_eq!(store.deliveries(runs_hook.id, 10).await.unwrap().len(), 1, "no delivery of a refused change");
    // An event appended with a notice queues it too; a fenced one neither.
    let saved = store.append_events_noticed(thread.id, vec![event("artifact", 3)], None, notice("artifact.saved"));
    assert_eq!(saved.await.unwrap()[0].seq, 3);
    let refused =
        store.append_events_noticed(thread.id, vec![event("artifact", 4)], Some(first), notice("artifact.saved"));
    assert!(matches!(refused.await, Err(Error::LeaseLost { .. })));
    let kinds: Vec<String> =
        store.deliveries(runs_hook.id, 10).await.unwrap().into_iter().map(|d| d.event_type).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&"artifact.saved".to_owned()), "{kinds:?}");
    // A member added with a notice queues it with the membership.
    let added = user(&*store, "s2@example.com").await;
    store.set_member_noticed(thread.project_id, added.id, Role::Viewer, notice("member.added")).await.unwrap();
    let told = store.deliveries(members_hook.id, 10).await.unwrap();
    assert_eq!((told.len(), told[0].event_type.as_str()), (1, "member.added"));
    assert_eq!(store.member_role(thread.project_id, added.id).await.unwrap(), Some(Role::Viewer));
}

async fn a_lanes_first_result_stays(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "l@example.com").await;
    let run = store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None });
    let run = run.await.unwrap();
    assert_eq!(store.lane_result(run.id, 4, 1).await.unwrap(), None);
    store.put_lane_result(run.id, 4, 1, json!({ "answer": "first" }), None).await.unwrap();
    store.put_lane_result(run.id, 4, 1, json!({ "answer": "again" }), None).await.unwrap();
    store.put_lane_result(run.id, 4, 2, json!({ "answer": "other lane" }), None).await.unwrap();
    assert_eq!(store.lane_result(run.id, 4, 1).await.unwrap(), Some(json!({ "answer": "first" })));
    assert_eq!(store.lane_result(run.id, 4, 2).await.unwrap(), Some(json!({ "answer": "other lane" })));
    assert_eq!(store.lane_result(run.id, 6, 1).await.unwrap(), None, "another step's lane");
    let orphan = store.put_lane_result(cairn_core::RunId::new(), 4, 1, json!({}), None).await;
    assert!(matches!(orphan, Err(Error::NotFound { .. })), "{orphan:?}");

    // Under the claim the supervisor queued its lanes with: kept while the
    // claim holds, refused once another worker took the run over, and a
    // result kept before stays either way.
    let first = store.claim_run(run.id).await.unwrap();
    store.put_lane_result(run.id, 8, 1, json!({ "answer": "held" }), Some(first)).await.unwrap();
    assert_eq!(store.lane_result(run.id, 8, 1).await.unwrap(), Some(json!({ "answer": "held" })));
    let second = store.claim_run(run.id).await.unwrap();
    let late = store.put_lane_result(run.id, 8, 2, json!({ "answer": "late" }), Some(first)).await;
    assert!(matches!(late, Err(Error::LeaseLost { .. })), "{late:?}");
    assert_eq!(store.lane_result(run.id, 8, 2).await.unwrap(), None, "nothing of the superseded lane");
    store.put_lane_result(run.id, 8, 1, json!({ "answer": "again" }), Some(first)).await.unwrap();
    assert_eq!(store.lane_result(run.id, 8, 1).await.unwrap(), Some(json!({ "answer": "held" })));
    store.put_lane_result(run.id, 8, 2, json!({ "answer": "new holder" }), Some(second)).await.unwrap();
    assert_eq!(store.lane_result(run.id, 8, 2).await.unwrap(), Some(json!({ "answer": "new holder" })));
    let gone = store.put_lane_result(cairn_core::RunId::new(), 8, 1, json!({}), Some(second)).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

async fn projects_and_threads_are_renamed_and_runs_add_up_their_cost(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let project = thread.project_id;
    assert_eq!(store.project_cost(project).await.unwrap(), 0.0, "no runs, nothing spent");
    let renamed = store
        .update_project(project, ProjectUpdate { name: Some("Renamed".into()), ..ProjectUpdate::default() })
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.model.as_deref(), renamed.budget_usd), ("Renamed", None, None));
    let set = store
        .update_project(
            project,
            ProjectUpdate { model: Some(Some("p/m".into())), budget_usd: Some(Some(2.5)), ..ProjectUpdate::default() },
        )
        .await
        .unwrap();
    assert_eq!((set.name.as_str(), set.model.as_deref(), set.budget_usd), ("Renamed", Some("p/m"), Some(2.5)));
    assert_eq!(store.project(project).await.unwrap(), set);
    let cleared = store
        .update_project(project, ProjectUpdate { budget_usd: Some(None), ..ProjectUpdate::default() })
        .await
        .unwrap();
    assert_eq!((cleared.model.as_deref(), cleared.budget_usd), (Some("p/m"), None), "only the budget is cleared");
    let missing = store.update_project(cairn_core::ProjectId::new(), ProjectUpdate::default()).await;
    assert!(matches!(missing, Err(Error::NotFound { entity: "project" })), "{missing:?}");

    let titled = store.rename_thread(thread.id, "New title".into()).await.unwrap();
    assert_eq!((titled.title.as_str(), titled.id), ("New title", thread.id));
    assert_eq!(store.thread(thread.id).await.unwrap().title, "New title");

    let first =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let second =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    store.add_run_cost(first.id, 0.25).await.unwrap();
    store.add_run_cost(first.id, 0.5).await.unwrap();
    store.add_run_cost(second.id, 1.0).await.unwrap();
    assert!((store.project_cost(project).await.unwrap() - 1.75).abs() < 1e-9);
    let elsewhere = store.create_project(NewProject { name: "Q".into(), owner: owner.id }).await.unwrap();
    assert_eq!(store.project_cost(elsewhere.id).await.unwrap(), 0.0, "another project's runs do not count");
    let no_run = store.add_run_cost(cairn_core::RunId::new(), 1.0).await;
    assert!(matches!(no_run, Err(Error::NotFound { entity: "run" })), "{no_run:?}");
}

async fn threads_are_listed_by_activity_and_found_by_title_or_message(store: Arc<dyn Store>) {
    let Seeded { user: owner, project, thread: first } = owner_with_thread(&*store, "t@example.com").await;
    let new_thread =
        |title: &str| NewThread { project_id: project.id, title: title.into(), created_by: owner.id, model: None };
    let second = store.create_thread(new_thread("Quarterly SALES")).await.unwrap();
    let third = store.create_thread(new_thread("100% of 1_0")).await.unwrap();
    let ids = |threads: Vec<cairn_core::model::Thread>| threads.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(store.threads(project.id).await.unwrap()), vec![third.id, second.id, first.id], "newest first");
    // A message makes the oldest thread the most recently active.
    let post = |thread, text: &str| NewMessage {
        thread_id: thread,
        role: MessageRole::User,
        author: Some(owner.id),
        content: text.into(),
        attachments: Vec::new(),
        origin: None,
    };
    store.append_message(post(first.id, "Chart the sales by region, please"), None).await.unwrap();
    store.append_message(post(first.id, "and the sales by month"), None).await.unwrap();
    assert_eq!(ids(store.threads(project.id).await.unwrap()), vec![first.id, third.id, second.id]);

    let found = store.search_threads(&[project.id], "sales", 10).await.unwrap();
    let found: Vec<_> = found.iter().map(|m| (m.thread.id, m.snippet.as_deref())).collect();
    assert_eq!(
        found,
        vec![(first.id, Some("Chart the sales by region, please")), (second.id, None)],
        "the title in any case, or the first message that holds it"
    );
    // `%` and `_` are literal, not wildcards.
    let literal = store.search_threads(&[project.id], "0% of 1_", 10).await.unwrap();
    assert_eq!(literal.iter().map(|m| m.thread.id).collect::<Vec<_>>(), vec![third.id]);
    assert!(store.search_threads(&[project.id], "1%0", 10).await.unwrap().is_empty());
    assert_eq!(store.search_threads(&[project.id], "sales", 1).await.unwrap().len(), 1, "the limit holds");
    // Only the projects named; a deleted thread is not found.
    let other = store.create_project(NewProject { name: "Other".into(), owner: owner.id }).await.unwrap();
    assert!(store.search_threads(&[other.id], "sales", 10).await.unwrap().is_empty());
    assert!(store.search_threads(&[], "sales", 10).await.unwrap().is_empty());
    store.request_deletion(cairn_core::lifecycle::DeletionKind::Thread, first.id.0, owner.id).await.unwrap();
    let after = store.search_threads(&[project.id, other.id], "sales", 10).await.unwrap();
    assert_eq!(after.iter().map(|m| m.thread.id).collect::<Vec<_>>(), vec![second.id]);
}

async fn a_runs_share_links_are_found_by_token_and_revoked(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let other =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let first = store.create_share(run.id, owner.id, vec![1; 32], expires).await.unwrap();
    let second = store.create_share(run.id, owner.id, vec![2; 32], expires).await.unwrap();
    assert!(first.is_open(time::OffsetDateTime::now_utc()));
    assert!(!first.is_open(expires), "closed once it expires");
    let again = store.create_share(other.id, owner.id, vec![1; 32], expires).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "a token is unique: {again:?}");
    assert_eq!(store.shares(run.id).await.unwrap(), vec![second.clone(), first.clone()], "newest first");
    assert_eq!(store.share_by_token(&[2; 32]).await.unwrap(), second);
    assert!(matches!(store.share_by_token(&[3; 32]).await, Err(Error::NotFound { .. })));

    let revoked = store.revoke_share(run.id, second.id).await.unwrap();
    assert!(revoked.revoked_at.is_some() && !revoked.is_open(time::OffsetDateTime::now_utc()));
    assert_eq!(store.share_by_token(&[2; 32]).await.unwrap(), revoked, "still found, as revoked");
    assert_eq!(store.revoke_share(run.id, second.id).await.unwrap().revoked_at, revoked.revoked_at);
    let elsewhere = store.revoke_share(other.id, first.id).await;
    assert!(matches!(elsewhere, Err(Error::NotFound { .. })), "only through its own run: {elsewhere:?}");
}

async fn a_threads_runs_are_listed_oldest_first(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    assert_eq!(store.runs(thread.id).await.unwrap(), Vec::new());
    let other = store
        .create_thread(NewThread {
            project_id: thread.project_id,
            title: "Other".into(),
            created_by: owner.id,
            model: None,
        })
        .await
        .unwrap();
    let mut written = Vec::new();
    for _ in 0..3 {
        written.push(
            store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap(),
        );
        store.create_run(NewRun { thread_id: other.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    }
    written[1] = store.set_run_status(written[1].id, RunStatus::Running, None, None).await.unwrap();
    assert_eq!(store.runs(thread.id).await.unwrap(), written, "this thread's runs only, as they now stand");
}

/// A `usage` event as the agent writes it (protocol version 2).
fn usage(user: &User, input: u64, cache_read: u64, cost: f64, saved: f64) -> NewEvent {
    let payload = json!({ "model": "p/m", "user": user.id, "input_tokens": input, "output_tokens": 1,
                          "cache_read_tokens": cache_read, "cache_write_tokens": 2, "cost_usd": cost, "saved_usd": saved });
    NewEvent { run_id: None, kind: "usage".into(), payload, schema_version: 2 }
}

async fn usage_is_added_up_from_the_usage_events_by_user_and_by_project(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let project = thread.project_id;
    let editor = user(&*store, "e@example.com").await;
    store.set_member(project, editor.id, Role::Editor).await.unwrap();
    assert_eq!(store.usage_by_user(project).await.unwrap(), Vec::new());
    assert_eq!(store.usage_by_project(owner.id).await.unwrap(), Vec::new());
    let second = store
        .create_thread(NewThread { project_id: project, title: "Second".into(), created_by: editor.id, model: None })
        .await
        .unwrap();
    // Version 1 wrote no cache fields and no saving: they count as 0.
    let old = json!({ "model": "p/m", "user": owner.id, "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.5 });
    let old = NewEvent { run_id: None, kind: "usage".into(), payload: old, schema_version: 1 };
    let lookalike = NewEvent { kind: "run.status".into(), ..usage(&owner, 1000, 0, 8.0, 0.0) };
    store
        .append_events(thread.id, vec![old, event("token", 1), usage(&owner, 20, 30, 0.25, 0.125), lookalike], None)
        .await
        .unwrap();
    store
        .append_events(second.id, vec![usage(&editor, 7, 0, 1.0, 0.0), usage(&owner, 3, 5, 0.25, 0.0)], None)
        .await
        .unwrap();
    let elsewhere = store.create_project(NewProject { name: "Q".into(), owner: owner.id }).await.unwrap();
    let far = store
        .create_thread(NewThread { project_id: elsewhere.id, title: "Far".into(), created_by: owner.id, model: None })
        .await
        .unwrap();
    store.append_events(far.id, vec![usage(&owner, 1, 0, 2.0, 0.0)], None).await.unwrap();

    let owners = ModelUsage {
        model_calls: 3,
        input_tokens: 123,
        output_tokens: 12,
        cache_read_tokens: 35,
        cache_write_tokens: 4,
        cost_usd: 1.0,
        saved_usd: 0.125,
    };
    let editors = ModelUsage {
        model_calls: 1,
        input_tokens: 7,
        output_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 2,
        cost_usd: 1.0,
        saved_usd: 0.0,
    };
    let mut by_user = vec![(owner.id, owners), (editor.id, editors)];
    by_user.sort_by_key(|(user, _)| *user);
    assert_eq!(store.usage_by_user(project).await.unwrap(), by_user, "other kinds and other projects do not count");
    let far_usage = ModelUsage {
        model_calls: 1,
        input_tokens: 1,
        output_tokens: 1,
        cache_write_tokens: 2,
        cost_usd: 2.0,
        ..ModelUsage::default()
    };
    assert_eq!(store.usage_by_project(owner.id).await.unwrap(), vec![(project, owners), (elsewhere.id, far_usage)]);
    assert_eq!(store.usage_by_project(editor.id).await.unwrap(), vec![(project, editors)], "only the user's own calls");
    // By day (all today), user and model: the project's own calls only.
    let now = time::OffsetDateTime::now_utc();
    let today = format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day());
    let daily = store.usage_by_day(project, now - time::Duration::days(1)).await.unwrap();
    let mut expected =
        vec![(today.clone(), owner.id, "p/m".to_owned(), owners), (today, editor.id, "p/m".to_owned(), editors)];
    expected.sort_by_key(|(_, user, _, _)| user.to_string());
    assert_eq!(daily, expected);
    assert!(store.usage_by_day(project, now + time::Duration::hours(1)).await.unwrap().is_empty(), "none since later");
    store.remove_member(project, editor.id).await.unwrap();
    assert_eq!(store.usage_by_project(editor.id).await.unwrap(), Vec::new(), "only projects the user is in");
}

async fn runs_are_counted_by_status(store: Arc<dyn Store>) {
    let Seeded { user, thread, .. } = owner_with_thread(&*store, "counted@example.com").await;
    let before: std::collections::HashMap<RunStatus, u64> = store.run_counts().await.unwrap().into_iter().collect();
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(
            store.create_run(NewRun { thread_id: thread.id, created_by: user.id, trace_parent: None }).await.unwrap(),
        );
    }
    store.set_run_status(runs[0].id, RunStatus::Running, None, None).await.unwrap();
    store.set_run_status(runs[1].id, RunStatus::Failed, Some("boom".into()), None).await.unwrap();
    let after: std::collections::HashMap<RunStatus, u64> = store.run_counts().await.unwrap().into_iter().collect();
    let grew = |status| after.get(&status).copied().unwrap_or(0) - before.get(&status).copied().unwrap_or(0);
    assert_eq!(
        (grew(RunStatus::Queued), grew(RunStatus::Running), grew(RunStatus::Failed), grew(RunStatus::Succeeded)),
        (1, 1, 1, 0)
    );
}

async fn a_rerun_step_replaces_its_checkpoint(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    assert_eq!(store.latest_checkpoint(run.id).await.unwrap(), None);
    for (step, node) in [(1, "plan"), (2, "act"), (2, "act-again")] {
        let cp = NewCheckpoint { run_id: run.id, step, state: json!({ "node": node }) };
        store.put_checkpoint(cp, None).await.unwrap();
    }
    let all = store.checkpoints(run.id).await.unwrap();
    assert_eq!(all.iter().map(|c| c.step).collect::<Vec<_>>(), vec![1, 2]);
    let latest = store.latest_checkpoint(run.id).await.unwrap().unwrap();
    assert_eq!((latest.step, latest.state), (2, json!({ "node": "act-again" })));
}

async fn a_waiting_runs_checkpoint_is_edited_only_while_it_waits(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "w@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let at = |node: &str| NewCheckpoint { run_id: run.id, step: 3, state: json!({ "plan": node }) };
    store.put_checkpoint(at("first"), None).await.unwrap();
    // Not waiting (queued): the edit is not saved.
    assert!(!store.put_checkpoint_while_waiting(at("early")).await.unwrap());
    store.set_run_status(run.id, RunStatus::Waiting, None, None).await.unwrap();
    assert!(store.put_checkpoint_while_waiting(at("edited")).await.unwrap());
    assert_eq!(store.latest_checkpoint(run.id).await.unwrap().unwrap().state, json!({ "plan": "edited" }));
    // Approved meanwhile: the run goes on with what it had.
    store.set_run_status(run.id, RunStatus::Queued, None, None).await.unwrap();
    assert!(!store.put_checkpoint_while_waiting(at("late")).await.unwrap());
    assert_eq!(store.latest_checkpoint(run.id).await.unwrap().unwrap().state, json!({ "plan": "edited" }));
    let gone = store.put_checkpoint_while_waiting(NewCheckpoint { run_id: cairn_core::RunId::new(), ..at("x") }).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

/// Checkpoints of many runs written at once (one connection is kept aside
/// for them; the writes that find it busy go through the pool): each lands.
async fn checkpoints_of_concurrent_runs_all_land(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let mut writers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let run =
            store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
        let fence = store.claim_run(run.id).await.unwrap();
        writers.push(tokio::spawn(async move {
            for step in 1..=20 {
                let cp = NewCheckpoint { run_id: run.id, step, state: json!({ "step": step }) };
                store.put_checkpoint(cp, Some(fence)).await.unwrap();
            }
            run.id
        }));
    }
    for writer in writers {
        let run = writer.await.unwrap();
        let saved = store.checkpoints(run).await.unwrap();
        assert_eq!(saved.iter().map(|c| c.step).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
        assert!(saved.iter().all(|c| c.state == json!({ "step": c.step })));
    }
}

async fn a_worker_whose_run_was_claimed_since_writes_nothing(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let first = store.claim_run(run.id).await.unwrap();
    let checkpoint = |step| NewCheckpoint { run_id: run.id, step, state: json!({ "step": step }) };
    let answer = |text: &str| NewMessage {
        thread_id: thread.id,
        role: MessageRole::Assistant,
        author: None,
        content: text.into(),
        attachments: Vec::new(),
        origin: None,
    };
    // The holder writes.
    store.set_run_status(run.id, RunStatus::Running, None, Some(first)).await.unwrap();
    store.put_checkpoint(checkpoint(1), Some(first)).await.unwrap();
    store.append_events(thread.id, vec![event("a", 1)], Some(first)).await.unwrap();
    let artifact =
        |fence| NewFile { run_id: Some(run.id), step: Some(2), fence, ..new_file(thread.project_id, "out.csv", 5) };
    let saved = store.insert_file(artifact(Some(first))).await.unwrap();
    assert_eq!(saved.version, 1);

    // Its lease runs out and another worker claims the run.
    let second = store.claim_run(run.id).await.unwrap();
    assert!(second.generation > first.generation, "{first:?} then {second:?}");
    let refused = |result: Result<(), Error>| assert!(matches!(result, Err(Error::LeaseLost { .. })), "{result:?}");
    refused(store.put_checkpoint(checkpoint(2), Some(first)).await);
    refused(store.append_events(thread.id, vec![event("a", 2)], Some(first)).await.map(drop));
    refused(store.append_message(answer("from the old worker"), Some(first)).await.map(drop));
    refused(store.set_run_status(run.id, RunStatus::Succeeded, None, Some(first)).await.map(drop));
    refused(store.insert_file(artifact(Some(first))).await.map(drop));
    // Nothing of it landed: one checkpoint, one event (its number not
    // taken either), no message, one version of the file, the run still
    // running.
    assert_eq!(store.file_versions(thread.project_id, "out.csv").await.unwrap().len(), 1);
    assert_eq!(store.insert_file(artifact(Some(second))).await.unwrap().version, 2, "the new holder saves");
    assert_eq!(store.checkpoints(run.id).await.unwrap().len(), 1);
    assert_eq!(store.events_after(thread.id, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.thread(thread.id).await.unwrap().last_event_seq, 1);
    assert!(store.messages(thread.id).await.unwrap().is_empty());
    assert_eq!(store.run(run.id).await.unwrap().status, RunStatus::Running);

    // A run's answer is posted once, however many workers finish it.
    let (posted, first_time) = store.append_answer(answer("once"), run.id, Some(second)).await.unwrap();
    let (again, second_time) = store.append_answer(answer("twice"), run.id, Some(second)).await.unwrap();
    assert!(first_time && !second_time);
    assert_eq!((again.id, again.content.as_str()), (posted.id, "once"));
    refused(store.append_answer(answer("stale"), run.id, Some(first)).await.map(drop));
    assert_eq!(store.messages(thread.id).await.unwrap().len(), 1);

    // The new holder writes where the old one could not.
    store.put_checkpoint(checkpoint(2), Some(second)).await.unwrap();
    let events = store.append_events(thread.id, vec![event("b", 2)], Some(second)).await.unwrap();
    assert_eq!(events[0].seq, 2, "no gap where the refused event was");
    store.append_message(answer("a note"), Some(second)).await.unwrap();
    let done = store.set_run_status(run.id, RunStatus::Succeeded, None, Some(second)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    // A finished run stays finished, fence or not.
    let late = store.set_run_status(run.id, RunStatus::Failed, None, Some(first)).await;
    assert!(matches!(late, Err(Error::Conflict { .. })), "{late:?}");
    // Writes without a fence (the gateway's) are not affected.
    store.append_events(thread.id, vec![event("c", 3)], None).await.unwrap();

    let missing = cairn_core::RunId::new();
    assert!(matches!(store.claim_run(missing).await, Err(Error::NotFound { entity: "run" })));
    let ghost = cairn_core::model::Fence { run: missing, generation: 1 };
    let result = store.put_checkpoint(NewCheckpoint { run_id: missing, step: 1, state: json!({}) }, Some(ghost)).await;
    assert!(matches!(result, Err(Error::NotFound { entity: "run" })), "{result:?}");
}

/// A claim that returns has seen every write of the earlier holder that
/// will ever land: writes in flight finish first, later ones are refused.
async fn a_claim_waits_for_a_fenced_write_in_flight(store: Arc<dyn Store>) {
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "t@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let old = store.claim_run(run.id).await.unwrap();
    let count_old = || async {
        let events = store.events_after(thread.id, 0, 100_000).await.unwrap();
        events.iter().filter(|e| e.kind == "old").count()
    };
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0_usize;
                loop {
                    match store.append_events(thread.id, vec![event("old", n as i64)], Some(old)).await {
                        Ok(_) => n += 1,
                        Err(Error::LeaseLost { .. }) => return Ok(n),
                        // A busy machine: the pool may time out; try again.
                        Err(Error::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(other) => return Err(other),
                    }
                }
            })
        })
        .collect();
    // Let them write a while, then take the run over.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count_old().await < 20 {
        assert!(std::time::Instant::now() < deadline, "the writers did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claimed = tokio::time::timeout(Duration::from_secs(60), store.claim_run(run.id)).await;
    claimed.expect("a claim is not kept waiting by the writes of the run's holder").unwrap();
    let at_claim = count_old().await;
    let mut written = 0_usize;
    for writer in writers {
        written += writer.await.unwrap().expect("a writer failed");
    }
    assert_eq!(count_old().await, at_claim, "no write of the old holder landed after the claim returned");
    assert_eq!(written, at_claim);
}

async fn sandbox_hosts_keep_a_heartbeat_and_sandboxes_their_placement(store: Arc<dyn Store>) {
    use cairn_core::sandbox::HostReport;
    let owner = user(&*store, "p@example.com").await;
    let report =
        |url: &str, running, draining| HostReport { url: url.into(), capacity: 8, running, draining, sandboxes: None };
    store.heartbeat_sandbox_host(report("http://a:8090", 0, false)).await.unwrap();
    store.heartbeat_sandbox_host(report("http://b:8090", 0, false)).await.unwrap();
    let first = store.sandbox_hosts().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.heartbeat_sandbox_host(report("http://a:8090", 3, true)).await.unwrap();
    let hosts = store.sandbox_hosts().await.unwrap();
    assert_eq!(hosts.iter().map(|h| h.url.as_str()).collect::<Vec<_>>(), ["http://a:8090", "http://b:8090"]);
    assert_eq!((hosts[0].running, hosts[0].draining, hosts[0].capacity), (3, true, 8), "the last report counts");
    assert!(hosts[0].heartbeat_at > first[0].heartbeat_at, "the heartbeat moved on");

    let (one, two) = (placed(owner.id, "http://a:8090", 0), placed(owner.id, "http://a:8090", 0));
    store.place_sandbox(one.clone()).await.unwrap();
    store.place_sandbox(two.clone()).await.unwrap();
    assert!(matches!(store.place_sandbox(one.clone()).await, Err(Error::Conflict { .. })), "placed once");
    assert_eq!(store.placement(one.sandbox).await.unwrap(), Some(one.clone()));
    assert_eq!(store.placements(Some(owner.id)).await.unwrap().len(), 2);
    assert!(store.placements(Some(cairn_core::UserId::new())).await.unwrap().is_empty());
    let placed: Vec<u32> = store.sandbox_hosts().await.unwrap().iter().map(|h| h.placed).collect();
    assert_eq!(placed, [2, 0]);

    // The host dies: it is forgotten, its sandboxes stay placed on it until
    // moved, and of two movers only one moves each.
    store.forget_sandbox_host("http://a:8090").await.unwrap();
    assert_eq!(store.sandbox_hosts().await.unwrap().len(), 1);
    assert!(store.move_sandbox(one.sandbox, "http://a:8090", "http://b:8090").await.unwrap());
    assert!(!store.move_sandbox(one.sandbox, "http://a:8090", "http://c:8090").await.unwrap(), "already moved");
    assert_eq!(store.placement(one.sandbox).await.unwrap().unwrap().host, "http://b:8090");
    store.remove_placement(two.sandbox).await.unwrap();
    assert_eq!(store.placement(two.sandbox).await.unwrap(), None);
    assert_eq!(store.sandbox_hosts().await.unwrap()[0].placed, 1);
}

/// A placement on `host` made `minutes_ago`, running and idle.
fn placed(owner: cairn_core::UserId, host: &str, minutes_ago: i64) -> cairn_core::sandbox::Placement {
    let at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::minutes(minutes_ago);
    cairn_core::sandbox::Placement {
        sandbox: cairn_core::SandboxId::new(),
        host: host.into(),
        owner,
        thread: Some(cairn_core::ThreadId::new()),
        created_at: at,
        running: true,
        busy: false,
        active_at: at,
    }
}

async fn a_hosts_report_keeps_its_placements_true(store: Arc<dyn Store>) {
    use cairn_core::sandbox::{HostReport, HostedSandbox};
    let owner = user(&*store, "r@example.com").await;
    let (a, b) = ("http://a:8090", "http://b:8090");
    // On a: one it still holds, one it deleted long ago, one just placed
    // (its list may predate it); on b: one that moved there from a.
    let (kept, gone, new) = (placed(owner.id, a, 5), placed(owner.id, a, 5), placed(owner.id, a, 0));
    let moved = placed(owner.id, b, 5);
    for placement in [&kept, &gone, &new, &moved] {
        store.place_sandbox(placement.clone()).await.unwrap();
    }
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let hosted = |id, minutes_ago: i64| HostedSandbox {
        id,
        running: false,
        busy: false,
        created_at: now - time::Duration::minutes(minutes_ago),
        last_active_at: now - time::Duration::seconds(30),
    };
    // a still holds `kept` (paused now), its old copy of `moved`, a copy it
    // made an hour ago that no one placed, and one made a moment ago.
    let (stray, fresh) = (cairn_core::SandboxId::new(), cairn_core::SandboxId::new());
    let sandboxes = vec![hosted(kept.sandbox, 5), hosted(moved.sandbox, 60), hosted(stray, 60), hosted(fresh, 0)];
    let report = HostReport { url: a.into(), capacity: 8, running: 0, draining: false, sandboxes: Some(sandboxes) };
    let mut not_its_own = store.heartbeat_sandbox_host(report).await.unwrap();
    not_its_own.sort_by_key(|id| id.0);
    let mut expected = vec![moved.sandbox, stray];
    expected.sort_by_key(|id| id.0);
    assert_eq!(not_its_own, expected, "copies of sandboxes placed elsewhere, and old unplaced ones, are deleted");
    let state = store.placement(kept.sandbox).await.unwrap().unwrap();
    assert_eq!((state.running, state.busy, state.active_at), (false, false, now - time::Duration::seconds(30)));
    assert_eq!(store.placement(gone.sandbox).await.unwrap(), None, "a sandbox the host no longer holds is unplaced");
    assert!(store.placement(new.sandbox).await.unwrap().is_some(), "a placement younger than the report is kept");
    assert_eq!(store.placement(moved.sandbox).await.unwrap().unwrap().host, b, "another host's placement untouched");
    // A report on the way out leaves placements alone.
    let leaving = HostReport { url: a.into(), capacity: 8, running: 0, draining: true, sandboxes: None };
    assert!(store.heartbeat_sandbox_host(leaving).await.unwrap().is_empty());
    assert!(store.placement(kept.sandbox).await.unwrap().is_some());
    // A caller that resumes a sandbox says so at once.
    store.mark_placement(kept.sandbox, true).await.unwrap();
    let resumed = store.placement(kept.sandbox).await.unwrap().unwrap();
    assert!(resumed.running && resumed.active_at > state.active_at, "{resumed:?}");
    // A move makes it placed now, and running.
    assert!(store.move_sandbox(kept.sandbox, a, b).await.unwrap());
    let there = store.placement(kept.sandbox).await.unwrap().unwrap();
    assert!(there.created_at > kept.created_at && there.running, "{there:?}");
}

async fn the_audit_log_pages_newest_first(store: Arc<dyn Store>) {
    use cairn_core::model::{AuditFilter, AuditOutcome};
    let admin = user(&*store, "admin@example.com").await;
    let other = user(&*store, "other@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: admin.id }).await.unwrap();
    for i in 0..5 {
        let detail = json!({ "i": i, "thread": format!("t{i}") });
        let entry =
            NewAuditEntry::new(Some(admin.id), None, &format!("test.action{i}"), detail, Some("203.0.113.9".into()));
        store.record_audit(entry).await.unwrap();
    }
    let page1 = store.audit_log(&AuditFilter::default(), 2).await.unwrap();
    assert_eq!(page1.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["test.action4", "test.action3"]);
    let older = AuditFilter { before: Some(page1[1].id), ..AuditFilter::default() };
    let page2 = store.audit_log(&older, 10).await.unwrap();
    assert_eq!(page2.len(), 3);
    assert_eq!(page2[0].action, "test.action2");
    assert_eq!(page2[0].actor, Some(admin.id));
    assert_eq!(page2[0].client_addr.as_deref(), Some("203.0.113.9"));
    assert_eq!((page2[0].target.as_deref(), page2[0].outcome), (Some("thread:t2"), AuditOutcome::Succeeded));

    // Filters: by actor, project, action (exactly, or a family), outcome and time.
    let failed = NewAuditEntry::new(Some(other.id), Some(project.id), "run.start_failed", json!({}), None);
    let started = store.record_audit(failed).await.unwrap();
    let refused =
        NewAuditEntry::new(Some(other.id), Some(project.id), "tool.refused", json!({ "tool": "fetch" }), None);
    store.record_audit(refused).await.unwrap();
    // `_` and `%` are taken literally in a family's name.
    store.record_audit(NewAuditEntry::new(None, None, "runXstarted", json!({}), None)).await.unwrap();
    let actions = |filter: AuditFilter| {
        let store = store.clone();
        async move { store.audit_log(&filter, 50).await.unwrap().into_iter().map(|e| e.action).collect::<Vec<_>>() }
    };
    assert_eq!(
        actions(AuditFilter { actor: Some(other.id), ..Default::default() }).await,
        ["tool.refused", "run.start_failed"]
    );
    assert_eq!(actions(AuditFilter { project: Some(project.id), ..Default::default() }).await.len(), 2);
    assert_eq!(actions(AuditFilter { action: Some("run.".into()), ..Default::default() }).await, ["run.start_failed"]);
    assert_eq!(actions(AuditFilter { action: Some("run_".into()), ..Default::default() }).await, Vec::<String>::new());
    assert_eq!(
        actions(AuditFilter { action: Some("test.action1".into()), ..Default::default() }).await,
        ["test.action1"]
    );
    assert_eq!(
        actions(AuditFilter { outcome: Some(AuditOutcome::Refused), ..Default::default() }).await,
        ["tool.refused"]
    );
    assert_eq!(
        actions(AuditFilter { outcome: Some(AuditOutcome::Failed), ..Default::default() }).await,
        ["run.start_failed"]
    );
    let since = AuditFilter { since: Some(started.created_at), ..Default::default() };
    assert_eq!(actions(since).await.len(), 3);
    let until = AuditFilter { until: Some(started.created_at), ..Default::default() };
    assert_eq!(actions(until).await.len(), 5);
}

async fn references_to_missing_rows_are_refused(store: Arc<dyn Store>) {
    let owner = user(&*store, "r@example.com").await;
    let orphan = store
        .create_thread(NewThread {
            project_id: cairn_core::ProjectId::new(),
            title: "x".into(),
            created_by: owner.id,
            model: None,
        })
        .await;
    assert!(matches!(orphan, Err(Error::NotFound { .. })), "{orphan:?}");
    let events = store.append_events(cairn_core::ThreadId::new(), vec![event("a", 1)], None).await;
    assert!(matches!(events, Err(Error::NotFound { entity: "thread" })), "{events:?}");
}

/// A migrated PostgreSQL database reached through a proxy the test can cut
/// (small pool, short acquire timeout).
async fn behind_proxy() -> (TestPostgres, TcpProxy, Database) {
    let pg = TestPostgres::create().await;
    let proxy = TcpProxy::start(&pg.server_addr()).await;
    let options = OpenOptions { max_connections: 4, acquire_timeout: Duration::from_secs(2) };
    let db = Database::open(&pg.url_via(proxy.addr), &options).await.unwrap();
    db.migrate().await.unwrap();
    (pg, proxy, db)
}

/// When PostgreSQL goes away, calls fail fast as `Unavailable` (the gateway
/// turns that into 503), and work again by themselves once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_reported_and_recovered_from() {
    let (_pg, proxy, db) = behind_proxy().await;
    let store = db.store();
    store.ping().await.unwrap();

    proxy.cut();
    let started = std::time::Instant::now();
    let down = store.user_by_email("x@example.com").await;
    assert!(matches!(down, Err(Error::Unavailable { dependency: cairn_core::Dependency::Database, .. })), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "failing took {:?}", started.elapsed());

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store did not reconnect after the outage");
    user(&*store, "back@example.com").await;
    db.close().await;
}

/// Checkpoints are written on a connection kept out of the pool. When it
/// is lost with the server, a write fails as `Unavailable`; once the server
/// is back, writes land again by themselves, a superseded fence is still
/// refused, and closing the database does not wait for that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_written_again_after_their_connection_was_lost() {
    let (_pg, proxy, db) = behind_proxy().await;
    let store = db.store();
    let Seeded { user: owner, thread, .. } = owner_with_thread(&*store, "cp@example.com").await;
    let run =
        store.create_run(NewRun { thread_id: thread.id, created_by: owner.id, trace_parent: None }).await.unwrap();
    let fence = store.claim_run(run.id).await.unwrap();
    let checkpoint = |step| NewCheckpoint { run_id: run.id, step, state: json!({ "step": step }) };
    store.put_checkpoint(checkpoint(1), Some(fence)).await.unwrap();

    proxy.cut();
    let started = std::time::Instant::now();
    let down = store.put_checkpoint(checkpoint(2), Some(fence)).await;
    assert!(matches!(down, Err(Error::Unavailable { dependency: cairn_core::Dependency::Database, .. })), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "failing took {:?}", started.elapsed());

    proxy.restore();
    let mut saved = false;
    for _ in 0..50 {
        if store.put_checkpoint(checkpoint(2), Some(fence)).await.is_ok() {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved, "checkpoints were not written again after the outage");
    store.put_checkpoint(checkpoint(3), Some(fence)).await.unwrap();
    let steps = store.checkpoints(run.id).await.unwrap().iter().map(|c| c.step).collect::<Vec<_>>();
    assert_eq!(steps, vec![1, 2, 3]);

    let newer = store.claim_run(run.id).await.unwrap();
    let stale = store.put_checkpoint(checkpoint(4), Some(fence)).await;
    assert!(matches!(stale, Err(Error::LeaseLost { .. })), "{stale:?}");
    store.put_checkpoint(checkpoint(4), Some(newer)).await.unwrap();
    assert_eq!(store.latest_checkpoint(run.id).await.unwrap().unwrap().step, 4);

    let closed = tokio::time::timeout(Duration::from_secs(10), db.close()).await;
    assert!(closed.is_ok(), "closing the database waited for the checkpoints' connection");
}

async fn the_first_user_is_the_admin(store: Arc<dyn Store>) {
    let first = store.create_first_user_admin(new_user("first@example.com")).await.unwrap();
    let second = store.create_first_user_admin(new_user("second@example.com")).await.unwrap();
    assert!(first.is_admin);
    assert!(!second.is_admin);
    let again = store.create_first_user_admin(new_user("FIRST@example.com")).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
}

async fn users_are_listed_disabled_promoted_and_given_new_passwords(store: Arc<dyn Store>) {
    let a = user(&*store, "a@example.com").await;
    let b = user(&*store, "b@example.com").await;
    let c = user(&*store, "c@example.com").await;
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(store.users(None, 2).await.unwrap()), vec![a.id, b.id]);
    assert_eq!(ids(store.users(Some(b.id), 10).await.unwrap()), vec![c.id]);
    assert!(store.set_disabled(b.id, true).await.unwrap().disabled);
    assert!(store.user(b.id).await.unwrap().disabled);
    assert!(store.set_admin(c.id, true).await.unwrap().is_admin);
    assert_eq!(a.token_version, 0);
    store.set_password(a.id, "new-hash".to_owned()).await.unwrap();
    let changed = store.user(a.id).await.unwrap();
    assert_eq!((changed.password_hash.as_str(), changed.token_version), ("new-hash", 1));
    let missing = store.set_password(cairn_core::UserId::new(), "x".into()).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
}

fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

async fn refresh(store: &Arc<dyn Store>, user: &User, session: cairn_core::SessionId, token: &[u8], ttl: i64) {
    let expires_at = time::OffsetDateTime::now_utc() + hours(ttl);
    let new = NewRefreshToken { user_id: user.id, session, token_hash: token.to_vec(), expires_at };
    store.insert_refresh_token(new).await.unwrap();
}

async fn a_refresh_token_rotates_once_and_its_reuse_ends_the_session(store: Arc<dyn Store>) {
    let u = user(&*store, "r@example.com").await;
    let session = cairn_core::SessionId::new();
    let now = time::OffsetDateTime::now_utc();
    refresh(&store, &u, session, b"token-1", 1).await;
    let first = store.use_refresh_token(b"token-1", now).await.unwrap();
    assert_eq!(first, RefreshOutcome::Rotated { user_id: u.id, session });
    refresh(&store, &u, session, b"token-2", 1).await;
    let replay = store.use_refresh_token(b"token-1", now).await.unwrap();
    assert_eq!(replay, RefreshOutcome::Reused { user_id: u.id, session });
    assert_eq!(
        store.use_refresh_token(b"token-2", now).await.unwrap(),
        RefreshOutcome::Invalid,
        "the successor dies with its session"
    );
    assert_eq!(store.use_refresh_token(b"unknown", now).await.unwrap(), RefreshOutcome::Invalid);
    refresh(&store, &u, cairn_core::SessionId::new(), b"old", -1).await;
    assert_eq!(store.use_refresh_token(b"old", now).await.unwrap(), RefreshOutcome::Invalid, "expired");
}

async fn concurrent_uses_of_one_refresh_token_rotate_once(store: Arc<dyn Store>) {
    let u = user(&*store, "race@example.com").await;
    refresh(&store, &u, cairn_core::SessionId::new(), b"contested", 1).await;
    let now = time::OffsetDateTime::now_utc();
    let uses: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.use_refresh_token(b"contested", now).await.unwrap() })
        })
        .collect();
    let mut rotated = 0;
    for outcome in uses {
        if matches!(outcome.await.unwrap(), RefreshOutcome::Rotated { .. }) {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}

async fn sessions_end_on_logout_and_for_a_whole_account(store: Arc<dyn Store>) {
    let u = user(&*store, "s@example.com").await;
    let (one, two) = (cairn_core::SessionId::new(), cairn_core::SessionId::new());
    refresh(&store, &u, one, b"one", 1).await;
    refresh(&store, &u, two, b"two", 1).await;
    refresh(&store, &u, two, b"three", 1).await;
    let now = time::OffsetDateTime::now_utc();
    store.revoke_session(one).await.unwrap();
    assert_eq!(store.use_refresh_token(b"one", now).await.unwrap(), RefreshOutcome::Invalid);
    assert!(matches!(store.use_refresh_token(b"two", now).await.unwrap(), RefreshOutcome::Rotated { .. }));
    store.revoke_sessions_of(u.id).await.unwrap();
    assert_eq!(store.use_refresh_token(b"three", now).await.unwrap(), RefreshOutcome::Invalid);
}

async fn a_recovery_token_works_once_and_not_after_it_expires(store: Arc<dyn Store>) {
    let u = user(&*store, "p@example.com").await;
    let now = time::OffsetDateTime::now_utc();
    store.insert_password_reset(u.id, b"reset".to_vec(), now + time::Duration::minutes(15)).await.unwrap();
    store.insert_password_reset(u.id, b"stale".to_vec(), now - time::Duration::seconds(1)).await.unwrap();
    assert_eq!(store.use_password_reset(b"reset", now).await.unwrap(), Some(u.id));
    assert_eq!(store.use_password_reset(b"reset", now).await.unwrap(), None, "single use");
    assert_eq!(store.use_password_reset(b"stale", now).await.unwrap(), None, "expired");
    assert_eq!(store.use_password_reset(b"never", now).await.unwrap(), None);
}

async fn api_keys_are_created_listed_and_revoked_by_their_owner(store: Arc<dyn Store>) {
    let owner = user(&*store, "k@example.com").await;
    let other = user(&*store, "other@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: owner.id }).await.unwrap();
    let expires_at = Some(time::OffsetDateTime::now_utc() + hours(24));
    let new = |name: &str| NewApiKey {
        owner: owner.id,
        project_id: project.id,
        role: Role::Viewer,
        name: name.to_owned(),
        secret_hash: name.as_bytes().to_vec(),
        expires_at,
    };
    let first = store.create_api_key(new("ci")).await.unwrap();
    let second = store.create_api_key(new("cesar")).await.unwrap();
    assert_eq!((first.role, first.revoked_at, first.name.as_str()), (Role::Viewer, None, "ci"));
    let (found, hash) = store.api_key(first.id).await.unwrap();
    assert_eq!((found, hash), (first.clone(), b"ci".to_vec()));
    let listed: Vec<_> = store.api_keys_of(owner.id).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, vec![second.id, first.id], "newest first");
    assert!(store.api_keys_of(other.id).await.unwrap().is_empty());
    let foreign = store.revoke_api_key(first.id, other.id).await;
    assert!(matches!(foreign, Err(Error::NotFound { .. })), "{foreign:?}");
    let revoked = store.revoke_api_key(first.id, owner.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = store.revoke_api_key(first.id, owner.id).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at, "revoking twice keeps the first time");
}

fn new_file(project: cairn_core::ProjectId, path: &str, size: i64) -> NewFile {
    let id = cairn_core::FileId::new();
    NewFile {
        id,
        project_id: project,
        path: path.to_owned(),
        size,
        content_type: "text/plain".to_owned(),
        sha256: "ab".repeat(32),
        object_key: format!("objects/{id}"),
        created_by: None,
        run_id: None,
        step: None,
        fence: None,
    }
}

async fn uploading_to_a_path_again_adds_a_version(store: Arc<dyn Store>) {
    let owner = user(&*store, "f@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: owner.id }).await.unwrap().id;
    let first =
        store.insert_file(NewFile { created_by: Some(owner.id), ..new_file(project, "data/a.csv", 10) }).await.unwrap();
    let second = store.insert_file(new_file(project, "data/a.csv", 25)).await.unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    assert_eq!(store.file(first.id).await.unwrap(), first);
    let versions: Vec<_> =
        store.file_versions(project, "data/a.csv").await.unwrap().into_iter().map(|f| f.version).collect();
    assert_eq!(versions, vec![2, 1]);
    assert_eq!(store.files(project, "").await.unwrap(), vec![second], "listing shows the newest version");
    assert_eq!(store.project_usage(project).await.unwrap(), 35, "every version counts");

    let racing: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_file(new_file(project, "race.txt", 1)).await.unwrap().version })
        })
        .collect();
    let mut got = Vec::new();
    for task in racing {
        got.push(task.await.unwrap());
    }
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6], "concurrent uploads get distinct versions");
}

async fn files_are_listed_by_prefix_moved_and_deleted(store: Arc<dyn Store>) {
    let owner = user(&*store, "g@example.com").await;
    let project = store.create_project(NewProject { name: "P".into(), owner: owner.id }).await.unwrap().id;
    let other = store.create_project(NewProject { name: "Q".into(), owner: owner.id }).await.unwrap().id;
    for path in ["reports/q1.pdf", "reports/q2.pdf", "reports_old/x.pdf", "notes.md", "50%_done.txt"] {
        store.insert_file(new_file(project, path, 1)).await.unwrap();
    }
    store.insert_file(new_file(other, "reports/secret.pdf", 1)).await.unwrap();
    let paths = |files: Vec<cairn_core::model::FileRecord>| files.into_iter().map(|f| f.path).collect::<Vec<_>>();
    assert_eq!(paths(store.files(project, "reports/").await.unwrap()), vec!["reports/q1.pdf", "reports/q2.pdf"]);
    assert_eq!(paths(store.files(project, "50%").await.unwrap()), vec!["50%_done.txt"], "prefixes are literal");
    assert_eq!(paths(store.files(project, "_").await.unwrap()), Vec::<String>::new());

    assert_eq!(store.move_files(project, "notes.md", "docs/notes.md", false).await.unwrap(), 1);
    assert_eq!(store.move_files(project, "reports", "archive/2026", true).await.unwrap(), 2);
    assert_eq!(
        paths(store.files(project, "").await.unwrap()),
        vec!["50%_done.txt", "archive/2026/q1.pdf", "archive/2026/q2.pdf", "docs/notes.md", "reports_old/x.pdf"]
    );
    let taken = store.move_files(project, "docs/notes.md", "archive/2026/q1.pdf", false).await;
    assert!(matches!(taken, Err(Error::Conflict { .. })), "{taken:?}");
    let onto_folder = store.move_files(project, "docs/notes.md", "archive", false).await;
    assert!(matches!(onto_folder, Err(Error::Conflict { .. })), "a file cannot take a folder's name: {onto_folder:?}");
    let missing = store.move_files(project, "nothing.txt", "else.txt", false).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");

    let removed = store.delete_files(project, "archive", true).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(store.delete_files(project, "docs/notes.md", false).await.unwrap().len(), 1);
    assert!(matches!(store.delete_files(project, "docs/notes.md", false).await, Err(Error::NotFound { .. })));
    assert_eq!(paths(store.files(other, "").await.unwrap()), vec!["reports/secret.pdf"], "other projects untouched");
}
