//! A project's scheduled runs (owners): a cron expression in a time zone
//! that posts a message as one of the project's service accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_agent::schedules::When;
use cairn_auth::{Access, Principal};
use cairn_core::model::Role;
use cairn_core::schedule::{NewSchedule, Schedule, ScheduleUpdate};
use cairn_core::{ProjectId, ScheduleId};
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::schedules::{CreateScheduleRequest, ScheduleResponse, UpdateScheduleRequest};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_schedule, list_schedules)))
        .routes(crate::v1(routes!(update_schedule, delete_schedule)))
}

fn invalid(detail: String) -> ApiError {
    ApiError::Invalid { code: "invalid_schedule", detail }
}

fn when(cron: &str, zone: &str) -> Result<When, ApiError> {
    When::parse(cron.trim(), zone.trim()).map_err(invalid)
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(invalid(format!("`{field}` has 1 to {max} characters")));
    }
    Ok(value.to_owned())
}

/// The project's schedule `id`, for an owner of it.
async fn schedule_for(
    state: &AppState,
    principal: &Principal,
    project: ProjectId,
    id: ScheduleId,
) -> Result<Schedule, ApiError> {
    state.auth.authorize(principal, project, Access::Manage).await?;
    let schedule = state.store.schedule(id).await?;
    if schedule.project_id != project {
        return Err(ApiError::NotFound { entity: "schedule" });
    }
    Ok(schedule)
}

/// Schedules a run (owners): at each tick, the message is posted as the
/// service account, to the thread or a new one.
#[utoipa::path(post, path = "/projects/{project_id}/schedules", tag = "schedules", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = CreateScheduleRequest,
    responses(
        (status = 201, description = "The schedule, with its next ticks", body = ScheduleResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_schedule`: the expression, the zone, the service account or the thread",
         body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_schedule(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
    ApiJson(body): ApiJson<CreateScheduleRequest>,
) -> Result<(StatusCode, ApiJson<ScheduleResponse>), ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    let name = bounded("name", &body.name, 100)?;
    let message = bounded("message", &body.message, 100_000)?;
    let when = when(&body.cron, &body.timezone)?;
    let account = body.service_account_id;
    let role = state.store.member_role(project, account).await?;
    if !state.store.service_accounts(project).await?.contains(&account) || role.is_none_or(|r| r == Role::Viewer) {
        return Err(invalid("`service_account_id` must name an editor service account of this project".into()));
    }
    if let Some(thread) = body.thread_id
        && state.store.thread(thread).await.map(|t| t.project_id != project).unwrap_or(true)
    {
        return Err(invalid("`thread_id` must name a thread of this project".into()));
    }
    let next_run_at = when.next_after(OffsetDateTime::now_utc()).map_err(invalid)?;
    let new = NewSchedule {
        project_id: project,
        name,
        cron: body.cron.trim().to_owned(),
        timezone: body.timezone.trim().to_owned(),
        message,
        thread_id: body.thread_id,
        run_as: account,
        missed: body.missed,
        next_run_at,
        created_by: principal.user.id,
    };
    let schedule = state.store.create_schedule(new).await?;
    let detail =
        json!({ "schedule": schedule.id, "cron": schedule.cron, "timezone": schedule.timezone, "run_as": account });
    crate::audit::record(&state, &principal, Some(project), "schedule.created", detail, &addr).await;
    Ok((StatusCode::CREATED, ApiJson(schedule.into())))
}

/// The project's schedules with their next ticks (owners).
#[utoipa::path(get, path = "/projects/{project_id}/schedules", tag = "schedules", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses((status = 200, description = "The schedules, oldest first", body = [ScheduleResponse]))
)]
async fn list_schedules(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project): Path<ProjectId>,
) -> Result<ApiJson<Vec<ScheduleResponse>>, ApiError> {
    state.auth.authorize(&principal, project, Access::Manage).await?;
    Ok(ApiJson(state.store.schedules(project).await?.into_iter().map(ScheduleResponse::from).collect()))
}

/// Changes a schedule, or pauses and resumes it (owners).
#[utoipa::path(patch, path = "/projects/{project_id}/schedules/{schedule_id}", tag = "schedules",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("schedule_id" = ScheduleId, Path)), request_body = UpdateScheduleRequest,
    responses((status = 200, description = "The schedule", body = ScheduleResponse),
        (status = 422, description = "`invalid_schedule`", body = Problem, content_type = "application/problem+json"))
)]
async fn update_schedule(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, ScheduleId)>,
    ApiJson(body): ApiJson<UpdateScheduleRequest>,
) -> Result<ApiJson<ScheduleResponse>, ApiError> {
    let current = schedule_for(&state, &principal, project, id).await?;
    let cron = body.cron.as_deref().map(str::trim).unwrap_or(&current.cron).to_owned();
    let zone = body.timezone.as_deref().map(str::trim).unwrap_or(&current.timezone).to_owned();
    let when = when(&cron, &zone)?;
    let name = body.name.as_deref().map(|n| bounded("name", n, 100)).transpose()?;
    let message = body.message.as_deref().map(|m| bounded("message", m, 100_000)).transpose()?;
    // A new expression or zone, or a resume, goes on from the next tick to come.
    let timing_changed = body.cron.is_some() || body.timezone.is_some() || body.paused == Some(false);
    let next_run_at =
        if timing_changed { Some(when.next_after(OffsetDateTime::now_utc()).map_err(invalid)?) } else { None };
    let update = ScheduleUpdate {
        name,
        cron: body.cron.map(|_| cron),
        timezone: body.timezone.map(|_| zone),
        message,
        missed: body.missed,
        paused: body.paused,
        next_run_at,
    };
    let schedule = state.store.update_schedule(id, update).await?;
    let detail =
        json!({ "schedule": id, "cron": schedule.cron, "timezone": schedule.timezone, "paused": schedule.paused });
    crate::audit::record(&state, &principal, Some(project), "schedule.updated", detail, &addr).await;
    Ok(ApiJson(schedule.into()))
}

/// Deletes a schedule (owners); runs it started stay.
#[utoipa::path(delete, path = "/projects/{project_id}/schedules/{schedule_id}", tag = "schedules",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("schedule_id" = ScheduleId, Path)),
    responses((status = 204, description = "Deleted"))
)]
async fn delete_schedule(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project, id)): Path<(ProjectId, ScheduleId)>,
) -> Result<StatusCode, ApiError> {
    schedule_for(&state, &principal, project, id).await?;
    state.store.delete_schedule(id).await?;
    crate::audit::record(&state, &principal, Some(project), "schedule.deleted", json!({ "schedule": id }), &addr).await;
    Ok(StatusCode::NO_CONTENT)
}
