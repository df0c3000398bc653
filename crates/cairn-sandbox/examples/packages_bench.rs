//! Packages the agent installs, timed through the local backend against a
//! PEP 503 index on loopback serving small wheels: a sandbox of a project
//! whose requirements are not built yet (its environment built — `pip
//! install -r` in a kernel of its own — then the first import), one whose
//! environment is built (the project's next sandbox), one without packages,
//! and `pip install` of one package inside a running sandbox beside the same
//! pip on the host, with no sandbox and no proxy (the reference). Run by
//! `bench/run.sh` with the sandbox venv's interpreter; prints one JSON
//! object (milliseconds; the environment's size in KiB).
//!
//! `packages_bench ROUNDS PYTHON` runs bubblewrap kernels; `packages_bench
//! ROUNDS PYTHON container SOCKET IMAGE` containers of that engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cairn_core::sandbox::{Execution, NewSandbox, Output, PackagePolicy, Sandboxes};
use cairn_core::{ProjectId, SandboxId, UserId};
use cairn_sandbox::{ContainerConfig, LocalConfig, LocalSandboxes, PackageIndex};
use cairn_testkit::Package;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn request(project: ProjectId, packages: Option<Vec<String>>) -> NewSandbox {
    let mut request = NewSandbox::for_owner(UserId::new());
    request.project = Some(project);
    request.policy.packages = packages.map(|requirements| PackagePolicy { requirements });
    request
}

async fn first_result(sandboxes: &LocalSandboxes, id: SandboxId, code: &str) {
    let outcome =
        sandboxes.execute(id, Execution::Python { code: code.to_owned() }, &mut |_: &Output| {}).await.unwrap();
    assert!(outcome.ok, "{outcome:?}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let python = args.get(2).expect("the sandbox venv's python").clone();
    let mut packages = vec![Package::new("cairn-demo", "1.0", "def answer():\n    return 42\n")];
    for i in 0..rounds * 2 {
        packages.push(Package::new(&format!("bench-pkg-{i}"), "1.0", &format!("N = {i}\n")));
    }
    let index = cairn_testkit::PackageIndex::start(&packages).await;
    let root = std::env::temp_dir().join(format!("cairn-packages-bench-{}", std::process::id()));
    let mut config = LocalConfig::new(root.clone());
    config.pool_size = 0;
    config.python = Some(python.clone().into());
    config.packages =
        Some(PackageIndex::start(&root.join("egress-packages"), &index.url(), &[], vec![index.address]).unwrap());
    if args.get(3).map(String::as_str) == Some("container") {
        config.container = Some(ContainerConfig {
            engine: args[4].clone(),
            image: args[5].clone(),
            python: "/usr/bin/python3".into(),
        });
    }
    let sandboxes = LocalSandboxes::start(config).await.expect("the sandbox backend");
    let requirements = vec!["cairn-demo==1.0".to_owned()];
    let import = "import cairn_demo\ncairn_demo.answer()";
    let (mut install, mut cached, mut plain, mut pip_in_sandbox, mut pip_on_host) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut env_kib = 0;
    for round in 0..rounds {
        let project = ProjectId::new();
        let started = Instant::now();
        let first = sandboxes.create(request(project, Some(requirements.clone()))).await.unwrap().id;
        first_result(&sandboxes, first, import).await;
        install.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let next = sandboxes.create(request(project, Some(requirements.clone()))).await.unwrap().id;
        first_result(&sandboxes, next, import).await;
        cached.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let bare = sandboxes.create(request(project, None)).await.unwrap().id;
        first_result(&sandboxes, bare, "1").await;
        plain.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let command = format!("pip install -q bench-pkg-{}", round * 2);
        let outcome = sandboxes.execute(first, Execution::Shell { command }, &mut |_: &Output| {}).await.unwrap();
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
        pip_in_sandbox.push(started.elapsed().as_secs_f64() * 1000.0);

        let target = root.join(format!("host-{round}"));
        let started = Instant::now();
        let status = tokio::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-cache-dir", "--target"])
            .arg(&target)
            .args(["--index-url", &index.url(), &format!("bench-pkg-{}", round * 2 + 1)])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        pip_on_host.push(started.elapsed().as_secs_f64() * 1000.0);

        let env = root.join("packages").join(project.to_string());
        let size = tokio::process::Command::new("du").arg("-sk").arg(&env).output().await.unwrap();
        env_kib = String::from_utf8_lossy(&size.stdout).split_whitespace().next().unwrap_or("0").parse().unwrap_or(0);
        for id in [first, next, bare] {
            sandboxes.destroy(id).await.unwrap();
        }
    }
    sandboxes.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{{\"rounds\": {rounds}, \"new_environment_ms\": {:.0}, \"built_environment_ms\": {:.0}, \
         \"no_packages_ms\": {:.0}, \"pip_install_in_sandbox_ms\": {:.0}, \"pip_install_on_host_ms\": {:.0}, \
         \"environment_kib\": {env_kib}}}",
        median(&mut install),
        median(&mut cached),
        median(&mut plain),
        median(&mut pip_in_sandbox),
        median(&mut pip_on_host),
    );
}
