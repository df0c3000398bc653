//! The CodeAct agent end to end, on real parts: the store (SQLite), the
//! in-process bus and queue, a real sandbox with the tools, the library, and
//! the scripted LLM server in place of a paid provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use cairn_agent::{Agent, Budget, Runs, code_block};
use cairn_config::{AgentConfig, Config, LlmConfig, LlmModel, LlmProvider};
use cairn_core::UserId;
use cairn_core::model::{MessageRole, RunStatus};
use cairn_core::store::Store;
use cairn_sandbox::{LocalConfig, LocalSandboxes};
use cairn_store::{Database, OpenOptions};
use cairn_testkit::{Reply, ScriptedLlm, TempDir};
use serde_json::{Value, json};

struct World {
    runs: Runs,
    bus: cairn_core::bus::Bus,
    store: Arc<dyn Store>,
    llm: ScriptedLlm,
    user: UserId,
    project: cairn_core::ProjectId,
    thread: cairn_core::ThreadId,
    sandboxes: LocalSandboxes,
    files: cairn_files::Files,
    _db: Database,
    _dir: TempDir,
}

async fn world(budget: Budget) -> World {
    world_with(budget, Vec::new()).await
}

async fn world_with(budget: Budget, require_approval: Vec<String>) -> World {
    world_planning(budget, require_approval, "never").await
}

async fn world_planning(budget: Budget, require_approval: Vec<String>, plan_approval: &str) -> World {
    world_full(budget, require_approval, plan_approval, 128_000).await
}

async fn world_full(budget: Budget, require_approval: Vec<String>, plan_approval: &str, context_tokens: u32) -> World {
    let setup = Setup { budget, require_approval, plan_approval, context_tokens, ..Setup::default() };
    world_of(setup).await
}

/// How a test's world is made.
struct Setup<'a> {
    budget: Budget,
    require_approval: Vec<String>,
    plan_approval: &'a str,
    context_tokens: u32,
    queue: cairn_core::bus::QueueOptions,
    /// Workers taking runs (and as many taking tasks) from the start.
    workers: usize,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            budget: Budget::default(),
            require_approval: Vec::new(),
            plan_approval: "never",
            context_tokens: 128_000,
            queue: Default::default(),
            workers: 2,
        }
    }
}

async fn world_of(setup: Setup<'_>) -> World {
    let Setup { budget, require_approval, plan_approval, context_tokens, queue, workers } = setup;
    let dir = TempDir::new("agent");
    let db = Database::open(&dir.sqlite_url(), &OpenOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = db.store();
    let bus = cairn_bus::in_process(db.queue(queue));
    let config = Config { data_dir: dir.path.clone(), ..Config::default() };
    let key = cairn_config::SigningKey { kid: "k".into(), secret: "A".repeat(43).into() };
    let keys = cairn_auth::SigningKeys::from_config(&[key]).unwrap();
    let outbox = cairn_auth::mail::Outbox::new(dir.path.join("outbox"), "Cairn <c@localhost>").unwrap();
    let auth = cairn_auth::Auth::new(&config, store.clone(), &bus, Arc::new(outbox), keys);
    let objects = cairn_files::Objects::from_config(&config.files, &dir.path).unwrap();
    let files = cairn_files::Files::new(&config.files, store.clone(), objects, auth, &[9; 32]).unwrap();

    let registry = Arc::new(cairn_tools::Registry::builtin());
    let mut local = LocalConfig::new(dir.path.join("sandboxes"));
    local.pool_size = 0;
    local.defaults.memory_bytes = 256 << 20;
    local.prelude = Some(registry.python_prelude());
    let sandboxes = LocalSandboxes::start(local).await.expect("bubblewrap and python3");
    let services = cairn_tools::Services::from_config(&config.tools, Arc::new(sandboxes.clone()), Some(files.clone()))
        .await
        .unwrap();

    let llm = ScriptedLlm::start(Vec::new()).await;
    let llm_config = LlmConfig {
        providers: vec![
            LlmProvider {
                name: "scripted".into(),
                kind: "openai-compatible".into(),
                base_url: format!("{}/v1", llm.url),
                api_key: Default::default(),
                api_version: String::new(),
                models: vec![
                    LlmModel {
                        name: "m".into(),
                        input_usd_per_mtok: Some(1.0),
                        output_usd_per_mtok: Some(2.0),
                        context_tokens,
                        ..Default::default()
                    },
                    // The same server, as a model that sees images.
                    LlmModel { name: "eyes".into(), images: Some(true), context_tokens, ..Default::default() },
                ],
            },
            // The same server speaking Anthropic's and Azure's protocols.
            LlmProvider {
                name: "claude".into(),
                kind: "anthropic".into(),
                base_url: llm.url.clone(),
                api_key: "sk-ant".into(),
                models: vec![LlmModel { name: "claude-sonnet-4-5".into(), context_tokens, ..Default::default() }],
                ..Default::default()
            },
            LlmProvider {
                name: "azure".into(),
                kind: "azure-openai".into(),
                base_url: llm.url.clone(),
                api_key: "az-key".into(),
                models: vec![LlmModel { name: "prod".into(), context_tokens, ..Default::default() }],
                ..Default::default()
            },
            // OpenAI's own API, whose reasoning models answer through Responses.
            LlmProvider {
                name: "openai".into(),
                kind: "openai".into(),
                base_url: format!("{}/v1", llm.url),
                api_key: "sk-o".into(),
                models: vec![LlmModel { name: "o4-mini".into(), context_tokens, ..Default::default() }],
                ..Default::default()
            },
        ],
        default_model: "scripted/m".into(),
        max_retries: 1,
        ..LlmConfig::default()
    };
    let models = Arc::new(cairn_llm::Models::from_config(&llm_config).unwrap());
    let agent = Arc::new(Agent { models, registry, services, store: store.clone(), keys: None });
    let agent_config = AgentConfig {
        max_steps: budget.max_steps,
        max_tokens: budget.max_tokens,
        max_cost_usd: budget.max_cost_usd,
        max_wall_secs: budget.max_wall_secs,
        require_approval,
        plan_approval: plan_approval.parse().unwrap(),
        ..AgentConfig::default()
    };
    let runs = Runs::new(store.clone(), bus.clone(), agent, budget, Duration::from_secs(30)).configured(&agent_config);
    runs.start_workers("test", workers);

    let seeded = cairn_testkit::seed::owner_with_thread(&*store, "ada@example.com").await;
    let (user, project, thread) = (seeded.user.id, seeded.project.id, seeded.thread.id);
    World { runs, bus, store, llm, user, project, thread, sandboxes, files, _db: db, _dir: dir }
}

impl World {
    async fn sandboxes(&self) -> usize {
        use cairn_core::sandbox::Sandboxes;
        self.sandboxes.list(None).await.unwrap().len()
    }

    /// The thread's events once the last run's status event has caught up
    /// with the stored status (a run's status is stored just before its
    /// event, so `settle` may return between the two).
    async fn events(&self) -> Vec<(String, Value)> {
        for _ in 0..100 {
            let events: Vec<(String, Value)> = self
                .store
                .events_after(self.thread, 0, 10_000)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.kind, e.payload))
                .collect();
            let last_status = events.iter().rev().find(|(k, _)| k == "run.status").map(|(_, p)| p["status"].clone());
            let settled = last_status
                .is_some_and(|s| ["succeeded", "failed", "cancelled", "waiting"].contains(&s.as_str().unwrap_or("")));
            if settled {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no run of the thread reached a final or waiting status event");
    }

    async fn kinds(&self) -> Vec<String> {
        self.events().await.into_iter().map(|(k, _)| k).collect()
    }
}

fn block(code: &str) -> Reply {
    Reply::Text(block_text(code))
}

fn block_text(code: &str) -> String {
    format!("Next step.\n```python\n{code}\n```")
}

#[test]
fn code_blocks_are_found_in_replies() {
    assert_eq!(code_block("Thinking.\n```python\nprint(1)\n```\nDone."), Some("print(1)".into()));
    assert_eq!(code_block("```py\nx = 2\n```"), Some("x = 2".into()));
    assert_eq!(code_block("```\ny = 3\n```"), Some("y = 3".into()));
    assert_eq!(code_block("```bash\nls\n```"), None);
    assert_eq!(code_block("no code here"), None);
    assert_eq!(code_block("```python\n\n```"), None);
}

#[tokio::test]
async fn a_run_plans_executes_observes_and_answers() {
    let world = world(Budget::default()).await;
    world.llm.push(block("x = sum(range(10))\nprint('sum is', x)"));
    world.llm.push(block(
        "write_file('result.txt', str(x))\nsave_artifact('result.txt', name='answers/result.txt')\nfinal_answer(f'The sum is {x}.')",
    ));
    let (message, run) =
        world.runs.post(world.thread, world.user, "Add the numbers 0 to 9.".into(), true).await.unwrap();
    assert_eq!(message.role, MessageRole::User);
    let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.events().await);

    let messages = world.store.messages(world.thread).await.unwrap();
    assert_eq!(messages.last().unwrap().content, "The sum is 45.");
    assert_eq!(messages.last().unwrap().role, MessageRole::Assistant);
    let library = world.store.files(world.project, "").await.unwrap();
    assert_eq!(library.len(), 1, "the artifact is in the library");
    assert_eq!((library[0].path.as_str(), library[0].run_id), ("answers/result.txt", Some(run.id)), "with its run");

    let events = world.events().await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message.created"));
    assert!(kinds.contains(&"token") && kinds.contains(&"code") && kinds.contains(&"output"));
    let observation = events.iter().find(|(k, _)| k == "observation").unwrap();
    assert_eq!(observation.1["text"], "stdout:\nsum is 45\n", "the first observation is what the code printed");
    let statuses: Vec<&str> =
        events.iter().filter(|(k, _)| k == "run.status").map(|(_, p)| p["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["queued", "running", "succeeded"]);
    let done = events.iter().rev().find(|(k, _)| k == "run.status").unwrap();
    assert_eq!(done.1["steps"], 2);
    assert!(done.1["cost_usd"].as_f64().unwrap() > 0.0, "usage and cost are summed per run: {}", done.1);

    // The model saw the observation of the first block before writing the second.
    let received = world.llm.received();
    let second = received[1].body["messages"].as_array().unwrap();
    assert!(second.iter().any(|m| m["content"].as_str().unwrap_or_default().contains("sum is 45")));
    assert!(
        received[0].body["messages"][0]["content"].as_str().unwrap().contains("web_fetch(url: str"),
        "the prompt lists the tools"
    );
}

#[tokio::test]
async fn errors_bad_replies_and_questions_are_handled_and_runs_can_resume() {
    let world = world(Budget::default()).await;
    world.llm.push(Reply::Text("I will just answer in prose.".into()));
    world.llm.push(block("1 / 0"));
    world.llm.push(block("ask_user('Which year should the report cover?')"));
    let run = world.runs.post(world.thread, world.user, "Make a report.".into(), true).await.unwrap().1.unwrap();
    let waiting = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(waiting.status, RunStatus::Waiting, "{:?}", world.kinds().await);
    let events = world.events().await;
    let observations: Vec<&str> =
        events.iter().filter(|(k, _)| k == "observation").map(|(_, p)| p["text"].as_str().unwrap()).collect();
    assert!(observations[0].starts_with("error: ZeroDivisionError: division by zero"), "{observations:?}");
    assert!(events.iter().any(|(k, p)| k == "interrupt" && p["question"] == "Which year should the report cover?"));
    let second = &world.llm.received()[1].body["messages"];
    assert!(second.to_string().contains("Your reply had no ```python block"), "a malformed reply is fed back");

    world.llm.push(block("final_answer('Report for ' + '2024')"));
    world.runs.resume(run.id, world.user, "2024, please".into()).await.unwrap();
    let done = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let last = world.llm.received().last().unwrap().body["messages"].to_string();
    assert!(last.contains("2024, please"), "the answer reached the model");
    assert!(world.runs.resume(run.id, world.user, "again".into()).await.is_err(), "only a waiting run takes an answer");
}

#[tokio::test]
async fn budgets_provider_failures_and_cancels_end_runs_cleanly() {
    let limited = world(Budget { max_steps: 2, ..Budget::default() }).await;
    limited.llm.set_default(block("print('working')"));
    let run = limited.runs.post(limited.thread, limited.user, "Loop forever.".into(), true).await.unwrap().1.unwrap();
    let ended = limited.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((ended.status, ended.error.as_deref()), (RunStatus::Failed, Some("the step budget of 2 was reached")));

    let broken = world(Budget::default()).await;
    broken.llm.set_default(Reply::Status { status: 500, retry_after: None });
    let run = broken.runs.post(broken.thread, broken.user, "Hi".into(), true).await.unwrap().1.unwrap();
    let failed = broken.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.unwrap().contains("the provider failed (500)"), "a clear run error");

    let slow = world(Budget::default()).await;
    let long = format!("```python\n{}\n```", "print(1) ".repeat(100));
    slow.llm.set_default(Reply::Slow { text: long, delay: Duration::from_millis(300) });
    let run = slow.runs.post(slow.thread, slow.user, "Hi".into(), true).await.unwrap().1.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    slow.runs.cancel(run.id).await.unwrap();
    // The reply would stream for 30 s; the cancel stops the model call at once.
    let cancelled = slow.runs.settle(run.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(slow.runs.cancel(run.id).await.is_err(), "an ended run cannot be cancelled");
}

#[tokio::test]
async fn calls_of_guarded_tools_wait_for_a_members_approval() {
    let world = world_with(Budget::default(), vec!["write_file".into()]).await;
    world.llm.push(block("write_file('plan.txt', 'the plan')"));
    let run = world.runs.post(world.thread, world.user, "Write the plan.".into(), true).await.unwrap().1.unwrap();
    let waiting = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(waiting.status, RunStatus::Waiting);
    let events = world.events().await;
    let question = events.iter().find(|(k, _)| k == "interrupt").unwrap().1["question"].as_str().unwrap().to_owned();
    assert!(question.starts_with("May the agent run write_file("), "{question}");
    let observation = events.iter().rev().find(|(k, _)| k == "observation").unwrap();
    assert!(observation.1["text"].as_str().unwrap().contains("needs a member's approval"), "the code was told");

    world.llm.push(block("write_file('plan.txt', 'the plan')\nfinal_answer('written')"));
    world.runs.resume(run.id, world.user, "Yes, go ahead".into()).await.unwrap();
    let done = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", world.kinds().await);
}

#[tokio::test]
async fn a_run_forks_from_an_earlier_step_into_a_new_thread() {
    let world = world(Budget::default()).await;
    world.llm.push(block("print('first step')"));
    world.llm.push(block("final_answer('original')"));
    let run = world.runs.post(world.thread, world.user, "Go.".into(), true).await.unwrap().1.unwrap();
    assert_eq!(world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap().status, RunStatus::Succeeded);

    // After step 2 (the first execution), the fork asks the model again.
    world.llm.push(block("final_answer('forked')"));
    let (thread, forked) = world.runs.fork(run.id, 2, world.user).await.unwrap();
    let done = world.runs.settle(forked.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let messages = world.store.messages(thread.id).await.unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["Go.", "forked"], "the messages until the fork, then the fork's own answer");
    let last_request = world.llm.received().last().unwrap().body["messages"].to_string();
    assert!(last_request.contains("first step"), "the fork remembers the steps before it");
    assert!(!last_request.contains("original"), "but not what came after");
    assert!(world.runs.fork(run.id, 99, world.user).await.is_err());
    let original = world.store.messages(world.thread).await.unwrap();
    assert_eq!(original.len(), 2, "the original thread is untouched");
}

#[tokio::test]
async fn a_sandbox_limit_is_an_observation_the_agent_recovers_from() {
    let world = world(Budget::default()).await;
    world.llm.push(block("hog = bytearray(600 << 20)\nhog[::4096] = b'x' * len(hog[::4096])"));
    world.llm.push(block("final_answer('used less memory')"));
    let run = world.runs.post(world.thread, world.user, "Load everything.".into(), true).await.unwrap().1.unwrap();
    let done = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", world.kinds().await);
    let events = world.events().await;
    let observation = events.iter().find(|(k, _)| k == "observation").unwrap().1["text"].as_str().unwrap().to_owned();
    assert!(observation.contains("limit: memory limit of 256 MiB exceeded; the kernel was restarted"), "{observation}");
}

/// A planner's reply: the tasks as JSON, in a fenced block.
fn plan_reply(tasks: Value) -> Reply {
    Reply::Text(format!("Here is the plan.\n```json\n{}\n```", serde_json::json!({ "tasks": tasks })))
}

fn task(id: &str, agent: &str, goal: &str, deps: &[&str]) -> Value {
    serde_json::json!({ "id": id, "title": format!("Task {id}"), "goal": goal, "done_when": "it has a result",
                        "depends_on": deps, "agent": agent })
}

fn verdict(done: bool, why: &str) -> Reply {
    Reply::Text(serde_json::json!({ "done": done, "why": why }).to_string())
}

/// The text of every message of the `n`-th model request.
fn request_text(world: &World, n: usize) -> String {
    world.llm.received()[n].body["messages"].as_array().unwrap().iter().map(|m| m["content"].to_string()).collect()
}

/// The last `plan` event's tasks.
async fn last_plan(world: &World) -> Vec<Value> {
    let events = world.events().await;
    let plan = events.iter().rev().find(|(k, _)| k == "plan").expect("a plan event").1.clone();
    plan["plan"]["tasks"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_planned_run_gives_tasks_to_sub_agents_and_answers_from_their_results() {
    let world = world(Budget::default()).await;
    world.llm.push(plan_reply(serde_json::json!([
        task("t1", "analyst", "compute six times seven", &[]),
        task("t2", "writer", "write the report of the number", &["t1"]),
    ])));
    world.llm.push(block("x = 6 * 7\nfinal_answer(f'x is {x}')"));
    world.llm.push(verdict(true, "a number"));
    world.llm.push(block(
        "try:\n    shell('ls')\nexcept Exception as e:\n    print('refused:', e)\nfinal_answer('report written')",
    ));
    world.llm.push(verdict(true, "written"));
    world.llm.push(Reply::Text("The number is **42**; the report is written.".into()));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let run = world
        .runs
        .post_run(world.thread, world.user, "Report on 6 x 7.".into(), true, options)
        .await
        .unwrap()
        .1
        .unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);
    let answer = world.store.messages(world.thread).await.unwrap().last().unwrap().content.clone();
    assert_eq!(answer, "The number is **42**; the report is written.");

    let tasks = last_plan(&world).await;
    let states: Vec<(&str, &str)> =
        tasks.iter().map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap())).collect();
    assert_eq!(states, [("t1", "done"), ("t2", "done")]);
    assert_eq!(tasks[0]["result"], "x is 42");
    // Each sub-agent's code is tagged with its task, in dependency order.
    let events = world.events().await;
    let coded: Vec<&str> =
        events.iter().filter(|(k, _)| k == "code").map(|(_, p)| p["task"].as_str().unwrap()).collect();
    assert_eq!(coded, ["t1", "t2"]);
    // The second sub-agent starts from the first one's result, with its own
    // context (not the first sub-agent's conversation), and its own tools.
    let second = request_text(&world, 3);
    assert!(second.contains("Result of task t1") && second.contains("x is 42"), "{second}");
    assert!(!second.contains("x = 6 * 7"), "the writer does not see the analyst's code: {second}");
    let system = world.llm.received()[3].body["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.contains("You are a writer") && system.contains("you may call only"), "{system}");
    let refused = events.iter().any(|(k, p)| {
        k == "observation" && p["text"].as_str().unwrap_or("").contains("shell is not one of the writer agent's tools")
    });
    let observations: Vec<&Value> = events.iter().filter(|(k, _)| k == "observation").map(|(_, p)| p).collect();
    assert!(refused, "a sub-agent cannot call tools outside its own: {observations:?}");
    // The synthesis saw both results.
    let last = request_text(&world, 5);
    assert!(last.contains("x is 42") && last.contains("report written"), "{last}");
}

#[tokio::test]
async fn a_task_that_falls_short_is_retried_then_the_plan_changes() {
    let world = world(Budget::default()).await;
    world.llm.push(plan_reply(serde_json::json!([task("t1", "analyst", "find the number", &[])])));
    world.llm.push(block("final_answer('no idea')"));
    world.llm.push(verdict(false, "no number given"));
    world.llm.push(block("final_answer('still no idea')"));
    world.llm.push(verdict(false, "still no number"));
    // The re-plan: a different task.
    world.llm.push(plan_reply(serde_json::json!([task("t2", "analyst", "compute 40 + 2", &[])])));
    world.llm.push(block("final_answer(str(40 + 2))"));
    world.llm.push(verdict(true, "42"));
    world.llm.push(Reply::Text("It is 42.".into()));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let run = world.runs.post_run(world.thread, world.user, "Find it.".into(), true, options).await.unwrap().1.unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);
    let retry = request_text(&world, 3);
    assert!(retry.contains("An earlier attempt fell short: no number given"), "the retry is told why: {retry}");
    let replan = request_text(&world, 5);
    assert!(replan.contains("The plan must change") && replan.contains("still no number"), "{replan}");
    let tasks = last_plan(&world).await;
    assert_eq!((tasks.len(), tasks[0]["id"].as_str(), tasks[0]["status"].as_str()), (1, Some("t2"), Some("done")));
    let versions: Vec<u64> = world
        .events()
        .await
        .iter()
        .filter(|(k, _)| k == "plan")
        .map(|(_, p)| p["plan"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!((versions.first(), versions.last()), (Some(&1), Some(&2)), "a second plan was made");
}

#[tokio::test]
async fn a_member_edits_the_plan_while_the_run_waits_for_its_approval() {
    let world = world_planning(Budget::default(), Vec::new(), "always").await;
    world.llm.push(plan_reply(serde_json::json!([task("t1", "analyst", "the planner's goal", &[])])));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let run = world.runs.post_run(world.thread, world.user, "Plan it.".into(), true, options).await.unwrap().1.unwrap();
    let waiting = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(waiting.status, RunStatus::Waiting);
    let events = world.events().await;
    let question = events.iter().find(|(k, _)| k == "interrupt").unwrap().1["question"].as_str().unwrap().to_owned();
    assert!(question.starts_with("May the agent follow this plan of 1 task?"), "{question}");

    let edit = |tasks: Value| serde_json::from_value::<cairn_agent::plan::Plan>(serde_json::json!({ "tasks": tasks }));
    let cycle =
        edit(serde_json::json!([task("a", "analyst", "x", &["b"]), task("b", "analyst", "y", &["a"])])).unwrap();
    let refused = world.runs.edit_plan(run.id, cycle, world.user).await.unwrap_err();
    assert!(refused.to_string().contains("cycle"), "{refused}");
    let unknown = edit(serde_json::json!([task("a", "poet", "x", &[])])).unwrap();
    assert!(world.runs.edit_plan(run.id, unknown, world.user).await.is_err(), "unknown agents are refused");
    let edited = edit(serde_json::json!([task("t9", "analyst", "the member's goal", &[])])).unwrap();
    world.runs.edit_plan(run.id, edited, world.user).await.unwrap();
    assert_eq!(last_plan(&world).await[0]["id"], "t9", "the edit went out as a plan event");

    world.llm.push(block("final_answer('done as edited')"));
    world.llm.push(verdict(true, "ok"));
    world.llm.push(Reply::Text("Done as you edited.".into()));
    world.runs.resume(run.id, world.user, "yes".into()).await.unwrap();
    let done = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((done.status, done.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);
    let sub_agent = request_text(&world, 1);
    assert!(sub_agent.contains("the member's goal") && !sub_agent.contains("the planner's goal"), "{sub_agent}");
    // Once the run went on, the plan can no longer be edited.
    let late = edit(serde_json::json!([task("t1", "analyst", "x", &[])])).unwrap();
    assert!(world.runs.edit_plan(run.id, late, world.user).await.is_err());
}

#[tokio::test]
async fn the_run_budget_stops_sub_agents() {
    let world = world(Budget { max_steps: 3, ..Budget::default() }).await;
    world.llm.push(plan_reply(serde_json::json!([task("t1", "analyst", "count for ever", &[])])));
    world.llm.set_default(block("print('counting')"));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let run = world.runs.post_run(world.thread, world.user, "Count.".into(), true, options).await.unwrap().1.unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.as_deref().unwrap_or("").contains("step budget of 3"), "{:?}", run.error);
    assert_eq!(world.llm.received().len(), 3, "the planner and two sub-agent steps");
}

#[tokio::test]
async fn a_long_run_is_summarised_to_fit_the_models_context_never_cut_silently() {
    let context = 6000;
    let world = world_full(Budget::default(), Vec::new(), "never", context).await;
    for n in 0..8 {
        world.llm.push(block(&format!("print('{n}' * 3000)")));
    }
    world.llm.set_default(block("final_answer('done')"));
    let run = world.runs.post(world.thread, world.user, "Print a lot.".into(), true).await.unwrap().1.unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);

    let events = world.events().await;
    let summaries: Vec<&Value> = events.iter().filter(|(k, _)| k == "context.summarized").map(|(_, p)| p).collect();
    assert!(!summaries.is_empty(), "the history outgrew the context and was summarised");
    assert!(summaries[0]["turns"].as_u64().unwrap() > 0);
    assert!(summaries[0]["tokens_after"].as_u64() < summaries[0]["tokens_before"].as_u64());
    // Every prompt sent fitted the window.
    let budget = cairn_agent::codeact::context_budget(context);
    for (n, request) in world.llm.received().iter().enumerate() {
        let tokens: usize = request.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| cairn_agent::codeact::estimate_tokens(m["content"].as_str().unwrap_or_default()))
            .sum();
        assert!(tokens <= budget, "request {n} has {tokens} tokens, over the budget of {budget}");
    }
    let last = world.llm.received().last().unwrap().body["messages"].to_string();
    assert!(last.contains("[A summary of"), "the summary stands in for the older turns");
    assert!(last.contains("Print a lot."), "the task itself is kept");
    // The summariser's instructions and the stand-in a later prompt carries,
    // pinned like the other prompts (a snapshot diff shows a change).
    let received = world.llm.received();
    // Its request: the instructions, then the transcript (cut here: its
    // turns are pages of printed digits).
    let summariser: Vec<Value> = received
        .iter()
        .find(|r| r.body["messages"][0]["content"].as_str().unwrap_or_default().contains("summar"))
        .expect("a request to summarise")
        .body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!({ "role": m["role"], "content": m["content"].as_str().unwrap().chars().take(400).collect::<String>() }))
        .collect();
    let stand_in = received
        .iter()
        .flat_map(|r| r.body["messages"].as_array().unwrap().clone())
        .find(|m| m["content"].as_str().unwrap_or_default().contains("[A summary of"))
        .unwrap();
    insta::assert_json_snapshot!("context_summary_prompts", json!({ "summariser": summariser, "stand_in": stand_in }));
}

#[tokio::test]
async fn independent_tasks_run_at_the_same_time_in_kernels_of_their_own() {
    let world = world(Budget::default()).await;
    world.llm.push(plan_reply(serde_json::json!([
        task("a", "analyst", "wait, then report the time", &[]),
        task("b", "analyst", "wait, then report the time", &[]),
        task("c", "writer", "sum up both", &["a", "b"]),
    ])));
    // Both sub-agents get the same reply: it waits, and answers when it started and ended.
    let timed = "import time\nstarted = time.time()\ntime.sleep(1.5)\nfinal_answer(f'{started} {time.time()}')";
    world.llm.push(block(timed));
    world.llm.push(block(timed));
    world.llm.push(verdict(true, "a time"));
    world.llm.push(verdict(true, "a time"));
    world.llm.push(block("final_answer('both waited')"));
    world.llm.push(verdict(true, "summed up"));
    world.llm.push(Reply::Text("Both tasks waited at the same time.".into()));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let run =
        world.runs.post_run(world.thread, world.user, "Wait twice.".into(), true, options).await.unwrap().1.unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);

    let tasks = last_plan(&world).await;
    let span = |id: &str| -> (f64, f64) {
        let task = tasks.iter().find(|t| t["id"] == id).unwrap();
        assert_eq!(task["status"], "done", "{task}");
        let times: Vec<f64> = task["result"].as_str().unwrap().split(' ').map(|t| t.parse().unwrap()).collect();
        (times[0], times[1])
    };
    let ((a_start, a_end), (b_start, b_end)) = (span("a"), span("b"));
    // One kernel runs one block at a time: overlapping waits ran in two kernels, at once.
    assert!(a_start < b_end && b_start < a_end, "a {a_start}..{a_end}, b {b_start}..{b_end} overlap");
    let events = world.events().await;
    let first_observation = events.iter().position(|(k, _)| k == "observation").unwrap();
    let coded: Vec<&str> = events[..first_observation]
        .iter()
        .filter(|(k, _)| k == "code")
        .map(|(_, p)| p["task"].as_str().unwrap())
        .collect();
    assert_eq!(coded.len(), 2, "both tasks had started before either finished: {coded:?}");
    // The dependent task came after both, with both results.
    let writer =
        world.llm.received().iter().position(|r| r.body["messages"].to_string().contains("sum up both")).unwrap();
    let prompt = request_text(&world, writer);
    assert!(prompt.contains("Result of task a") && prompt.contains("Result of task b"), "{prompt}");
    // The batch's extra sandbox is gone again.
    assert_eq!(world.sandboxes().await, 1, "only the thread's sandbox remains");
}

#[tokio::test]
async fn a_task_queued_under_a_claim_its_run_lost_since_writes_nothing() {
    use cairn_core::model::NewRun;
    let world = world(Budget::default()).await;
    // A worker claimed the run and queued a task of its plan; then another
    // worker took the run over (the first was paused past its lease).
    let new_run = NewRun { thread_id: world.thread, created_by: world.user, trace_parent: None };
    let run = world.store.create_run(new_run).await.unwrap();
    let first = world.store.claim_run(run.id).await.unwrap();
    world.store.set_run_status(run.id, RunStatus::Running, None, Some(first)).await.unwrap();
    let second = world.store.claim_run(run.id).await.unwrap();
    assert!(second.generation > first.generation);
    world.llm.push(block("open('late.txt', 'w').write('late')\nfinal_answer('late')"));
    let mut state = cairn_agent::AgentState { task: Some(0), ..Default::default() };
    state.messages = vec![cairn_llm::Message::user("write late.txt")];
    let job = cairn_agent::LaneJob { run: run.id, step: 1, lane: 1, state, fence: Some(first) };
    let payload = bytes::Bytes::from(serde_json::to_vec(&job).unwrap());
    world.bus.queue.enqueue(cairn_agent::runs::LANE_QUEUE, payload).await.unwrap();

    // A worker takes the task and is done with it...
    let mut waited = 0;
    loop {
        let stats = world.bus.queue.stats(cairn_agent::runs::LANE_QUEUE).await.unwrap();
        if stats.ready + stats.taken == 0 {
            break;
        }
        assert!(waited < 600, "the task was not taken and finished: {stats:?}");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(world.bus.queue.stats(cairn_agent::runs::LANE_QUEUE).await.unwrap().dead, 0);
    // ...writing nothing under the claim the run lost: no event in the
    // thread's log, no result for the new holder's supervisor to take, no
    // file in the library; its sandbox is gone.
    let events = world.store.events_after(world.thread, 0, 100).await.unwrap();
    assert!(events.is_empty(), "{:?}", events.iter().map(|e| &e.kind).collect::<Vec<_>>());
    assert_eq!(world.store.lane_result(run.id, 1, 1).await.unwrap(), None);
    assert!(world.store.file_versions(world.project, "late.txt").await.unwrap().is_empty());
    assert_eq!(world.sandboxes().await, 0);
    // The run is the new holder's: it writes.
    world.store.put_lane_result(run.id, 1, 1, json!({ "done": true }), Some(second)).await.unwrap();
}

#[tokio::test]
async fn a_run_and_a_task_whose_workers_keep_dying_end_failed_not_running_for_good() {
    use cairn_agent::runs::LANE_QUEUE;
    use cairn_core::model::NewRun;
    let queue = cairn_core::bus::QueueOptions { lease: Duration::from_millis(400), max_deliveries: 2 };
    let world = world_of(Setup { queue, workers: 0, ..Setup::default() }).await;
    let (_, run) = world.runs.post(world.thread, world.user, "Go.".into(), true).await.unwrap();
    let run = run.unwrap();
    // A task of another run's plan, queued by the worker that claimed it.
    let new_run = NewRun { thread_id: world.thread, created_by: world.user, trace_parent: None };
    let planned = world.store.create_run(new_run).await.unwrap();
    let claim = world.store.claim_run(planned.id).await.unwrap();
    world.store.set_run_status(planned.id, RunStatus::Running, None, Some(claim)).await.unwrap();
    let job = cairn_agent::LaneJob { run: planned.id, step: 1, lane: 1, state: Default::default(), fence: Some(claim) };
    let payload = bytes::Bytes::from(serde_json::to_vec(&job).unwrap());
    world.bus.queue.enqueue(LANE_QUEUE, payload).await.unwrap();
    // Each is taken by a worker that dies holding it (no answer, no lease
    // kept), as often as the queue allows.
    for attempt in 1..=2 {
        for queue_name in [cairn_agent::QUEUE, LANE_QUEUE] {
            let taken = world.bus.queue.take(queue_name, "doomed", Duration::from_secs(5)).await.unwrap();
            assert_eq!(taken.map(|t| (t.attempt, t.exhausted)), Some((attempt, false)), "{queue_name}");
        }
    }
    tokio::time::sleep(queue.lease + Duration::from_millis(100)).await;

    // A worker that comes up takes both once more: neither is worked again;
    // the run ends failed saying why, and the task's result says it failed
    // (so the supervisor waiting for it goes on) — neither waits for good.
    world.runs.start_workers("test", 1);
    let ended = world.runs.settle(run.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    let why = ended.error.clone().unwrap_or_default();
    assert!(why.contains("stopped answering on each of its 2 deliveries"), "{why}");
    let mut result = None;
    for _ in 0..300 {
        result = world.store.lane_result(planned.id, 1, 1).await.unwrap();
        if result.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failure = result.expect("the task's result")["task_failure"].as_str().unwrap_or_default().to_owned();
    assert!(failure.contains("stopped answering on each of its 2 deliveries"), "{failure}");
    assert!(world.llm.received().is_empty(), "nothing was worked again");
    assert_eq!(world.sandboxes().await, 0, "no sandbox was made for either");
    // The run's log says it ended; both jobs are set aside with the reason.
    let statuses: Vec<String> = world
        .store
        .events_after(world.thread, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "run.status" && e.run_id == Some(run.id))
        .map(|e| e.payload["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, ["queued", "failed"]);
    for queue_name in [cairn_agent::QUEUE, LANE_QUEUE] {
        let dead = world.bus.queue.dead_letters(queue_name, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{queue_name}: {dead:?}");
        assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("stopped answering"), "{dead:?}");
    }
}

#[tokio::test]
async fn the_models_reasoning_is_an_event_of_its_own_never_the_answer() {
    let world = world(Budget::default()).await;
    world.llm.push(Reply::Text(
        "<think>The user wants a greeting; one block will do.</think>```python\nfinal_answer('hello')\n```".into(),
    ));
    let (_, run) = world.runs.post(world.thread, world.user, "Greet me.".into(), true).await.unwrap();
    let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let events = world.events().await;
    let thought: String =
        events.iter().filter(|(k, _)| k == "reasoning").map(|(_, p)| p["text"].as_str().unwrap()).collect();
    assert_eq!(thought, "The user wants a greeting; one block will do.");
    let streamed: String =
        events.iter().filter(|(k, _)| k == "token").map(|(_, p)| p["text"].as_str().unwrap()).collect();
    assert!(!streamed.contains("greeting"), "reasoning is not part of the reply: {streamed}");
    let answer = events.iter().rev().find(|(k, _)| k == "message.created").unwrap();
    assert_eq!(answer.1["content"], "hello");
}

#[tokio::test]
async fn a_figure_the_code_made_reaches_a_model_that_sees() {
    let world = world(Budget::default()).await;
    // A one-pixel PNG shown the way IPython shows images (_repr_png_).
    let pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    world.llm.push(block(&format!(
        "import base64\nclass Pic:\n    def _repr_png_(self):\n        return base64.b64decode('{pixel}')\nPic()"
    )));
    world.llm.push(block("final_answer('one pixel')"));
    world.llm.push(block(&format!(
        "import base64\nclass Pic:\n    def _repr_png_(self):\n        return base64.b64decode('{pixel}')\nPic()"
    )));
    world.llm.push(block("final_answer('one pixel')"));
    for model in ["scripted/eyes", "scripted/m"] {
        let posted =
            world.runs.post_with_model(world.thread, world.user, "Draw a dot.".into(), true, Some(model.into()));
        let (_, run) = posted.await.unwrap();
        let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{model}");
    }
    let received = world.llm.received();
    let last_message = |n: usize| received[n].body["messages"].as_array().unwrap().last().unwrap().clone();
    // The model that sees gets the figure beside the observation's words.
    let seen = last_message(1);
    assert_eq!(seen["content"][1]["image_url"]["url"], format!("data:image/png;base64,{pixel}"), "{seen}");
    assert!(seen["content"][0]["text"].as_str().unwrap().contains("[a figure, saved as figures/"));
    // The one that does not is told in words.
    let told = last_message(3);
    assert!(
        told["content"].as_str().unwrap().contains("1 image here (image/png) that this model cannot see"),
        "{told}"
    );
}

#[tokio::test]
async fn an_image_a_member_attached_reaches_a_model_that_sees() {
    let world = world(Budget::default()).await;
    let pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let png = base64::engine::general_purpose::STANDARD.decode(pixel).unwrap();
    for (path, bytes) in [("uploads/dot.png", png), ("data/notes.txt", b"north: 12\nsouth: 7\n".to_vec())] {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
        world.files.save_for_user(world.project, path, body, world.user).await.unwrap();
    }
    world.llm.push(block("final_answer('a dot')"));
    world.llm.push(block("final_answer('a dot, I am told')"));
    for model in ["scripted/eyes", "scripted/m"] {
        let options = cairn_agent::RunOptions {
            model: Some(model.into()),
            attachments: vec!["uploads/dot.png".into(), "data/notes.txt".into()],
            ..Default::default()
        };
        let posted = world.runs.post_run(world.thread, world.user, "What is in the picture?".into(), true, options);
        let (message, run) = posted.await.unwrap();
        assert_eq!(message.attachments, ["uploads/dot.png", "data/notes.txt"]);
        let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
        assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{model}");
    }
    let received = world.llm.received();
    let last_message = |n: usize| received[n].body["messages"].as_array().unwrap().last().unwrap().clone();
    // The model that sees: the image as a part, both files named in words.
    let seen = last_message(0);
    assert_eq!(seen["content"][1]["image_url"]["url"], format!("data:image/png;base64,{pixel}"), "{seen}");
    let words = seen["content"][0]["text"].as_str().unwrap();
    assert!(words.starts_with("What is in the picture?"), "{words}");
    assert!(words.contains("`uploads/dot.png` (image/png, 1 KB, shown with this message)"), "{words}");
    assert!(words.contains("`data/notes.txt` (text/plain"), "{words}");
    // The one that does not see is told the image is there.
    let told = last_message(1);
    let told = told["content"].as_str().unwrap();
    assert!(told.contains("1 image here (image/png) that this model cannot see"), "{told}");
    // The message.created event names the attachments for the people watching.
    let events = world.events().await;
    let created = events.iter().find(|(k, p)| k == "message.created" && p["role"] == "user").unwrap();
    assert_eq!(created.1["attachments"], json!(["uploads/dot.png", "data/notes.txt"]));
}

#[tokio::test]
async fn runs_work_on_anthropic_azure_and_openai_responses_too() {
    let world = world(Budget::default()).await;
    let protocols =
        [("claude/claude-sonnet-4-5", "anthropic"), ("azure/prod", "azure"), ("openai/o4-mini", "responses")];
    for (model, protocol) in protocols {
        world.llm.push(Reply::Text(format!("<think>Multiply first.</think>{}", block_text("x = 6 * 7\nprint(x)"))));
        world.llm.push(block("final_answer(f'it is {x}')"));
        let posted = world.runs.post_with_model(world.thread, world.user, "Compute.".into(), true, Some(model.into()));
        let (_, run) = posted.await.unwrap();
        let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
        assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{model}");
        let received = world.llm.received();
        let last_two: Vec<&str> = received.iter().rev().take(2).map(|r| r.protocol).collect();
        assert_eq!(last_two, [protocol, protocol], "{model} spoke its own protocol");
        let observed = received.last().unwrap().body.to_string();
        assert!(observed.contains("42"), "{model} saw the observation: {observed}");
    }
    // Where the protocol shows reasoning as asked (OpenAI's summary; Claude
    // thinks only when a budget is set), it is an event of its own.
    let thought: Vec<String> = world
        .events()
        .await
        .into_iter()
        .filter(|(k, _)| k == "reasoning")
        .map(|(_, p)| p["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(thought.concat(), "Multiply first.", "the o4-mini run's summary, once");
}

/// Ids are random, and how a stream is cut into pieces follows the clock:
/// both are made stable before a snapshot (ids become `[id]`; neighbouring
/// pieces of one stream are joined).
fn stable(value: Value) -> Value {
    let is_id = |s: &str| {
        s.len() == 36
            && s.char_indices()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
    };
    match value {
        Value::String(s) if is_id(&s) => json!("[id]"),
        Value::Array(items) => Value::Array(items.into_iter().map(stable).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, stable(v))).collect()),
        other => other,
    }
}

/// The prompts and the event stream of a recorded scripted run, pinned:
/// a change to either shows in review as a snapshot diff
/// (`INSTA_UPDATE=always` accepts the new one, `cargo insta review` too).
#[tokio::test]
async fn a_recorded_run_keeps_its_prompts_and_its_events() {
    let world = world(Budget::default()).await;
    world.llm.push(block("values = [3, 5, 7, 9]\nprint(sum(values) / len(values))"));
    world.llm.push(Reply::Text(
        "<think>The mean was printed.</think>```python\nfinal_answer('The mean is 6.0.')\n```".into(),
    ));
    let posted = world.runs.post(world.thread, world.user, "What is the mean of 3, 5, 7 and 9?".into(), true);
    let (_, run) = posted.await.unwrap();
    let run = world.runs.settle(run.unwrap().id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None));

    let prompts: Vec<Value> = world.llm.received().iter().map(|r| r.body["messages"].clone()).collect();
    insta::assert_json_snapshot!("recorded_run_prompts", stable(json!(prompts)));
    insta::assert_json_snapshot!("recorded_run_events", recorded_events(&world).await);
}

/// The same for a planned run: the planner's, each sub-agent's, the
/// supervisor's verdicts' and the synthesis's prompts, and the plan's
/// events. Its tasks depend on each other, so they run in one order.
#[tokio::test]
async fn a_recorded_planned_run_keeps_its_prompts_and_its_events() {
    let world = world(Budget::default()).await;
    world.llm.push(plan_reply(serde_json::json!([
        task("t1", "analyst", "compute six times seven", &[]),
        task("t2", "writer", "write one line about the number", &["t1"]),
    ])));
    world.llm.push(block("x = 6 * 7\nfinal_answer(f'x is {x}')"));
    world.llm.push(verdict(true, "a number"));
    world.llm.push(block("final_answer('The number is 42.')"));
    world.llm.push(verdict(true, "one line"));
    world.llm.push(Reply::Text("The number is **42**.".into()));
    let options = cairn_agent::RunOptions { plan: true, ..Default::default() };
    let posted = world.runs.post_run(world.thread, world.user, "Six times seven, in a line.".into(), true, options);
    let run = posted.await.unwrap().1.unwrap();
    let run = world.runs.settle(run.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Succeeded, None), "{:?}", world.kinds().await);

    let prompts: Vec<Value> = world.llm.received().iter().map(|r| r.body["messages"].clone()).collect();
    insta::assert_json_snapshot!("recorded_planned_run_prompts", stable(json!(prompts)));
    insta::assert_json_snapshot!("recorded_planned_run_events", recorded_events(&world).await);
}

/// The thread's events as a snapshot holds them: pieces of one stream
/// joined, ids made stable.
async fn recorded_events(world: &World) -> Value {
    let mut events: Vec<Value> = Vec::new();
    for (kind, payload) in world.events().await {
        // Token and reasoning pieces, and printed text of one stream.
        let joinable = kind == "token" || kind == "reasoning" || (kind == "output" && payload["type"] == "stream");
        if let Some(last) = events.last_mut()
            && joinable
            && last["kind"] == kind.as_str()
            && last["payload"]["task"] == payload["task"]
            && last["payload"]["name"] == payload["name"]
        {
            let joined = format!("{}{}", last["payload"]["text"].as_str().unwrap(), payload["text"].as_str().unwrap());
            last["payload"]["text"] = json!(joined);
            continue;
        }
        events.push(json!({ "kind": kind, "payload": payload }));
    }
    stable(json!(events))
}
