//! The wire types of projects and their members.

use cairn_core::model::{Membership, Project, Role, User};
use cairn_core::{ProjectId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateProjectRequest {
    /// 1 to 200 characters.
    pub name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectModelRequest {
    /// `provider/model` (see `GET /models`); `null` for the deployment's default.
    pub model: Option<String>,
}

/// Deserializes a field that is present, `null` included, as `Some`: with
/// `#[serde(default)]`, an absent field stays `None` (left as it is).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    /// 1 to 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// `provider/model` (see `GET /models`); `null` for the deployment's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    /// The most the project's agent runs may spend on models in all (US
    /// dollars, 0 to 10^9); `null` for no project limit. Once spent, new runs
    /// are refused (`budget_spent`) and running ones stop before their next
    /// model call.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub budget_usd: Option<Option<f64>>,
    /// Days finished runs keep their step details (code, outputs,
    /// observations), 0 to 36500 (0: for ever); `null`: the deployment's
    /// setting. Answers, messages and files are never removed.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub retention_days: Option<Option<i32>>,
    /// Let the project's sandboxes install Python packages (`pip install`)
    /// from the deployment's package index, and reach nothing else; what
    /// they install is kept for the project's next sandboxes. Refused with
    /// `packages_unavailable` when the deployment has no index.
    #[serde(default)]
    pub packages: Option<bool>,
    /// The `requirements.txt` the project's package environment starts from
    /// (installed once, before the first sandbox that needs it): package
    /// names with extras, versions and markers only, no options, URLs or
    /// paths; at most 200 lines.
    #[serde(default)]
    pub requirements: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AddMemberRequest {
    /// The e-mail of an existing account.
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangeMemberRequest {
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectResponse {
    pub id: ProjectId,
    pub name: String,
    /// The caller's role in the project.
    pub role: Role,
    pub created_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The model its threads' runs use by default (`provider/model`); `null`:
    /// the deployment's default.
    pub model: Option<String>,
    /// The most the project's agent runs may spend on models in all (US
    /// dollars); `null`: no project limit.
    pub budget_usd: Option<f64>,
    /// Days finished runs keep their step details (code, outputs); `null`:
    /// the deployment's setting; 0: for ever. Answers, messages and files
    /// are never removed by retention.
    pub retention_days: Option<i32>,
    /// The project's sandboxes may install Python packages from the
    /// deployment's package index (and reach nothing else).
    pub packages: bool,
    /// The `requirements.txt` the project's package environment starts from.
    pub requirements: String,
}

impl From<(Project, Role)> for ProjectResponse {
    fn from((project, role): (Project, Role)) -> Self {
        ProjectResponse {
            id: project.id,
            name: project.name,
            role,
            created_by: project.created_by,
            created_at: project.created_at,
            model: project.model,
            budget_usd: project.budget_usd,
            retention_days: project.retention_days,
            packages: project.packages,
            requirements: project.requirements,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberResponse {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: OffsetDateTime,
}

impl From<(Membership, User)> for MemberResponse {
    fn from((membership, user): (Membership, User)) -> Self {
        MemberResponse {
            user_id: user.id,
            email: user.email,
            display_name: user.display_name,
            role: membership.role,
            added_at: membership.created_at,
        }
    }
}
