//! The kernel under bubblewrap: notebook-like execution and the first
//! isolation checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cairn_sandbox::{CgroupSupport, Kernel, KernelOptions, Limits};
use cairn_testkit::TempDir;

async fn kernel(dir: &TempDir) -> Kernel {
    limited(dir, Limits::default()).await
}

async fn limited(dir: &TempDir, limits: Limits) -> Kernel {
    let mut options = KernelOptions::with_host_python(dir.path.join("workspace"), dir.path.join("runtime")).unwrap();
    options.limits = limits;
    Kernel::start(&options).await.expect("bubblewrap and python3 are needed for the sandbox tests")
}

fn small() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        processes: 64,
        wall_time: Duration::from_secs(2),
        output_bytes: 64 << 10,
        open_files: 64,
        file_bytes: 8 << 20,
    }
}

#[tokio::test]
async fn state_persists_and_outputs_arrive_in_order() {
    let dir = TempDir::new("kernel");
    let mut kernel = kernel(&dir).await;
    let first = kernel.execute("x = 41\nprint('hello')\nx + 1", |_| {}).await.unwrap();
    assert!(first.ok);
    assert_eq!(first.stream("stdout"), "hello\n");
    assert_eq!(first.result_text(), Some("42"));
    let mut seen = Vec::new();
    let second = kernel
        .execute("import os, subprocess\nos.write(1, b'raw\\n')\nsubprocess.run(['echo', 'child'])\nx", |o| {
            seen.push(o.clone())
        })
        .await
        .unwrap();
    assert_eq!(second.stream("stdout"), "raw\nchild\n", "fd-level and child output are captured");
    assert_eq!(second.result_text(), Some("41"), "variables persist");
    assert_eq!(seen, second.outputs, "outputs are streamed as they come");
    let failed = kernel.execute("def f():\n    return 1 / 0\nf()", |_| {}).await.unwrap();
    assert!(!failed.ok);
    assert_eq!(failed.error(), Some(("ZeroDivisionError", "division by zero")));
    let after = kernel.execute("x * 2", |_| {}).await.unwrap();
    assert_eq!(after.result_text(), Some("82"), "an error does not lose the state");
}

#[tokio::test]
async fn the_sandbox_sees_no_host_secrets_files_or_network() {
    let dir = TempDir::new("kernel");
    let mut kernel = kernel(&dir).await;
    let probe = kernel
        .execute(
            "import os, socket\n\
             print(sorted(k for k in os.environ if k not in ('PATH','HOME','LANG','MPLBACKEND','PYTHONDONTWRITEBYTECODE','PWD','SHLVL','_')))\n\
             print(os.path.exists('/etc/passwd'), os.path.exists(os.path.expanduser('~root/.cargo')) or os.path.exists('/root/.cargo'), os.path.exists('/work'))\n\
             s = socket.socket()\ns.settimeout(2)\n\
             try:\n    s.connect(('127.0.0.1', 5432)); print('connected')\nexcept OSError as e:\n    print('refused')\n\
             print(socket.gethostname(), os.getpid())",
            |_| {},
        )
        .await
        .unwrap();
    let out = probe.stream("stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[]", "no host environment variables: {out}");
    assert_eq!(lines[1], "False False False", "no host files: {out}");
    assert_eq!(lines[2], "refused", "no host network: {out}");
    assert!(lines[3].starts_with("sandbox "), "own hostname: {out}");
    let written =
        kernel.execute("open('note.txt', 'w').write('kept'); import os; os.listdir('.')", |_| {}).await.unwrap();
    assert_eq!(written.result_text(), Some("['note.txt']"));
    assert_eq!(
        std::fs::read_to_string(dir.path.join("workspace/note.txt")).unwrap(),
        "kept",
        "the workspace is shared with the host"
    );
}

/// Each bomb is stopped by its limit with a message the agent can read, and
/// the kernel (or a fresh one on the same workspace) keeps working.
#[tokio::test]
async fn resource_bombs_are_stopped_by_their_limits() {
    assert!(
        !matches!(CgroupSupport::detect(), CgroupSupport::None(_)),
        "this host must offer cgroups for the memory and process limits: {:?}",
        CgroupSupport::detect()
    );
    let dir = TempDir::new("bombs");
    let mut kernel = limited(&dir, small()).await;
    kernel.execute("kept = 'state'", |_| {}).await.unwrap();

    let sleep = kernel.execute("import time\ntime.sleep(600)", |_| {}).await.unwrap();
    assert_eq!(sleep.limit.as_deref(), Some("wall time limit of 2 s exceeded; the execution was interrupted"));
    assert_eq!(
        kernel.execute("kept", |_| {}).await.unwrap().result_text(),
        Some("'state'"),
        "interrupting keeps the state"
    );

    let stubborn = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass";
    let spin = kernel.execute(stubborn, |_| {}).await.unwrap();
    assert_eq!(
        spin.limit.as_deref(),
        Some("wall time limit of 2 s exceeded; the code did not stop; the kernel was restarted")
    );
    let fresh = kernel.execute("'kept' in globals()", |_| {}).await.unwrap();
    assert_eq!(fresh.result_text(), Some("False"), "a restarted kernel starts clean");

    let memory = kernel
        .execute("hog = bytearray(600 * 1024 * 1024)\nhog[::4096] = b'x' * len(hog[::4096])", |_| {})
        .await
        .unwrap();
    assert_eq!(
        memory.limit.as_deref(),
        Some("memory limit of 256 MiB exceeded; the kernel was restarted"),
        "{memory:?}"
    );
    assert_eq!(kernel.execute("1 + 1", |_| {}).await.unwrap().result_text(), Some("2"));

    let fork = kernel.execute("import os\nwhile True:\n    os.fork()", |_| {}).await.unwrap();
    assert!(!fork.ok, "{fork:?}");
    assert_eq!(
        kernel.execute("2 + 2", |_| {}).await.unwrap().result_text(),
        Some("4"),
        "the fork bomb did not take the kernel down"
    );

    let flood = kernel.execute("while True:\n    print('x' * 1000)", |_| {}).await.unwrap();
    assert!(
        flood.limit.as_deref().unwrap_or_default().starts_with("output limit of 64 KiB exceeded"),
        "{:?}",
        flood.limit
    );
    assert!(flood.stream("stdout").len() <= 64 << 10);

    let disk = kernel.execute("open('big.bin', 'wb').write(b'x' * (16 << 20))", |_| {}).await.unwrap();
    assert!(!disk.ok, "a file over the size limit cannot be written: {disk:?}");
    assert_eq!(kernel.execute("3 + 3", |_| {}).await.unwrap().result_text(), Some("6"));
}
