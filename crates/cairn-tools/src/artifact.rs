//! `save_artifact`: publishes a workspace file into the project library,
//! with the run and step that made it when called by the agent.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

#[derive(Debug)]
pub(crate) struct SaveArtifact;

#[async_trait]
impl Tool for SaveArtifact {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "save_artifact",
            description: "Publish a workspace file into the project's library, where the team sees it.\n\n\
                          Saving to a library path that exists adds a new version. Returns {file_id, path, \
                          version, size}.",
            params: vec![
                Param::required("path", Kind::Str, "the workspace file, relative to /workspace"),
                Param::optional("name", Kind::Str, "its path in the library (default: the same path)", Value::Null),
            ],
            returns: "dict",
            timeout: Duration::from_secs(300),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (Some(files), Some(project)) = (&ctx.services.files, ctx.project) else {
            return Err(ToolError::Unavailable("this sandbox has no project library to save into".into()));
        };
        let path = args.str("path")?;
        let name = args.opt_str("name").unwrap_or(path).trim_start_matches("/workspace/").to_owned();
        let body = ctx.services.sandboxes.download(ctx.sandbox, path).await?;
        let saved = match ctx.run {
            Some((run, step)) => files.save_artifact(project, &name, body, run, step, ctx.fence).await,
            None => files.save_for_user(project, &name, body, ctx.user).await,
        };
        let record = saved.map_err(|e| ToolError::Failed(format!("cannot save {name}: {e}")))?;
        if let Some(memory) = &ctx.services.memory {
            memory.index_in_background(files.clone(), record.clone());
        }
        Ok(json!({ "file_id": record.id, "path": record.path, "version": record.version, "size": record.size }))
    }
}

#[derive(Debug)]
pub(crate) struct LoadFile;

#[async_trait]
impl Tool for LoadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "load_file",
            description: "Copy a file from the project's library into the workspace (its newest version), to \
                          work on it. Returns {path, size} of the workspace copy.",
            params: vec![
                Param::required("path", Kind::Str, "its path in the library, e.g. `data/sales.csv`"),
                Param::optional("save_as", Kind::Str, "the workspace path (default: the same path)", Value::Null),
            ],
            returns: "dict",
            timeout: Duration::from_secs(300),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (Some(files), Some(project)) = (&ctx.services.files, ctx.project) else {
            return Err(ToolError::Unavailable("this sandbox has no project library to read from".into()));
        };
        let path = args.str("path")?;
        let download = files
            .read_latest(project, path)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot read {path} from the library: {e}")))?;
        let target = args.opt_str("save_as").unwrap_or(path);
        let entry = ctx.services.sandboxes.upload(ctx.sandbox, target, download.body).await?;
        Ok(json!({ "path": entry.path, "size": entry.size }))
    }
}
