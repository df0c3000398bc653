//! What the agent's runs used: model calls, tokens and cost, for a project
//! (by user) and for the caller (by project). The store adds them up from
//! the threads' logs.

use axum::extract::{Path, Query, State};
use cairn_auth::Access;
use cairn_core::ProjectId;
use cairn_core::model::ModelUsage;

use crate::authn::Authenticated;
use crate::wire::threads::{DailyUsage, DaysQuery, MyUsage, ProjectTotals, ProjectUsage, UserUsage};
use crate::{ApiError, ApiJson, AppState};

/// What the project's agent runs used day by day, by member and model, over
/// the last days (the usage page's chart).
#[utoipa::path(get, path = "/projects/{project_id}/usage/daily", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), DaysQuery),
    responses((status = 200, description = "One line a day, member and model that had model calls, oldest first",
        body = Vec<DailyUsage>))
)]
pub(super) async fn daily_usage(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<DaysQuery>,
) -> Result<ApiJson<Vec<DailyUsage>>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Read).await?;
    let days = query.days.unwrap_or(30).clamp(1, 366);
    let today = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let since = today - time::Duration::days(days - 1);
    let lines = state.store.usage_by_day(project_id, since).await?;
    Ok(ApiJson(lines.into_iter().map(|(day, user, model, totals)| DailyUsage { day, user, model, totals }).collect()))
}

/// What the project's agent runs used: model calls, tokens and cost, in
/// total and per user.
#[utoipa::path(get, path = "/projects/{project_id}/usage", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The project's usage", body = ProjectUsage))
)]
pub(super) async fn project_usage(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<ApiJson<ProjectUsage>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Read).await?;
    let by_user = state.store.usage_by_user(project_id).await?;
    let total = by_user.iter().map(|(_, usage)| *usage).sum::<ModelUsage>();
    let by_user = by_user.into_iter().map(|(user, usage)| UserUsage { user, totals: usage }).collect();
    Ok(ApiJson(ProjectUsage { project_id, total, by_user }))
}

/// What the caller's agent runs used, in total and per project.
#[utoipa::path(get, path = "/me/usage", tag = "threads", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's usage", body = MyUsage))
)]
pub(super) async fn my_usage(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<MyUsage>, ApiError> {
    let me = principal.user.id;
    let by_project = state.store.usage_by_project(me).await?;
    let total = by_project.iter().map(|(_, usage)| *usage).sum::<ModelUsage>();
    let by_project =
        by_project.into_iter().map(|(project_id, usage)| ProjectTotals { project_id, totals: usage }).collect();
    Ok(ApiJson(MyUsage { user: me, total, by_project }))
}
