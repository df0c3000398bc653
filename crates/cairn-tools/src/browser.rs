//! The browser tools: a headless Chromium (Debian's `chromium`) driven over
//! the DevTools protocol, one browser context (cookies, storage, pages) per
//! sandbox. Chromium's traffic goes through Cairn's egress proxy, so pages,
//! redirects, scripts and images alike reach only public addresses (or the
//! operator's allowlist). The browser starts on first use; a context unused
//! for `tools.browser_idle_secs`, or one whose command timed out, is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use cairn_core::SandboxId;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<StdMutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A DevTools connection to the browser (flat sessions: page commands carry
/// their session id).
#[derive(Debug)]
struct Cdp {
    outgoing: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
}

impl Cdp {
    async fn connect(endpoint: &str) -> Result<Cdp, ToolError> {
        let (socket, _) = tokio_tungstenite::connect_async(endpoint)
            .await
            .map_err(|e| ToolError::Unavailable(format!("cannot reach the browser: {e}")))?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::new(StdMutex::new(HashMap::new()));
        let answers = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                let Some(id) = frame.get("id").and_then(Value::as_u64) else { continue }; // an event
                let waiting = answers.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                if let Some(waiting) = waiting {
                    let answer = match frame.get("error") {
                        Some(error) => Err(error["message"].as_str().unwrap_or("DevTools error").to_owned()),
                        None => Ok(frame["result"].clone()),
                    };
                    let _ = waiting.send(answer);
                }
            }
            // The browser went away: every waiting command fails now.
            answers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        });
        Ok(Cdp { outgoing, pending, next: AtomicU64::new(1) })
    }

    fn alive(&self) -> bool {
        !self.outgoing.is_closed()
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, ToolError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut frame = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            frame["sessionId"] = json!(session);
        }
        let (answer, answered) = oneshot::channel();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, answer);
        self.outgoing
            .send(Message::Text(frame.to_string().into()))
            .map_err(|_| ToolError::Unavailable("the browser stopped".into()))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answered).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(message))) => Err(ToolError::Failed(format!("the browser refused {method}: {message}"))),
            Ok(Err(_)) => Err(ToolError::Unavailable("the browser stopped".into())),
            Err(_) => {
                self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                Err(ToolError::Failed(format!(
                    "the browser did not answer {method} within {} s",
                    COMMAND_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

/// A running Chromium and its DevTools connection.
#[derive(Debug)]
struct Running {
    _process: tokio::process::Child,
    cdp: Arc<Cdp>,
    _profile: TempProfile,
}

/// The browser's profile folder, removed with the browser.
#[derive(Debug)]
struct TempProfile(PathBuf);

impl Drop for TempProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One sandbox's browser context and its page.
#[derive(Debug, Clone)]
struct Page {
    context: String,
    session: String,
    last_used: Instant,
}

/// The browsers of this process: one Chromium, started on first use, with a
/// context per sandbox.
#[derive(Debug, Clone)]
pub struct Browsers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    executable: Option<PathBuf>,
    /// The egress proxy all browser traffic goes through.
    proxy: SocketAddr,
    idle: Duration,
    running: Mutex<Option<Running>>,
    pages: Mutex<HashMap<SandboxId, Page>>,
}

fn find_chromium(configured: &str) -> Option<PathBuf> {
    if !configured.is_empty() {
        return Some(PathBuf::from(configured));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl Browsers {
    /// Browsers whose traffic goes through the egress proxy at `proxy`;
    /// `executable` as configured (`""`: look for Chromium on the PATH).
    pub fn new(executable: &str, proxy: SocketAddr, idle: Duration) -> Browsers {
        let inner = Inner {
            executable: find_chromium(executable),
            proxy,
            idle,
            running: Mutex::new(None),
            pages: Mutex::new(HashMap::new()),
        };
        let browsers = Browsers { inner: Arc::new(inner) };
        let weak = Arc::downgrade(&browsers.inner);
        tokio::spawn(async move {
            let every = (idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                Browsers { inner }.close_idle().await;
            }
        });
        browsers
    }

    /// Whether a Chromium was found.
    pub fn available(&self) -> bool {
        self.inner.executable.is_some()
    }

    async fn cdp(&self) -> Result<Arc<Cdp>, ToolError> {
        let mut running = self.inner.running.lock().await;
        if let Some(browser) = running.as_ref().filter(|b| b.cdp.alive()) {
            return Ok(browser.cdp.clone());
        }
        // (Re)start: the pages of a browser that died are gone with it.
        self.inner.pages.lock().await.clear();
        let browser = self.launch().await?;
        let cdp = browser.cdp.clone();
        *running = Some(browser);
        Ok(cdp)
    }

    async fn launch(&self) -> Result<Running, ToolError> {
        let Some(executable) = &self.inner.executable else {
            return Err(ToolError::Unavailable(
                "no Chromium is installed on this Cairn server (Debian's `chromium` package, or \
                 tools.browser_path); use web_fetch instead"
                    .into(),
            ));
        };
        let profile = std::env::temp_dir().join(format!("cairn-browser-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&profile).map_err(|e| ToolError::Unavailable(e.to_string()))?;
        let mut command = tokio::process::Command::new(executable);
        command
            .args(["--headless=new", "--remote-debugging-port=0", "--no-first-run", "--no-default-browser-check"])
            .args(["--disable-gpu", "--disable-extensions", "--disable-background-networking", "--disable-sync"])
            .args(["--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--proxy-server=http://{}", self.inner.proxy))
            // Chromium sends loopback directly unless told not to; it must go
            // through the proxy like everything else.
            .arg("--proxy-bypass-list=<-loopback>")
            .arg("about:blank")
            .env("HOME", &profile)
            .env("XDG_CONFIG_HOME", &profile)
            .env("XDG_CACHE_HOME", &profile)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if rustix::process::geteuid().is_root() {
            // Chromium's own sandbox cannot run as root; the proxy still
            // confines what it reaches.
            command.arg("--no-sandbox");
        }
        let mut process = command.spawn().map_err(|e| ToolError::Unavailable(format!("cannot start Chromium: {e}")))?;
        let stderr = process.stderr.take().ok_or_else(|| ToolError::Unavailable("no stderr".into()))?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ToolError::Unavailable("Chromium did not start its DevTools endpoint".into()))?;
        // Keep draining Chromium's messages so it never blocks on them.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let cdp = Arc::new(Cdp::connect(&endpoint).await?);
        Ok(Running { _process: process, cdp, _profile: TempProfile(profile) })
    }

    /// The sandbox's page, in a context of its own (made on first use).
    async fn page(&self, sandbox: SandboxId) -> Result<(Arc<Cdp>, String), ToolError> {
        let cdp = self.cdp().await?;
        let mut pages = self.inner.pages.lock().await;
        if let Some(page) = pages.get_mut(&sandbox) {
            page.last_used = Instant::now();
            return Ok((cdp, page.session.clone()));
        }
        let context = cdp.call(None, "Target.createBrowserContext", json!({ "disposeOnDetach": true })).await?;
        let context = context["browserContextId"].as_str().unwrap_or_default().to_owned();
        let target =
            cdp.call(None, "Target.createTarget", json!({ "url": "about:blank", "browserContextId": context })).await?;
        let attached =
            cdp.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await?;
        let session = attached["sessionId"].as_str().unwrap_or_default().to_owned();
        pages.insert(sandbox, Page { context, session: session.clone(), last_used: Instant::now() });
        Ok((cdp, session))
    }

    /// Closes a sandbox's browser context (with the sandbox, or after a
    /// command timed out).
    pub async fn close(&self, sandbox: SandboxId) {
        let page = self.inner.pages.lock().await.remove(&sandbox);
        let running = self.inner.running.lock().await;
        if let (Some(page), Some(browser)) = (page, running.as_ref()) {
            let _ = browser
                .cdp
                .call(None, "Target.disposeBrowserContext", json!({ "browserContextId": page.context }))
                .await;
        }
    }

    async fn close_idle(&self) {
        let idle: Vec<SandboxId> = self
            .inner
            .pages
            .lock()
            .await
            .iter()
            .filter(|(_, page)| page.last_used.elapsed() >= self.inner.idle)
            .map(|(id, _)| *id)
            .collect();
        for sandbox in idle {
            self.close(sandbox).await;
        }
    }

    /// Contexts open now.
    pub async fn contexts(&self) -> usize {
        self.inner.pages.lock().await.len()
    }

    /// Runs JavaScript in the sandbox's page and returns its (JSON) value.
    async fn evaluate(&self, sandbox: SandboxId, script: &str) -> Result<Value, ToolError> {
        let (cdp, session) = self.page(sandbox).await?;
        let params = json!({ "expression": script, "returnByValue": true, "awaitPromise": true });
        let result = match cdp.call(Some(&session), "Runtime.evaluate", params).await {
            Ok(result) => result,
            Err(error) => {
                // A page that stopped answering is reset for the next call.
                self.close(sandbox).await;
                return Err(error);
            }
        };
        if let Some(exception) = result.get("exceptionDetails") {
            let message = exception["exception"]["description"].as_str().or(exception["text"].as_str());
            return Err(ToolError::Failed(message.unwrap_or("the page's script failed").to_owned()));
        }
        Ok(result["result"]["value"].clone())
    }

    async fn wait_loaded(&self, sandbox: SandboxId) -> Result<(), ToolError> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        loop {
            if self.evaluate(sandbox, "document.readyState").await? == json!("complete") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ToolError::Failed(format!(
                    "the page did not finish loading in {} s",
                    LOAD_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the sandbox's page shows now, for people watching the run: its
    /// address, its title and a JPEG of its window. `None` when the sandbox
    /// has no page open (nothing is started for it).
    pub async fn glimpse(&self, sandbox: SandboxId) -> Option<Glimpse> {
        if !self.inner.pages.lock().await.contains_key(&sandbox) {
            return None;
        }
        let state = self.state(sandbox).await.ok()?;
        let (cdp, session) = self.page(sandbox).await.ok()?;
        let params = json!({ "format": "jpeg", "quality": 70 });
        let shot = cdp.call(Some(&session), "Page.captureScreenshot", params).await.ok();
        let jpeg = shot.and_then(|shot| base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str()?).ok());
        Some(Glimpse {
            url: state["url"].as_str().unwrap_or_default().to_owned(),
            title: state["title"].as_str().unwrap_or_default().to_owned(),
            jpeg,
        })
    }

    async fn state(&self, sandbox: SandboxId) -> Result<Value, ToolError> {
        self.evaluate(sandbox, "({url: location.href, title: document.title})").await
    }

    async fn open(&self, sandbox: SandboxId, url: &str) -> Result<Value, ToolError> {
        let (cdp, session) = self.page(sandbox).await?;
        let navigated = cdp.call(Some(&session), "Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            let hint = if error.contains("TUNNEL") || error.contains("PROXY") {
                " (Cairn's browser reaches only public addresses)"
            } else {
                ""
            };
            return Err(ToolError::Failed(format!("{url} could not be opened: {error}{hint}")));
        }
        self.wait_loaded(sandbox).await?;
        self.state(sandbox).await
    }

    /// Runs a script that finds `selector` (as `el`) and acts on it, then
    /// waits for any navigation it caused.
    async fn on_element(&self, sandbox: SandboxId, selector: &str, action: &str) -> Result<Value, ToolError> {
        let script = format!(
            "(() => {{ const el = document.querySelector({selector}); \
               if (!el) return {{missing: true}}; el.scrollIntoView({{block: 'center'}}); {action}; return {{}}; }})()",
            selector = json!(selector),
        );
        if self.evaluate(sandbox, &script).await?["missing"] == json!(true) {
            return Err(ToolError::Failed(format!("no element matches the selector {selector:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.wait_loaded(sandbox).await?;
        self.state(sandbox).await
    }
}

/// What a sandbox's page showed at one moment.
#[derive(Debug, Clone)]
pub struct Glimpse {
    pub url: String,
    pub title: String,
    /// A JPEG of the window, when one could be taken.
    pub jpeg: Option<Vec<u8>>,
}

/// The browser tools that act on the page (after which people watching
/// the run see it).
pub const ACTIONS: &[&str] =
    &["browser_open", "browser_click", "browser_type", "browser_select", "browser_scroll", "browser_wait_for"];

/// The browser tools share their spec's shape.
fn spec(name: &'static str, description: &'static str, params: Vec<Param>) -> ToolSpec {
    ToolSpec { name, description, params, returns: "dict", timeout: Duration::from_secs(60), python_body: None }
}

macro_rules! browser_tool {
    ($type:ident, $spec:expr, |$browsers:ident, $sandbox:ident, $args:ident, $ctx:ident| $body:expr) => {
        #[derive(Debug)]
        struct $type;

        #[async_trait]
        impl Tool for $type {
            fn spec(&self) -> ToolSpec {
                $spec
            }

            async fn run(&self, $ctx: &ToolContext, $args: Args) -> Result<Value, ToolError> {
                let $browsers = &$ctx.services.browsers;
                let $sandbox = $ctx.sandbox;
                $body
            }
        }
    };
}

browser_tool!(
    BrowserOpen,
    spec(
        "browser_open",
        "Open a URL in the thread's browser and wait for it to load; returns {url, title}.",
        vec![Param::required("url", Kind::Str, "an http:// or https:// URL")]
    ),
    |browsers, sandbox, args, ctx| {
        let url = args.str("url")?;
        let parsed = url::Url::parse(url).map_err(|e| ToolError::Invalid(format!("not a valid URL: {e}")))?;
        ctx.services.http.vet(&parsed).await?;
        browsers.open(sandbox, url).await
    }
);

browser_tool!(
    BrowserClick,
    spec(
        "browser_click",
        "Click the element a CSS selector finds (a button, a link), and wait for the page.",
        vec![Param::required("selector", Kind::Str, "a CSS selector, e.g. `button[type=submit]`")]
    ),
    |browsers, sandbox, args, _ctx| browsers.on_element(sandbox, args.str("selector")?, "el.click()").await
);

browser_tool!(
    BrowserType,
    spec(
        "browser_type",
        "Type text into an input or text area (replacing what it held); with `submit`, \
                          submit its form.",
        vec![
            Param::required("selector", Kind::Str, "a CSS selector of the field"),
            Param::required("text", Kind::Str, "the text"),
            Param::optional("submit", Kind::Bool, "submit the field's form afterwards", json!(false)),
        ]
    ),
    |browsers, sandbox, args, _ctx| {
        let action = format!(
            "el.focus(); el.value = {text}; el.dispatchEvent(new Event('input', {{bubbles: true}})); \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); {submit}",
            text = json!(args.str("text")?),
            submit = if args.bool("submit", false) {
                "if (el.form) el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit()"
            } else {
                ""
            },
        );
        browsers.on_element(sandbox, args.str("selector")?, &action).await
    }
);

browser_tool!(
    BrowserSelect,
    spec(
        "browser_select",
        "Choose an option of a <select> by its value or visible text.",
        vec![
            Param::required("selector", Kind::Str, "a CSS selector of the <select>"),
            Param::required("value", Kind::Str, "the option's value or text"),
        ]
    ),
    |browsers, sandbox, args, _ctx| {
        let value = args.str("value")?;
        let action = format!(
            "const want = {value}; const option = [...el.options].find(o => o.value === want || o.text.trim() === want); \
             if (!option) throw new Error('no option ' + want); el.value = option.value; \
             el.dispatchEvent(new Event('change', {{bubbles: true}}))",
            value = json!(value),
        );
        browsers.on_element(sandbox, args.str("selector")?, &action).await
    }
);

browser_tool!(
    BrowserScroll,
    spec(
        "browser_scroll",
        "Scroll the page by a number of pixels (negative: up); returns the position.",
        vec![Param::optional("pixels", Kind::Int, "how far down", json!(800))]
    ),
    |browsers, sandbox, args, _ctx| {
        let script = format!(
            "window.scrollBy(0, {}); ({{scroll_y: window.scrollY, height: document.body.scrollHeight}})",
            args.int("pixels", 800)
        );
        browsers.evaluate(sandbox, &script).await
    }
);

browser_tool!(
    BrowserWaitFor,
    spec(
        "browser_wait_for",
        "Wait until the page shows some text (up to `timeout` seconds).",
        vec![
            Param::required("text", Kind::Str, "the text to wait for"),
            Param::optional("timeout", Kind::Int, "seconds to wait at most", json!(10)),
        ]
    ),
    |browsers, sandbox, args, _ctx| {
        let text = args.str("text")?;
        let deadline = Instant::now() + Duration::from_secs(args.int("timeout", 10).clamp(1, 50) as u64);
        let script = format!("document.body ? document.body.innerText.includes({}) : false", json!(text));
        loop {
            if browsers.evaluate(sandbox, &script).await? == json!(true) {
                return browsers.state(sandbox).await;
            }
            if Instant::now() > deadline {
                return Err(ToolError::Failed(format!("{text:?} did not appear on the page")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
);

browser_tool!(
    BrowserRead,
    spec(
        "browser_read",
        "Read the current page as Markdown (its main content, links kept); returns {url, title, \
                          markdown}.",
        vec![]
    ),
    |browsers, sandbox, _args, _ctx| {
        let state = browsers.state(sandbox).await?;
        let html = browsers.evaluate(sandbox, "document.documentElement.outerHTML").await?;
        let url = state["url"].as_str().unwrap_or_default();
        let (title, markdown) = crate::fetch::html_to_markdown(html.as_str().unwrap_or_default(), url);
        let markdown: String = markdown.chars().take(100_000).collect();
        Ok(
            json!({ "url": url, "title": if title.is_empty() { state["title"].clone() } else { json!(title) }, "markdown": markdown }),
        )
    }
);

browser_tool!(
    BrowserLinks,
    spec("browser_links", "List the page's links: {text, href} each (at most 300).", vec![]),
    |browsers, sandbox, _args, _ctx| {
        browsers
            .evaluate(
                sandbox,
                "[...document.links].slice(0, 300).map(a => ({text: a.innerText.trim().slice(0, 200), href: a.href}))",
            )
            .await
    }
);

browser_tool!(
    BrowserFields,
    spec(
        "browser_fields",
        "List the page's form fields: {selector, tag, type, name, label, value, options?} each.",
        vec![]
    ),
    |browsers, sandbox, _args, _ctx| {
        let script = r#"[...document.querySelectorAll('input, select, textarea, button')].slice(0, 300).map((el, i) => {
            const selector = el.id ? '#' + CSS.escape(el.id) : (el.name ? `${el.tagName.toLowerCase()}[name="${el.name}"]` : `${el.tagName.toLowerCase()}:nth-of-type(${i + 1})`);
            const label = (el.labels && el.labels[0] ? el.labels[0].innerText : el.getAttribute('aria-label') || el.placeholder || el.innerText || '').trim();
            const field = {selector, tag: el.tagName.toLowerCase(), type: el.type || '', name: el.name || '', label, value: el.value || ''};
            if (el.tagName === 'SELECT') field.options = [...el.options].map(o => o.value);
            return field;
        })"#;
        browsers.evaluate(sandbox, script).await
    }
);

browser_tool!(
    BrowserScreenshot,
    spec(
        "browser_screenshot",
        "Save a PNG screenshot of the page into the workspace; returns {saved_to, size}.",
        vec![
            Param::optional("path", Kind::Str, "the workspace file to write", json!("screenshot.png")),
            Param::optional("full_page", Kind::Bool, "the whole page, not only the window", json!(false)),
        ]
    ),
    |browsers, sandbox, args, ctx| {
        let (cdp, session) = browsers.page(sandbox).await?;
        let params = json!({ "format": "png", "captureBeyondViewport": args.bool("full_page", false) });
        let shot = cdp.call(Some(&session), "Page.captureScreenshot", params).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|e| ToolError::Failed(format!("the screenshot was not readable: {e}")))?;
        let path = args.opt_str("path").unwrap_or("screenshot.png");
        let entry = ctx.services.sandboxes.write_file(sandbox, path, png).await?;
        Ok(json!({ "saved_to": entry.path, "size": entry.size }))
    }
);

browser_tool!(
    BrowserClose,
    spec("browser_close", "Close the thread's browser context (its pages, cookies and storage).", vec![]),
    |browsers, sandbox, _args, _ctx| {
        browsers.close(sandbox).await;
        Ok(json!({ "closed": true }))
    }
);

pub(crate) fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(BrowserOpen),
        Arc::new(BrowserClick),
        Arc::new(BrowserType),
        Arc::new(BrowserSelect),
        Arc::new(BrowserScroll),
        Arc::new(BrowserWaitFor),
        Arc::new(BrowserRead),
        Arc::new(BrowserLinks),
        Arc::new(BrowserFields),
        Arc::new(BrowserScreenshot),
        Arc::new(BrowserClose),
    ]
}
