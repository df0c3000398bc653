//! Deleting threads, projects and accounts: who may, what happens to an
//! account's projects, and the audit entries. The store hides a deleted
//! thread or project at once; a background worker removes it
//! (`cairn_agent::deletions`).

use std::collections::HashMap;

use cairn_core::lifecycle::{Deletion, DeletionKind, SoleOwned};
use cairn_core::model::{Role, User};
use cairn_core::{DeletionId, ProjectId, ThreadId, UserId};
use serde_json::json;

use super::Auth;
use crate::access::{Access, Credential, Principal};
use crate::{Error, Result, password};

/// What deleting an account did.
#[derive(Debug, Clone)]
pub struct AccountDeleted {
    pub user: User,
    /// Deletions of the projects it owned alone and that were to go.
    pub deletions: Vec<Deletion>,
    /// Projects handed over, and to whom.
    pub handed_over: Vec<(ProjectId, UserId)>,
}

impl Auth {
    /// Deletes a thread of a project (owners): hidden at once, removed in
    /// the background.
    pub async fn delete_thread(&self, principal: &Principal, thread: ThreadId, addr: &str) -> Result<Deletion> {
        let found = self.store().thread(thread).await?;
        let project = found.project_id;
        // A thread of a project the caller is not in does not exist for them.
        match self.authorize(principal, project, Access::Manage).await {
            Err(Error::Backend(cairn_core::Error::NotFound { .. })) => {
                return Err(cairn_core::Error::NotFound { entity: "thread" }.into());
            }
            other => other?,
        };
        let deletion = self.store().request_deletion(DeletionKind::Thread, thread.0, principal.user.id).await?;
        let detail = json!({ "thread": thread, "title": found.title, "deletion": deletion.id });
        self.audit_as(principal, Some(project), "thread.deleted", detail, addr).await;
        Ok(deletion)
    }

    /// Deletes a project (owners, signed in as themselves): hidden at once,
    /// removed with everything in it in the background.
    pub async fn delete_project(&self, principal: &Principal, project: ProjectId, addr: &str) -> Result<Deletion> {
        principal.require_session()?;
        self.authorize(principal, project, Access::Manage).await?;
        let name = self.store().project(project).await?.name;
        let deletion = self.store().request_deletion(DeletionKind::Project, project.0, principal.user.id).await?;
        let detail = json!({ "name": name, "deletion": deletion.id });
        self.audit(Some(principal.user.id), Some(project), "project.deleted", detail, addr).await;
        Ok(deletion)
    }

    /// A deletion's progress, for whoever asked for it (or an administrator).
    pub async fn deletion(&self, principal: &Principal, id: DeletionId) -> Result<Deletion> {
        let deletion = self.store().deletion(id).await?;
        if deletion.requested_by != principal.user.id && !principal.user.is_admin {
            return Err(cairn_core::Error::NotFound { entity: "deletion" }.into());
        }
        Ok(deletion)
    }

    /// Deletes an account: the person's own (signed in, with their
    /// password), or anyone's by an administrator. Each project the account
    /// owns alone must be named in `sole_owned`, to be deleted or handed
    /// over to one of its members; otherwise nothing happens and the error
    /// names them. Its sessions and keys end at once.
    pub async fn delete_account(
        &self,
        principal: &Principal,
        target: UserId,
        password_given: Option<&str>,
        sole_owned: &HashMap<ProjectId, SoleOwned>,
        addr: &str,
    ) -> Result<AccountDeleted> {
        principal.require_session()?;
        if target == principal.user.id {
            let given = password_given.unwrap_or_default().to_owned();
            if !password::verify(given, Some(principal.user.password_hash.clone())).await? {
                return Err(Error::Forbidden("the password is wrong"));
            }
        } else {
            principal.require_admin()?;
        }
        let user = self.store().user(target).await?;
        if user.is_admin && !self.another_admin(target).await? {
            return Err(Error::InvalidInput(
                "this is the deployment's only administrator; make someone else an administrator first".into(),
            ));
        }
        // Decide every sole-owned project before changing anything.
        let mut plan = Vec::new();
        let mut undecided = Vec::new();
        for (project, role) in self.store().projects_for_user(target).await? {
            if role != Role::Owner {
                continue;
            }
            let members = self.store().members(project.id).await?;
            if members.iter().any(|m| m.role == Role::Owner && m.user_id != target) {
                continue;
            }
            match sole_owned.get(&project.id) {
                None => undecided.push(format!("{} ({})", project.name, project.id)),
                Some(SoleOwned::HandOver(to)) if *to == target || !members.iter().any(|m| m.user_id == *to) => {
                    return Err(Error::InvalidInput(format!(
                        "{to} is not another member of the project {}; hand it over to one of its members",
                        project.id
                    )));
                }
                Some(choice) => plan.push((project.id, *choice)),
            }
        }
        if !undecided.is_empty() {
            return Err(Error::SoleOwner(format!(
                "the account is the only owner of {}; say for each whether it is deleted or handed over",
                undecided.join(", ")
            )));
        }
        let (mut deletions, mut handed_over) = (Vec::new(), Vec::new());
        for (project, choice) in plan {
            match choice {
                SoleOwned::Delete => {
                    let deletion =
                        self.store().request_deletion(DeletionKind::Project, project.0, principal.user.id).await?;
                    let detail = json!({ "deletion": deletion.id, "with_account": target });
                    self.audit(Some(principal.user.id), Some(project), "project.deleted", detail, addr).await;
                    deletions.push(deletion);
                }
                SoleOwned::HandOver(to) => {
                    self.store().set_member(project, to, Role::Owner).await?;
                    let detail = json!({ "user": to, "role": Role::Owner, "from_account": target });
                    self.audit(Some(principal.user.id), Some(project), "project.handed_over", detail, addr).await;
                    handed_over.push((project, to));
                }
            }
        }
        let user = self.store().delete_account(target).await?;
        self.user_changed(target).await;
        let detail =
            json!({ "user": target, "projects_deleted": deletions.len(), "projects_handed_over": handed_over.len() });
        self.audit(Some(principal.user.id), None, "user.deleted", detail, addr).await;
        Ok(AccountDeleted { user, deletions, handed_over })
    }

    /// Whether an enabled administrator other than `user` exists.
    async fn another_admin(&self, user: UserId) -> Result<bool> {
        let mut after = None;
        loop {
            let page = self.store().users(after, 500).await?;
            if page.iter().any(|u| u.is_admin && !u.disabled && u.id != user) {
                return Ok(true);
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.id),
                _ => return Ok(false),
            }
        }
    }

    /// Records an action by a person or a key (whose id joins the detail).
    /// A failure to write is logged, never the caller's error.
    pub async fn audit_as(
        &self,
        principal: &Principal,
        project: Option<ProjectId>,
        action: &str,
        mut detail: serde_json::Value,
        addr: &str,
    ) {
        if let (Credential::ApiKey { key, .. }, Some(map)) = (&principal.credential, detail.as_object_mut()) {
            map.insert("key".to_owned(), serde_json::Value::String(key.to_string()));
        }
        self.audit(Some(principal.user.id), project, action, detail, addr).await;
    }
}
