//! The system prompts: the main agent's, a sub-agent's, and the project's
//! context pinned at a run's first step.

use super::*;

impl Agent {
    /// The system prompt: how to work, and the tools (from the registry).
    pub fn system_prompt(&self) -> String {
        self.system_prompt_with("")
    }

    /// The system prompt with the project's context appended.
    pub(super) fn system_prompt_with(&self, context: &str) -> String {
        let prompt = format!(
            "You are Cairn, an agent that completes tasks by writing Python.\n\n\
             Each turn, think briefly, then write exactly one ```python block. It runs in a persistent Jupyter-like \
             kernel in your sandbox (working directory /workspace; variables persist between turns; numpy, pandas, \
             matplotlib, scipy, requests, beautifulsoup4, openpyxl and pillow are installed). You then see its \
             output. The sandbox has no direct network: use the tools below, which are plain Python functions \
             already defined in the kernel.\n\n\
             Tools:\n{}\n\n\
             Save files the user should get with save_artifact. When the task is done, call \
             final_answer(\"...\") in your block. If you cannot go on without the user, call ask_user(\"...\").",
            self.registry.prompt()
        );
        if context.is_empty() { prompt } else { format!("{prompt}\n\n{context}") }
    }

    /// A sub-agent's system prompt: its role, then the usual instructions,
    /// with the tools it may call.
    pub(super) fn sub_agent_prompt(&self, spec: &AgentSpec, context: &str) -> String {
        let tools = if spec.tools.is_empty() {
            "You may call every tool.".to_owned()
        } else {
            format!("Of the tools, you may call only: {}.", spec.tools.join(", "))
        };
        format!(
            "{}\n\nYou work on one task of a larger plan; a supervisor checks your result. When the task is done, \
             call final_answer(...) with its result (numbers, findings, the files you saved). {tools}\n\n{}",
            spec.role,
            self.system_prompt_with(context)
        )
    }

    /// The prompt of a run that is a sub-agent throughout: its role, then
    /// the usual instructions, with the tools it may call.
    pub(super) fn agent_prompt(&self, spec: &AgentSpec, context: &str) -> String {
        let tools = if spec.tools.is_empty() {
            "You may call every tool.".to_owned()
        } else {
            format!("Of the tools, you may call only: {}.", spec.tools.join(", "))
        };
        format!("{}\n\n{tools}\n\n{}", spec.role, self.system_prompt_with(context))
    }

    /// What the model should know of the project: its name and the files in
    /// its library (the newest 50).
    pub(super) async fn project_context(&self, run: &RunContext) -> String {
        let Ok(project) = self.store.project(run.project).await else { return String::new() };
        let files = self.store.files(run.project, "").await.unwrap_or_default();
        let mut context = format!("Project: {}.", project.name);
        if let Some(packages) = project.package_policy() {
            context.push_str(
                "\nPython packages: this project lets you install what a task needs from its package index (and \
                 nothing else is reachable through it): run `subprocess.run([sys.executable, '-m', 'pip', 'install', \
                 'NAME'], check=True)`, then import it. What you install stays for the project's next runs.",
            );
            if !packages.requirements.is_empty() {
                context.push_str(&format!(" Installed for this project: {}.", packages.requirements.join(", ")));
            }
        }
        if !files.is_empty() {
            let listed: Vec<String> =
                files.iter().take(50).map(|f| format!("- {} ({} bytes)", f.path, f.size)).collect();
            context.push_str(&format!(
                "\nFiles in the project's library (the user's documents; not in your workspace — ask for their content \
                 only if needed):\n{}",
                listed.join("\n")
            ));
        }
        context
    }

    /// The project's context as the run's first step saw it: the system
    /// prompt stays the same from step to step (a file saved mid-run does not
    /// change it), so providers can serve the conversation from their cache.
    pub(super) async fn pinned_context(&self, state: &mut AgentState, run: &RunContext) -> String {
        if let Some(context) = &state.project_context {
            return context.clone();
        }
        let mut context = self.project_context(run).await;
        let (tools, section) = self.mcp_tools(run).await;
        if !section.is_empty() {
            context.push_str("\n\n");
            context.push_str(&section);
        }
        state.mcp_tools = tools;
        state.project_context = Some(context.clone());
        context
    }
}
