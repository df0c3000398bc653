//! The tools against real parts: a real sandbox, a fixture website served on
//! 127.0.0.1 (allowlisted), a scripted search provider speaking Brave's wire
//! format, headless Chromium, and a second local server that must never be
//! reached (the host's private services).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use cairn_core::UserId;
use cairn_core::sandbox::{Execution, NewSandbox, Sandboxes};
use cairn_sandbox::{LocalConfig, LocalSandboxes};
use cairn_testkit::TempDir;
use cairn_tools::{Registry, Services, ToolBridge, ToolContext};
use serde_json::{Value, json};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// The host's private service: counts every request that reaches it.
async fn forbidden_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "internal secret"
        }
    });
    (serve(router).await, hits)
}

const ARTICLE: &str = r#"<!doctype html><html><head><title>Cairn field notes</title></head><body>
<nav><a href="/">Home</a> · <a href="/about">About</a></nav>
<article><h1>Stacking stones</h1>
<p>A cairn is a human-made pile of stones raised as a marker. Hikers use them to mark trails across
open ground where paths are hard to see, and each walker may add a stone on the way past.</p>
<p>Cairns have marked routes for thousands of years; the oldest known are on the hills of Scotland,
where they also served as memorials. Read the <a href="/next">next chapter</a> for their history.</p>
<h2>Building one</h2><ul><li>Choose flat stones</li><li>Place the largest at the bottom</li></ul>
</article><footer>© the fixture site</footer></body></html>"#;

const FORM: &str = r#"<!doctype html><html><head><title>Order form</title></head><body>
<h1>Order a cairn</h1>
<form action="/result" method="get">
  <label for="name">Your name</label><input id="name" name="name" type="text">
  <label for="color">Stone colour</label>
  <select id="color" name="color"><option value="grey">Grey</option><option value="red">Red granite</option></select>
  <button id="send" type="submit">Send</button>
</form></body></html>"#;

async fn fixture_site(forbidden: SocketAddr) -> SocketAddr {
    let router = Router::new()
        .route("/", get(|| async { Html(ARTICLE) }))
        .route("/plain", get(|| async { "just text\n" }))
        .route(
            "/report.pdf",
            get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], b"%PDF-1.4 fixture\n%%EOF".to_vec()) }),
        )
        .route("/big", get(|| async { "x".repeat(3 << 20) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(6)).await;
                "late"
            }),
        )
        .route("/to-plain", get(|| async { Redirect::temporary("/plain") }))
        .route("/to-private", get(move || async move { Redirect::temporary(&format!("http://{forbidden}/secret")) }))
        .route("/form", get(|| async { Html(FORM) }))
        .route(
            "/result",
            get(|query: Query<std::collections::HashMap<String, String>>| async move {
                let name = query.get("name").cloned().unwrap_or_default();
                let color = query.get("color").cloned().unwrap_or_default();
                Html(format!(
                    "<html><head><title>Thanks</title></head><body><h1>Hello {name}</h1>\
                     <p>Your {color} cairn is on its way.</p><a href=\"/\">Back home</a></body></html>"
                ))
            }),
        )
        .route(
            "/leaky",
            get(move || async move {
                Html(format!(
                    "<html><head><title>Leaky</title></head><body><p>An image from the host:</p>\
                     <img src=\"http://{forbidden}/pixel.png\"><script>fetch('http://{forbidden}/xhr')</script></body></html>"
                ))
            }),
        );
    serve(router).await
}

/// A search provider speaking the Brave Search API's format.
async fn brave_server() -> SocketAddr {
    let router = Router::new().route(
        "/res/v1/web/search",
        get(|headers: HeaderMap, query: Query<std::collections::HashMap<String, String>>| async move {
            if headers.get("x-subscription-token").and_then(|v| v.to_str().ok()) != Some("test-key") {
                return (StatusCode::UNAUTHORIZED, "bad token").into_response();
            }
            let q = query.get("q").cloned().unwrap_or_default();
            if q == "overloaded" {
                return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            }
            let count: usize = query.get("count").and_then(|c| c.parse().ok()).unwrap_or(20);
            let results: Vec<Value> = (1..=8)
                .map(|i| {
                    json!({ "title": format!("{q} result {i}"), "url": format!("https://example.org/{i}"),
                                  "description": format!("about {q}"), "extra": "ignored" })
                })
                .take(count)
                .collect();
            axum::Json(json!({ "type": "search", "web": { "results": results } })).into_response()
        }),
    );
    serve(router).await
}

struct World {
    registry: Registry,
    ctx: ToolContext,
    sandboxes: LocalSandboxes,
    site: SocketAddr,
    forbidden: SocketAddr,
    forbidden_hits: Arc<AtomicUsize>,
    _dir: TempDir,
}

async fn world(search: bool) -> World {
    let dir = TempDir::new("tools");
    let (forbidden, forbidden_hits) = forbidden_server().await;
    let site = fixture_site(forbidden).await;
    let registry = Registry::builtin();
    let mut local = LocalConfig::new(dir.path.join("sandboxes"));
    local.pool_size = 0;
    local.prelude = Some(registry.python_prelude());
    let sandboxes = LocalSandboxes::start(local).await.expect("bubblewrap and python3 are needed");
    let mut config = cairn_config::ToolsConfig { fetch_timeout_secs: 2, fetch_max_mb: 1, ..Default::default() };
    config.allow_private = vec![site];
    if search {
        config.search_provider = "brave".into();
        config.search_url = format!("http://{}/res/v1/web/search", brave_server().await);
        config.search_api_key = "test-key".into();
    }
    let services = Services::from_config(&config, Arc::new(sandboxes.clone()), None).await.unwrap();
    let user = UserId::new();
    let sandbox = sandboxes.create(NewSandbox::for_owner(user)).await.unwrap();
    let ctx = ToolContext { services, sandbox: sandbox.id, user, project: None, thread: None, run: None, fence: None };
    World { registry, ctx, sandboxes, site, forbidden, forbidden_hits, _dir: dir }
}

impl World {
    async fn call(&self, name: &str, kwargs: Value) -> Result<Value, String> {
        self.registry.call(&self.ctx, name, json!([]), kwargs).await
    }

    /// Runs Python in the sandbox with the tools bridged, returning the
    /// value of its last expression (as text) or its error.
    async fn python(&self, code: &str) -> Result<String, String> {
        let mut bridge =
            ToolBridge { registry: &self.registry, context: self.ctx.clone(), on_output: Box::new(|_| {}) };
        let outcome = self
            .sandboxes
            .execute(self.ctx.sandbox, Execution::Python { code: code.to_owned() }, &mut bridge)
            .await
            .unwrap();
        match outcome.error() {
            Some((name, message)) => Err(format!("{name}: {message}")),
            None => Ok(outcome.result_text().unwrap_or_default().to_owned()),
        }
    }
}

#[tokio::test]
async fn the_registry_describes_every_tool_once_for_the_api_python_and_the_prompt() {
    let world = world(false).await;
    let listed = world.registry.list();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "read_file",
        "write_file",
        "append_file",
        "list_files",
        "search_files",
        "edit_file",
        "shell",
        "web_fetch",
        "web_search",
        "save_artifact",
        "browser_open",
        "browser_click",
        "browser_type",
        "browser_select",
        "browser_scroll",
        "browser_wait_for",
        "browser_read",
        "browser_links",
        "browser_fields",
        "browser_screenshot",
        "browser_close",
    ] {
        assert!(names.contains(&expected), "{expected} is registered");
    }
    let fetch = listed.iter().find(|t| t.name == "web_fetch").unwrap();
    assert_eq!(fetch.signature, "web_fetch(url: str, save_as: str | None = None) -> dict");
    assert_eq!(fetch.parameters["required"], json!(["url"]));
    assert_eq!(fetch.parameters["properties"]["url"]["type"], "string");
    assert!(
        world.registry.prompt().contains("- `web_search(query: str, count: int = 5) -> list[dict]`: Search the web")
    );

    // Every kernel has them as functions, with their docstrings and signatures.
    let seen = world
        .python("import inspect\n(str(inspect.signature(read_file)), read_file.__doc__.splitlines()[0], callable(browser_open))")
        .await
        .unwrap();
    assert_eq!(
        seen,
        "('(path: str, offset: int = 0, limit: int = 2000) -> str', 'Read a text file of the workspace, a range of its lines.', True)"
    );

    // Bad calls come back to the code as readable errors.
    assert_eq!(
        world.python("read_file()").await.unwrap_err(),
        "TypeError: read_file() missing 1 required positional argument: 'path'"
    );
    let bad = world.call("read_file", json!({ "path": 3 })).await.unwrap_err();
    assert_eq!(bad, "read_file(): `path` must be str, not 3");
    let unknown = world.call("read_file", json!({ "path": "a", "mode": "rb" })).await.unwrap_err();
    assert_eq!(unknown, "read_file() got an unexpected argument `mode`");
    assert!(world.call("teleport", json!({})).await.unwrap_err().starts_with("there is no tool `teleport`"));
}

#[tokio::test]
async fn file_tools_and_the_shell_work_from_sandboxed_python() {
    let world = world(false).await;
    let code = r##"
write_file("notes/plan.md", "# Plan\nstep one\nstep two\n")
append_file("notes/plan.md", "step three\n")
edit_file("notes/plan.md", "step two", "step 2")
write_file("data/a.csv", "x,y\n1,2\n")
(read_file("notes/plan.md"), [e["path"] for e in list_files("notes")], [e["path"] for e in search_files("**/*.csv")],
 search_files(text="step", pattern="notes/*.md"))
"##;
    let result = world.python(code).await.unwrap();
    assert!(
        result.starts_with("('# Plan\\nstep one\\nstep 2\\nstep three\\n', ['notes/plan.md'], ['data/a.csv'], "),
        "{result}"
    );
    assert!(result.contains("{'line': 3, 'path': 'notes/plan.md', 'text': 'step 2'}"), "{result}");

    let paged = world.python("read_file('notes/plan.md', offset=1, limit=1)").await.unwrap();
    assert_eq!(paged, "'step one\\n\\n[… 2 more lines; read on with offset=2]'");
    let ambiguous = world.python("edit_file('notes/plan.md', 'step', 'STEP')").await.unwrap_err();
    assert_eq!(
        ambiguous,
        "RuntimeError: tool edit_file failed: the snippet occurs 3 times in notes/plan.md; include more context so it is unique"
    );
    let missing = world.python("edit_file('notes/plan.md', 'step nine', 'x')").await.unwrap_err();
    assert!(missing.contains("was not found"), "{missing}");
    assert_eq!(
        world.python("read_file('notes/plan.md').count('STEP')").await.unwrap(),
        "0",
        "a refused edit changes nothing"
    );
    let outside = world.python("read_file('/etc/passwd')").await.unwrap_err();
    assert!(outside.contains("absolute paths must be under /workspace"), "{outside}");

    let shell = world.python("shell('ls notes; echo oops >&2; exit 3')").await.unwrap();
    assert_eq!(shell, "{'exit_code': 3, 'stdout': 'plan.md\\n', 'stderr': 'oops\\n'}");
    // Through the API, the shell runs in the sandbox too.
    let direct = world.call("shell", json!({ "command": "cat data/a.csv | wc -l" })).await.unwrap();
    assert_eq!((direct["exit_code"].clone(), direct["stdout"].clone()), (json!(0), json!("2\n")));
}

#[tokio::test]
async fn web_fetch_returns_readable_markdown_and_saves_binaries() {
    let world = world(false).await;
    let site = world.site;
    let page = world.call("web_fetch", json!({ "url": format!("http://{site}/") })).await.unwrap();
    assert_eq!(page["title"], "Cairn field notes");
    let markdown = page["markdown"].as_str().unwrap();
    assert!(markdown.contains("A cairn is a human-made pile of stones"), "{markdown}");
    assert!(markdown.contains("[next chapter]("), "links are kept: {markdown}");
    assert!(markdown.contains("Building one") && markdown.contains("Choose flat stones"), "{markdown}");
    assert!(!markdown.contains("© the fixture site"), "the main content, not the footer: {markdown}");

    let plain = world.call("web_fetch", json!({ "url": format!("http://{site}/to-plain") })).await.unwrap();
    assert_eq!(
        (plain["text"].clone(), plain["url"].clone()),
        (json!("just text\n"), json!(format!("http://{site}/plain")))
    );

    let pdf = world.call("web_fetch", json!({ "url": format!("http://{site}/report.pdf") })).await.unwrap();
    assert_eq!(pdf["saved_to"], "downloads/report.pdf");
    let saved = world.sandboxes.read_file(world.ctx.sandbox, "downloads/report.pdf", 1024).await.unwrap();
    assert!(saved.starts_with(b"%PDF-1.4"));
    let kept = world.python(&format!("web_fetch('http://{site}/', save_as='page.html')['saved_to']")).await.unwrap();
    assert_eq!(kept, "'page.html'");

    let big = world.call("web_fetch", json!({ "url": format!("http://{site}/big") })).await.unwrap_err();
    assert!(big.contains("larger than the limit of 1 MiB"), "{big}");
    let slow = world.call("web_fetch", json!({ "url": format!("http://{site}/slow") })).await.unwrap_err();
    assert!(slow.contains("did not answer in time"), "{slow}");
    let gone = world.call("web_fetch", json!({ "url": "http://not a url" })).await.unwrap_err();
    assert!(gone.starts_with("not a valid URL"), "{gone}");
}

#[tokio::test]
async fn network_tools_refuse_private_addresses_redirects_and_names() {
    let world = world(false).await;
    let port = world.forbidden.port();
    let probes = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.5.4/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        format!("http://{}/to-private", world.site),
    ];
    for url in &probes {
        let refused = world.call("web_fetch", json!({ "url": url })).await.unwrap_err();
        assert!(refused.contains("not a public address"), "{url}: {refused}");
    }
    for url in ["file:///etc/passwd", "ftp://example.org/x"] {
        let refused = world.call("web_fetch", json!({ "url": url })).await.unwrap_err();
        assert!(refused.contains("only http and https"), "{url}: {refused}");
    }
    let refused = world.call("browser_open", json!({ "url": format!("http://127.0.0.1:{port}/") })).await.unwrap_err();
    assert!(refused.contains("not a public address"), "{refused}");
    assert_eq!(world.forbidden_hits.load(Ordering::SeqCst), 0, "nothing ever reached the private server");
}

#[tokio::test]
async fn web_search_uses_the_configured_provider_or_says_there_is_none() {
    let world = world(true).await;
    let code = "[(r['title'], r['url'], r['snippet']) for r in web_search('stone cairns', count=3)]";
    assert_eq!(
        world.python(code).await.unwrap(),
        "[('stone cairns result 1', 'https://example.org/1', 'about stone cairns'), \
         ('stone cairns result 2', 'https://example.org/2', 'about stone cairns'), \
         ('stone cairns result 3', 'https://example.org/3', 'about stone cairns')]"
    );
    let limited = world.call("web_search", json!({ "query": "overloaded" })).await.unwrap_err();
    assert!(limited.contains("rate limit"), "{limited}");

    let unconfigured = world_without_search().await;
    let message = unconfigured.python("web_search('anything')").await.unwrap_err();
    assert!(message.contains("web search is not configured on this Cairn server"), "{message}");
}

async fn world_without_search() -> World {
    world(false).await
}

#[tokio::test]
async fn the_browser_fills_a_form_reads_the_result_and_takes_a_screenshot() {
    let world = world(false).await;
    let site = world.site;
    let opened =
        world.python(&format!("o = browser_open('http://{site}/form')\n(o['url'], o['title'])")).await.unwrap();
    assert_eq!(opened, format!("('http://{site}/form', 'Order form')"));
    let fields = world.call("browser_fields", json!({})).await.unwrap();
    let selectors: Vec<&str> = fields.as_array().unwrap().iter().map(|f| f["selector"].as_str().unwrap()).collect();
    assert_eq!(selectors, ["#name", "#color", "#send"]);
    assert_eq!(fields[0]["label"], "Your name");
    assert_eq!(fields[1]["options"], json!(["grey", "red"]));

    let code = "browser_type('#name', 'Ada')\nbrowser_select('#color', 'Red granite')\n\
                browser_click('#send')\nbrowser_wait_for('Hello Ada')\nbrowser_read()";
    let read = world.python(code).await.unwrap();
    assert!(read.contains("'title': 'Thanks'"), "{read}");
    assert!(read.contains("Hello Ada") && read.contains("Your red cairn is on its way."), "{read}");
    let links = world.call("browser_links", json!({})).await.unwrap();
    assert_eq!(links, json!([{ "text": "Back home", "href": format!("http://{site}/") }]));

    let shot = world.call("browser_screenshot", json!({ "path": "shots/result.png" })).await.unwrap();
    assert_eq!(shot["saved_to"], "shots/result.png");
    let png = world.sandboxes.read_file(world.ctx.sandbox, "shots/result.png", 10 << 20).await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "a real PNG");

    let missing = world.call("browser_click", json!({ "selector": "#nope" })).await.unwrap_err();
    assert_eq!(missing, "no element matches the selector \"#nope\"");
    let waited = world.call("browser_wait_for", json!({ "text": "never there", "timeout": 1 })).await.unwrap_err();
    assert!(waited.contains("did not appear"), "{waited}");

    // Subresources and scripts of a page cannot reach private addresses either.
    world.call("browser_open", json!({ "url": format!("http://{site}/leaky") })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.forbidden_hits.load(Ordering::SeqCst), 0, "the page's image and fetch were refused");

    assert_eq!(world.ctx.services.browsers.contexts().await, 1);
    world.call("browser_close", json!({})).await.unwrap();
    assert_eq!(world.ctx.services.browsers.contexts().await, 0, "the context is closed with the thread");
}

#[tokio::test]
async fn a_failing_tool_never_takes_the_kernel_down() {
    let world = world(false).await;
    let code = "results = []\nfor url in ['http://10.1.1.1/', 'nonsense']:\n    try:\n        web_fetch(url)\n    \
                except RuntimeError as e:\n        results.append(str(e)[:40])\nresults";
    let handled = world.python(code).await.unwrap();
    assert!(handled.contains("tool web_fetch failed"), "{handled}");
    assert_eq!(world.python("1 + 1").await.unwrap(), "2");
}
