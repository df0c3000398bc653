//! Per-member budgets: a monthly spending limit on models for one member,
//! in a project (its owners set it) or across projects (administrators),
//! and what each member spent, month by month. A member over a limit
//! cannot start runs (`member_budget_spent`), and their running runs stop
//! before the next model call.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use cairn_auth::Access;
use cairn_core::lifecycle::month_start;
use cairn_core::{ProjectId, UserId};
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::budgets::{BudgetRequest, MemberSpending, MonthSpending, SpendingQuery};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(set_member_budget)))
        .routes(crate::v1(routes!(set_user_budget)))
        .routes(crate::v1(routes!(project_spending)))
}

fn checked(request: &BudgetRequest) -> Result<Option<f64>, ApiError> {
    match request.monthly_usd {
        Some(usd) if !(usd.is_finite() && (0.0..=1_000_000_000.0).contains(&usd)) => Err(ApiError::Invalid {
            code: "invalid_input",
            detail: "`monthly_usd` must be a number of dollars from 0 to 1000000000, or null".into(),
        }),
        other => Ok(other),
    }
}

/// Sets a member's monthly budget in the project (owners).
#[utoipa::path(put, path = "/projects/{project_id}/members/{user_id}/budget", tag = "projects",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("user_id" = UserId, Path)), request_body = BudgetRequest,
    responses(
        (status = 204, description = "Set"),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_member_budget(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project_id, user_id)): Path<(ProjectId, UserId)>,
    ApiJson(request): ApiJson<BudgetRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Manage).await?;
    let monthly_usd = checked(&request)?;
    if state.store.member_role(project_id, user_id).await?.is_none() {
        return Err(ApiError::NotFound { entity: "member" });
    }
    state.store.set_member_budget(Some(project_id), user_id, monthly_usd, principal.user.id).await?;
    let detail = json!({ "user": user_id, "monthly_usd": monthly_usd });
    crate::audit::record(&state, &principal, Some(project_id), "member.budget_changed", detail, &addr).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Sets an account's monthly budget across every project (administrators).
#[utoipa::path(put, path = "/admin/users/{user_id}/budget", tag = "admin", security(("oauth2" = [])),
    params(("user_id" = UserId, Path)), request_body = BudgetRequest,
    responses(
        (status = 204, description = "Set"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_user_budget(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(user_id): Path<UserId>,
    ApiJson(request): ApiJson<BudgetRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require_admin().map_err(ApiError::from)?;
    let monthly_usd = checked(&request)?;
    state.store.user(user_id).await?;
    state.store.set_member_budget(None, user_id, monthly_usd, principal.user.id).await?;
    let detail = json!({ "user": user_id, "monthly_usd": monthly_usd });
    crate::audit::record(&state, &principal, None, "user.budget_changed", detail, &addr).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// What each member spent in the project, month by month, beside their
/// budgets (owners). Members who left but spent are listed too.
#[utoipa::path(get, path = "/projects/{project_id}/spending", tag = "projects", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), SpendingQuery),
    responses(
        (status = 200, description = "Members' spending", body = [MemberSpending]),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn project_spending(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<SpendingQuery>,
) -> Result<ApiJson<Vec<MemberSpending>>, ApiError> {
    state.auth.authorize(&principal, project_id, Access::Manage).await?;
    let months = i32::from(query.months.unwrap_or(6).clamp(1, 24));
    let this_month = month_start(OffsetDateTime::now_utc());
    let mut since = this_month;
    for _ in 1..months {
        since = month_start(since - time::Duration::days(1));
    }
    let mut by_member: BTreeMap<UserId, Vec<(OffsetDateTime, f64)>> = BTreeMap::new();
    for membership in state.store.members(project_id).await? {
        by_member.entry(membership.user_id).or_default();
    }
    for (user, month, cost) in state.store.project_spending(project_id, since).await? {
        by_member.entry(user).or_default().push((month, cost));
    }
    let budgets = state.store.project_member_budgets(project_id).await?;
    let mut answer = Vec::with_capacity(by_member.len());
    for (user_id, spent) in by_member {
        let user = state.store.user(user_id).await?;
        let across = state.store.member_budgets(user_id).await?.into_iter().find(|b| b.project_id.is_none());
        answer.push(MemberSpending {
            user_id,
            display_name: user.display_name,
            monthly_usd: budgets.iter().find(|b| b.user_id == user_id).map(|b| b.monthly_usd),
            across_projects_usd: across.map(|b| b.monthly_usd),
            this_month_usd: spent.iter().filter(|(m, _)| *m == this_month).map(|(_, c)| c).sum(),
            months: spent
                .into_iter()
                .map(|(month, cost_usd)| MonthSpending {
                    month: format!("{:04}-{:02}", month.year(), u8::from(month.month())),
                    cost_usd,
                })
                .collect(),
        });
    }
    Ok(ApiJson(answer))
}
