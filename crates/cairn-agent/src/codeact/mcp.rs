//! A project's MCP servers as tools of its agent: listed when a run
//! begins (pinned with the project's context, so the prompt stays the
//! same), defined in the kernel as Python functions before each block
//! runs, and called through the bridge — under the same approval rules
//! (`agent.require_approval` may name `mcp:<server>/<tool>`, or `mcp:*`)
//! and network policy (the web tools' guarded client) as Cairn's own tools.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;

/// One tool of a project's MCP server, as a run knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// Its Python name in the kernel: `mcp_<server>_<tool>`.
    pub function: String,
    pub server: String,
    pub url: String,
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

    /// Its parameters, from the schema's properties.
    fn params(&self) -> Vec<String> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A Python identifier from a server's or tool's name.
fn identifier(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The kernel's definitions of the tools: each a function that passes its
/// keyword arguments to the bridge.
pub(super) fn definitions(tools: &[McpTool]) -> String {
    tools
        .iter()
        .map(|tool| {
            let doc = tool.description.replace('\\', "\\\\").replace("\"\"\"", "'''");
            format!(
                "def {}(**kwargs):\n    \"\"\"{doc}\"\"\"\n    return call_tool({:?}, **kwargs)\n\n\n",
                tool.function,
                tool.key()
            )
        })
        .collect()
}

impl Agent {
    /// The project's MCP tools, and what the prompt says of them (a server
    /// that cannot be listed is named there, and its tools left out).
    pub(super) async fn mcp_tools(&self, project: ProjectId) -> (Vec<McpTool>, String) {
        let servers = self.store.mcp_servers(project).await.unwrap_or_default();
        let mut tools = Vec::new();
        let mut notes = Vec::new();
        for server in servers {
            match cairn_tools::mcp::list_tools(&self.services.http, &server.url).await {
                Ok(listed) => tools.extend(listed.into_iter().map(|remote| McpTool {
                    function: format!("mcp_{}_{}", identifier(&server.name), identifier(&remote.name)),
                    server: server.name.clone(),
                    url: server.url.clone(),
                    tool: remote.name,
                    description: remote.description,
                    schema: remote.input_schema,
                })),
                Err(error) => notes.push(format!("(The MCP server `{}` could not be listed: {error}.)", server.name)),
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tools_become_python_functions_that_call_the_bridge() {
        let tool = McpTool {
            function: format!("mcp_{}_{}", identifier("Calc"), identifier("add-two")),
            server: "calc".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            tool: "add-two".into(),
            description: "Adds \"\"\"two\"\"\" numbers.".into(),
            schema: json!({ "type": "object", "properties": { "a": {}, "b": {} } }),
        };
        assert_eq!(tool.function, "mcp_calc_add_two");
        assert_eq!(tool.key(), "mcp:calc/add-two");
        assert_eq!(tool.params(), ["a", "b"]);
        let defined = definitions(&[tool]);
        assert!(
            defined.starts_with("def mcp_calc_add_two(**kwargs):\n    \"\"\"Adds '''two''' numbers.\"\"\""),
            "{defined}"
        );
        assert!(defined.contains("return call_tool(\"mcp:calc/add-two\", **kwargs)"));
    }
}
