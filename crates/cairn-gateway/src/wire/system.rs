//! The wire types of the version endpoint.

use serde::Serialize;

use crate::ServerRole;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionResponse {
    /// Always `cairn`.
    pub name: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The role this process serves.
    pub role: ServerRole,
}
