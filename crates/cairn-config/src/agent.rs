//! `[agent]`: the agent's workers, budgets, approvals and sub-agents.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The agent's workers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Runs one process works on at once.
    pub workers: usize,
    /// A run's budget: model calls, tokens, cost (US dollars) and time
    /// (seconds spent in steps); reaching one ends the run with a message.
    pub max_steps: u32,
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_wall_secs: u64,
    /// Tools whose calls wait for a member's approval (the run pauses and
    /// asks), e.g. `["shell", "save_artifact"]`.
    pub require_approval: Vec<String>,
    /// When a planned run waits for a member to approve (or edit) its plan.
    pub plan_approval: PlanApproval,
    /// The sub-agents a plan's tasks are given to. Empty: the built-in
    /// analyst, researcher and writer.
    pub agents: Vec<AgentSpec>,
}

/// A sub-agent, defined as data: a deployment adds specialists without code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// How plans name it (`analyst`).
    pub name: String,
    /// Added to its system prompt: what it is good at, how it works.
    pub role: String,
    /// The tools it may call; empty: all of them.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `provider/model`; empty: the run's model.
    #[serde(default)]
    pub model: String,
    /// Model calls one task may take.
    #[serde(default = "default_task_steps")]
    pub max_steps: u32,
}

fn default_task_steps() -> u32 {
    12
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            workers: 4,
            max_steps: 30,
            max_tokens: 2_000_000,
            max_cost_usd: 10.0,
            max_wall_secs: 3600,
            require_approval: Vec::new(),
            plan_approval: PlanApproval::Never,
            agents: Vec::new(),
        }
    }
}

/// When a planned run waits for a member to approve (or edit) its plan
/// (`agent.plan_approval`): `never`, `always`, or a number N for plans of
/// more than N tasks. TOML and environment variables may give the number as
/// an integer (`3`) or a string (`"3"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlanApproval {
    /// Plans start at once.
    #[default]
    Never,
    /// Every plan waits.
    Always,
    /// Plans of more than this many tasks wait.
    Over(usize),
}

/// What `agent.plan_approval` accepts, as its errors say.
const PLAN_APPROVAL_EXPECTED: &str = "never, always, or a number of tasks";

impl PlanApproval {
    /// Whether a plan of `tasks` tasks waits for a member's approval.
    pub fn needs_approval(self, tasks: usize) -> bool {
        match self {
            PlanApproval::Never => false,
            PlanApproval::Always => true,
            PlanApproval::Over(n) => tasks > n,
        }
    }
}

impl FromStr for PlanApproval {
    type Err = Error;

    fn from_str(s: &str) -> Result<PlanApproval> {
        match s {
            "never" => Ok(PlanApproval::Never),
            "always" => Ok(PlanApproval::Always),
            over => over.parse().map(PlanApproval::Over).map_err(|_| Error::Invalid {
                key: "agent.plan_approval",
                expected: PLAN_APPROVAL_EXPECTED,
                got: over.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for PlanApproval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanApproval::Never => f.write_str("never"),
            PlanApproval::Always => f.write_str("always"),
            PlanApproval::Over(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for PlanApproval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PlanApproval {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PlanApproval, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = PlanApproval;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(PLAN_APPROVAL_EXPECTED)
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<PlanApproval, E> {
                value.parse().map_err(|_| E::custom(format!("expected {PLAN_APPROVAL_EXPECTED}, got `{value}`")))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<PlanApproval, E> {
                usize::try_from(value)
                    .map(PlanApproval::Over)
                    .map_err(|_| E::custom(format!("expected {PLAN_APPROVAL_EXPECTED}, got `{value}`")))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<PlanApproval, E> {
                usize::try_from(value)
                    .map(PlanApproval::Over)
                    .map_err(|_| E::custom(format!("expected {PLAN_APPROVAL_EXPECTED}, got `{value}`")))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl AgentConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.workers == 0
            || self.max_steps == 0
            || self.max_tokens == 0
            || self.max_wall_secs == 0
            || self.max_cost_usd <= 0.0
        {
            return Err(Error::Invalid {
                key: "agent",
                expected: "at least one worker and positive budgets (max_steps, max_tokens, max_cost_usd, max_wall_secs)",
                got: format!("{self:?}"),
            });
        }
        if let Some(bad) = self.agents.iter().find(|a| {
            a.name.is_empty()
                || !a.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || a.max_steps == 0
        }) {
            return Err(Error::Invalid {
                key: "agent.agents",
                expected: "agents named with letters, digits, - and _, each with max_steps of at least 1",
                got: format!("{bad:?}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail API returns its (large) error type by value.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;
    use crate::Config;

    fn load(file: &str, env: Option<&str>) -> std::result::Result<PlanApproval, String> {
        let mut loaded = Err(String::new());
        Jail::expect_with(|jail| {
            jail.create_file("cairn.toml", file)?;
            if let Some(value) = env {
                jail.set_env("CAIRN__AGENT__PLAN_APPROVAL", value);
            }
            loaded = Config::load(Some(std::path::Path::new("cairn.toml")))
                .map(|c| c.agent.plan_approval)
                .map_err(|e| e.to_string());
            Ok(())
        });
        loaded
    }

    #[test]
    fn plan_approval_reads_never_always_or_a_number_from_the_file_and_the_environment() {
        let cases = [
            ("", None, PlanApproval::Never),
            ("[agent]\nplan_approval = \"always\"\n", None, PlanApproval::Always),
            ("[agent]\nplan_approval = \"never\"\n", None, PlanApproval::Never),
            ("[agent]\nplan_approval = \"3\"\n", None, PlanApproval::Over(3)),
            ("[agent]\nplan_approval = 3\n", None, PlanApproval::Over(3)),
            ("", Some("always"), PlanApproval::Always),
            ("", Some("3"), PlanApproval::Over(3)),
            ("", Some("\"3\""), PlanApproval::Over(3)),
        ];
        for (file, env, expected) in cases {
            assert_eq!(load(file, env), Ok(expected), "{file:?} {env:?}");
        }
    }

    #[test]
    fn a_bad_plan_approval_names_the_key_and_what_is_expected() {
        for (file, env, got) in [
            ("[agent]\nplan_approval = \"sometimes\"\n", None, "sometimes"),
            ("[agent]\nplan_approval = -2\n", None, "-2"),
            ("", Some("nope"), "nope"),
        ] {
            let message = load(file, env).unwrap_err();
            assert!(message.contains("`agent.plan_approval`"), "{message}");
            assert!(
                message.contains(&format!("expected never, always, or a number of tasks, got `{got}`")),
                "{message}"
            );
        }
        let message = load("", Some("2.5")).unwrap_err();
        assert!(message.contains("expected never, always, or a number of tasks"), "{message}");
    }

    #[test]
    fn plans_of_more_tasks_than_the_setting_wait() {
        assert!(!PlanApproval::Never.needs_approval(100));
        assert!(PlanApproval::Always.needs_approval(1));
        assert!(!PlanApproval::Over(3).needs_approval(3));
        assert!(PlanApproval::Over(3).needs_approval(4));
        assert_eq!("5".parse::<PlanApproval>().unwrap(), PlanApproval::Over(5));
        assert_eq!(PlanApproval::Over(5).to_string(), "5");
    }
}
