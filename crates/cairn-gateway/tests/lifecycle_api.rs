//! Deleting a thread, a project and an account through the API, on SQLite
//! with local storage and on PostgreSQL (pgvector) with S3: what is deleted
//! is gone from every answer at once, and once the background job is done
//! nothing of it is left — rows (read in the database directly), objects
//! (listed in the object store), sandboxes and memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use cairn_config::Config;
use cairn_core::bus::QueueOptions;
use cairn_core::sandbox::Sandboxes;
use cairn_gateway::AppState;
use cairn_store::Database;
use cairn_testkit::leftovers::{Pool, leftovers};
use cairn_testkit::{Reply, S3Server, ScriptedLlm, TempDir, TestPostgres};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

struct World {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    project: String,
    state: AppState,
    db: Database,
    sandboxes: Arc<dyn Sandboxes>,
    llm: ScriptedLlm,
    _dir: TempDir,
    _pg: Option<TestPostgres>,
    _s3: Option<S3Server>,
}

async fn world(db: Database, dir: TempDir, pg: Option<TestPostgres>, s3: Option<S3Server>) -> World {
    db.migrate().await.unwrap();
    let llm = ScriptedLlm::start(Vec::new()).await;
    let mut config = Config { data_dir: dir.path.clone(), ..Config::default() };
    config.llm.providers = vec![support::scripted_provider(&llm.url, vec![support::free_model("m")])];
    config.llm.default_model = "scripted/m".into();
    config.llm.embedding_model = "scripted/embedder".into();
    if let Some(s3) = &s3 {
        s3.configure(&mut config.files);
    }
    let bus = cairn_bus::in_process(db.queue(QueueOptions::default()));
    let mut state = support::state(config, &db, bus, &dir);
    support::with_sandboxes(&mut state, &dir, true).await;
    let sandboxes = state.tools.as_ref().unwrap().services.sandboxes.clone();
    cairn_agent::deletions::Deleter::new(
        state.store.clone(),
        state.runs.clone(),
        Some(sandboxes.clone()),
        state.files.clone(),
        state.bus.cache.clone(),
        Duration::from_millis(100),
        Duration::from_secs(30),
    )
    .start();
    let base = support::serve(state.clone()).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, _], project) = support::owner_viewer_stranger(&client, &base, "Doomed").await;
    World { base, client, owner, viewer, project, state, db, sandboxes, llm, _dir: dir, _pg: pg, _s3: s3 }
}

async fn sqlite_local() -> World {
    let dir = TempDir::new("lifecycle-api");
    let db = Database::open(&dir.sqlite_url(), &cairn_store::OpenOptions::default()).await.unwrap();
    world(db, dir, None, None).await
}

async fn postgres_s3() -> World {
    let dir = TempDir::new("lifecycle-api");
    let pg = TestPostgres::create_with_vector().await;
    let db = Database::open(&pg.url, &cairn_store::OpenOptions::default()).await.unwrap();
    world(db, dir, Some(pg), Some(S3Server::start().await)).await
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite_and_local_files {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::sqlite_local().await).await; })+
        }
        mod on_postgres_and_s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::postgres_s3().await).await; })+
        }
    };
}

on_both!(a_deleted_thread_and_then_its_project_leave_nothing_behind);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_step_details_and_keeps_answers_visibly() {
    let w = sqlite_local().await;
    let project = w.project.clone();
    let (_, thread) =
        w.send(Method::POST, &w.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "T" }))).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    w.llm.push(block("print('step detail')"));
    w.llm.push(block("final_answer('Kept answer.')"));
    let message = json!({ "content": "Work", "wait": true });
    let (_, posted) = w.send(Method::POST, &w.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!(posted["answer"], "Kept answer.", "{posted}");
    let run = posted["run"]["id"].as_str().unwrap().to_owned();
    let kinds = || async {
        let (_, events) = w.send(Method::GET, &w.owner, &format!("/threads/{thread}/events?after=0"), None).await;
        events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert!(kinds().await.iter().any(|k| k == "code"));

    // The deployment keeps details 90 days; this project says for ever.
    let config = cairn_config::RetentionConfig { step_details_days: 90, ..Default::default() };
    let retention =
        cairn_agent::retention::Retention::new(w.state.store.clone(), config).with_files(w.state.files.clone());
    // A picture the run showed (as the browser tool keeps one), and another thread's.
    let (project_id, thread_id): (cairn_core::ProjectId, cairn_core::ThreadId) =
        (project.parse().unwrap(), thread.parse().unwrap());
    let shot = format!("{run}-1-1.jpg");
    let bytes = bytes::Bytes::from_static(b"jpeg");
    w.state.files.put_media(project_id, thread_id, &shot, bytes.clone()).await.unwrap();
    w.state.files.put_media(project_id, thread_id, "other.jpg", bytes).await.unwrap();
    let settings = format!("/projects/{project}");
    let patch = |days: Value| w.send(Method::PATCH, &w.owner, &settings, Some(json!({ "retention_days": days })));
    assert_eq!(patch(json!(-1)).await.0, 422);
    let (status, changed) = patch(json!(0)).await;
    assert_eq!((status, changed["retention_days"].as_i64()), (200, Some(0)));
    let in_a_year = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    assert_eq!(retention.apply(in_a_year).await.unwrap().details.runs, 0, "kept for ever");
    // Back to the deployment's 90 days: not yet after 89, gone after 91.
    assert_eq!(patch(Value::Null).await.1["retention_days"], Value::Null);
    let days = |n| time::OffsetDateTime::now_utc() + time::Duration::days(n);
    assert_eq!(retention.apply(days(89)).await.unwrap().details.runs, 0);
    let swept = retention.apply(days(91)).await.unwrap();
    assert_eq!(swept.details.runs, 1);
    let gone = w.state.files.read_media(project_id, thread_id, &shot).await;
    assert!(gone.is_err(), "the pruned run's picture went with its details");
    assert!(w.state.files.read_media(project_id, thread_id, "other.jpg").await.is_ok(), "a picture of no run stays");

    let (_, seen) = w.send(Method::GET, &w.owner, &format!("/runs/{run}"), None).await;
    assert!(seen["details_removed_at"].is_string(), "the run says its details went: {seen}");
    let left = kinds().await;
    assert!(!left.iter().any(|k| k == "code" || k == "output" || k == "observation"), "{left:?}");
    assert!(left.iter().any(|k| k == "run.status") && left.iter().any(|k| k == "message.created"), "{left:?}");
    let (_, messages) = w.send(Method::GET, &w.owner, &format!("/threads/{thread}/messages"), None).await;
    let texts: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Work", "Kept answer."], "messages and the answer stay");
    let (_, audit) = w.send(Method::GET, &w.owner, "/admin/audit?action=retention.applied", None).await;
    assert_eq!(audit[0]["detail"]["runs"], 1, "{audit}");
    assert_eq!(audit[0]["project_id"], json!(project));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_leave_and_accounts_are_deleted_with_their_projects_decided() {
    let w = sqlite_local().await;
    let project = w.project.clone();
    let id_of = |token: String| {
        let w = &w;
        async move { w.send(Method::GET, &token, "/me", None).await.1["id"].as_str().unwrap().to_owned() }
    };
    let (owner_id, viewer_id) = (id_of(w.owner.clone()).await, id_of(w.viewer.clone()).await);
    // A stranger joins, then leaves of their own accord.
    let form = [("grant_type", "password"), ("username", "stranger@example.com"), ("password", support::PASSWORD)];
    let token: Value =
        w.client.post(format!("{}/api/v1/auth/token", w.base)).form(&form).send().await.unwrap().json().await.unwrap();
    let stranger = token["access_token"].as_str().unwrap().to_owned();
    let stranger_id = id_of(stranger.clone()).await;
    let member = json!({ "email": "stranger@example.com", "role": "editor" });
    let (status, _) = w.send(Method::POST, &w.owner, &format!("/projects/{project}/members"), Some(member)).await;
    assert_eq!(status, 201);
    let (status, _) =
        w.send(Method::DELETE, &stranger, &format!("/projects/{project}/members/{stranger_id}"), None).await;
    assert_eq!(status, 204, "a member leaves");
    assert_eq!(w.send(Method::GET, &stranger, "/projects", None).await.1, json!([]));
    let (status, left) =
        w.send(Method::DELETE, &w.owner, &format!("/projects/{project}/members/{owner_id}"), None).await;
    assert_eq!(status, 422, "the last owner cannot leave: {left}");

    // The owner (the deployment's first account, so its administrator) also owns a project alone.
    let (_, solo) = w.send(Method::POST, &w.owner, "/projects", Some(json!({ "name": "Solo" }))).await;
    let solo = solo["id"].as_str().unwrap().to_owned();
    let me = |body: Value| w.send(Method::DELETE, &w.owner, "/me", Some(body));
    let decided = json!({ "password": support::PASSWORD, "projects": {
        project.clone(): { "hand_over_to": viewer_id }, solo.clone(): "delete" } });
    let (status, refused) = me(decided.clone()).await;
    assert_eq!(status, 422, "the only administrator stays: {refused}");
    let promote = json!({ "role": "admin" });
    let (status, _) = w.send(Method::PATCH, &w.owner, &format!("/admin/users/{viewer_id}"), Some(promote)).await;
    assert_eq!(status, 200);
    let (status, refused) = me(json!({ "password": support::PASSWORD })).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("sole_owner")), "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains(&project) && detail.contains(&solo), "{detail}");
    let mut wrong = decided.clone();
    wrong["password"] = json!("not the password");
    assert_eq!(me(wrong).await.0, 403);
    let mut outsider = decided.clone();
    outsider["projects"][&project] = json!({ "hand_over_to": stranger_id });
    assert_eq!(me(outsider).await.0, 422, "a project goes to one of its members");
    assert_eq!(w.send(Method::GET, &w.owner, &format!("/projects/{solo}"), None).await.0, 200, "nothing changed");

    let (status, deleted) = me(decided).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (deleted["user"]["display_name"].as_str(), deleted["user"]["disabled"].as_bool()),
        (Some("Deleted user"), Some(true))
    );
    assert_eq!(deleted["handed_over"][&project], json!(viewer_id));
    assert_eq!(deleted["deletions"][0]["target"], json!(solo));
    // Its sessions end at once, and it cannot sign in again.
    assert_eq!(w.send(Method::GET, &w.owner, "/me", None).await.0, 401);
    let form = [("grant_type", "password"), ("username", "owner@example.com"), ("password", support::PASSWORD)];
    let signed_in = w.client.post(format!("{}/api/v1/auth/token", w.base)).form(&form).send().await.unwrap();
    assert_eq!(signed_in.status(), 400);
    let (_, kept) = w.send(Method::GET, &w.viewer, &format!("/projects/{project}"), None).await;
    assert_eq!(kept["role"], "owner", "handed over: {kept}");
    let (_, members) = w.send(Method::GET, &w.viewer, &format!("/projects/{project}/members"), None).await;
    assert_eq!(members.as_array().unwrap().len(), 1, "the deleted account is no member: {members}");
    // An administrator deletes an account that owns nothing; it needs no choices.
    let (status, gone) =
        w.send(Method::DELETE, &w.viewer, &format!("/admin/users/{stranger_id}"), Some(json!({}))).await;
    assert_eq!((status, gone["deletions"].clone()), (200, json!([])), "{gone}");
    assert_eq!(w.send(Method::GET, &stranger, "/me", None).await.0, 401);
    let (status, _) = w.send(Method::DELETE, &stranger, "/me", Some(json!({}))).await;
    assert_eq!(status, 401);
    let (_, audit) = w.send(Method::GET, &w.viewer, "/admin/audit?limit=20", None).await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["user.deleted", "project.deleted", "project.handed_over", "member.removed"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

impl World {
    async fn send(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        support::send_json(&self.client, method, &format!("{}/api/v1{path}", self.base), token, body).await
    }

    fn pool(&self) -> Pool<'_> {
        match &self.db {
            Database::Sqlite(pool) => Pool::Sqlite(pool),
            Database::Postgres(pool) => Pool::Postgres(pool),
        }
    }

    /// Waits for a deletion to be done; its last state.
    async fn deleted(&self, token: &str, deletion: &str) -> Value {
        for _ in 0..300 {
            let (status, seen) = self.send(Method::GET, token, &format!("/deletions/{deletion}"), None).await;
            assert_eq!(status, 200, "{seen}");
            if seen["status"] == "done" {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deletion {deletion} not done within 30 s");
    }

    /// The project's objects in the object store, listed there directly.
    async fn objects(&self) -> usize {
        let prefix = object_store::path::Path::from(format!("projects/{}/", self.project));
        self.state.files.objects().store().list(Some(&prefix)).collect::<Vec<_>>().await.len()
    }

    async fn sandboxes_of(&self, thread: &str) -> usize {
        let listed = self.sandboxes.list(None).await.unwrap();
        listed.iter().filter(|s| s.thread.is_some_and(|t| t.to_string() == thread)).count()
    }

    async fn recalled(&self) -> Vec<String> {
        let (status, found) = self.send(Method::GET, &self.owner, &self.memory_search(), None).await;
        assert_eq!(status, 200, "{found}");
        // Files are remembered too (in the background): only the notes count here.
        let texts = found.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned());
        texts.filter(|t| t.starts_with("The launch")).collect()
    }

    fn memory_search(&self) -> String {
        format!("/projects/{}/memory/search?q=launch", self.project)
    }
}

fn block(code: &str) -> Reply {
    Reply::Text(format!("```python\n{code}\n```"))
}

async fn a_deleted_thread_and_then_its_project_leave_nothing_behind(w: World) {
    let project = w.project.clone();
    // The project's own things: two versions of a file, a note in memory.
    for body in ["v1", "v2"] {
        let url = format!("{}/api/v1/projects/{project}/files/content?path=plan.txt", w.base);
        let put = w.client.put(url).bearer_auth(&w.owner).body(body).send().await.unwrap();
        let status = put.status().as_u16();
        assert_eq!(status, 201, "{}", put.text().await.unwrap());
    }
    let note = json!({ "text": "The launch is in May." });
    let (status, _) = w.send(Method::POST, &w.owner, &format!("/projects/{project}/memory"), Some(note)).await;
    assert_eq!(status, 201);
    // A thread whose run writes in its workspace, remembers, and saves a file.
    let (_, thread) =
        w.send(Method::POST, &w.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "T" }))).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    w.llm.push(block(
        "open('notes.txt', 'w').write('draft')\nremember(text='The launch slipped to June.')\n\
         open('report.txt', 'w').write('done')\nsave_artifact(path='report.txt')",
    ));
    w.llm.push(block("final_answer('Done.')"));
    let message = json!({ "content": "Plan the launch", "wait": true });
    let (status, posted) = w.send(Method::POST, &w.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!((status, posted["run"]["status"].as_str()), (200, Some("succeeded")), "{posted}");
    let run = uuid::Uuid::parse_str(posted["run"]["id"].as_str().unwrap()).unwrap();
    let thread_id = uuid::Uuid::parse_str(&thread).unwrap();
    assert_eq!(w.sandboxes_of(&thread).await, 1, "the run's sandbox");
    let mut recalled = w.recalled().await;
    recalled.sort();
    assert_eq!(recalled, ["The launch is in May.", "The launch slipped to June."]);
    assert!(!leftovers(w.pool(), &[], &[thread_id], &[run]).await.is_empty());
    // The run read the thread's messages through the cache.
    let cache = w.state.bus.cache.clone();
    let generation_key = format!("thread:{thread}:generation");
    let generation = cache.get(&generation_key).await.unwrap().expect("the thread's cache generation");
    let generation: u64 = String::from_utf8_lossy(&generation).parse().unwrap();
    let cached = || async {
        let mut found = 0;
        for g in 0..=generation {
            found += usize::from(cache.get(&format!("thread:{thread}:messages:{g}")).await.unwrap().is_some());
        }
        found
    };
    assert!(cached().await > 0, "its messages are cached");

    // Only an owner deletes; the viewer is refused and nothing changes.
    let (status, _) = w.send(Method::DELETE, &w.viewer, &format!("/threads/{thread}"), None).await;
    assert_eq!(status, 403);
    let (status, deletion) = w.send(Method::DELETE, &w.owner, &format!("/threads/{thread}"), None).await;
    assert_eq!((status, deletion["kind"].as_str()), (202, Some("thread")), "{deletion}");
    // Gone from every answer at once.
    for path in
        [format!("/threads/{thread}"), format!("/threads/{thread}/events"), format!("/threads/{thread}/messages")]
    {
        let (status, _) = w.send(Method::GET, &w.owner, &path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let (_, threads) = w.send(Method::GET, &w.viewer, &format!("/projects/{project}/threads"), None).await;
    assert_eq!(threads, json!([]));
    let (status, _) = w.send(Method::DELETE, &w.owner, &format!("/threads/{thread}"), None).await;
    assert_eq!(status, 404, "deleted once");
    let id = deletion["id"].as_str().unwrap();
    let (status, _) = w.send(Method::GET, &w.viewer, &format!("/deletions/{id}"), None).await;
    assert_eq!(status, 404, "a deletion is its requester's to follow");

    let done = w.deleted(&w.owner, id).await;
    assert_eq!((done["steps_done"].as_i64(), done["steps_total"].as_i64()), (Some(1), Some(1)), "{done}");
    assert_eq!(leftovers(w.pool(), &[], &[thread_id], &[run]).await, Vec::<String>::new());
    assert_eq!(w.sandboxes_of(&thread).await, 0, "its sandbox and workspace are gone");
    assert!(cache.get(&generation_key).await.unwrap().is_none(), "its cache entries are gone");
    assert_eq!(cached().await, 0);
    assert_eq!(w.recalled().await, ["The launch is in May."], "what the thread remembered is forgotten");
    let (_, files) = w.send(Method::GET, &w.owner, &format!("/projects/{project}/files"), None).await;
    let mut paths: Vec<&str> = files["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["plan.txt", "report.txt"], "the library keeps what the run saved");
    assert_eq!(w.objects().await, 3, "two versions and the report");

    // A download link made before the project's deletion stops working with it.
    let file = files["files"].as_array().unwrap().iter().find(|f| f["path"] == "plan.txt").unwrap()["id"].clone();
    let (_, link) = w
        .send(
            Method::POST,
            &w.owner,
            &format!("/projects/{project}/files/{}/links", file.as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    let link = link["url"].as_str().unwrap().to_owned();

    // A second thread's run leaves a sandbox that the project's deletion must destroy.
    let (_, second) =
        w.send(Method::POST, &w.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "U" }))).await;
    let second = second["id"].as_str().unwrap().to_owned();
    w.llm.push(block("final_answer('Done.')"));
    let message = json!({ "content": "Again", "wait": true });
    let (_, posted) = w.send(Method::POST, &w.owner, &format!("/threads/{second}/messages"), Some(message)).await;
    assert_eq!(posted["run"]["status"], "succeeded", "{posted}");
    assert_eq!(w.sandboxes_of(&second).await, 1);

    let (status, _) = w.send(Method::DELETE, &w.viewer, &format!("/projects/{project}"), None).await;
    assert_eq!(status, 403);
    let (status, deletion) = w.send(Method::DELETE, &w.owner, &format!("/projects/{project}"), None).await;
    assert_eq!((status, deletion["kind"].as_str()), (202, Some("project")), "{deletion}");
    for token in [&w.owner, &w.viewer] {
        let (status, _) = w.send(Method::GET, token, &format!("/projects/{project}"), None).await;
        assert_eq!(status, 404);
        let (_, listed) = w.send(Method::GET, token, "/projects", None).await;
        assert_eq!(listed, json!([]));
    }
    let (status, _) = w.send(Method::GET, &w.owner, &w.memory_search(), None).await;
    assert_eq!(status, 404, "memory search is gone with the project");
    let url = if link.starts_with('/') { format!("{}{link}", w.base) } else { link };
    let done = w.deleted(&w.owner, deletion["id"].as_str().unwrap()).await;
    assert_eq!(done["steps_done"], done["steps_total"]);
    let fetched = w.client.get(url).send().await.unwrap().status().as_u16();
    assert!(matches!(fetched, 403 | 404), "the link serves nothing: {fetched}");
    let project_id = uuid::Uuid::parse_str(&project).unwrap();
    let second_id = uuid::Uuid::parse_str(&second).unwrap();
    assert_eq!(leftovers(w.pool(), &[project_id], &[second_id], &[]).await, Vec::<String>::new());
    assert_eq!(w.sandboxes_of(&second).await, 0, "the project's sandboxes are destroyed");
    assert_eq!(w.objects().await, 0, "every version's object is gone from the object store");
    if let Database::Sqlite(pool) = &w.db {
        assert_eq!(cairn_testkit::leftovers::sqlite_vectors(pool, project_id).await, 0);
    }
}
