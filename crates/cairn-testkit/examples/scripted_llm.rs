//! The scripted LLM server on its own, for references measured beside Cairn
//! (`bench/run.sh`): it answers every request with the same reply, instantly,
//! and prints its base URL on the first line of standard output.
//!
//!     cargo run --release -p cairn-testkit --example scripted_llm -- 'the reply'

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use cairn_testkit::{Reply, ScriptedLlm};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let reply = std::env::args().nth(1).unwrap_or_else(|| "```python\nx = 1\n```".to_owned());
    let server = ScriptedLlm::start(Vec::new()).await;
    server.set_default(Reply::Text(reply));
    println!("{}", server.url);
    std::io::stdout().flush().unwrap();
    std::future::pending::<()>().await;
}
