//! A project's long-term memory over HTTP: remember a text, search by
//! meaning (the agent's `remember` and `recall` tools use the same service).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cairn_auth::Access;
use cairn_core::ProjectId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::Authenticated;
use crate::wire::memory::{MemoryResponse, RememberRequest, SearchQuery};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(crate::v1(routes!(remember))).routes(crate::v1(routes!(search)))
}

/// Remembers a text for the project (editors and owners).
#[utoipa::path(post, path = "/projects/{project_id}/memory", tag = "memory", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = RememberRequest,
    responses(
        (status = 201, description = "The chunks kept", body = [MemoryResponse]),
        (status = 503, description = "`memory_unavailable`: no embedding model, or no pgvector", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn remember(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(request): ApiJson<RememberRequest>,
) -> Result<(StatusCode, ApiJson<Vec<MemoryResponse>>), ApiError> {
    state.auth.authorize(&principal, project_id, Access::Write).await?;
    let kept = state.memory.remember(project_id, Some(principal.user.id), "note", &request.text).await?;
    Ok((StatusCode::CREATED, ApiJson(kept.into_iter().map(|c| (c, None).into()).collect())))
}

/// The project's memories most similar in meaning to `q`, best first (members).
#[utoipa::path(get, path = "/projects/{project_id}/memory/search", tag = "memory", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), SearchQuery),
    responses(
        (status = 200, description = "The closest memories, with their similarity", body = [MemoryResponse]),
        (status = 503, description = "`memory_unavailable`: no embedding model, or no pgvector", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn search(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<SearchQuery>,
) -> Result<ApiJson<Vec<MemoryResponse>>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Read).await?;
    let found = state.memory.recall(project_id, &query.q, query.limit.unwrap_or(10)).await?;
    Ok(ApiJson(found.into_iter().map(|(c, s)| (c, Some(s)).into()).collect()))
}
