//! The wire types of service accounts and their keys.

use cairn_core::UserId;
use cairn_core::model::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::wire::keys::ApiKeyResponse;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    /// What it is for, e.g. `CI pipeline` (1 to 100 characters).
    pub name: String,
    /// `editor` or `viewer`.
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceAccountResponse {
    /// Its user id: the actor of what its keys do, in the audit log.
    pub id: UserId,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Its keys, newest first, revoked ones included (without secrets).
    pub keys: Vec<ApiKeyResponse>,
}

impl From<cairn_auth::ServiceAccount> for ServiceAccountResponse {
    fn from(account: cairn_auth::ServiceAccount) -> Self {
        ServiceAccountResponse {
            id: account.user.id,
            name: account.user.display_name,
            role: account.role,
            created_at: account.user.created_at,
            keys: account.keys.into_iter().map(ApiKeyResponse::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceKeyRequest {
    /// What the key is for (1 to 100 characters).
    pub name: String,
    /// When the key stops working (RFC 3339); never if absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}
