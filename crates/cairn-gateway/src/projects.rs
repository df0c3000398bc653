//! Projects and their members. Every handler here reaches project data only
//! through `Auth`, which checks membership first (`Auth::authorize`): a
//! non-member gets 404, a member with too weak a role 403.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cairn_auth::MemberRef;
use cairn_core::model::{ProjectUpdate, Role};
use cairn_core::{ProjectId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::projects::{
    AddMemberRequest, ChangeMemberRequest, CreateProjectRequest, ProjectModelRequest, UpdateProjectRequest,
};
use crate::wire::projects::{MemberResponse, ProjectResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(create_project, list_projects)))
        .routes(crate::v1(routes!(get_project, update_project, crate::lifecycle::delete_project)))
        .routes(crate::v1(routes!(set_project_model)))
        .routes(crate::v1(routes!(list_members, add_member)))
        .routes(crate::v1(routes!(change_member, remove_member)))
}

/// Create a project; the caller becomes its owner.
#[utoipa::path(post, path = "/projects", tag = "projects", security(("oauth2" = [])),
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "The new project", body = ProjectResponse),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_project(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, ApiJson<ProjectResponse>), ApiError> {
    let project = state.auth.create_project(&principal, &body.name, &addr).await?;
    Ok((StatusCode::CREATED, ApiJson(ProjectResponse::from((project, Role::Owner)))))
}

/// The projects the caller belongs to.
#[utoipa::path(get, path = "/projects", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    responses((status = 200, description = "The caller's projects, with the caller's role", body = [ProjectResponse]))
)]
async fn list_projects(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<Vec<ProjectResponse>>, ApiError> {
    let projects = state.auth.projects(&principal).await?;
    Ok(ApiJson(projects.into_iter().map(ProjectResponse::from).collect()))
}

/// One project.
#[utoipa::path(get, path = "/projects/{project_id}", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses(
        (status = 200, description = "The project", body = ProjectResponse),
        (status = 404, description = "No such project, or not a member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn get_project(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<ApiJson<ProjectResponse>, ApiError> {
    Ok(ApiJson(state.auth.project(&principal, project_id).await?.into()))
}

/// Sets the model the project's runs use by default (owners). A thread's
/// own model, or a run's, still wins.
#[utoipa::path(put, path = "/projects/{project_id}/model", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = ProjectModelRequest,
    responses(
        (status = 200, description = "The project", body = ProjectResponse),
        (status = 422, description = "`unknown_model`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_project_model(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(request): ApiJson<ProjectModelRequest>,
) -> Result<ApiJson<ProjectResponse>, ApiError> {
    state.auth.authorize(&principal, project_id, cairn_auth::Access::Manage).await?;
    crate::threads::check_model(&state, request.model.as_deref())?;
    let update = ProjectUpdate { model: Some(request.model), ..ProjectUpdate::default() };
    Ok(ApiJson(state.auth.update_project(&principal, project_id, update, &addr).await?.into()))
}

/// Changes the project's settings (owners): its name, default model,
/// budget, retention and packages. Fields left out stay as they are.
#[utoipa::path(patch, path = "/projects/{project_id}", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)), request_body = UpdateProjectRequest,
    responses(
        (status = 200, description = "The project", body = ProjectResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`, `unknown_model` or `packages_unavailable`", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn update_project(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(request): ApiJson<UpdateProjectRequest>,
) -> Result<ApiJson<ProjectResponse>, ApiError> {
    state.auth.authorize(&principal, project_id, cairn_auth::Access::Manage).await?;
    if let Some(model) = &request.model {
        crate::threads::check_model(&state, model.as_deref())?;
    }
    if request.packages == Some(true) && state.config.sandbox.package_index.is_empty() {
        return Err(ApiError::Invalid {
            code: "packages_unavailable",
            detail:
                "this deployment has no package index (sandbox.package_index), so sandboxes cannot install packages"
                    .into(),
        });
    }
    let update = ProjectUpdate {
        name: request.name,
        model: request.model,
        budget_usd: request.budget_usd,
        retention_days: request.retention_days,
        packages: request.packages,
        requirements: request.requirements,
    };
    Ok(ApiJson(state.auth.update_project(&principal, project_id, update, &addr).await?.into()))
}

/// The project's members.
#[utoipa::path(get, path = "/projects/{project_id}/members", tag = "projects",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    responses(
        (status = 200, description = "Members and their roles", body = [MemberResponse]),
        (status = 404, description = "No such project, or not a member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn list_members(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
) -> Result<ApiJson<Vec<MemberResponse>>, ApiError> {
    let members = state.auth.members(&principal, project_id).await?;
    Ok(ApiJson(members.into_iter().map(MemberResponse::from).collect()))
}

/// Add a member by e-mail, or change the role of one (owners only).
#[utoipa::path(post, path = "/projects/{project_id}/members", tag = "projects", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path)),
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "The membership", body = MemberResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not a member", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "No account with that e-mail", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn add_member(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, ApiJson<MemberResponse>), ApiError> {
    let target = MemberRef::Email(&body.email);
    // A new member's webhook deliveries are queued with the membership.
    let member = state.auth.set_member(&principal, project_id, target, body.role, &addr).await?;
    cairn_core::hooks::Hooks::queued(&state.webhooks);
    Ok((StatusCode::CREATED, ApiJson(member.into())))
}

/// Change a member's role (owners only). A project always keeps an owner.
#[utoipa::path(patch, path = "/projects/{project_id}/members/{user_id}", tag = "projects", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path), ("user_id" = UserId, Path)),
    request_body = ChangeMemberRequest,
    responses(
        (status = 200, description = "The membership", body = MemberResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project, or not a member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn change_member(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project_id, user_id)): Path<(ProjectId, UserId)>,
    ApiJson(body): ApiJson<ChangeMemberRequest>,
) -> Result<ApiJson<MemberResponse>, ApiError> {
    let member = state.auth.set_member(&principal, project_id, MemberRef::User(user_id), body.role, &addr).await?;
    Ok(ApiJson(member.into()))
}

/// Remove a member (owners), or leave the project (anyone).
#[utoipa::path(delete, path = "/projects/{project_id}/members/{user_id}", tag = "projects", security(("oauth2" = [])),
    params(("project_id" = ProjectId, Path), ("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project or member", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn remove_member(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project_id, user_id)): Path<(ProjectId, UserId)>,
) -> Result<StatusCode, ApiError> {
    state.auth.remove_member(&principal, project_id, user_id, &addr).await?;
    Ok(StatusCode::NO_CONTENT)
}
