//! What the agent carries from step to step: the checkpointed state.

use super::*;

/// What the agent carries from step to step (checkpointed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The conversation with the model.
    pub messages: Vec<Message>,
    /// Model calls so far.
    pub turns: u32,
    pub usage: Usage,
    pub cost_usd: f64,
    /// Milliseconds spent in steps so far (the wall-time budget).
    pub elapsed_ms: u64,
    /// Replies in a row without a code block.
    pub malformed: u32,
    pub pending_code: Option<String>,
    pub final_answer: Option<String>,
    /// A question waiting for a person.
    pub question: Option<String>,
    /// Why the run ended without an answer (a budget, repeated bad replies).
    pub failure: Option<String>,
    /// Thread messages already given to the model.
    pub seen_messages: usize,
    /// The model the run was started with (`provider/model`); `None`: the default.
    #[serde(default)]
    pub model: Option<String>,
    /// The project's context in the system prompt, fixed at the run's first
    /// step (see `pinned_context`).
    #[serde(default)]
    pub project_context: Option<String>,
    /// Tool calls a member approved (tool and arguments, as JSON).
    #[serde(default)]
    pub approved: Vec<String>,
    /// The call waiting for a member's approval.
    #[serde(default)]
    pub awaiting_approval: Option<String>,
    /// The run plans first and gives the tasks to sub-agents.
    #[serde(default)]
    pub planning: bool,
    #[serde(default)]
    pub plan: Option<Plan>,
    /// Plans made so far (the first, then re-plans).
    #[serde(default)]
    pub plans_made: u32,
    /// The plan waits for a member's approval (or edit).
    #[serde(default)]
    pub awaiting_plan: bool,
    /// Why the plan must change: a member's request, a failed task.
    #[serde(default)]
    pub replan_reason: Option<String>,
    /// What the planner was told about its unusable replies.
    #[serde(default)]
    pub planner_feedback: Vec<Message>,
    /// The task a sub-agent works on (its index in the plan); meanwhile
    /// `messages` are the sub-agent's and the supervisor's wait here.
    #[serde(default)]
    pub task: Option<usize>,
    #[serde(default)]
    pub task_turns: u32,
    #[serde(default)]
    pub supervisor_messages: Vec<Message>,
    /// The sub-agent's answer, or why it gave up, for the supervisor to check.
    #[serde(default)]
    pub task_answer: Option<String>,
    #[serde(default)]
    pub task_failure: Option<String>,
    /// The project's MCP tools, listed with the pinned context at the
    /// run's first step.
    #[serde(default)]
    pub mcp_tools: Vec<super::mcp::McpTool>,
    /// The sub-agent the whole run is (its role, tools and model), when
    /// one was asked for.
    #[serde(default)]
    pub agent: Option<String>,
}

impl AgentState {
    /// What the run has used, for its budget.
    pub fn spent(&self) -> Spent {
        Spent {
            steps: self.turns,
            tokens: self.usage.prompt_tokens() + self.usage.output_tokens,
            cost_usd: self.cost_usd,
            elapsed_ms: self.elapsed_ms,
        }
    }
}
