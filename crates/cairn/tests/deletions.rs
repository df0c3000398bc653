//! A project's deletion survives the server being killed mid-way: the
//! server restarted on the same data takes the job up again once its lease
//! ran out, and finishes it, leaving no row and no object behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_testkit::TempDir;
use cairn_testkit::leftovers::{Pool, leftovers};
use common::{Ada, Running};
use serde_json::{Value, json};

/// Files under `dir` (recursively) whose path names the project.
fn objects_of(dir: &Path, project: &str) -> usize {
    let mut found = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(project) {
                found += 1;
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_interrupted_by_a_kill_is_finished_after_a_restart() {
    let dir = TempDir::new("deletion-kill");
    // A short lease, so the restarted server takes the job over soon.
    let envs = [("CAIRN__QUEUE__LEASE_SECS", "2".to_owned())];
    let mut server = Running::start(&dir.path, &[], &envs);
    server.wait_ready().await;
    let ada = Ada::signs_up(&server).await;
    let (project, _) = ada.project_with_thread().await;
    // Enough threads that the deletion takes a while, one step each.
    let path = format!("/api/v1/projects/{project}/threads");
    let threads =
        futures::future::join_all((0..400).map(|n| ada.post(&path, json!({ "title": format!("T{n}") })))).await;
    assert!(threads.iter().all(|t| t["id"].is_string()));
    for n in 0..3 {
        let url = format!("{}/api/v1/projects/{project}/files/content?path=f{n}.txt", ada.base);
        let put = ada.client.put(url).bearer_auth(&ada.token).body("x").send().await.unwrap();
        assert_eq!(put.status(), 201);
    }
    let objects = dir.path.join("data/objects");
    assert_eq!(objects_of(&objects, &project), 3);

    let deleting = ada.client.delete(format!("{}/api/v1/projects/{project}", ada.base)).bearer_auth(&ada.token);
    let deletion: Value = deleting.send().await.unwrap().json().await.unwrap();
    let id = deletion["id"].as_str().unwrap().to_owned();
    // Killed once the worker is part of the way through.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = ada.get(&format!("/api/v1/deletions/{id}")).await;
        let done = seen["steps_done"].as_i64().unwrap();
        assert!(seen["status"] != "done", "the deletion ended before the kill; make it longer: {seen}");
        if done >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the deletion did not progress: {seen}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = server.child.wait();

    let mut restarted = Running::start(&dir.path, &[], &envs);
    restarted.wait_ready().await;
    let ada = Ada { base: restarted.base.clone(), ..ada };
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let seen = ada.get(&format!("/api/v1/deletions/{id}")).await;
        if seen["status"] == "done" {
            break seen;
        }
        assert!(Instant::now() < deadline, "the deletion was not finished after the restart: {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(finished["attempts"].as_i64().unwrap() >= 2, "taken up again after the kill: {finished}");
    assert_eq!(finished["steps_done"], finished["steps_total"]);
    assert_eq!(finished["steps_total"].as_i64(), Some(401 + 3));
    restarted.terminate();

    let url = format!("sqlite://{}", dir.path.join("data/cairn.db").display());
    let db = cairn_store::Database::open(&url, &cairn_store::OpenOptions::default()).await.unwrap();
    let cairn_store::Database::Sqlite(pool) = &db else { unreachable!() };
    let thread_ids: Vec<uuid::Uuid> =
        threads.iter().map(|t| uuid::Uuid::parse_str(t["id"].as_str().unwrap()).unwrap()).collect();
    let project_id = uuid::Uuid::parse_str(&project).unwrap();
    assert_eq!(leftovers(Pool::Sqlite(pool), &[project_id], &thread_ids, &[]).await, Vec::<String>::new());
    assert_eq!(objects_of(&objects, &project), 0);
}
