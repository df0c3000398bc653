//! The wire types of calling a tool through the API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallRequest {
    /// The tool's arguments by name (see its `parameters` schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolCallResponse {
    pub tool: String,
    /// What the tool returned: any JSON value.
    pub result: Value,
}
