//! The kernel under bubblewrap: notebook-like execution and the first
//! isolation checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_sandbox::{Kernel, KernelOptions};
use cairn_testkit::TempDir;

async fn kernel(dir: &TempDir) -> Kernel {
    let options = KernelOptions::with_host_python(dir.path.join("workspace"), dir.path.join("runtime")).unwrap();
    Kernel::start(&options).await.expect("bubblewrap and python3 are needed for the sandbox tests")
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
