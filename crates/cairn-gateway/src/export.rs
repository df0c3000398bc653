//! Taking data out: a project as one zip archive (owners), streamed while it
//! is made, and a member's own data as one JSON document. Both are audited.
//! The archive's layout is documented in `docs/data-lifecycle.md`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use cairn_agent::RunEvent;
use cairn_auth::Access;
use cairn_core::model::{Message, Project, Role, Thread, User};
use cairn_core::sandbox::Output;
use cairn_core::{ProjectId, ThreadId, UserId};
use cairn_files::ZipPart;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::files::{attachment, safe_stem};
use crate::wire::accounts::UserResponse;
use crate::wire::audit::AuditEntryResponse;
use crate::wire::files::FileResponse;
use crate::wire::keys::ApiKeyResponse;
use crate::wire::memory::MemoryResponse;
use crate::wire::projects::{MemberResponse, ProjectResponse};
use crate::wire::threads::{EventResponse, MessageResponse, RunResponse, ThreadResponse};
use crate::{ApiError, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(export_project))).routes(crate::v1(routes!(export_me)))
}

/// The version of the archive's layout, in `project.json`.
const FORMAT_VERSION: u32 = 1;

/// Why a project's export stopped partway: the archive then ends broken
/// (the client sees the download fail) and the log says why.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error("a part of the archive could not be written: {0}")]
    Format(#[from] serde_json::Error),
    #[error("the download was closed")]
    Closed,
}

impl<T> From<tokio::sync::mpsc::error::SendError<T>> for ExportError {
    fn from(_: tokio::sync::mpsc::error::SendError<T>) -> Self {
        ExportError::Closed
    }
}

fn json_bytes(value: &impl Serialize) -> Result<Bytes, ExportError> {
    Ok(serde_json::to_vec_pretty(value).map(Bytes::from)?)
}

/// The whole project as one zip archive (owners): `project.json` (the
/// project and its members), each thread as `threads/<id>.json` (its
/// messages, runs and every event) and `threads/<id>.md` (readable, with its
/// runs' steps), the library (`library/<path>`, the newest version;
/// `versions/<path>/v<n>`, the older ones; `library.json`, every version's
/// details) and `memory.json` (what was remembered). Written while it is
/// sent.
#[utoipa::path(get, path = "/projects/{project_id}/export", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses(
        (status = 200, description = "The archive", content_type = "application/zip"),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn export_project(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<Response, ApiError> {
    let grant = state.auth.authorize(&principal, project_id, Access::Manage).await?;
    let project = state.store.project(project_id).await?;
    let stem: String = project.name.chars().take(60).collect();
    let name = format!("cairn-{}.zip", safe_stem(&stem));
    crate::audit::record(&state, &principal, Some(project_id), "project.exported", json!({}), &addr).await;
    let (parts, receiver) = tokio::sync::mpsc::channel::<Result<ZipPart, String>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(error) = project_parts(store, project, grant.role, &parts).await {
            tracing::warn!(%error, project = %project_id, "a project export stopped");
            let _ = parts.send(Err(error.to_string())).await;
        }
    });
    let parts = futures::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|part| (part, rx)) });
    let archive = state.files.zip_parts(Box::pin(parts));
    Ok(attachment(Body::from_stream(archive), "application/zip", &name))
}

/// Sends the archive's parts, one at a time (one thread's JSON in memory
/// at most).
async fn project_parts(
    store: std::sync::Arc<dyn cairn_core::store::Store>,
    project: Project,
    role: Role,
    parts: &tokio::sync::mpsc::Sender<Result<ZipPart, String>>,
) -> Result<(), ExportError> {
    let send = |name: String, bytes: Bytes| async move {
        Ok::<_, ExportError>(parts.send(Ok(ZipPart::Bytes { name, bytes })).await?)
    };
    let mut members = Vec::new();
    let mut names = HashMap::new();
    for membership in store.members(project.id).await? {
        let user = store.user(membership.user_id).await?;
        names.insert(user.id, user.display_name.clone());
        members.push(MemberResponse::from((membership, user)));
    }
    let exported_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let head = json!({
        "format": "cairn-project-export",
        "version": FORMAT_VERSION,
        "exported_at": exported_at,
        "project": ProjectResponse::from((project.clone(), role)),
        "members": members,
    });
    send("project.json".into(), json_bytes(&head)?).await?;
    for thread in store.threads(project.id).await? {
        let messages = store.messages(thread.id).await?;
        let runs = store.runs(thread.id).await?;
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = store.events_after(thread.id, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            events.extend(page.into_iter().filter_map(EventResponse::read));
        }
        let markdown = thread_markdown(&thread, &project, &messages, &events, &names);
        let id = thread.id;
        let document = json!({
            "thread": ThreadResponse::from(thread),
            "messages": messages.into_iter().map(MessageResponse::from).collect::<Vec<_>>(),
            "runs": runs.into_iter().map(RunResponse::from).collect::<Vec<_>>(),
            "events": events,
        });
        send(format!("threads/{id}.json"), json_bytes(&document)?).await?;
        send(format!("threads/{id}.md"), Bytes::from(markdown)).await?;
    }
    let mut library = Vec::new();
    for newest in store.files(project.id, "").await? {
        for record in store.file_versions(project.id, &newest.path).await? {
            let name = if record.version == newest.version {
                format!("library/{}", record.path)
            } else {
                format!("versions/{}/v{}", record.path, record.version)
            };
            library.push(json!({ "archive_name": name, "file": FileResponse::from(record.clone()) }));
            parts.send(Ok(ZipPart::File { name, record })).await?;
        }
    }
    send("library.json".into(), json_bytes(&library)?).await?;
    let notes: Vec<MemoryResponse> =
        store.memory_notes(project.id).await?.into_iter().map(|c| MemoryResponse::from((c, None))).collect();
    send("memory.json".into(), json_bytes(&notes)?).await
}

/// A thread as a person reads it: its messages, then each run's steps
/// (the code it ran, what that printed, the files it saved).
fn thread_markdown(
    thread: &Thread,
    project: &Project,
    messages: &[Message],
    events: &[EventResponse],
    names: &HashMap<UserId, String>,
) -> String {
    let mut md = format!("# {}\n\nA thread of the project {}.\n\n", thread.title, project.name);
    for message in messages {
        let who = match (message.role.as_str(), message.author) {
            ("user", Some(author)) => names.get(&author).cloned().unwrap_or_else(|| "A former member".into()),
            ("user", None) => "Someone".into(),
            _ => "Cairn".into(),
        };
        let at = message.created_at.format(&Rfc3339).unwrap_or_default();
        md.push_str(&format!("## {who} · {at}\n\n{}\n\n", message.content));
    }
    let mut current = None;
    for event in events {
        let Some(run) = event.run_id else { continue };
        let step = match &event.event {
            RunEvent::Code(block) => format!("```python\n{}\n```\n\n", block.code),
            RunEvent::Output(produced) => match &produced.output {
                Output::Stream { text, .. } => format!("```text\n{}\n```\n\n", text.trim_end()),
                Output::Error { ename, evalue, .. } => format!("**{ename}**: {evalue}\n\n"),
                Output::Display { .. } | Output::Result { .. } => "_(a rich output: see the JSON)_\n\n".into(),
            },
            RunEvent::Artifact(saved) => format!("Saved `{}` to the library.\n\n", saved.path),
            RunEvent::Status(changed) => format!("_The run is {}._\n\n", changed.status.as_str()),
            _ => continue,
        };
        if current != Some(run) {
            md.push_str(&format!("## Run {run}\n\n"));
            current = Some(run);
        }
        md.push_str(&step);
    }
    md
}

#[derive(Debug, Serialize)]
struct MyMessage {
    project_id: ProjectId,
    thread_id: ThreadId,
    thread_title: String,
    message: MessageResponse,
}

/// Everything Cairn keeps about the caller, as one JSON document: the
/// account, memberships, the messages they wrote in the projects they
/// belong to, their API keys (never the secrets) and what they did (the
/// audit entries naming them as the actor).
#[utoipa::path(get, path = "/me/export", tag = "account", security(("oauth2" = [])),
    responses((status = 200, description = "The caller's data", content_type = "application/json"))
)]
async fn export_me(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    principal.require_session().map_err(ApiError::from)?;
    let user: &User = &principal.user;
    let mut memberships = Vec::new();
    let mut messages = Vec::new();
    for (project, role) in state.store.projects_for_user(user.id).await? {
        for thread in state.store.threads(project.id).await? {
            for message in state.store.messages(thread.id).await? {
                if message.author == Some(user.id) {
                    let message = MessageResponse::from(message);
                    let thread_title = thread.title.clone();
                    messages.push(MyMessage { project_id: project.id, thread_id: thread.id, thread_title, message });
                }
            }
        }
        memberships.push(ProjectResponse::from((project, role)));
    }
    let keys: Vec<ApiKeyResponse> = state.store.api_keys_of(user.id).await?.into_iter().map(Into::into).collect();
    let mut audit = Vec::new();
    let mut filter = cairn_core::model::AuditFilter { actor: Some(user.id), ..Default::default() };
    loop {
        let page = state.store.audit_log(&filter, 500).await?;
        let full = page.len() == 500;
        filter.before = page.last().map(|e| e.id);
        audit.extend(page.into_iter().map(AuditEntryResponse::from));
        if !full {
            break;
        }
    }
    crate::audit::record(&state, &principal, None, "account.exported", json!({ "user": user.id }), &addr).await;
    let document: Value = json!({
        "format": "cairn-personal-export",
        "version": FORMAT_VERSION,
        "exported_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "account": UserResponse::from(user),
        "projects": memberships,
        "messages": messages,
        "api_keys": keys,
        "audit": audit,
    });
    let bytes = serde_json::to_vec_pretty(&document).map_err(|_| ApiError::Internal)?;
    Ok(attachment(Body::from(bytes), "application/json", "cairn-my-data.json"))
}
