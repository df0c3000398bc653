//! The wire types of MCP servers a project connects to.

use std::collections::BTreeMap;

use cairn_core::McpServerId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMcpServerRequest {
    /// A short name (`[a-z][a-z0-9_]*`, up to 32): its tools are
    /// `mcp_<name>_<tool>` in the kernel.
    pub name: String,
    /// Its streamable-HTTP endpoint (no private address unless
    /// `tools.allow_private` names it). Give `url` or `command`.
    #[serde(default)]
    pub url: Option<String>,
    /// A stdio server: the program and its arguments (`python` is the
    /// sandbox's interpreter), started in each thread's sandbox, under the
    /// sandbox's isolation and network policy. Give `url` or `command`.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub command: Option<Vec<String>>,
    /// Credentials: headers sent with every request to an HTTP server, or
    /// environment variables of a stdio server (up to 16). Sealed when
    /// stored and never shown again; a stdio server's are readable by the
    /// code that runs in its sandbox.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for AddMcpServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddMcpServerRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("command", &self.command)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpToolResponse {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTransportKind {
    Http,
    Stdio,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerResponse {
    pub id: McpServerId,
    pub name: String,
    pub transport: McpTransportKind,
    /// An HTTP server's endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A stdio server's command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The names of its secrets (their values are never shown).
    pub secrets: Vec<String>,
    /// The tools an HTTP server offered when it was added (runs list them
    /// afresh; a stdio server's are listed by each run, in its sandbox).
    pub tools: Vec<McpToolResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}
