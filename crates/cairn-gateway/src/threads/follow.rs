//! Following one run of a thread to its end, for callers that wait on it
//! (the OpenAI-compatible API, the MCP server): its steps as text, then its
//! answer, its question, or why it ended without one.

use cairn_agent::RunEvent;
use cairn_core::model::RunStatus;
use cairn_core::sandbox::Output;
use cairn_core::{RunId, ThreadId};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::live_events;
use crate::{ApiError, AppState};

/// What a client hears of a run.
pub(crate) enum Progress {
    /// A piece of a step (thinking, code, output).
    Step(String),
    Answer {
        text: String,
        usage: cairn_llm::Usage,
    },
    /// The run waits for a person; its question.
    Waiting(String),
    /// It ended without an answer.
    Ended {
        code: &'static str,
        message: String,
    },
}

impl Progress {
    pub(crate) fn of(event: RunEvent, steps: bool) -> Option<Progress> {
        match event {
            RunEvent::Status(status) => match status.status {
                RunStatus::Succeeded => Some(Progress::Answer {
                    text: status.answer.unwrap_or_default(),
                    usage: status.usage.unwrap_or_default(),
                }),
                RunStatus::Waiting => Some(Progress::Waiting(status.question.unwrap_or_default())),
                RunStatus::Failed => Some(Progress::Ended {
                    code: "run_failed",
                    message: format!(
                        "the run failed: {}",
                        status.error.unwrap_or_else(|| "no reason was given".to_owned())
                    ),
                }),
                RunStatus::Cancelled => {
                    Some(Progress::Ended { code: "run_cancelled", message: "the run was cancelled".to_owned() })
                }
                RunStatus::Queued | RunStatus::Running => None,
            },
            _ if !steps => None,
            RunEvent::Token(text) | RunEvent::Reasoning(text) => Some(Progress::Step(text.text)),
            RunEvent::Output(produced) => match produced.output {
                Output::Stream { text, .. } => Some(Progress::Step(text)),
                Output::Error { ename, evalue, .. } => Some(Progress::Step(format!("\n{ename}: {evalue}\n"))),
                Output::Display { .. } | Output::Result { .. } => None,
            },
            RunEvent::Artifact(saved) => {
                Some(Progress::Step(format!("\n[saved {} (version {})]\n", saved.path, saved.version)))
            }
            RunEvent::Budget(reached) => Some(Progress::Step(format!("\n[{}]\n", reached.reason))),
            RunEvent::Tool(called) => Some(Progress::Step(format!("\n[{}({})]\n", called.name, called.args))),
            _ => None,
        }
    }

    pub(crate) fn ends(&self) -> bool {
        !matches!(self, Progress::Step(_))
    }
}

/// The run's progress from the thread's log after `after`, live, ending
/// with its answer, its question or its end; a server shutdown ends it
/// with an error that says where the run goes on.
pub(crate) async fn run_progress(
    state: &AppState,
    thread: ThreadId,
    after: i64,
    run: RunId,
    steps: bool,
) -> Result<BoxStream<'static, Progress>, ApiError> {
    let events = live_events(state, thread, after).await?;
    let stopping = state.stopping.wait();
    let start = (events, Box::pin(stopping), false);
    let stream = futures::stream::unfold(start, move |(mut events, mut stopping, done)| async move {
        if done {
            return None;
        }
        loop {
            let streamed = tokio::select! {
                streamed = events.next() => streamed,
                () = &mut stopping => None,
            };
            let Some(streamed) = streamed else {
                let message = format!(
                    "the server stopped before the run ended; it goes on: read thread {thread} in Cairn, or go on \
                     with X-Cairn-Thread-Id"
                );
                return Some((Progress::Ended { code: "server_stopping", message }, (events, stopping, true)));
            };
            if streamed.event().run_id != Some(run) {
                continue;
            }
            if let Some(progress) = Progress::of(streamed.into_run_event(), steps) {
                let done = progress.ends();
                return Some((progress, (events, stopping, done)));
            }
        }
    });
    Ok(stream.boxed())
}
