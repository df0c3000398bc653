//! Service accounts: accounts that belong to a project rather than a
//! person, for integrations. Each is a member of its one project (an editor
//! or a viewer) that cannot sign in; its keys act as it, so what they do is
//! recorded under its name and keeps working when the person who set it up
//! leaves. The project's owners make, list and delete them and their keys.

use cairn_core::model::{ApiKey, Role, User};
use cairn_core::{ApiKeyId, ProjectId, UserId};
use serde_json::json;
use time::OffsetDateTime;

use super::{Auth, IssuedKey, bounded};
use crate::access::{Access, Principal};
use crate::{Error, Result};

/// A service account, its role in its project and its keys (revoked ones
/// included, newest first).
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub user: User,
    pub role: Role,
    pub keys: Vec<ApiKey>,
}

impl Auth {
    /// Makes a service account of the project (owners, signed in as
    /// themselves).
    pub async fn create_service_account(
        &self,
        principal: &Principal,
        project: ProjectId,
        name: &str,
        role: Role,
        addr: &str,
    ) -> Result<ServiceAccount> {
        principal.require_session()?;
        self.authorize(principal, project, Access::Manage).await?;
        if role == Role::Owner {
            return Err(Error::InvalidInput("a service account is an editor or a viewer, not an owner".into()));
        }
        let name = bounded("name", name, 100)?;
        let user = self.store().create_service_account(project, name.clone(), role, principal.user.id).await?;
        let detail = json!({ "account": user.id, "name": name, "role": role });
        self.audit(Some(principal.user.id), Some(project), "service_account.created", detail, addr).await;
        Ok(ServiceAccount { user, role, keys: Vec::new() })
    }

    /// The project's service accounts (owners), oldest first; deleted ones
    /// are left out.
    pub async fn service_accounts(&self, principal: &Principal, project: ProjectId) -> Result<Vec<ServiceAccount>> {
        self.authorize(principal, project, Access::Manage).await?;
        let members = self.store().members(project).await?;
        let mut accounts = Vec::new();
        for id in self.store().service_accounts(project).await? {
            let Some(role) = members.iter().find(|m| m.user_id == id).map(|m| m.role) else { continue };
            let user = self.store().user(id).await?;
            let keys = self.store().api_keys_of(id).await?;
            accounts.push(ServiceAccount { user, role, keys });
        }
        Ok(accounts)
    }

    /// The project's service account `account` and its role, if it is one
    /// that was not deleted.
    async fn service_account_of(&self, project: ProjectId, account: UserId) -> Result<(User, Role)> {
        let missing = || Error::Backend(cairn_core::Error::NotFound { entity: "service account" });
        if !self.store().service_accounts(project).await?.contains(&account) {
            return Err(missing());
        }
        let role = self.store().member_role(project, account).await?.ok_or_else(missing)?;
        Ok((self.store().user(account).await?, role))
    }

    /// Makes a key for a service account, with its role (owners). The
    /// answer holds the secret, shown this once.
    pub async fn create_service_key(
        &self,
        principal: &Principal,
        project: ProjectId,
        account: UserId,
        name: &str,
        expires_at: Option<OffsetDateTime>,
        addr: &str,
    ) -> Result<IssuedKey> {
        principal.require_session()?;
        self.authorize(principal, project, Access::Manage).await?;
        let (_, role) = self.service_account_of(project, account).await?;
        let issued = self.issue_key(account, project, role, name, expires_at).await?;
        let detail = json!({
            "key": issued.key.id,
            "role": role,
            "service_account": account,
            "expires_at": expires_at.map(|t| t.unix_timestamp()),
        });
        self.audit(Some(principal.user.id), Some(project), "api_key.created", detail, addr).await;
        Ok(issued)
    }

    /// Revokes a service account's key (owners); it stops working at once.
    pub async fn revoke_service_key(
        &self,
        principal: &Principal,
        project: ProjectId,
        account: UserId,
        key: ApiKeyId,
        addr: &str,
    ) -> Result<ApiKey> {
        principal.require_session()?;
        self.authorize(principal, project, Access::Manage).await?;
        self.service_account_of(project, account).await?;
        let revoked = self.store().revoke_api_key(key, account).await?;
        let detail = json!({ "key": key, "service_account": account });
        self.audit(Some(principal.user.id), Some(project), "api_key.revoked", detail, addr).await;
        Ok(revoked)
    }

    /// Deletes a service account (owners): it leaves the project and is
    /// disabled, so its keys stop working at once; its name stays in the
    /// audit log.
    pub async fn delete_service_account(
        &self,
        principal: &Principal,
        project: ProjectId,
        account: UserId,
        addr: &str,
    ) -> Result<()> {
        principal.require_session()?;
        self.authorize(principal, project, Access::Manage).await?;
        let (user, _) = self.service_account_of(project, account).await?;
        self.store().set_disabled(account, true).await?;
        self.user_changed(account).await;
        self.store().remove_member(project, account).await?;
        let detail = json!({ "account": account, "name": user.display_name });
        self.audit(Some(principal.user.id), Some(project), "service_account.deleted", detail, addr).await;
        Ok(())
    }
}
