//! The wire types of the models and agents a deployment offers.

use cairn_llm::ModelInfo;
use serde::Serialize;

/// A sub-agent plans give tasks to (`agent.agents`, or the built-in ones).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentResponse {
    pub name: String,
    /// What it is good at (part of its system prompt).
    pub role: String,
    /// The tools it may call; empty: all.
    pub tools: Vec<String>,
    /// `provider/model`; `null`: the run's model.
    pub model: Option<String>,
    /// Model calls one task may take.
    pub max_steps: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelsResponse {
    /// The model used when a project or thread names none.
    pub default: Option<String>,
    pub models: Vec<ModelInfo>,
}
