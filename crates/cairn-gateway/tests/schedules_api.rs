//! Scheduled runs over HTTP, with the agent on real parts: ticks post the
//! message as the project's service account, one run per tick however
//! many schedulers poll the store, missed ticks follow their policy, and
//! paused schedules post nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use cairn_agent::schedules::Scheduler;
use cairn_config::Config;
use cairn_core::schedule::ScheduleUpdate;
use cairn_core::store::Store;
use cairn_testkit::{Reply, ScriptedLlm, TempDir};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

struct Api {
    base: String,
    client: reqwest::Client,
    owner: String,
    viewer: String,
    project: String,
    /// An editor service account's id.
    account: String,
    store: Arc<dyn Store>,
    runs: cairn_agent::Runs,
    _llm: ScriptedLlm,
    _dir: TempDir,
}

async fn start() -> Api {
    let dir = TempDir::new("schedules-api");
    let llm = ScriptedLlm::start(Vec::new()).await;
    llm.set_default(Reply::Text("```python\nfinal_answer('reported')\n```".into()));
    let mut config = Config::default();
    config.llm.providers = vec![support::scripted_provider(&llm.url, vec![support::free_model("m")])];
    config.llm.default_model = "scripted/m".into();
    let mut state = support::sqlite_state(&dir, config).await;
    support::with_sandboxes(&mut state, &dir, true).await;
    let (store, runs) = (state.store.clone(), state.runs.clone().unwrap());
    let base = support::serve(state).await;
    let client = reqwest::Client::new();
    let ([owner, viewer, _], project) = support::owner_viewer_stranger(&client, &base, "Scheduled").await;
    let url = format!("{base}/api/v1/projects/{project}/service-accounts");
    let account = support::post_json(&client, &url, &owner, &json!({ "name": "Nightly", "role": "editor" })).await;
    let account = account["id"].as_str().unwrap().to_owned();
    Api { base, client, owner, viewer, project, account, store, runs, _llm: llm, _dir: dir }
}

impl Api {
    async fn call(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        support::send_json(&self.client, method, &format!("{}{path}", self.base), token, body).await
    }

    fn schedules(&self) -> String {
        format!("/api/v1/projects/{}/schedules", self.project)
    }

    async fn create(&self, body: Value) -> Value {
        let (status, made) = self.call(Method::POST, &self.owner, &self.schedules(), Some(body)).await;
        assert_eq!(status, 201, "{made}");
        made
    }

    /// The threads the service account started.
    async fn account_threads(&self) -> Vec<Value> {
        let (_, threads) =
            self.call(Method::GET, &self.owner, &format!("/api/v1/projects/{}/threads", self.project), None).await;
        threads.as_array().unwrap().iter().filter(|t| t["created_by"] == self.account.as_str()).cloned().collect()
    }

    fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.store.clone(), self.runs.clone(), Duration::from_millis(50))
    }
}

#[tokio::test]
async fn each_tick_starts_one_run_as_the_service_account_however_many_schedulers_poll() {
    let api = start().await;
    let made = api
        .create(json!({
            "name": "Every second",
            "cron": "* * * * * *",
            "timezone": "Europe/Paris",
            "message": "Report.",
            "service_account_id": api.account,
        }))
        .await;
    assert_eq!(made["next_runs"].as_array().unwrap().len(), 5, "{made}");
    assert_eq!(made["missed"], "skip");
    // Three schedulers (three processes, as far as the store can tell) poll
    // together for a little over three seconds.
    let schedulers = [api.scheduler(), api.scheduler(), api.scheduler()];
    let until = tokio::time::Instant::now() + Duration::from_millis(3_300);
    let mut started = 0;
    while tokio::time::Instant::now() < until {
        let ticks = futures::future::join_all(schedulers.iter().map(Scheduler::tick)).await;
        started += ticks.into_iter().sum::<usize>();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!((2..=4).contains(&started), "about one run per second, not one per scheduler: {started}");
    let threads = api.account_threads().await;
    assert_eq!(threads.len(), started, "a new thread each tick");
    // Two runs of one tick would start within milliseconds of each other.
    let mut times: Vec<OffsetDateTime> = threads
        .iter()
        .map(|t| {
            OffsetDateTime::parse(t["created_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .unwrap()
        })
        .collect();
    times.sort();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] > time::Duration::milliseconds(500), "one run per tick: {times:?}");
    }
    // Each thread holds the message, posted as the account, and its answer.
    for thread in &threads {
        let path = format!("/api/v1/threads/{}/messages", thread["id"].as_str().unwrap());
        let mut messages = Value::Null;
        for _ in 0..100 {
            messages = api.call(Method::GET, &api.owner, &path, None).await.1;
            if messages.as_array().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(messages[0]["content"], "Report.");
        assert_eq!(messages[0]["author"], api.account.as_str());
        assert_eq!(messages[1]["content"], "reported", "{messages}");
    }
    let (_, listed) = api.call(Method::GET, &api.owner, &api.schedules(), None).await;
    assert!(listed[0]["last_run_id"].is_string() && listed[0]["last_error"].is_null(), "{listed}");
    let (_, audit) = api.call(Method::GET, &api.owner, "/api/v1/admin/audit", None).await;
    let runs_started = audit.as_array().unwrap().iter().filter(|e| e["action"] == "run.started");
    let by_schedule: Vec<&Value> = runs_started.filter(|e| e["detail"]["schedule"] == made["id"]).collect();
    assert!(by_schedule.iter().all(|e| e["actor"] == api.account.as_str()));
    let by_schedule = by_schedule.len();
    assert_eq!(by_schedule, started, "every run it started is in the audit log, under the account");

    // Paused: no tick is taken; resumed: it goes on from the next tick.
    let path = format!("{}/{}", api.schedules(), made["id"].as_str().unwrap());
    let (status, paused) = api.call(Method::PATCH, &api.owner, &path, Some(json!({ "paused": true }))).await;
    assert_eq!((status, paused["next_runs"].as_array().unwrap().len()), (200, 0));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(schedulers[0].tick().await, 0);
    let (_, resumed) = api.call(Method::PATCH, &api.owner, &path, Some(json!({ "paused": false }))).await;
    assert_eq!(resumed["next_runs"].as_array().unwrap().len(), 5);
    assert_eq!(api.call(Method::DELETE, &api.owner, &path, None).await.0, 204);
}

#[tokio::test]
async fn missed_ticks_are_skipped_or_run_once_as_each_schedule_says() {
    let api = start().await;
    let (_, thread) =
        api.call(Method::POST, &api.owner, &format!("/api/v1/projects/{}/threads", api.project), Some(json!({}))).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    let yearly = |missed: &str| {
        json!({
            "name": format!("Yearly ({missed})"),
            "cron": "0 0 1 1 *",
            "message": "Happy new year.",
            "thread_id": thread,
            "service_account_id": api.account,
            "missed": missed,
        })
    };
    let skip = api.create(yearly("skip")).await;
    let once = api.create(yearly("run_once")).await;
    // Both fell due a day ago, while no process ran.
    let a_day_ago = OffsetDateTime::now_utc() - time::Duration::days(1);
    for made in [&skip, &once] {
        let id = made["id"].as_str().unwrap().parse().unwrap();
        let update = ScheduleUpdate { next_run_at: Some(a_day_ago), ..Default::default() };
        api.store.update_schedule(id, update).await.unwrap();
    }
    assert_eq!(api.scheduler().tick().await, 1, "only the run_once schedule starts a run");
    let (_, listed) = api.call(Method::GET, &api.owner, &api.schedules(), None).await;
    let skipped = &listed[0];
    assert!(skipped["last_error"].as_str().unwrap().contains("missed"), "{skipped}");
    assert!(skipped["last_run_id"].is_null());
    let ran = &listed[1];
    assert!(ran["last_run_id"].is_string() && ran["last_error"].is_null(), "{ran}");
    for schedule in listed.as_array().unwrap() {
        let next = schedule["next_runs"][0].as_str().unwrap();
        assert!(next.starts_with(&format!("{}-01-01T00:00:00", OffsetDateTime::now_utc().year() + 1)), "{next}");
    }
    // The run went to the schedule's thread, as the account.
    let (_, messages) = api.call(Method::GET, &api.owner, &format!("/api/v1/threads/{thread}/messages"), None).await;
    assert_eq!(messages[0]["author"], api.account.as_str());
    assert_eq!(api.scheduler().tick().await, 0, "nothing is due any more");
}

#[tokio::test]
async fn a_tick_whose_process_died_is_taken_over_and_posted_once() {
    let api = start().await;
    let account: cairn_core::UserId = api.account.parse().unwrap();
    // Three schedules, each to a thread of its own, whose tick a process took
    // and then died: before posting, after posting the message, and after
    // starting the run.
    let mut cases = Vec::new();
    for case in ["before posting", "after the message", "after the run"] {
        let path = format!("/api/v1/projects/{}/threads", api.project);
        let (_, thread) = api.call(Method::POST, &api.owner, &path, Some(json!({ "title": case }))).await;
        let thread: cairn_core::ThreadId = thread["id"].as_str().unwrap().parse().unwrap();
        let made = api
            .create(json!({
                "name": case, "cron": "0 0 1 1 *", "message": "Happy new year.",
                "thread_id": thread, "service_account_id": api.account,
            }))
            .await;
        let id: cairn_core::ScheduleId = made["id"].as_str().unwrap().parse().unwrap();
        let due = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(1);
        let update = ScheduleUpdate { next_run_at: Some(due), ..Default::default() };
        api.store.update_schedule(id, update).await.unwrap();
        let next = due + time::Duration::days(365);
        assert!(api.store.take_tick(id, due, next).await.unwrap(), "{case}: the dying process took the tick");
        let origin = Some(format!("schedule:{id}:{}", due.unix_timestamp()));
        let options = || cairn_agent::RunOptions { origin: origin.clone(), ..Default::default() };
        match case {
            "before posting" => {}
            "after the message" => {
                api.runs.post_run(thread, account, "Happy new year.".into(), false, options()).await.unwrap();
            }
            _ => {
                api.runs.post_run(thread, account, "Happy new year.".into(), true, options()).await.unwrap();
            }
        }
        cases.push((case, id, thread));
    }
    // A live scheduler leaves a tick pending for a while: nothing happens.
    assert_eq!(api.scheduler().tick().await, 0);
    // Pending too long, the ticks are taken over — by one of three
    // schedulers polling together — and each ends with one message and one run.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let schedulers = [(); 3].map(|_| api.scheduler().with_stale_after(Duration::ZERO));
    for _ in 0..3 {
        futures::future::join_all(schedulers.iter().map(Scheduler::tick)).await;
    }
    for (case, id, thread) in cases {
        let path = format!("/api/v1/threads/{thread}/messages");
        let mut messages = Value::Null;
        for _ in 0..200 {
            messages = api.call(Method::GET, &api.owner, &path, None).await.1;
            if messages.as_array().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let texts: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(texts, ["Happy new year.", "reported"], "{case}: posted and answered once: {messages}");
        let runs = api.store.runs(thread).await.unwrap();
        assert_eq!(runs.len(), 1, "{case}: one run: {runs:?}");
        let schedule = api.store.schedule(id).await.unwrap();
        assert_eq!((schedule.last_run_id, schedule.pending_tick), (Some(runs[0].id), None), "{case}");
    }
    assert_eq!(api.scheduler().with_stale_after(Duration::ZERO).tick().await, 0, "nothing is pending any more");
}

#[tokio::test]
async fn schedules_are_checked_and_only_owners_make_them() {
    let api = start().await;
    let body = |cron: &str, zone: &str, account: &str| json!({ "name": "x", "cron": cron, "timezone": zone, "message": "Go.", "service_account_id": account });
    for (cron, zone) in [("61 * * * *", "UTC"), ("0 9 * * *", "Mars/Olympus"), ("0 0 30 2 *", "UTC"), ("", "UTC")] {
        let (status, problem) =
            api.call(Method::POST, &api.owner, &api.schedules(), Some(body(cron, zone, &api.account))).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_schedule")), "{cron} {zone}: {problem}");
    }
    // A person is no service account.
    let (_, me) = api.call(Method::GET, &api.owner, "/api/v1/me", None).await;
    let person = me["id"].as_str().unwrap();
    let (status, problem) =
        api.call(Method::POST, &api.owner, &api.schedules(), Some(body("0 9 * * *", "UTC", person))).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_schedule")));
    let (status, _) =
        api.call(Method::POST, &api.viewer, &api.schedules(), Some(body("0 9 * * *", "UTC", &api.account))).await;
    assert_eq!(status, 403);
    let made = api.create(body("30 8 * * MON", "America/New_York", &api.account)).await;
    let next = made["next_runs"][0].as_str().unwrap();
    assert!(next.ends_with(":30:00Z"), "08:30 in New York, in UTC: {next}");
    let path = format!("{}/{}", api.schedules(), made["id"].as_str().unwrap());
    let (status, problem) = api.call(Method::PATCH, &api.owner, &path, Some(json!({ "cron": "nope" }))).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_schedule")));
    assert_eq!(api.call(Method::DELETE, &api.viewer, &path, None).await.0, 403);
}
