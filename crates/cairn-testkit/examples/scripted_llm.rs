//! The scripted LLM server on its own, for references measured beside Cairn
//! (`bench/run.sh`) and the web app's end-to-end test: it answers requests
//! with the replies given, in order, instantly, then with the last one for
//! ever, and prints its base URL on the first line of standard output.
//!
//!     cargo run --release -p cairn-testkit --example scripted_llm -- 'a reply' ['the next' …]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use cairn_testkit::{Reply, ScriptedLlm};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut replies: Vec<String> = std::env::args().skip(1).collect();
    let last = replies.pop().unwrap_or_else(|| "```python\nx = 1\n```".to_owned());
    let server = ScriptedLlm::start(replies.into_iter().map(Reply::Text).collect()).await;
    server.set_default(Reply::Text(last));
    println!("{}", server.url);
    std::io::stdout().flush().unwrap();
    std::future::pending::<()>().await;
}
