//! Cairn's agent service. This part: the durable graph runtime the agent
//! runs on (`graph`), with checkpoints after every step, interrupts,
//! cancellation, parallel branches, sub-graphs and forks; the CodeAct agent
//! (`codeact`), plans and sub-agents (`plan`), and the run service (`runs`).

pub mod budget;
pub mod codeact;
pub mod deletions;
pub mod events;
mod figures;
pub mod graph;
pub mod plan;
pub mod retention;
pub mod runs;
pub mod schedules;

pub use budget::Budget;
pub use codeact::{Agent, AgentError, AgentState, LaneJob, Lanes, RunContext, code_block};
pub use events::{Events, RunEvent};
pub use runs::{QUEUE, RunError, RunOptions, Runs, StoreEvents};
