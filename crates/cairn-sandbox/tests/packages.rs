//! Packages the agent installs: a project's sandboxes granted package
//! installs reach the configured index (here a PEP 503 index on an
//! allowlisted loopback address, serving wheels the test builds) and
//! nothing else; what they install lands in the project's environment,
//! layered on the base stack and kept for its next sandboxes; requirements
//! are installed once per list; projects never see each other's packages.
//! On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::sandbox::{
    ExecOutcome, Execution, NewSandbox, Output, PackagePolicy, PackagesChange, SandboxError, Sandboxes,
};
use cairn_core::{ProjectId, SandboxId, UserId};
use cairn_sandbox::{ContainerConfig, LocalConfig, LocalSandboxes, PackageIndex};
use cairn_testkit::{Package, TempDir};

mod common;

use common::{BUBBLEWRAP, Backend, CONTAINER, IMAGE_PYTHON, sandbox_python};

cairn_testkit::on_backends!(on_bubblewrap: BUBBLEWRAP, on_container: CONTAINER;
    pip_install_reaches_the_index_only_and_stays_with_the_project,
    requirements_are_installed_once_and_a_failed_install_says_why,
);

/// The test's index and a loopback server beside it that the package proxy
/// must not reach, though it is allowlisted by address too.
struct Setup {
    _dir: TempDir,
    index: cairn_testkit::PackageIndex,
    other: std::net::SocketAddr,
    sandboxes: LocalSandboxes,
}

async fn setup(backend: Backend) -> Setup {
    let dir = TempDir::new("packages");
    let index = cairn_testkit::PackageIndex::start(&[
        Package::new("cairn-demo", "1.0", "def answer():\n    return 42\n"),
        Package::new("cairn-extra", "2.0", "WORD = 'extra'\n"),
    ])
    .await;
    let other = loopback_server().await;
    let packages =
        PackageIndex::start(&dir.path.join("egress-packages"), &index.url(), &[], vec![index.address, other]).unwrap();
    let mut config = LocalConfig::new(dir.path.join("sandboxes"));
    config.pool_size = 1;
    config.packages = Some(packages);
    if backend == Backend::Container {
        let (engine, image) = cairn_testkit::container_engine();
        config.python = Some(sandbox_python());
        config.container = Some(ContainerConfig { engine, image, python: IMAGE_PYTHON.into() });
    } else {
        config.python = Some(sandbox_python());
    }
    let sandboxes = LocalSandboxes::start(config).await.expect("the sandboxes start");
    Setup { _dir: dir, index, other, sandboxes }
}

async fn loopback_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buffer = vec![0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret").await;
        }
    });
    address
}

fn request(project: ProjectId, packages: Option<Vec<&str>>) -> NewSandbox {
    let mut request = NewSandbox::for_owner(UserId::new());
    request.project = Some(project);
    request.policy.packages =
        packages.map(|r| PackagePolicy { requirements: r.into_iter().map(str::to_owned).collect() });
    request
}

async fn run(sandboxes: &LocalSandboxes, id: SandboxId, execution: Execution) -> ExecOutcome {
    sandboxes.execute(id, execution, &mut |_: &Output| {}).await.unwrap()
}

async fn python(sandboxes: &LocalSandboxes, id: SandboxId, code: &str) -> String {
    let outcome = run(sandboxes, id, Execution::Python { code: code.to_owned() }).await;
    match outcome.result_text() {
        Some(text) => text.to_owned(),
        None => format!("{outcome:?}"),
    }
}

/// Imports `module` and answers what `expression` gives, or the error.
fn try_import(module: &str, expression: &str) -> String {
    format!(
        "try:\n    import {module}\n    out = {expression}\nexcept Exception as e:\n    out = type(e).__name__\nout"
    )
}

async fn pip_install_reaches_the_index_only_and_stays_with_the_project(backend: Backend) {
    let Setup { index, other, sandboxes, _dir } = setup(backend).await;
    let (project, elsewhere) = (ProjectId::new(), ProjectId::new());
    let first = sandboxes.create(request(project, Some(vec![]))).await.unwrap().id;

    // Installed from a shell command, importable at once in the same kernel,
    // with the base stack still there beneath it.
    let installed = run(&sandboxes, first, Execution::Shell { command: "pip install cairn-demo".into() }).await;
    assert_eq!(installed.exit_code, Some(0), "{installed:?}");
    assert!(installed.stream("stdout").contains("Successfully installed cairn-demo-1.0"), "{installed:?}");
    assert_eq!(python(&sandboxes, first, &try_import("cairn_demo", "cairn_demo.answer()")).await, "42");
    assert_eq!(python(&sandboxes, first, &try_import("numpy", "int(numpy.arange(4).sum())")).await, "6");
    assert!(index.asked().iter().any(|p| p == "/files/cairn_demo-1.0-py3-none-any.whl"), "{:?}", index.asked());
    // pip from Python (the interpreter the kernel runs) installs there too.
    let code = "import subprocess, sys\nr = subprocess.run([sys.executable, '-m', 'pip', 'install', 'cairn-extra'], \
                capture_output=True, text=True)\nr.returncode";
    assert_eq!(python(&sandboxes, first, code).await, "0");
    assert_eq!(python(&sandboxes, first, &try_import("cairn_extra", "cairn_extra.WORD")).await, "'extra'");

    // The proxy reaches the index and nothing else: not another allowlisted
    // loopback address, not the internet.
    let get = |url: String| {
        format!(
            "import urllib.request, urllib.error\ntry:\n    r = urllib.request.urlopen({url:?}, timeout=10)\n    \
             out = r.status\nexcept urllib.error.HTTPError as e:\n    out = (e.code, e.read().decode().strip())\n\
             except Exception as e:\n    out = type(e).__name__\nout"
        )
    };
    assert_eq!(python(&sandboxes, first, &get(format!("{}/cairn-demo/", index.url()))).await, "200");
    let refused = python(&sandboxes, first, &get(format!("http://localhost:{}/", other.port()))).await;
    assert!(refused.starts_with("(403, 'cairn egress: localhost is not the package index"), "{refused}");
    let refused = python(&sandboxes, first, &get("https://example.org/".into())).await;
    assert!(!refused.contains("200"), "{refused}");

    // The project's next sandbox has the packages without asking the index.
    let asked = index.asked().len();
    let second = sandboxes.create(request(project, Some(vec![]))).await.unwrap().id;
    assert_eq!(python(&sandboxes, second, &try_import("cairn_demo", "cairn_demo.answer()")).await, "42");
    assert_eq!(index.asked().len(), asked, "nothing downloaded again");

    // Another project's sandbox, and one of the project without the grant,
    // have only the base stack — and no way to install.
    let stranger = sandboxes.create(request(elsewhere, Some(vec![]))).await.unwrap().id;
    assert_eq!(python(&sandboxes, stranger, &try_import("cairn_demo", "1")).await, "'ModuleNotFoundError'");
    let plain = sandboxes.create(request(project, None)).await.unwrap().id;
    assert_eq!(python(&sandboxes, plain, &try_import("cairn_demo", "1")).await, "'ModuleNotFoundError'");
    let offline =
        run(&sandboxes, plain, Execution::Shell { command: "pip install --timeout 3 --retries 0 cairn-demo".into() })
            .await;
    assert_ne!(offline.exit_code, Some(0), "{offline:?}");

    // Granting it later restarts the kernel with the project's environment.
    let change = PackagesChange { project, packages: Some(PackagePolicy::default()) };
    sandboxes.set_packages(plain, change).await.unwrap();
    let after =
        run(&sandboxes, plain, Execution::Python { code: try_import("cairn_demo", "cairn_demo.answer()") }).await;
    assert_eq!(after.result_text(), Some("42"));
    assert!(after.notice.as_deref().unwrap_or_default().contains("package settings changed"), "{after:?}");
    let foreign = PackagesChange { project: elsewhere, packages: None };
    assert!(matches!(sandboxes.set_packages(plain, foreign).await, Err(SandboxError::InvalidPolicy(_))));
}

async fn requirements_are_installed_once_and_a_failed_install_says_why(backend: Backend) {
    let Setup { index, sandboxes, _dir, .. } = setup(backend).await;
    let project = ProjectId::new();

    let first = sandboxes.create(request(project, Some(vec!["cairn-demo==1.0"]))).await.unwrap().id;
    assert_eq!(python(&sandboxes, first, &try_import("cairn_demo", "cairn_demo.answer()")).await, "42");
    let asked = index.asked().len();
    assert!(asked >= 2, "the requirements came from the index: {:?}", index.asked());
    let again = sandboxes.create(request(project, Some(vec!["cairn-demo==1.0"]))).await.unwrap().id;
    assert_eq!(python(&sandboxes, again, &try_import("cairn_demo", "cairn_demo.answer()")).await, "42");
    assert_eq!(index.asked().len(), asked, "the environment was built once");

    // New requirements: a new environment, and the running kernel restarts.
    let change = PackagesChange {
        project,
        packages: Some(PackagePolicy { requirements: vec!["cairn-demo==1.0".into(), "cairn-extra".into()] }),
    };
    sandboxes.set_packages(first, change).await.unwrap();
    assert_eq!(python(&sandboxes, first, &try_import("cairn_extra", "cairn_extra.WORD")).await, "'extra'");

    // A requirement the index does not have: refused with pip's reason, and
    // nothing left half-built.
    let failed = sandboxes.create(request(project, Some(vec!["no-such-package==9"]))).await.unwrap_err();
    let SandboxError::InvalidPolicy(why) = failed else { panic!("{failed:?}") };
    assert!(why.contains("could not be installed") && why.contains("no-such-package"), "{why}");
    assert_eq!(sandboxes.list(None).await.unwrap().len(), 2, "the refused sandbox was not kept");
    let envs = std::fs::read_dir(_dir.path.join("sandboxes/packages").join(project.to_string())).unwrap();
    for env in envs.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("env-")) {
        assert!(env.path().join(".complete").exists(), "a half-built environment was left: {:?}", env.path());
    }

    // Options and URLs never reach pip.
    let hostile = sandboxes.create(request(project, Some(vec!["--index-url http://evil.example/simple"]))).await;
    assert!(matches!(hostile, Err(SandboxError::InvalidPolicy(why)) if why.contains("options")));
}

#[tokio::test]
async fn a_host_without_an_index_refuses_package_installs() {
    let dir = TempDir::new("packages");
    let mut config = LocalConfig::new(dir.path.join("sandboxes"));
    config.pool_size = 0;
    config.python = Some(sandbox_python());
    let sandboxes = LocalSandboxes::start(config).await.unwrap();
    let refused = sandboxes.create(request(ProjectId::new(), Some(vec![]))).await.unwrap_err();
    assert!(
        matches!(&refused, SandboxError::InvalidPolicy(why) if why.contains("does not let sandboxes install packages"))
    );
    let mut no_project = request(ProjectId::new(), Some(vec![]));
    no_project.project = None;
    assert!(sandboxes.create(no_project).await.is_err());
}
