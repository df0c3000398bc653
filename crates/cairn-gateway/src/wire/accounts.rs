//! The wire types of accounts: registration, sign-in and tokens, passwords,
//! and the user as the API shows it.

use cairn_core::UserId;
use cairn_core::model::User;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    /// 8 to 256 characters, not a common password.
    pub password: String,
    pub display_name: String,
}

/// RFC 6749 §5.2 error body of the token endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorResponse {
    /// `invalid_grant`, `invalid_request`, `unsupported_grant_type` or `temporarily_unavailable`.
    pub error: &'static str,
    pub error_description: String,
}

/// The OAuth2 token request, form-encoded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// `password`, or `refresh_token` to trade a refresh token.
    pub grant_type: String,
    /// The e-mail address (password grant).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Refresh-token grant.
    pub refresh_token: Option<String>,
}

/// `Cairn-Session: cookie` asks for the browser flow: the refresh token in
/// an HttpOnly, SameSite=Strict cookie scoped to `/api/v1/auth`, never in
/// the body. Accepted only from the web app's own origin.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documents the header for OpenAPI; `wants_cookie` reads it
pub struct SessionHeader {
    #[param(rename = "Cairn-Session", required = false, value_type = Option<String>, example = "cookie")]
    #[serde(rename = "cairn-session")]
    pub cairn_session: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token; omit it to use the `cairn_refresh` cookie (the
    /// web app, from its own origin only).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedResponse {
    /// Always `accepted`.
    pub status: &'static str,
    pub detail: &'static str,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordRequest {
    /// The token from the recovery link.
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

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
