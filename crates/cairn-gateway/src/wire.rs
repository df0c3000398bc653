//! Response bodies of the account, project, key and admin APIs, converted
//! explicitly from domain types.

use cairn_core::model::{ApiKey, AuditEntry, Membership, Project, Role, User};
use cairn_core::{ApiKeyId, AuditId, ProjectId, UserId};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// A global role: admins manage users and read the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GlobalRole {
    Admin,
    Member,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: GlobalRole,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        UserResponse {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: if user.is_admin { GlobalRole::Admin } else { GlobalRole::Member },
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

/// RFC 6749 §5.1 access token response, plus the refresh token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; trade it at `/auth/refresh` for new tokens. Works once.
    /// Absent when the client asked for the cookie flow (`Cairn-Session:
    /// cookie`): the token is then in the HttpOnly `cairn_refresh` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl From<cairn_auth::Session> for TokenResponse {
    fn from(session: cairn_auth::Session) -> Self {
        TokenResponse {
            access_token: session.access_token,
            token_type: "Bearer",
            expires_in: session.expires_in,
            refresh_token: Some(session.refresh_token),
        }
    }
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub role: Role,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
        ApiKeyResponse {
            id: key.id,
            project_id: key.project_id,
            role: key.role,
            name: key.name,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKeyResponse {
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The key to send as `Authorization: Bearer …`. Shown only now: Cairn
    /// keeps only its hash.
    pub token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryResponse {
    pub id: AuditId,
    pub actor: Option<UserId>,
    pub project_id: Option<ProjectId>,
    /// A dotted verb such as `auth.sign_in_failed` or `member.added`.
    pub action: String,
    /// What it was done to, as `kind:id` (`thread:…`, `user:…`); `null` when
    /// it is the project itself, or nothing in particular.
    pub target: Option<String>,
    pub outcome: cairn_core::model::AuditOutcome,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub client_addr: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> Self {
        AuditEntryResponse {
            id: entry.id,
            actor: entry.actor,
            project_id: entry.project_id,
            action: entry.action,
            target: entry.target,
            outcome: entry.outcome,
            detail: entry.detail,
            client_addr: entry.client_addr,
            created_at: entry.created_at,
        }
    }
}
