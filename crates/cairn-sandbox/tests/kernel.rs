//! The kernel under bubblewrap and in a container (Podman's Docker-compatible
//! engine here): notebook-like execution, limits and the isolation checks,
//! the same tests for both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use std::sync::Arc;

use cairn_sandbox::{CgroupSupport, ContainerEngine, Kernel, KernelOptions, Limits};
use cairn_testkit::TempDir;

mod common;

use common::{BUBBLEWRAP, Backend, CONTAINER, IMAGE_PYTHON, sandbox_python};

cairn_testkit::on_backends!(on_bubblewrap: BUBBLEWRAP, on_container: CONTAINER;
    state_persists_and_outputs_arrive_in_order,
    the_sandbox_sees_no_host_secrets_files_or_network,
    resource_bombs_are_stopped_by_their_limits,
    escape_attempts_fail,
    sandboxes_cannot_see_each_other,
    shell_commands_run_in_the_same_sandbox,
    the_data_stack_gives_rich_outputs,
    the_warm_pool_hands_out_ready_kernels,
);

pub(crate) async fn engine(runtime: &std::path::Path) -> Arc<ContainerEngine> {
    let (socket, image) = cairn_testkit::container_engine();
    let engine = ContainerEngine::connect(&socket, &image, std::path::Path::new(IMAGE_PYTHON), runtime);
    Arc::new(engine.await.expect("the container engine answers and has the sandbox image"))
}

/// Kernel options on `backend`: bubblewrap with the host's `python3` (the
/// sandbox venv's for the data stack); a container with the image's Python
/// and the sandbox venv's packages.
async fn options_in(
    backend: Backend,
    workspace: std::path::PathBuf,
    runtime: std::path::PathBuf,
    stack: bool,
) -> KernelOptions {
    match backend {
        Backend::Bubblewrap if !stack => KernelOptions::with_host_python(workspace, runtime).unwrap(),
        Backend::Bubblewrap => KernelOptions::with_python(&sandbox_python(), workspace, runtime).unwrap(),
        Backend::Container => {
            let engine = engine(&runtime).await;
            KernelOptions::with_python(&sandbox_python(), workspace, runtime).unwrap().in_container(engine)
        }
    }
}

async fn kernel(backend: Backend, dir: &TempDir) -> Kernel {
    limited(backend, dir, Limits::default()).await
}

async fn limited(backend: Backend, dir: &TempDir, limits: Limits) -> Kernel {
    let mut options = options_in(backend, dir.path.join("workspace"), dir.path.join("runtime"), false).await;
    options.limits = limits;
    Kernel::start(&options).await.expect("the sandbox starts (bubblewrap and python3, or the container engine)")
}

fn small() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        processes: 64,
        wall_time: Duration::from_secs(2),
        output_bytes: 64 << 10,
        open_files: 64,
        file_bytes: 8 << 20,
        disk_bytes: 32 << 20,
    }
}

async fn state_persists_and_outputs_arrive_in_order(backend: Backend) {
    let dir = TempDir::new("kernel");
    let mut kernel = kernel(backend, &dir).await;
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

async fn the_sandbox_sees_no_host_secrets_files_or_network(backend: Backend) {
    let dir = TempDir::new("kernel");
    let mut kernel = kernel(backend, &dir).await;
    // The host's accounts file must not be there (a container's image has
    // one of its own).
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    kernel.execute(&format!("HOST_PASSWD = {host_passwd:?}"), |_| {}).await.unwrap();
    let probe = kernel
        .execute(
            "import os, socket\n\
             print(sorted(k for k in os.environ if k not in ('PATH','HOME','LANG','MPLBACKEND','PYTHONDONTWRITEBYTECODE','PWD','SHLVL','_','HOSTNAME','container','TERM','PYTHONPATH')))\n\
             print(os.path.exists('/etc/passwd') and open('/etc/passwd').read() == HOST_PASSWD, os.path.exists(os.path.expanduser('~root/.cargo')) or os.path.exists('/root/.cargo'), os.path.exists('/work'))\n\
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
async fn resource_bombs_are_stopped_by_their_limits(backend: Backend) {
    assert!(
        !matches!(CgroupSupport::detect(), CgroupSupport::None(_)),
        "this host must offer cgroups for the memory and process limits: {:?}",
        CgroupSupport::detect()
    );
    let dir = TempDir::new("bombs");
    let mut kernel = limited(backend, &dir, small()).await;
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

    // Disk limits in a kernel with room in time: filling 32 MiB on a busy
    // machine can take longer than the 2 s the limits above are tested with.
    let disk_dir = TempDir::new("bombs-disk");
    let mut kernel = limited(backend, &disk_dir, Limits { wall_time: Duration::from_secs(60), ..small() }).await;
    let disk = kernel.execute("open('big.bin', 'wb').write(b'x' * (16 << 20))", |_| {}).await.unwrap();
    assert!(!disk.ok, "a file over the size limit cannot be written: {disk:?}");
    assert_eq!(kernel.execute("3 + 3", |_| {}).await.unwrap().result_text(), Some("6"));

    // Many files, each under the file size limit, fill the workspace.
    let fill = "import itertools\nfor i in itertools.count():\n    open(f'fill-{i}.bin', 'wb').write(b'x' * (4 << 20))";
    let filled = kernel.execute(fill, |_| {}).await.unwrap();
    let message = filled.limit.unwrap_or_default();
    assert!(message.starts_with("workspace disk limit of 32 MiB exceeded"), "{message}");
    let cleaned = kernel.shell("rm -f fill-*.bin big.bin && echo cleaned", |_| {}).await.unwrap();
    assert_eq!(cleaned.stream("stdout"), "cleaned\n", "a full workspace can still be cleaned up: {cleaned:?}");
}

/// Escape attempts from inside the sandbox: each must fail.
async fn escape_attempts_fail(backend: Backend) {
    let dir = TempDir::new("escape");
    let mut kernel = kernel(backend, &dir).await;
    let probe = r#"
import ctypes, errno, os, socket, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def refused(call, *args):
    result = call(*args)
    return "refused" if result == -1 else f"allowed ({result})"
results = {}
results["ptrace"] = refused(libc.ptrace, 16, 1, None, None)
results["mount"] = refused(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
results["unshare"] = refused(libc.unshare, 0x10000000)
results["unshare_net"] = refused(libc.unshare, 0x40000000)
results["setns"] = refused(libc.setns, 0, 0)
results["io_uring"] = refused(libc.syscall, 425, 8, None)
results["bpf"] = refused(libc.syscall, 321, 0, None, 0)
results["keyctl"] = refused(libc.syscall, 250, 0, 0, 0, 0, 0)
for name, family, kind in [("raw", socket.AF_INET, socket.SOCK_RAW), ("packet", socket.AF_PACKET, socket.SOCK_RAW), ("netlink", socket.AF_NETLINK, socket.SOCK_RAW)]:
    try:
        socket.socket(family, kind, 0)
        results[name] = "allowed"
    except OSError:
        results[name] = "refused"
def reach(host, port, family=socket.AF_INET):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect((host, port))
        return "reached"
    except OSError:
        return "refused"
results["postgres"] = reach("127.0.0.1", 5432)
results["redis"] = reach("127.0.0.1", 6379)
results["ipv6"] = reach("::1", 6379, socket.AF_INET6)
try:
    socket.getaddrinfo("example.com", 80)
    results["dns"] = "resolved"
except OSError:
    results["dns"] = "refused"
try:
    results["host_root"] = "listed" if open("/proc/1/root/etc/hostname").read().strip() == HOST_NAME else "refused"
except OSError:
    results["host_root"] = "refused"
try:
    os.symlink("/etc/shadow", "shadow-link"); open("shadow-link").read(); results["symlink"] = "read"
except OSError:
    results["symlink"] = "refused"
results["seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
results["threads_still_work"] = "ok" if subprocess.run(["true"]).returncode == 0 else "broken"
import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()
results
"#;
    // The host's name, which its root's /etc/hostname holds (a container's
    // own first process has a root of its own).
    let host_name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    kernel.execute(&format!("HOST_NAME = {:?}", host_name.trim()), |_| {}).await.unwrap();
    let outcome = kernel.execute(probe, |_| {}).await.unwrap();
    assert!(outcome.ok, "{outcome:?}");
    let text = outcome.result_text().unwrap().to_owned();
    for expected in [
        "'ptrace': 'refused'",
        "'mount': 'refused'",
        "'unshare': 'refused'",
        "'unshare_net': 'refused'",
        "'setns': 'refused'",
        "'io_uring': 'refused'",
        "'bpf': 'refused'",
        "'keyctl': 'refused'",
        "'raw': 'refused'",
        "'packet': 'refused'",
        "'netlink': 'refused'",
        "'postgres': 'refused'",
        "'redis': 'refused'",
        "'ipv6': 'refused'",
        "'dns': 'refused'",
        "'host_root': 'refused'",
        "'symlink': 'refused'",
        "'threads_still_work': 'ok'",
        "'seccomp': '2'",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

/// Two sandboxes cannot see each other's files or processes.
async fn sandboxes_cannot_see_each_other(backend: Backend) {
    let (a_dir, b_dir) = (TempDir::new("a"), TempDir::new("b"));
    let mut a = kernel(backend, &a_dir).await;
    let mut b = kernel(backend, &b_dir).await;
    a.execute("open('/workspace/a-secret.txt', 'w').write('mine')", |_| {}).await.unwrap();
    let look = b
        .execute("import os\n(os.listdir('/workspace'), sorted(p for p in os.listdir('/proc') if p.isdigit()))", |_| {})
        .await
        .unwrap();
    let text = look.result_text().unwrap();
    assert!(text.starts_with("([], "), "b sees a's workspace: {text}");
    assert!(!text.contains("a-secret"), "{text}");
    let processes: usize = text.matches('\'').count() / 2;
    assert!(processes <= 4, "b sees only its own few processes: {text}");
}

async fn shell_commands_run_in_the_same_sandbox(backend: Backend) {
    let dir = TempDir::new("shell");
    let mut kernel = limited(backend, &dir, Limits { wall_time: Duration::from_secs(2), ..Limits::default() }).await;
    kernel.execute("open('data.csv', 'w').write('a,b\\n1,2\\n')", |_| {}).await.unwrap();
    let listed = kernel.shell("ls; wc -l < data.csv; echo oops >&2; exit 3", |_| {}).await.unwrap();
    assert_eq!(listed.exit_code, Some(3));
    assert!(!listed.ok);
    assert_eq!(listed.stream("stdout"), "data.csv\n2\n");
    assert_eq!(listed.stream("stderr"), "oops\n");
    let who = kernel.shell("id -u; hostname; cat /etc/hostname 2>/dev/null || echo no-etc", |_| {}).await.unwrap();
    // bubblewrap: user 1000 of a user namespace, no /etc; a container: the
    // user Cairn runs as (1000 when that is root), with the engine's
    // /etc/hostname.
    let expected = match backend {
        Backend::Bubblewrap => ["1000".to_owned(), "sandbox".to_owned(), "no-etc".to_owned()],
        Backend::Container => {
            let uid = match own_uid() {
                0 => 1000,
                uid => uid,
            };
            [uid.to_string(), "sandbox".to_owned(), "sandbox".to_owned()]
        }
    };
    assert_eq!(who.stream("stdout").lines().collect::<Vec<_>>(), expected, "{who:?}");
    let stuck = kernel.shell("sleep 600", |_| {}).await.unwrap();
    assert_eq!(stuck.limit.as_deref(), Some("wall time limit of 2 s exceeded; the execution was interrupted"));
    assert_eq!(kernel.execute("6 * 7", |_| {}).await.unwrap().result_text(), Some("42"), "the kernel lives on");
}

/// The sandbox Python (the set-up's venv with the data stack): tables and
/// figures come back as rich outputs.
async fn the_data_stack_gives_rich_outputs(backend: Backend) {
    let dir = TempDir::new("stack");
    let options = options_in(backend, dir.path.join("workspace"), dir.path.join("runtime"), true).await;
    let mut kernel = Kernel::start(&options).await.unwrap();
    let table = kernel
        .execute(
            "import pandas as pd, numpy as np\npd.DataFrame({'year': [2024, 2025], 'value': np.array([1.5, 2.5])})",
            |_| {},
        )
        .await
        .unwrap();
    assert!(table.ok, "{table:?}");
    let html = table.outputs.iter().find_map(|o| match o {
        cairn_sandbox::Output::Result { data } => data.get("text/html").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    });
    assert!(html.as_deref().is_some_and(|h| h.contains("<table") && h.contains("2025")), "{table:?}");
    let figure = kernel
        .execute("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 1])\nplt.title('trend')", |_| {})
        .await
        .unwrap();
    let png = figure.outputs.iter().find_map(|o| match o {
        cairn_sandbox::Output::Display { data } => data.get("image/png").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    });
    assert!(png.is_some_and(|p| p.starts_with("iVBORw0KGgo")), "a PNG figure: {figure:?}");
    let imports = kernel
        .execute(
            "import scipy, requests, bs4, openpyxl, PIL\n[m.__name__ for m in (scipy, requests, bs4, openpyxl, PIL)]",
            |_| {},
        )
        .await
        .unwrap();
    assert!(imports.ok, "{imports:?}");
    let pip = kernel
        .shell("python -m pip install --quiet six 2>&1 | tail -1; python -c 'import six' 2>&1 | tail -1", |_| {})
        .await
        .unwrap();
    assert!(pip.stream("stdout").contains("rror"), "no network, no pip install: {pip:?}");
}

/// A warm kernel answers at once, works in the thread's workspace, and the
/// pool refills itself.
async fn the_warm_pool_hands_out_ready_kernels(backend: Backend) {
    let dir = TempDir::new("pool");
    let template = options_in(backend, dir.path.join("unused"), dir.path.join("runtime"), false).await;
    let pool = cairn_sandbox::KernelPool::new(template, dir.path.join("staging"), 2);
    pool.fill().await.unwrap();
    assert_eq!(pool.len(), 2);
    let workspace = dir.path.join("threads/t1");
    let started = std::time::Instant::now();
    let mut kernel = pool.take(&workspace).await.unwrap();
    let first = kernel.execute("open('hello.txt', 'w').write('hi')\nprint(1)", |_| {}).await.unwrap();
    let took = started.elapsed();
    assert_eq!(first.stream("stdout"), "1\n");
    assert_eq!(
        std::fs::read_to_string(workspace.join("hello.txt")).unwrap(),
        "hi",
        "the sandbox writes the thread's workspace"
    );
    assert_eq!(kernel.workspace(), workspace.as_path());
    println!("warm take to first result: {took:?}");
    for _ in 0..100 {
        if pool.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.len(), 2, "the pool refilled");
}

/// The user this test runs as.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = TempDir::new("uid");
    std::fs::metadata(&probe.path).unwrap().uid()
}
