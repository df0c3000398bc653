//! Reading the audit log: the whole of it for administrators, a project's
//! entries for its owners. Nothing changes or removes an entry.

use cairn_core::ProjectId;
use cairn_core::model::{AuditEntry, AuditFilter};

use super::Auth;
use crate::Result;
use crate::access::{Access, Principal};

impl Auth {
    /// Entries the filter lets through, newest first (administrators).
    pub async fn audit_log(&self, principal: &Principal, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        principal.require_admin()?;
        Ok(self.store().audit_log(filter, limit.clamp(1, 500)).await?)
    }

    /// The project's entries the filter lets through (owners).
    pub async fn project_audit_log(
        &self,
        principal: &Principal,
        project: ProjectId,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        self.authorize(principal, project, Access::Manage).await?;
        let filter = AuditFilter { project: Some(project), ..filter.clone() };
        Ok(self.store().audit_log(&filter, limit.clamp(1, 500)).await?)
    }
}
