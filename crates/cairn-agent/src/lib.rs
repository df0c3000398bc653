//! Cairn's agent service. This part: the durable graph runtime the agent
//! runs on (`graph`), with checkpoints after every step, interrupts,
//! cancellation, parallel branches, sub-graphs and forks.

pub mod graph;
