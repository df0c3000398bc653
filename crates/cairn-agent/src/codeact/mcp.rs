//! A project's MCP servers as tools of its agent: listed when a run
//! begins (pinned with the project's context, so the prompt stays the
//! same), defined in the kernel as Python functions before each block
//! runs, and called under the same approval rules (`agent.require_approval`
//! may name `mcp:<server>/<tool>`, or `mcp:*`) as Cairn's own tools.
//!
//! A streamable-HTTP server is called by this process, through the bridge
//! and the web tools' guarded client (their network policy). A stdio server
//! is a command run in the thread's sandbox, under the sandbox's isolation
//! and network policy: the kernel speaks to it (`mcp_stdio.py`) once the
//! bridge has allowed the call, and hands the raw result back to the
//! bridge, which reads it as it reads an HTTP server's and tells of it.
//!
//! A server's secrets (HTTP headers, or a stdio server's environment) are
//! opened with the key ring when a step needs them, and never kept in the
//! run's state.

use std::collections::HashMap;

use cairn_core::hooks::{McpServer, McpTransport};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;

/// The kernel's client of stdio servers.
const STDIO_CLIENT: &str = include_str!("mcp_stdio.py");

/// Starts the line on which the kernel prints the stdio servers' listings.
const LISTED: &str = "\u{1}cairn-mcp-listed:";

/// The keyword argument that carries a stdio tool's raw outcome back to
/// the bridge, under the tool's own name.
pub(super) const STDIO_RESULT: &str = "__cairn_mcp_result__";

/// One tool of a project's MCP server, as a run knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// Its Python name in the kernel: `mcp_<server>_<tool>`.
    pub function: String,
    pub server: String,
    /// An HTTP server's endpoint (empty for a stdio server).
    #[serde(default)]
    pub url: String,
    /// A stdio server's command, run in the sandbox (empty for HTTP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its name on the server.
    pub tool: String,
    pub description: String,
    /// Its arguments, as a JSON Schema.
    pub schema: Value,
}

impl McpTool {
    /// The name the bridge knows it by (what approvals name).
    pub fn key(&self) -> String {
        format!("mcp:{}/{}", self.server, self.tool)
    }

    /// Whether the sandbox runs its server.
    pub fn is_stdio(&self) -> bool {
        !self.command.is_empty()
    }

    /// Its parameters, from the schema's properties.
    fn params(&self) -> Vec<String> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The secrets of a project's MCP servers, by server name: name → value
/// (HTTP headers, or a stdio server's environment).
#[derive(Default)]
pub(super) struct McpSecrets(HashMap<String, Vec<(String, String)>>);

impl std::fmt::Debug for McpSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(server, secrets)| (server, secrets.len()))).finish()
    }
}

impl McpSecrets {
    pub(super) fn of(&self, server: &str) -> &[(String, String)] {
        self.0.get(server).map(Vec::as_slice).unwrap_or_default()
    }
}

/// A Python identifier from a server's or tool's name.
fn identifier(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// A Python string literal (JSON's escapes are Python's too).
fn python_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Code that loads the kernel's stdio client (once per kernel and version
/// of it) as `_cairn_mcp`, and gives it the servers' commands and secrets.
fn stdio_setup(servers: &[(String, Vec<String>)], secrets: &McpSecrets) -> String {
    let module = format!("_cairn_mcp_stdio_{:016x}", cairn_core::hash::fnv1a(STDIO_CLIENT.as_bytes()));
    let config: serde_json::Map<String, Value> = servers
        .iter()
        .map(|(name, command)| {
            let env: serde_json::Map<String, Value> =
                secrets.of(name).iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            (name.clone(), json!({ "command": command, "env": env }))
        })
        .collect();
    format!(
        "import sys as _cairn_sys, types as _cairn_types, json as _cairn_json\n\
         if {module:?} not in _cairn_sys.modules:\n    \
             _cairn_module = _cairn_types.ModuleType({module:?})\n    \
             exec(compile({source}, \"<cairn-mcp-stdio>\", \"exec\"), _cairn_module.__dict__)\n    \
             _cairn_sys.modules[{module:?}] = _cairn_module\n\
         _cairn_mcp = _cairn_sys.modules[{module:?}]\n\
         _cairn_mcp.configure(_cairn_json.loads({config}))\n\n",
        source = python_string(STDIO_CLIENT),
        config = python_string(&Value::Object(config).to_string()),
    )
}

/// The stdio servers among the tools, with their commands, once each.
fn stdio_servers(tools: &[McpTool]) -> Vec<(String, Vec<String>)> {
    let mut servers: Vec<(String, Vec<String>)> = Vec::new();
    for tool in tools.iter().filter(|t| t.is_stdio()) {
        if !servers.iter().any(|(name, _)| *name == tool.server) {
            servers.push((tool.server.clone(), tool.command.clone()));
        }
    }
    servers
}

/// The kernel's definitions of the tools: each a function that passes its
/// keyword arguments to the bridge (HTTP), or that asks the bridge first,
/// calls its server in the sandbox, and gives the bridge the outcome to
/// read (stdio).
pub(super) fn definitions(tools: &[McpTool], secrets: &McpSecrets) -> String {
    let stdio = stdio_servers(tools);
    let mut code = String::new();
    if !stdio.is_empty() {
        code.push_str(&stdio_setup(&stdio, secrets));
        code.push_str(&format!(
            "def _cairn_mcp_call(server, tool, key, arguments):\n    \
                 call_tool(key, **arguments)\n    \
                 return call_tool(key, **{{{STDIO_RESULT:?}: _cairn_mcp.call(server, tool, arguments)}})\n\n\n"
        ));
    }
    for tool in tools {
        let doc = tool.description.replace('\\', "\\\\").replace("\"\"\"", "'''");
        let body = match tool.is_stdio() {
            true => format!("_cairn_mcp_call({:?}, {:?}, {:?}, kwargs)", tool.server, tool.tool, tool.key()),
            false => format!("call_tool({:?}, **kwargs)", tool.key()),
        };
        code.push_str(&format!("def {}(**kwargs):\n    \"\"\"{doc}\"\"\"\n    return {body}\n\n\n", tool.function));
    }
    code
}

/// A server's tools as a run knows them.
fn tools_from(server: &McpServer, listed: Vec<cairn_tools::mcp::RemoteTool>) -> impl Iterator<Item = McpTool> + '_ {
    let (url, command) = match &server.transport {
        McpTransport::Http { url } => (url.clone(), Vec::new()),
        McpTransport::Stdio { command } => (String::new(), command.clone()),
    };
    listed.into_iter().map(move |remote| McpTool {
        function: format!("mcp_{}_{}", identifier(&server.name), identifier(&remote.name)),
        server: server.name.clone(),
        url: url.clone(),
        command: command.clone(),
        tool: remote.name,
        description: remote.description,
        schema: remote.input_schema,
    })
}

/// What one `list_all` entry says: the `tools/list` result, or why not.
fn listing(answer: &Value) -> Result<Value, String> {
    match answer.get("error").and_then(Value::as_str) {
        Some(error) => Err(error.to_owned()),
        None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
    }
}

impl Agent {
    /// The servers' secrets, opened (a server whose secrets cannot be opened
    /// gets none, and the log says so).
    fn mcp_secrets(&self, servers: &[McpServer]) -> McpSecrets {
        let mut secrets = HashMap::new();
        for server in servers {
            let Some(sealed) = &server.secrets_sealed else { continue };
            let opened = self
                .keys
                .as_ref()
                .ok_or_else(|| "this process has no key ring".to_owned())
                .and_then(|keys| keys.open(sealed).map_err(|e| e.to_string()))
                .and_then(|bytes| serde_json::from_slice::<HashMap<String, String>>(&bytes).map_err(|e| e.to_string()));
            match opened {
                Ok(map) => {
                    let mut pairs: Vec<(String, String)> = map.into_iter().collect();
                    pairs.sort();
                    secrets.insert(server.name.clone(), pairs);
                }
                Err(error) => {
                    tracing::error!(%error, server = %server.name, "an MCP server's secrets cannot be opened")
                }
            }
        }
        McpSecrets(secrets)
    }

    /// The secrets of the servers a run's tools come from.
    pub(super) async fn mcp_secrets_for(&self, project: ProjectId, tools: &[McpTool]) -> McpSecrets {
        if tools.is_empty() {
            return McpSecrets::default();
        }
        let servers = self.store.mcp_servers(project).await.unwrap_or_default();
        let used: Vec<McpServer> = servers
            .into_iter()
            .filter(|s| s.secrets_sealed.is_some() && tools.iter().any(|t| t.server == s.name))
            .collect();
        self.mcp_secrets(&used)
    }

    /// The project's MCP tools, and what the prompt says of them (a server
    /// that cannot be listed is named there, and its tools left out). Stdio
    /// servers are started and listed in the run's sandbox.
    pub(super) async fn mcp_tools(&self, run: &RunContext) -> (Vec<McpTool>, String) {
        let servers = self.store.mcp_servers(run.project).await.unwrap_or_default();
        let secrets = self.mcp_secrets(&servers);
        let mut tools = Vec::new();
        let mut notes = Vec::new();
        let mut stdio: Vec<(&McpServer, (String, Vec<String>))> = Vec::new();
        let mut not_listed = |server: &McpServer, error: &dyn std::fmt::Display| {
            notes.push(format!("(The MCP server `{}` could not be listed: {error}.)", server.name));
        };
        for server in &servers {
            match &server.transport {
                McpTransport::Http { url } => {
                    match cairn_tools::mcp::list_tools(&self.services.http, url, secrets.of(&server.name)).await {
                        Ok(listed) => tools.extend(tools_from(server, listed)),
                        Err(error) => not_listed(server, &error),
                    }
                }
                McpTransport::Stdio { command } => stdio.push((server, (server.name.clone(), command.clone()))),
            }
        }
        if !stdio.is_empty() {
            let commands: Vec<(String, Vec<String>)> = stdio.iter().map(|(_, command)| command.clone()).collect();
            let mut listed = self.list_in_sandbox(run, &commands, &secrets).await;
            for (server, _) in stdio {
                match listed.remove(&server.name).unwrap_or_else(|| Err("it was not listed".to_owned())) {
                    Ok(result) => tools.extend(tools_from(server, cairn_tools::mcp::tools_of(&result))),
                    Err(error) => not_listed(server, &error),
                }
            }
        }
        if tools.is_empty() && notes.is_empty() {
            return (tools, String::new());
        }
        let mut section = String::from(
            "Tools from the project's MCP servers (Python functions in the kernel; call them with keyword \
             arguments; each returns the tool's result):",
        );
        for tool in &tools {
            let summary = tool.description.lines().next().unwrap_or_default();
            section.push_str(&format!(
                "\n- `{}({})`: {summary} Arguments (JSON Schema): {}",
                tool.function,
                tool.params().join(", "),
                tool.schema
            ));
        }
        for note in notes {
            section.push('\n');
            section.push_str(&note);
        }
        (tools, section)
    }

    /// Starts the stdio servers in the run's sandbox and lists their tools:
    /// by server, its `tools/list` result or why it could not be listed.
    async fn list_in_sandbox(
        &self,
        run: &RunContext,
        servers: &[(String, Vec<String>)],
        secrets: &McpSecrets,
    ) -> HashMap<String, Result<Value, String>> {
        let names: Vec<&str> = servers.iter().map(|(name, _)| name.as_str()).collect();
        let code = format!(
            "{}print({} + _cairn_json.dumps(_cairn_mcp.list_all(_cairn_json.loads({}))))",
            stdio_setup(servers, secrets),
            python_string(LISTED),
            python_string(&json!(names).to_string()),
        );
        let quiet = &mut |_: &Output| {};
        let outcome = self.services.sandboxes.execute(run.sandbox, Execution::Python { code }, quiet).await;
        let failed = |why: String| servers.iter().map(|(name, _)| (name.clone(), Err(why.clone()))).collect();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => return failed(format!("the sandbox could not start it: {}", error.detail())),
        };
        let printed: String = outcome
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Stream { name, text } if name == "stdout" => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let listed = printed
            .lines()
            .find_map(|line| line.strip_prefix(LISTED))
            .and_then(|json| serde_json::from_str::<HashMap<String, Value>>(json).ok());
        match listed {
            Some(listed) => listed.into_iter().map(|(name, answer)| (name, listing(&answer))).collect(),
            None => {
                let said = outcome.outputs.iter().find_map(|o| match o {
                    Output::Error { ename, evalue, .. } => Some(format!("{ename}: {evalue}")),
                    _ => None,
                });
                failed(said.unwrap_or_else(|| "the sandbox did not say why".to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(server: &str, name: &str, command: &[&str]) -> McpTool {
        McpTool {
            function: format!("mcp_{}_{}", identifier(server), identifier(name)),
            server: server.into(),
            url: if command.is_empty() { "http://127.0.0.1:9/mcp".into() } else { String::new() },
            command: command.iter().map(|part| part.to_string()).collect(),
            tool: name.into(),
            description: "Adds \"\"\"two\"\"\" numbers.".into(),
            schema: json!({ "type": "object", "properties": { "a": {}, "b": {} } }),
        }
    }

    #[test]
    fn tools_become_python_functions_that_call_the_bridge() {
        assert_eq!(identifier("Calc"), "calc");
        let tool = tool("calc", "add-two", &[]);
        assert_eq!(tool.function, "mcp_calc_add_two");
        assert_eq!(tool.key(), "mcp:calc/add-two");
        assert_eq!(tool.params(), ["a", "b"]);
        let defined = definitions(&[tool], &McpSecrets::default());
        assert!(
            defined.starts_with("def mcp_calc_add_two(**kwargs):\n    \"\"\"Adds '''two''' numbers.\"\"\""),
            "{defined}"
        );
        assert!(defined.contains("return call_tool(\"mcp:calc/add-two\", **kwargs)"));
        assert!(!defined.contains("_cairn_mcp"), "no stdio client without stdio servers");
    }

    #[test]
    fn stdio_tools_load_the_kernel_client_with_their_servers_commands_and_secrets() {
        let tools =
            [tool("notes", "add", &["python", "-m", "notes"]), tool("notes", "find", &["python", "-m", "notes"])];
        let secrets =
            McpSecrets(HashMap::from([("notes".to_owned(), vec![("TOKEN".to_owned(), "s3\"cret".to_owned())])]));
        let defined = definitions(&tools, &secrets);
        // The client once, configured with the server once.
        assert_eq!(defined.matches("_cairn_mcp.configure(").count(), 1);
        assert!(defined.contains(r#"\"command\":[\"python\",\"-m\",\"notes\"]"#), "{defined}");
        assert!(defined.contains(r#"\"env\":{\"TOKEN\":\"s3\\\"cret\"}"#), "{defined}");
        assert!(defined.contains("return _cairn_mcp_call(\"notes\", \"add\", \"mcp:notes/add\", kwargs)"));
        assert!(defined.contains(&format!("**{{{STDIO_RESULT:?}: _cairn_mcp.call(server, tool, arguments)}}")));
        // Secrets never show in what is logged of them.
        assert_eq!(format!("{secrets:?}"), r#"{"notes": 1}"#);
    }

    #[test]
    fn a_listing_is_a_result_or_why_not() {
        assert_eq!(listing(&json!({ "result": { "tools": [] } })), Ok(json!({ "tools": [] })));
        assert_eq!(listing(&json!({ "error": "it exited" })), Err("it exited".to_owned()));
    }
}
