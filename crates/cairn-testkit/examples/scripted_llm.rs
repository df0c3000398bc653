//! The scripted LLM server on its own, for references measured beside Cairn
//! (`bench/run.sh`) and the web app's end-to-end test: it answers requests
//! with the replies given, in order, instantly, then with the last one for
//! ever, and prints its base URL on the first line of standard output. With
//! `SCRIPTED_LLM_LATENCY_MS`, every reply starts that late (a model's time
//! to first token).
//!
//!     cargo run --release -p cairn-testkit --example scripted_llm -- 'a reply' ['the next' …]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use cairn_testkit::{Reply, ScriptedLlm};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut replies: Vec<String> = std::env::args().skip(1).collect();
    let last = replies.pop().unwrap_or_else(|| "```python\nx = 1\n```".to_owned());
    let latency = std::env::var("SCRIPTED_LLM_LATENCY_MS").ok().and_then(|ms| ms.parse().ok());
    let reply = |text: String| match latency {
        Some(ms) => Reply::Late { text, after: std::time::Duration::from_millis(ms) },
        None => Reply::Text(text),
    };
    let server = ScriptedLlm::start(replies.into_iter().map(reply).collect()).await;
    server.set_default(reply(last));
    println!("{}", server.url);
    std::io::stdout().flush().unwrap();
    std::future::pending::<()>().await;
}
