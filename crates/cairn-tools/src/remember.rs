//! The `remember` and `recall` tools, over the project's long-term memory
//! (`cairn_memory::Memory`).

use std::time::Duration;

use async_trait::async_trait;
use cairn_core::ProjectId;
use cairn_memory::{MEMORY_OFF, Memory, MemoryError};
use serde_json::{Value, json};

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

fn memory_of(ctx: &ToolContext) -> Result<(&Memory, ProjectId), ToolError> {
    let memory = ctx.services.memory.as_ref().ok_or_else(|| ToolError::Unavailable(MEMORY_OFF.into()))?;
    let project = ctx.project.ok_or_else(|| ToolError::Unavailable("this sandbox belongs to no project".into()))?;
    Ok((memory, project))
}

#[derive(Debug)]
pub(crate) struct Remember;

#[async_trait]
impl Tool for Remember {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "remember",
            description: "Keep a fact, decision or finding in the project's long-term memory, for later threads \
                          (recall finds it by meaning). Returns {chunks}.",
            params: vec![Param::required("text", Kind::Str, "what to remember, in plain words")],
            returns: "dict",
            timeout: Duration::from_secs(60),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (memory, project) = memory_of(ctx)?;
        // Kept under its thread's name, so deleting the thread forgets it.
        let source = ctx.thread.map_or_else(|| "note".to_owned(), |thread| format!("thread:{thread}"));
        let kept = memory.remember(project, Some(ctx.user), &source, args.str("text")?).await.map_err(tool_error)?;
        Ok(json!({ "chunks": kept.len() }))
    }
}

#[derive(Debug)]
pub(crate) struct Recall;

#[async_trait]
impl Tool for Recall {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "recall",
            description: "Search the project's long-term memory (what was remembered in earlier threads, and the \
                          text of library files) by meaning. Returns a list of {text, source, score}, best first.",
            params: vec![
                Param::required("query", Kind::Str, "what you are looking for"),
                Param::optional("limit", Kind::Int, "how many results (1 to 50)", json!(5)),
            ],
            returns: "list",
            timeout: Duration::from_secs(60),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (memory, project) = memory_of(ctx)?;
        let limit = args.int("limit", 5);
        let found = memory.recall(project, args.str("query")?, limit).await.map_err(tool_error)?;
        Ok(Value::Array(
            found
                .into_iter()
                .map(|(chunk, score)| json!({ "text": chunk.text, "source": chunk.source, "score": score }))
                .collect(),
        ))
    }
}

fn tool_error(error: MemoryError) -> ToolError {
    match error {
        MemoryError::Unavailable(why) => ToolError::Unavailable(why),
        MemoryError::Invalid(why) => ToolError::Invalid(why),
        other => ToolError::Failed(other.to_string()),
    }
}
