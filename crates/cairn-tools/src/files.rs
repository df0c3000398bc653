//! Workspace files and the shell, in the thread's sandbox. File tools work
//! through the sandbox's workspace operations (which never follow a link out
//! of the workspace); the shell runs inside the sandbox.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::sandbox::{EntryKind, Execution, Output, WorkspaceEntry};
use serde_json::{Value, json};

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

/// The largest file the text tools read or edit.
const MAX_TEXT_BYTES: usize = 8 << 20;
/// Matches `search_files` returns at most.
const MAX_MATCHES: usize = 200;

pub(crate) fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(ReadFile),
        Arc::new(WriteFile),
        Arc::new(AppendFile),
        Arc::new(ListFiles),
        Arc::new(SearchFiles),
        Arc::new(EditFile),
        Arc::new(Shell),
    ]
}

fn spec(name: &'static str, description: &'static str, params: Vec<Param>, returns: &'static str) -> ToolSpec {
    ToolSpec { name, description, params, returns, timeout: Duration::from_secs(30), python_body: None }
}

async fn read_text(ctx: &ToolContext, path: &str) -> Result<String, ToolError> {
    let bytes = ctx.services.sandboxes.read_file(ctx.sandbox, path, MAX_TEXT_BYTES).await?;
    String::from_utf8(bytes)
        .map_err(|_| ToolError::Failed(format!("{path} is not UTF-8 text; open it from Python or the shell instead")))
}

fn entry_json(entry: &WorkspaceEntry) -> Value {
    let kind = match entry.kind {
        EntryKind::File => "file",
        EntryKind::Directory => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::Other => "other",
    };
    json!({ "path": entry.path, "kind": kind, "size": entry.size })
}

#[derive(Debug)]
struct ReadFile;

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "read_file",
            "Read a text file of the workspace, a range of its lines.\n\nReturns the text of lines \
             `offset` (0-based) up to `offset + limit`; a note at the end says when more lines follow.",
            vec![
                Param::required("path", Kind::Str, "the file, relative to /workspace"),
                Param::optional("offset", Kind::Int, "the first line to return (0-based)", json!(0)),
                Param::optional("limit", Kind::Int, "how many lines at most", json!(2000)),
            ],
            "str",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let path = args.str("path")?;
        let (offset, limit) = (args.int("offset", 0).max(0) as usize, args.int("limit", 2000).max(1) as usize);
        let text = read_text(ctx, path).await?;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut out: String = lines.iter().skip(offset).take(limit).copied().collect();
        if offset + limit < lines.len() {
            out.push_str(&format!(
                "\n[… {} more lines; read on with offset={}]",
                lines.len() - offset - limit,
                offset + limit
            ));
        }
        Ok(json!(out))
    }
}

#[derive(Debug)]
struct WriteFile;

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "write_file",
            "Write a text file in the workspace, replacing it if it exists and creating its folders.",
            vec![
                Param::required("path", Kind::Str, "the file, relative to /workspace"),
                Param::required("content", Kind::Str, "the whole new text"),
            ],
            "dict",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (path, content) = (args.str("path")?, args.str("content")?);
        let entry = ctx.services.sandboxes.write_file(ctx.sandbox, path, content.as_bytes().to_vec()).await?;
        Ok(entry_json(&entry))
    }
}

#[derive(Debug)]
struct AppendFile;

#[async_trait]
impl Tool for AppendFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "append_file",
            "Append text to a file of the workspace (creating it if it does not exist).",
            vec![
                Param::required("path", Kind::Str, "the file, relative to /workspace"),
                Param::required("content", Kind::Str, "the text to add at the end"),
            ],
            "dict",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (path, content) = (args.str("path")?, args.str("content")?);
        let sandboxes = &ctx.services.sandboxes;
        let mut bytes = match sandboxes.read_file(ctx.sandbox, path, MAX_TEXT_BYTES).await {
            Ok(bytes) => bytes,
            Err(cairn_core::sandbox::SandboxError::NoSuchPath(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        bytes.extend_from_slice(content.as_bytes());
        Ok(entry_json(&sandboxes.write_file(ctx.sandbox, path, bytes).await?))
    }
}

#[derive(Debug)]
struct ListFiles;

#[async_trait]
impl Tool for ListFiles {
    fn spec(&self) -> ToolSpec {
        spec(
            "list_files",
            "List a folder of the workspace: each entry's path, kind and size.",
            vec![
                Param::optional("path", Kind::Str, "the folder, relative to /workspace", json!("")),
                Param::optional("recursive", Kind::Bool, "also list every folder below", json!(false)),
            ],
            "list[dict]",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let entries = ctx
            .services
            .sandboxes
            .list_files(ctx.sandbox, args.opt_str("path").unwrap_or(""), args.bool("recursive", false))
            .await?;
        Ok(Value::Array(entries.iter().map(entry_json).collect()))
    }
}

/// Whether `path` matches a glob: `*` any run within a path segment, `**`
/// any number of segments, `?` one character.
pub(crate) fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&pattern[1..], path) || (!path.is_empty() && segments(pattern, &path[1..])),
            (Some(p), Some(s)) => segment(p.as_bytes(), s.as_bytes()) && segments(&pattern[1..], &path[1..]),
            _ => false,
        }
    }
    fn segment(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some(b'*'), _) => segment(&pattern[1..], text) || (!text.is_empty() && segment(pattern, &text[1..])),
            (Some(b'?'), Some(_)) => segment(&pattern[1..], &text[1..]),
            (Some(p), Some(t)) if p == t => segment(&pattern[1..], &text[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments(&pattern, &path)
}

#[derive(Debug)]
struct SearchFiles;

#[async_trait]
impl Tool for SearchFiles {
    fn spec(&self) -> ToolSpec {
        spec(
            "search_files",
            "Find workspace files by name (a glob such as `**/*.csv`) and, with `text`, the lines that \
             contain it.\n\nWithout `text`: the matching files. With `text`: up to 200 matches, each \
             {path, line (1-based), text}.",
            vec![
                Param::optional("pattern", Kind::Str, "a glob over paths relative to /workspace", json!("**/*")),
                Param::optional("text", Kind::Str, "text to look for in the matching files", Value::Null),
                Param::optional("path", Kind::Str, "the folder to search, relative to /workspace", json!("")),
            ],
            "list[dict]",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let pattern = args.opt_str("pattern").unwrap_or("**/*");
        let base = args.opt_str("path").unwrap_or("");
        let entries = ctx.services.sandboxes.list_files(ctx.sandbox, base, true).await?;
        let files: Vec<&WorkspaceEntry> =
            entries.iter().filter(|e| e.kind == EntryKind::File && glob_match(pattern, &e.path)).collect();
        let Some(needle) = args.opt_str("text") else {
            return Ok(Value::Array(files.into_iter().map(entry_json).collect()));
        };
        let mut matches = Vec::new();
        for file in files.into_iter().filter(|f| f.size as usize <= MAX_TEXT_BYTES) {
            let Ok(text) = read_text(ctx, &file.path).await else { continue }; // binary files are skipped
            for (number, line) in text.lines().enumerate().filter(|(_, line)| line.contains(needle)) {
                if matches.len() == MAX_MATCHES {
                    matches.push(json!({ "note": format!("more than {MAX_MATCHES} matches; narrow the search") }));
                    return Ok(Value::Array(matches));
                }
                matches.push(json!({ "path": file.path, "line": number + 1, "text": line }));
            }
        }
        Ok(Value::Array(matches))
    }
}

#[derive(Debug)]
struct EditFile;

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        spec(
            "edit_file",
            "Replace one exact snippet of a workspace file with new text.\n\nThe snippet must occur exactly \
             once: when it is missing or ambiguous nothing changes and the error says how many times it was \
             found (include more surrounding text to make it unique).",
            vec![
                Param::required("path", Kind::Str, "the file, relative to /workspace"),
                Param::required("old", Kind::Str, "the exact text to replace"),
                Param::required("new", Kind::Str, "the text to put in its place"),
            ],
            "dict",
        )
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let (path, old, new) = (args.str("path")?, args.str("old")?, args.str("new")?);
        if old.is_empty() {
            return Err(ToolError::Invalid("`old` must not be empty".into()));
        }
        let text = read_text(ctx, path).await?;
        let found = text.matches(old).count();
        if found != 1 {
            return Err(ToolError::Failed(if found == 0 {
                format!("the snippet was not found in {path}; nothing changed")
            } else {
                format!("the snippet occurs {found} times in {path}; include more context so it is unique")
            }));
        }
        let line = text[..text.find(old).unwrap_or(0)].matches('\n').count() + 1;
        let edited = text.replacen(old, new, 1);
        let entry = ctx.services.sandboxes.write_file(ctx.sandbox, path, edited.into_bytes()).await?;
        Ok(json!({ "path": entry.path, "size": entry.size, "line": line }))
    }
}

#[derive(Debug)]
struct Shell;

/// In the sandbox, the shell runs right there (the kernel is busy running
/// the calling code, so the host could not start a command in it).
const SHELL_IN_SANDBOX: &str = r#"
import subprocess as _subprocess
try:
    _done = _subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, errors="replace", timeout=timeout)
    return {"exit_code": _done.returncode, "stdout": _done.stdout[-262144:], "stderr": _done.stderr[-65536:]}
except _subprocess.TimeoutExpired as _error:
    return {"exit_code": None, "stdout": str(_error.stdout or "")[-262144:], "stderr": f"timed out after {timeout} s"}
"#;

#[async_trait]
impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            python_body: Some(SHELL_IN_SANDBOX),
            timeout: Duration::from_secs(600),
            ..spec(
                "shell",
                "Run a /bin/sh command in the workspace; returns {exit_code, stdout, stderr}.",
                vec![
                    Param::required("command", Kind::Str, "the command line"),
                    Param::optional("timeout", Kind::Int, "seconds before it is stopped", json!(120)),
                ],
                "dict",
            )
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let command = args.str("command")?.to_owned();
        let outcome =
            ctx.services.sandboxes.execute(ctx.sandbox, Execution::Shell { command }, &mut |_: &Output| {}).await?;
        Ok(json!({
            "exit_code": outcome.exit_code,
            "stdout": outcome.stream("stdout"),
            "stderr": outcome.stream("stderr"),
            "limit": outcome.limit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_paths() {
        assert!(glob_match("**/*.csv", "data/2024/sales.csv"));
        assert!(glob_match("**/*.csv", "sales.csv"));
        assert!(glob_match("*.md", "notes.md"));
        assert!(!glob_match("*.md", "docs/notes.md"));
        assert!(glob_match("docs/??.txt", "docs/ab.txt"));
        assert!(!glob_match("docs/??.txt", "docs/abc.txt"));
        assert!(glob_match("**/*", "a/b/c"));
    }
}
