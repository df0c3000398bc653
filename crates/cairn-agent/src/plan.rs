//! Plans: a task too big for one loop becomes an ordered list of tasks with
//! dependencies, each with a goal, a done criterion and the sub-agent that
//! does it. The plan lives in the run's checkpointed state and goes out as
//! `plan` events whenever it changes; members may edit it while the run
//! waits for its approval.

use std::collections::{HashMap, HashSet};

use cairn_config::AgentSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tasks a plan may hold.
pub const MAX_TASKS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[default]
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Short and unique in the plan (`t1`).
    pub id: String,
    pub title: String,
    /// What the task must achieve.
    pub goal: String,
    /// How the supervisor tells it is done.
    pub done_when: String,
    /// Tasks whose results it needs.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The sub-agent that does it.
    pub agent: String,
    #[serde(default)]
    pub status: TaskStatus,
    /// What the sub-agent answered (when done), or why it failed.
    #[serde(default)]
    pub result: Option<String>,
    /// Times it was started.
    #[serde(default)]
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Plan {
    pub tasks: Vec<Task>,
    /// Plans made for this run so far (1 for the first).
    #[serde(default)]
    pub version: u32,
}

impl Plan {
    /// Checks a plan: 1 to 12 tasks, unique ids, dependencies that exist and
    /// form no cycle, known agents. Statuses of a new plan start pending.
    pub fn validate(&self, agents: &[AgentSpec]) -> Result<(), String> {
        if self.tasks.is_empty() || self.tasks.len() > MAX_TASKS {
            return Err(format!("a plan has 1 to {MAX_TASKS} tasks (this one has {})", self.tasks.len()));
        }
        let mut ids = HashSet::new();
        for task in &self.tasks {
            if task.id.trim().is_empty() || task.goal.trim().is_empty() {
                return Err("every task needs an id and a goal".into());
            }
            if !ids.insert(task.id.as_str()) {
                return Err(format!("the task id `{}` is used twice", task.id));
            }
            if !agents.iter().any(|a| a.name == task.agent) {
                let known: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
                return Err(format!(
                    "task `{}` names the agent `{}`; the agents are {}",
                    task.id,
                    task.agent,
                    known.join(", ")
                ));
            }
        }
        for task in &self.tasks {
            if let Some(missing) = task.depends_on.iter().find(|d| !ids.contains(d.as_str())) {
                return Err(format!("task `{}` depends on `{missing}`, which is not in the plan", task.id));
            }
        }
        // Kahn's algorithm: every task must become ready at some point.
        let mut waiting: HashMap<&str, usize> =
            self.tasks.iter().map(|t| (t.id.as_str(), t.depends_on.len())).collect();
        let mut ready: Vec<&str> = waiting.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
        let mut seen = 0;
        while let Some(id) = ready.pop() {
            seen += 1;
            for task in self.tasks.iter().filter(|t| t.depends_on.iter().any(|d| d == id)) {
                if let Some(n) = waiting.get_mut(task.id.as_str()) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(task.id.as_str());
                    }
                }
            }
        }
        if seen != self.tasks.len() {
            return Err("the tasks' dependencies form a cycle".into());
        }
        Ok(())
    }

    /// The pending tasks whose dependencies are all done, in plan order.
    pub fn ready(&self) -> Vec<usize> {
        let done: HashSet<&str> =
            self.tasks.iter().filter(|t| t.status == TaskStatus::Done).map(|t| t.id.as_str()).collect();
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TaskStatus::Pending && t.depends_on.iter().all(|d| done.contains(d.as_str())))
            .map(|(i, _)| i)
            .collect()
    }

    pub fn finished(&self) -> bool {
        self.tasks.iter().all(|t| t.status == TaskStatus::Done)
    }

    /// A plan as the planner (or a member) wrote it: statuses, results and
    /// attempts are reset.
    pub fn fresh(mut self, version: u32) -> Plan {
        for task in &mut self.tasks {
            task.status = TaskStatus::Pending;
            task.result = None;
            task.attempts = 0;
        }
        self.version = version;
        self
    }
}

/// The plan in a planner's reply: the first JSON object (in a fenced block
/// or bare) with a `tasks` list.
pub fn parse_plan(reply: &str) -> Result<Plan, String> {
    let start = reply.find('{').ok_or("the reply holds no JSON object")?;
    let end = reply.rfind('}').ok_or("the reply holds no JSON object")?;
    let value: Value = serde_json::from_str(reply.get(start..=end).unwrap_or_default())
        .map_err(|e| format!("the plan is not valid JSON: {e}"))?;
    serde_json::from_value::<Plan>(value).map_err(|e| format!("the plan does not have the expected shape: {e}"))
}

/// The supervisor's verdict on a task's result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Verdict {
    pub done: bool,
    #[serde(default)]
    pub why: String,
}

/// The verdict in a reply; a reply without one counts as done (the
/// sub-agent's own answer stands).
pub fn parse_verdict(reply: &str) -> Verdict {
    let json = reply.find('{').zip(reply.rfind('}')).and_then(|(s, e)| reply.get(s..=e));
    json.and_then(|j| serde_json::from_str::<Verdict>(j).ok())
        .unwrap_or(Verdict { done: true, why: "the supervisor gave no verdict".into() })
}

/// The sub-agents when the deployment defines none.
pub fn builtin_agents() -> Vec<AgentSpec> {
    let spec = |name: &str, role: &str, tools: &[&str]| AgentSpec {
        name: name.to_owned(),
        role: role.to_owned(),
        tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        model: String::new(),
        max_steps: 12,
    };
    vec![
        spec(
            "analyst",
            "You are a data analyst: you load data, compute with pandas and numpy, check your numbers, and draw \
             clear charts with matplotlib.",
            &[],
        ),
        spec(
            "researcher",
            "You are a researcher: you search the web, read sources, and report facts with the address of each \
             source.",
            &[
                "web_search",
                "web_fetch",
                "browser_open",
                "browser_read",
                "browser_links",
                "browser_click",
                "write_file",
                "read_file",
            ],
        ),
        spec(
            "writer",
            "You are a writer: you turn results into clear documents (Markdown, Word-like reports, workbooks) and \
             save them for the user.",
            &["read_file", "write_file", "append_file", "list_files", "save_artifact", "load_file"],
        ),
    ]
}

/// The planner's instructions.
pub fn planner_prompt(agents: &[AgentSpec]) -> String {
    let listed: Vec<String> = agents.iter().map(|a| format!("- {}: {}", a.name, a.role)).collect();
    format!(
        "You are Cairn's planner. Break the user's task into a short plan of tasks that sub-agents will do, each in \
         a Python sandbox with tools. Tasks that do not depend on each other can run at the same time.\n\n\
         Sub-agents:\n{}\n\n\
         Reply with only a JSON object, no prose: {{\"tasks\": [{{\"id\": \"t1\", \"title\": \"…\", \"goal\": \"…\", \
         \"done_when\": \"…\", \"depends_on\": [], \"agent\": \"…\"}}]}}. Use 1 to {MAX_TASKS} tasks; a task's \
         depends_on lists the ids of tasks whose results it needs.",
        listed.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deps: &[&str]) -> Task {
        Task {
            id: id.into(),
            title: id.into(),
            goal: format!("do {id}"),
            done_when: "done".into(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            agent: "analyst".into(),
            status: TaskStatus::Pending,
            result: None,
            attempts: 0,
        }
    }

    #[test]
    fn plans_are_checked_for_ids_agents_dependencies_and_cycles() {
        let agents = builtin_agents();
        let ok = Plan { tasks: vec![task("a", &[]), task("b", &["a"]), task("c", &["a", "b"])], version: 1 };
        assert_eq!(ok.validate(&agents), Ok(()));
        let cases = [
            (Plan::default(), "1 to 12 tasks"),
            (Plan { tasks: vec![task("a", &[]), task("a", &[])], version: 1 }, "used twice"),
            (Plan { tasks: vec![task("a", &["zz"])], version: 1 }, "not in the plan"),
            (Plan { tasks: vec![task("a", &["b"]), task("b", &["a"])], version: 1 }, "cycle"),
            (
                Plan { tasks: vec![Task { agent: "poet".into(), ..task("a", &[]) }], version: 1 },
                "names the agent `poet`",
            ),
        ];
        for (plan, expected) in cases {
            let error = plan.validate(&agents).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn ready_tasks_are_those_whose_dependencies_are_done() {
        let mut plan = Plan { tasks: vec![task("a", &[]), task("b", &[]), task("c", &["a", "b"])], version: 1 };
        assert_eq!(plan.ready(), vec![0, 1], "independent tasks are ready together");
        plan.tasks[0].status = TaskStatus::Done;
        assert_eq!(plan.ready(), vec![1]);
        plan.tasks[1].status = TaskStatus::Done;
        assert_eq!(plan.ready(), vec![2]);
        plan.tasks[2].status = TaskStatus::Done;
        assert!(plan.finished() && plan.ready().is_empty());
    }

    #[test]
    fn a_plan_is_read_from_a_fenced_or_bare_reply() {
        let reply = "Here is the plan:\n```json\n{\"tasks\": [{\"id\": \"t1\", \"title\": \"Load\", \"goal\": \"load\", \
                     \"done_when\": \"loaded\", \"agent\": \"analyst\"}]}\n```";
        let plan = parse_plan(reply).unwrap();
        assert_eq!((plan.tasks.len(), plan.tasks[0].status), (1, TaskStatus::Pending));
        assert!(parse_plan("no plan here").unwrap_err().contains("no JSON"));
        assert!(parse_plan("{\"steps\": []}").unwrap_err().contains("shape"));
        assert_eq!(
            parse_verdict("{\"done\": false, \"why\": \"no chart\"}"),
            Verdict { done: false, why: "no chart".into() }
        );
        assert!(parse_verdict("looks fine").done);
    }
}
