//! The registry: every tool by name, with what is derived from the specs —
//! the API listing, the Python functions defined in every kernel, the
//! agent's prompt — and the one place calls are bound, checked, timed out
//! and capped.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::sandbox::{ExecHandler, Output};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::{Args, Tool, ToolContext, ToolError, ToolSpec};

/// The largest result a tool may hand back to the code, serialized.
pub const MAX_RESULT_BYTES: usize = 256 * 1024;

/// A tool as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments (an object).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The Python function the sandbox defines, e.g.
    /// `web_fetch(url: str, save_as: str | None = None) -> dict`.
    pub signature: String,
    /// Seconds one call may take.
    pub timeout_secs: u64,
}

/// Every tool, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

fn signature(spec: &ToolSpec) -> String {
    let params: Vec<String> = spec
        .params
        .iter()
        .map(|p| match &p.default {
            None => format!("{}: {}", p.name, p.kind.python()),
            Some(Value::Null) => format!("{}: {} | None = None", p.name, p.kind.python()),
            Some(default) => format!("{}: {} = {}", p.name, p.kind.python(), python_literal(default)),
        })
        .collect();
    format!("{}({}) -> {}", spec.name, params.join(", "), spec.returns)
}

fn schema(spec: &ToolSpec) -> Value {
    let mut properties = Map::new();
    for param in &spec.params {
        let mut property = param.kind.schema();
        property["description"] = json!(param.description);
        if let Some(default) = param.default.as_ref().filter(|d| !d.is_null()) {
            property["default"] = default.clone();
        }
        properties.insert(param.name.to_owned(), property);
    }
    let required: Vec<&str> = spec.params.iter().filter(|p| p.default.is_none()).map(|p| p.name).collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

impl Registry {
    /// Every built-in tool.
    pub fn builtin() -> Registry {
        let mut registry = Registry::default();
        for tool in crate::files::tools() {
            registry.register(tool);
        }
        registry.register(Arc::new(crate::fetch::WebFetch));
        registry.register(Arc::new(crate::search::WebSearch));
        registry.register(Arc::new(crate::artifact::SaveArtifact));
        registry.register(Arc::new(crate::artifact::LoadFile));
        registry.register(Arc::new(crate::agent::FinalAnswer));
        registry.register(Arc::new(crate::agent::AskUser));
        registry.register(Arc::new(crate::remember::Remember));
        registry.register(Arc::new(crate::remember::Recall));
        for tool in crate::browser::tools() {
            registry.register(tool);
        }
        registry
    }

    /// Adds (or replaces) a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }

    /// The tools as the API lists them, by name.
    pub fn list(&self) -> Vec<ToolInfo> {
        self.tools
            .values()
            .map(|tool| {
                let spec = tool.spec();
                ToolInfo {
                    name: spec.name.to_owned(),
                    description: spec.description.to_owned(),
                    parameters: schema(&spec),
                    signature: signature(&spec),
                    timeout_secs: spec.timeout.as_secs(),
                }
            })
            .collect()
    }

    /// Python source defining every tool as a function in the kernel's
    /// namespace (each forwards to the host through `call_tool`).
    pub fn python_prelude(&self) -> String {
        // A sub-agent of a plan may call only some tools: the agent sets
        // `_cairn_tools_allowed` before its code runs (None: all).
        let mut source = String::from(
            "_cairn_tools_allowed = None\n_cairn_agent_name = ''\n\n\n\
             def _cairn_check_tool(name):\n    \
                 if _cairn_tools_allowed is not None and name not in _cairn_tools_allowed \
                 and name not in ('final_answer', 'ask_user'):\n        \
                     raise PermissionError(f\"{name} is not one of the {_cairn_agent_name} agent's tools; it may \
                     call {', '.join(sorted(_cairn_tools_allowed))}\")\n\n\n",
        );
        for tool in self.tools.values() {
            let spec = tool.spec();
            let mut doc = spec.description.trim().replace('\\', "\\\\").replace("\"\"\"", "'''");
            if !spec.params.is_empty() {
                doc.push_str("\n\nArgs:");
                for param in &spec.params {
                    doc.push_str(&format!("\n    {}: {}", param.name, param.description));
                }
            }
            let doc = doc.replace('\n', "\n    ");
            let forwarded: Vec<String> = spec.params.iter().map(|p| format!("{0}={0}", p.name)).collect();
            let body = match spec.python_body {
                Some(body) => body.trim().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
                None => format!(
                    "    return call_tool({:?}{}{})",
                    spec.name,
                    if forwarded.is_empty() { "" } else { ", " },
                    forwarded.join(", ")
                ),
            };
            source.push_str(&format!(
                "def {}:\n    \"\"\"{doc}\n    \"\"\"\n    _cairn_check_tool({:?})\n{body}\n\n\n",
                signature(&spec),
                spec.name
            ));
        }
        source
    }

    /// The tools described for the agent's prompt: one signature and
    /// summary per tool.
    pub fn prompt(&self) -> String {
        self.tools
            .values()
            .map(|tool| {
                let spec = tool.spec();
                let summary = spec.description.lines().next().unwrap_or_default();
                format!("- `{}`: {summary}", signature(&spec))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Binds positional `args` and `kwargs` to the spec's parameters, fills
    /// defaults and checks types.
    fn bind(spec: &ToolSpec, args: &Value, kwargs: &Value) -> Result<Args, ToolError> {
        let name = spec.name;
        let positional = args.as_array().cloned().unwrap_or_default();
        if positional.len() > spec.params.len() {
            return Err(ToolError::Invalid(format!(
                "{name}() takes {} arguments but {} were given",
                spec.params.len(),
                positional.len()
            )));
        }
        let mut bound = Map::new();
        for (param, value) in spec.params.iter().zip(positional) {
            bound.insert(param.name.to_owned(), value);
        }
        for (key, value) in kwargs.as_object().cloned().unwrap_or_default() {
            if !spec.params.iter().any(|p| p.name == key) {
                return Err(ToolError::Invalid(format!("{name}() got an unexpected argument `{key}`")));
            }
            if bound.contains_key(&key) && !value.is_null() {
                return Err(ToolError::Invalid(format!("{name}() got `{key}` twice")));
            }
            if !value.is_null() || !bound.contains_key(&key) {
                bound.insert(key, value);
            }
        }
        for param in &spec.params {
            match (bound.get(param.name), &param.default) {
                (None | Some(Value::Null), None) => {
                    return Err(ToolError::Invalid(format!("{name}() is missing `{}`", param.name)));
                }
                (None, Some(default)) => {
                    bound.insert(param.name.to_owned(), default.clone());
                }
                (Some(Value::Null), Some(_)) => {}
                (Some(value), _) if !param.kind.accepts(value) => {
                    return Err(ToolError::Invalid(format!(
                        "{name}(): `{}` must be {}, not {value}",
                        param.name,
                        param.kind.python()
                    )));
                }
                _ => {}
            }
        }
        Ok(Args::new(bound))
    }

    /// Runs a tool for sandboxed code: the error, if any, is the message the
    /// code's exception carries. Never panics through: a tool that panics or
    /// overruns its timeout is an error like any other.
    pub async fn call(&self, ctx: &ToolContext, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        self.call_checked(ctx, name, args, kwargs).await.map_err(|e| e.to_string())
    }

    /// [`Registry::call`] with the kind of failure kept (for the HTTP API).
    pub async fn call_checked(
        &self,
        ctx: &ToolContext,
        name: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, ToolError> {
        let Some(tool) = self.tools.get(name).cloned() else {
            return Err(ToolError::NoSuchTool(format!(
                "there is no tool `{name}`; the tools are: {}",
                self.names().join(", ")
            )));
        };
        let spec = tool.spec();
        let bound = Self::bind(&spec, &args, &kwargs)?;
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "tool.call",
            otel.name = %format!("execute_tool {name}"),
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = name,
        );
        let task = {
            let ctx = ctx.clone();
            tokio::spawn(async move { tool.run(&ctx, bound).await }.instrument(span.clone()))
        };
        let abort = task.abort_handle();
        let result = match tokio::time::timeout(spec.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                tracing::error!(tool = name, error = %join, "a tool failed unexpectedly");
                Err(ToolError::Failed(format!("{name} failed unexpectedly")))
            }
            Err(_) => {
                abort.abort();
                Err(ToolError::Failed(format!(
                    "{name} did not finish within its limit of {} s",
                    spec.timeout.as_secs()
                )))
            }
        };
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        tracing::info!(
            tool = name,
            ok = result.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tool call"
        );
        let value = result?;
        let size = serde_json::to_vec(&value).map_or(0, |v| v.len());
        if size > MAX_RESULT_BYTES {
            return Err(ToolError::Failed(format!(
                "the result of {name} is {size} bytes, over the limit of {MAX_RESULT_BYTES}; ask for less at a time"
            )));
        }
        Ok(value)
    }
}

/// The execution handler that connects sandboxed code to the registry: it
/// passes outputs on and runs the tools the code calls.
pub struct ToolBridge<'a> {
    pub registry: &'a Registry,
    pub context: ToolContext,
    pub on_output: Box<dyn FnMut(&Output) + Send + 'a>,
}

impl std::fmt::Debug for ToolBridge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolBridge").field("context", &self.context).finish_non_exhaustive()
    }
}

#[async_trait]
impl ExecHandler for ToolBridge<'_> {
    fn output(&mut self, output: &Output) {
        (self.on_output)(output)
    }

    async fn tool_call(&mut self, name: &str, args: Value, kwargs: Value) -> Result<Value, String> {
        self.registry.call(&self.context, name, args, kwargs).await
    }
}
