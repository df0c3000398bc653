//! The E2B backend against a stand-in that follows E2B's published API (the
//! control plane, the code interpreter's `/execute`, envd's files and
//! Connect calls), as the scripted model server follows OpenAI's: lifecycle,
//! outputs and errors, shell commands, files, pause and resume keeping the
//! kernel's memory, the wall time, and E2B's error answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::sandbox::{
    EffectiveLimits, EntryKind, ExecOutcome, Execution, NewSandbox, Output, SandboxError, SandboxPolicy, SandboxState,
    Sandboxes,
};
use cairn_core::{SandboxId, UserId};
use cairn_sandbox::{E2bConfig, E2bSandboxes};
use cairn_testkit::E2bStandIn;

fn config(stand_in: &E2bStandIn, key: &str) -> E2bConfig {
    E2bConfig {
        api_url: stand_in.url.clone(),
        sandbox_url: stand_in.url.clone(),
        domain: "e2b.app".into(),
        api_key: key.to_owned(),
        template: "code-interpreter-v1".into(),
        timeout_secs: 300,
        limits: EffectiveLimits {
            network: false,
            memory_bytes: 1 << 30,
            processes: 256,
            wall_time_secs: 2,
            disk_bytes: 1 << 30,
            output_bytes: 64 << 10,
            open_files: 1024,
        },
    }
}

async fn run(sandboxes: &E2bSandboxes, id: SandboxId, execution: Execution) -> ExecOutcome {
    sandboxes.execute(id, execution, &mut |_: &Output| {}).await.unwrap()
}

fn python(code: &str) -> Execution {
    Execution::Python { code: code.to_owned() }
}

fn shell(command: &str) -> Execution {
    Execution::Shell { command: command.to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_runs_with_its_state_outputs_and_errors() {
    let stand_in = E2bStandIn::start().await;
    let sandboxes = E2bSandboxes::new(config(&stand_in, &stand_in.api_key)).unwrap();
    let info = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap();
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(stand_in.calls(), vec!["POST /sandboxes"]);

    let mut seen = Vec::new();
    let first = sandboxes
        .execute(info.id, python("x = 41\nprint('hello')\nx + 1"), &mut |o: &Output| seen.push(o.clone()))
        .await
        .unwrap();
    assert!(first.ok, "{first:?}");
    assert_eq!(first.stream("stdout"), "hello\n");
    assert_eq!(first.result_text(), Some("42"));
    assert_eq!(seen, first.outputs, "outputs are streamed as they come");
    let failed = run(&sandboxes, info.id, python("def f():\n    return 1 / 0\nf()")).await;
    assert!(!failed.ok);
    assert_eq!(failed.error(), Some(("ZeroDivisionError", "division by zero")));
    assert_eq!(run(&sandboxes, info.id, python("x * 2")).await.result_text(), Some("82"), "state persists");

    let listed = run(&sandboxes, info.id, shell("echo hi; echo oops >&2; exit 3")).await;
    assert_eq!((listed.ok, listed.exit_code), (false, Some(3)));
    assert_eq!((listed.stream("stdout").as_str(), listed.stream("stderr").as_str()), ("hi\n", "oops\n"));
    let fine = run(&sandboxes, info.id, shell("true")).await;
    assert_eq!((fine.ok, fine.exit_code), (true, Some(0)), "protobuf's JSON leaves a zero exit code out");
    assert_eq!(sandboxes.inspect(info.id).await.unwrap().executions, 5);
    // Two at once run one after the other, in order, on the same kernel.
    let (a, b) = tokio::join!(run(&sandboxes, info.id, python("import time\ntime.sleep(0.3)\norder = ['a']")), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        run(&sandboxes, info.id, python("order.append('b')\norder")).await
    });
    assert!(a.ok, "{a:?}");
    assert_eq!(b.result_text(), Some("['a', 'b']"), "the second waited for the first: {b:?}");

    sandboxes.destroy(info.id).await.unwrap();
    assert_eq!(stand_in.sandboxes(), (0, 0), "killed on E2B");
    assert_eq!(sandboxes.inspect(info.id).await, Err(SandboxError::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_files_go_through_envd() {
    let stand_in = E2bStandIn::start().await;
    let sandboxes = E2bSandboxes::new(config(&stand_in, &stand_in.api_key)).unwrap();
    let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
    let written = sandboxes.write_file(id, "data/trend.csv", b"year,value\n2025,2\n".to_vec()).await.unwrap();
    assert_eq!((written.path.as_str(), written.kind, written.size), ("data/trend.csv", EntryKind::File, 18));
    let read = run(&sandboxes, id, python("open('data/trend.csv').read().splitlines()[1]")).await;
    assert_eq!(read.result_text(), Some("'2025,2'"), "the code sees the upload in its home");
    run(&sandboxes, id, python("open('report.md', 'w').write('# done')")).await;
    let all: Vec<(String, EntryKind)> =
        sandboxes.list_files(id, "", true).await.unwrap().into_iter().map(|e| (e.path, e.kind)).collect();
    assert_eq!(
        all,
        vec![
            ("data".to_owned(), EntryKind::Directory),
            ("data/trend.csv".to_owned(), EntryKind::File),
            ("report.md".to_owned(), EntryKind::File)
        ]
    );
    assert_eq!(sandboxes.read_file(id, "report.md", 1024).await.unwrap(), b"# done");
    sandboxes.delete_path(id, "data").await.unwrap();
    assert!(matches!(sandboxes.read_file(id, "data/trend.csv", 1024).await, Err(SandboxError::NoSuchPath(_))));
    assert!(matches!(
        sandboxes.write_file(id, "../escape.txt", b"x".to_vec()).await,
        Err(SandboxError::InvalidPath(_))
    ));
    assert!(matches!(sandboxes.delete_path(id, "").await, Err(SandboxError::InvalidPath(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_keep_the_kernels_memory() {
    let stand_in = E2bStandIn::start().await;
    let sandboxes = E2bSandboxes::new(config(&stand_in, &stand_in.api_key)).unwrap();
    let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
    run(&sandboxes, id, python("kept = 'across the pause'")).await;
    assert_eq!(sandboxes.pause(id).await.unwrap().state, SandboxState::Paused);
    assert_eq!(stand_in.sandboxes(), (1, 1), "paused on E2B");
    assert_eq!(sandboxes.pause(id).await.unwrap().state, SandboxState::Paused, "pausing again is no error (409)");
    let back = run(&sandboxes, id, python("kept")).await;
    assert_eq!(back.result_text(), Some("'across the pause'"), "E2B resumes with the kernel's memory");
    assert_eq!(back.notice, None, "nothing was lost to tell about");
    assert_eq!(sandboxes.inspect(id).await.unwrap().state, SandboxState::Running);
    assert!(
        stand_in.calls().iter().any(|c| c.ends_with("/connect")),
        "resumed through connect: {:?}",
        stand_in.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_execution_is_interrupted_and_the_kernel_lives_on() {
    let stand_in = E2bStandIn::start().await;
    let sandboxes = E2bSandboxes::new(config(&stand_in, &stand_in.api_key)).unwrap();
    let id = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap().id;
    run(&sandboxes, id, python("before = 1")).await;
    let slow = run(&sandboxes, id, python("import time\ntime.sleep(60)")).await;
    assert_eq!(slow.limit.as_deref(), Some("wall time limit of 2 s exceeded; the execution was interrupted"));
    // The stand-in, like E2B, interrupts the kernel when the stream is gone.
    let mut after = run(&sandboxes, id, python("before + 1")).await;
    for _ in 0..20 {
        if after.result_text() == Some("2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        after = run(&sandboxes, id, python("before + 1")).await;
    }
    assert_eq!(after.result_text(), Some("2"), "the variables survive the interruption: {after:?}");
    let flood = run(&sandboxes, id, python("for _ in range(10000):\n    print('x' * 100)")).await;
    assert!(
        flood.limit.as_deref().unwrap_or_default().starts_with("output limit of 65536 bytes exceeded"),
        "{flood:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2b_refusals_become_clear_errors() {
    let stand_in = E2bStandIn::start().await;
    let wrong = E2bSandboxes::new(config(&stand_in, "e2b_0000")).unwrap();
    let refused = wrong.create(NewSandbox::for_owner(UserId::new())).await.unwrap_err();
    assert!(matches!(&refused, SandboxError::Unavailable(m) if m.contains("E2B refused the API key")), "{refused:?}");
    assert!(E2bSandboxes::new(config(&stand_in, "")).is_err(), "no key, no backend");

    let sandboxes = E2bSandboxes::new(config(&stand_in, &stand_in.api_key)).unwrap();
    stand_in.fail_next(429, "You have reached the maximum number of concurrent E2B sandboxes");
    let limited = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap_err();
    assert!(matches!(&limited, SandboxError::CapReached(m) if m.contains("maximum number")), "{limited:?}");
    assert_eq!(limited.code(), "sandbox_cap_reached");
    stand_in.fail_next(503, "the service is overloaded");
    let down = sandboxes.create(NewSandbox::for_owner(UserId::new())).await.unwrap_err();
    assert!(matches!(&down, SandboxError::Unavailable(m) if m.contains("503") && m.contains("overloaded")), "{down:?}");

    let policy = SandboxPolicy { network: true, ..SandboxPolicy::default() };
    let request = NewSandbox { policy, ..NewSandbox::for_owner(UserId::new()) };
    let id = sandboxes.create(request).await.unwrap().id;
    assert!(sandboxes.inspect(id).await.unwrap().limits.network);
    // Gone on E2B's side (its timeout): the next call says so.
    stand_in.fail_next(404, "sandbox not found");
    assert_eq!(sandboxes.pause(id).await.unwrap_err(), SandboxError::NotFound);
    assert_eq!(sandboxes.inspect(SandboxId::new()).await, Err(SandboxError::NotFound));
}
