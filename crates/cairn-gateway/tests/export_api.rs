//! Taking data out: a project's archive, re-read and compared with what the
//! API shows of the same project, and a member's own data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use cairn_testkit::Reply;
use reqwest::Method;
use serde_json::{Value, json};

type Api = support::Team;

async fn get(api: &Api, path: &str) -> Value {
    let (status, body) = api.send(Method::GET, &api.owner, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn bytes(api: &Api, path: &str) -> reqwest::Response {
    api.client.get(format!("{}/api/v1{path}", api.base)).bearer_auth(&api.owner).send().await.unwrap()
}

/// The archive's entries by name.
async fn unzip(bytes: Vec<u8>) -> HashMap<String, Vec<u8>> {
    // async_zip 0.0.19 marks its readers deprecated in favour of a `read1`
    // module that it does not ship yet.
    #[allow(deprecated)]
    let reader = async_zip::base::read::mem::ZipFileReader::new(bytes).await.expect("a valid zip");
    let mut entries = HashMap::new();
    for index in 0..reader.file().entries().len() {
        let name = reader.file().entries()[index].filename().as_str().unwrap().to_owned();
        let mut content = Vec::new();
        let mut entry = reader.reader_with_entry(index).await.unwrap();
        entry.read_to_end_checked(&mut content).await.unwrap();
        entries.insert(name, content);
    }
    entries
}

fn json_of(entries: &HashMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(entries.get(name).unwrap_or_else(|| panic!("{name} is in the archive"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_archive_holds_what_the_api_shows_and_a_member_takes_their_own_data() {
    let api = support::Team::start("Exported, Ltd", |_| {}).await;
    let project = api.project.clone();
    for body in ["first draft", "second draft"] {
        let url = format!("{}/api/v1/projects/{project}/files/content?path=docs/plan.txt", api.base);
        let put = api.client.put(url).bearer_auth(&api.owner).body(body).send().await.unwrap();
        assert_eq!(put.status(), 201);
    }
    let note = json!({ "text": "The launch is in May." });
    assert_eq!(api.send(Method::POST, &api.owner, &format!("/projects/{project}/memory"), Some(note)).await.0, 201);
    let (_, thread) = api
        .send(Method::POST, &api.owner, &format!("/projects/{project}/threads"), Some(json!({ "title": "Sums" })))
        .await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    api.llm.push(Reply::Text("```python\nprint(6 * 7)\n```".into()));
    api.llm.push(Reply::Text("```python\nfinal_answer('It is 42.')\n```".into()));
    let message = json!({ "content": "What is 6 times 7?", "wait": true });
    let (status, posted) =
        api.send(Method::POST, &api.owner, &format!("/threads/{thread}/messages"), Some(message)).await;
    assert_eq!((status, posted["answer"].as_str()), (200, Some("It is 42.")), "{posted}");

    // Owners only.
    let (status, _) = api.send(Method::GET, &api.viewer, &format!("/projects/{project}/export"), None).await;
    assert_eq!(status, 403);
    let response = bytes(&api, &format!("/projects/{project}/export")).await;
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("cairn-Exported__Ltd.zip"));
    let entries = unzip(response.bytes().await.unwrap().to_vec()).await;

    let head = json_of(&entries, "project.json");
    assert_eq!((head["format"].as_str(), head["version"].as_u64()), (Some("cairn-project-export"), Some(1)));
    assert_eq!(head["project"], get(&api, &format!("/projects/{project}")).await);
    assert_eq!(head["members"], get(&api, &format!("/projects/{project}/members")).await);
    let document = json_of(&entries, &format!("threads/{thread}.json"));
    assert_eq!(document["thread"], get(&api, &format!("/threads/{thread}")).await);
    assert_eq!(document["messages"], get(&api, &format!("/threads/{thread}/messages")).await);
    assert_eq!(document["runs"], get(&api, &format!("/threads/{thread}/runs")).await);
    assert_eq!(document["events"], get(&api, &format!("/threads/{thread}/events?after=0&limit=1000")).await);
    let markdown = String::from_utf8(entries[&format!("threads/{thread}.md")].clone()).unwrap();
    for expected in
        ["# Sums", "What is 6 times 7?", "print(6 * 7)", "```text\n42\n```", "It is 42.", "_The run is succeeded._"]
    {
        assert!(markdown.contains(expected), "{expected:?} in:\n{markdown}");
    }
    // The library, every version.
    assert_eq!(entries["library/docs/plan.txt"], b"second draft");
    assert_eq!(entries["versions/docs/plan.txt/v1"], b"first draft");
    let library = json_of(&entries, "library.json");
    let versions = get(&api, &format!("/projects/{project}/files/versions?path=docs/plan.txt")).await;
    let listed: Vec<Value> = library.as_array().unwrap().iter().map(|v| v["file"].clone()).collect();
    assert_eq!(Value::from(listed), versions);
    let memory = json_of(&entries, "memory.json");
    assert_eq!(
        memory.as_array().unwrap().iter().map(|m| m["text"].clone()).collect::<Vec<_>>(),
        [json!("The launch is in May.")]
    );
    assert_eq!(entries.len(), 7, "{:?}", entries.keys().collect::<Vec<_>>());

    // A member's own data.
    let (status, _) = api.send(Method::GET, &api.viewer, "/me/export", None).await;
    assert_eq!(status, 200, "every member takes their own");
    let mine: Value = bytes(&api, "/me/export").await.json().await.unwrap();
    assert_eq!(mine["account"], get(&api, "/me").await);
    assert_eq!(mine["projects"], get(&api, "/projects").await);
    let written: Vec<&str> =
        mine["messages"].as_array().unwrap().iter().map(|m| m["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(written, ["What is 6 times 7?"], "their messages, not the agent's");
    assert!(mine["audit"].as_array().unwrap().iter().any(|e| e["action"] == "project.exported"));
    let viewer_data: Value = {
        let request = api.client.get(format!("{}/api/v1/me/export", api.base)).bearer_auth(&api.viewer);
        request.send().await.unwrap().json().await.unwrap()
    };
    assert_eq!(viewer_data["messages"], json!([]), "nobody else's messages");
}
