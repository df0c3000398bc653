//! The agent's own tools: ending the run with an answer, and asking a
//! person. Only an agent run can act on them — its execution handler takes
//! these calls before the registry does; called any other way they say so.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

#[derive(Debug)]
pub(crate) struct FinalAnswer;

#[async_trait]
impl Tool for FinalAnswer {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "final_answer",
            description: "End the task with your answer to the user (Markdown). Call it once, when the work is done; \
                          mention the files you saved with save_artifact.",
            params: vec![Param::required("answer", Kind::Str, "the answer, in Markdown")],
            returns: "str",
            timeout: Duration::from_secs(10),
            python_body: None,
        }
    }

    async fn run(&self, _ctx: &ToolContext, _args: Args) -> Result<Value, ToolError> {
        Err(ToolError::Unavailable("final_answer only works inside an agent run".into()))
    }
}

#[derive(Debug)]
pub(crate) struct AskUser;

#[async_trait]
impl Tool for AskUser {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "ask_user",
            description: "Ask the people in the thread a question and pause until one of them answers; the answer \
                          arrives as your next observation. Use it when you cannot go on without them.",
            params: vec![Param::required("question", Kind::Str, "the question")],
            returns: "str",
            timeout: Duration::from_secs(10),
            python_body: None,
        }
    }

    async fn run(&self, _ctx: &ToolContext, _args: Args) -> Result<Value, ToolError> {
        Err(ToolError::Unavailable("ask_user only works inside an agent run".into()))
    }
}
