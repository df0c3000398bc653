//! The audit log: entries the gateway writes itself (the authentication
//! service writes its own) — who did it (a person, or a key, whose owner may
//! be a project's service account), from where, to what, with what outcome —
//! and reading it: filtered, for administrators (all of it, and as a CSV or
//! JSON export) and for a project's owners (their project's entries). No
//! route changes or removes an entry.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use bytes::Bytes;
use cairn_auth::Principal;
use cairn_core::ProjectId;
use cairn_core::model::{AuditEntry, AuditFilter};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::audit::AuditEntryResponse;
use crate::wire::audit::{AuditQuery, ExportFormat, ExportQuery};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(audit_log)))
        .routes(crate::v1(routes!(export_audit)))
        .routes(crate::v1(routes!(project_audit)))
}

/// Records `action` by `principal`; a key's id joins the detail. A failure
/// to write is logged, never the caller's error.
pub(crate) async fn record(
    state: &AppState,
    principal: &Principal,
    project: Option<ProjectId>,
    action: &str,
    detail: Value,
    addr: &str,
) {
    state.auth.audit_as(principal, project, action, detail, addr).await;
}

/// The audit log, newest first, filtered (administrators).
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("oauth2" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = [AuditEntryResponse]),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn audit_log(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<ApiJson<Vec<AuditEntryResponse>>, ApiError> {
    let entries = state.auth.audit_log(&principal, &query.filter(), query.limit.unwrap_or(100)).await?;
    Ok(ApiJson(entries.into_iter().map(AuditEntryResponse::from).collect()))
}

/// The project's audit log, newest first, filtered (owners).
#[utoipa::path(get, path = "/projects/{project_id}/audit", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), AuditQuery),
    responses(
        (status = 200, description = "A page of the project's entries", body = [AuditEntryResponse]),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn project_audit(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<AuditQuery>,
) -> Result<ApiJson<Vec<AuditEntryResponse>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    let entries = state.auth.project_audit_log(&principal, project_id, &query.filter(), limit).await?;
    Ok(ApiJson(entries.into_iter().map(AuditEntryResponse::from).collect()))
}

/// Every entry the filter lets through, newest first, as a CSV or JSON
/// download written while it is sent (administrators). The export is
/// itself audited.
#[utoipa::path(get, path = "/admin/audit/export", tag = "admin", security(("oauth2" = [])), params(ExportQuery, AuditQuery),
    responses(
        (status = 200, description = "The entries: CSV, or with `format=json` a JSON array",
         content((String = "text/csv"), (Vec<AuditEntryResponse> = "application/json"))),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn export_audit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Query(export): Query<ExportQuery>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    // The first page, read as the caller: refused here if not an administrator.
    let filter = query.filter();
    let first = state.auth.audit_log(&principal, &filter, PAGE).await?;
    let detail = json!({ "format": match export.format { ExportFormat::Csv => "csv", ExportFormat::Json => "json" },
        "action": query.action, "actor": query.actor, "project": query.project_id });
    record(&state, &principal, None, "audit.exported", detail, &addr).await;
    let format = export.format;
    let start = Export { store: state.store.clone(), filter, format, next: Some(first), started: false, done: false };
    let pages = futures::stream::unfold(start, Export::step);
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "cairn-audit.csv"),
        ExportFormat::Json => ("application/json", "cairn-audit.json"),
    };
    Ok(crate::files::attachment(Body::from_stream(pages), content_type, name))
}

const PAGE: i64 = 500;

/// An export under way: pages of entries read one after the other, each
/// written out as it comes.
struct Export {
    store: std::sync::Arc<dyn cairn_core::store::Store>,
    filter: AuditFilter,
    format: ExportFormat,
    /// A page read already (the first, read as the caller).
    next: Option<Vec<AuditEntry>>,
    /// Whether anything was written (the header, the array's opening).
    started: bool,
    done: bool,
}

impl Export {
    async fn step(mut self) -> Option<(std::io::Result<Bytes>, Export)> {
        if self.done {
            return None;
        }
        let page = match self.next.take() {
            Some(page) => page,
            None => match self.store.audit_log(&self.filter, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "an audit export stopped: the store failed");
                    self.done = true;
                    return Some((Err(std::io::Error::other(error.to_string())), self));
                }
            },
        };
        if page.is_empty() {
            self.done = true;
            let end: &'static [u8] = match (self.format, self.started) {
                (ExportFormat::Csv, false) => CSV_HEADER.as_bytes(),
                (ExportFormat::Csv, true) => return None,
                (ExportFormat::Json, false) => b"[]\n",
                (ExportFormat::Json, true) => b"\n]\n",
            };
            return Some((Ok(Bytes::from_static(end)), self));
        }
        self.filter.before = page.last().map(|e| e.id);
        let chunk = match self.format {
            ExportFormat::Csv => csv_page(&page, !self.started),
            ExportFormat::Json => json_page(page, !self.started),
        };
        self.started = true;
        Some((Ok(chunk), self))
    }
}
const CSV_HEADER: &str = "id,created_at,actor,project_id,action,target,outcome,client_addr,detail\n";

/// A CSV field: quoted when it must be, and never read as a formula by a
/// spreadsheet (text from members lands here).
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

fn csv_page(page: &[AuditEntry], first: bool) -> Bytes {
    let mut out = String::new();
    if first {
        out.push_str(CSV_HEADER);
    }
    for e in page {
        let created = e.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let fields = [
            e.id.to_string(),
            created,
            e.actor.map(|a| a.to_string()).unwrap_or_default(),
            e.project_id.map(|p| p.to_string()).unwrap_or_default(),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.outcome.as_str().to_owned(),
            e.client_addr.clone().unwrap_or_default(),
            e.detail.to_string(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    Bytes::from(out)
}

fn json_page(page: Vec<AuditEntry>, first: bool) -> Bytes {
    let mut out = Vec::new();
    for (i, entry) in page.into_iter().enumerate() {
        out.extend_from_slice(if first && i == 0 { b"[\n" } else { b",\n" });
        let _ = serde_json::to_writer(&mut out, &AuditEntryResponse::from(entry));
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn a_csv_field_is_quoted_when_it_must_be_and_never_a_formula() {
        assert_eq!(csv_field("run.started"), "run.started");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nthen"), "\"say \"\"hi\"\"\nthen\"");
        assert_eq!(csv_field("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
    }
}
