//! Who is calling, and what they may do inside a project.

use std::sync::Arc;

use cairn_core::model::{Role, User};
use cairn_core::{ApiKeyId, ProjectId, SessionId};

use crate::{Error, Result};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// An access token from a sign-in.
    Session(SessionId),
    /// A project-scoped API key: it reaches only `project`, with at most `role`.
    ApiKey { key: ApiKeyId, project: ProjectId, role: Role },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The person (for an API key, its owner), as loaded for this request;
    /// shared with the account cache, so passing a caller on copies nothing.
    pub user: Arc<User>,
    pub credential: Credential,
}

impl Principal {
    /// Administration is for admins signed in as themselves, never for API keys.
    pub fn require_admin(&self) -> Result<()> {
        match (&self.credential, self.user.is_admin) {
            (Credential::Session(_), true) => Ok(()),
            (Credential::Session(_), false) => Err(Error::Forbidden("this needs an administrator")),
            (Credential::ApiKey { .. }, _) => Err(Error::Forbidden("API keys cannot administer Cairn")),
        }
    }

    /// Account matters (password, keys, projects) need the person, not a key.
    pub fn require_session(&self) -> Result<SessionId> {
        match &self.credential {
            Credential::Session(session) => Ok(*session),
            Credential::ApiKey { .. } => Err(Error::Forbidden("API keys cannot do this; sign in as a person")),
        }
    }
}

/// What a caller wants to do inside a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See project data: every member.
    Read,
    /// Change project data, run the agent: editors and owners.
    Write,
    /// Manage members and the project itself: owners.
    Manage,
}

impl Access {
    pub(crate) fn allowed_for(self, role: Role) -> bool {
        match self {
            Access::Read => true,
            Access::Write => role.can_write(),
            Access::Manage => role.can_manage(),
        }
    }
}

/// Proof that the caller may act in a project, with the role they act with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectGrant {
    pub project_id: ProjectId,
    pub role: Role,
}

/// The weaker of two roles: an API key never does more than its owner.
pub(crate) fn weaker(a: Role, b: Role) -> Role {
    fn rank(role: Role) -> u8 {
        match role {
            Role::Viewer => 0,
            Role::Editor => 1,
            Role::Owner => 2,
        }
    }
    if rank(a) <= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_the_role() {
        let table = [
            (Access::Read, [true, true, true]),
            (Access::Write, [true, true, false]),
            (Access::Manage, [true, false, false]),
        ];
        for (access, expected) in table {
            let got = [Role::Owner, Role::Editor, Role::Viewer].map(|r| access.allowed_for(r));
            assert_eq!(got, expected, "{access:?}");
        }
        assert_eq!(weaker(Role::Owner, Role::Viewer), Role::Viewer);
        assert_eq!(weaker(Role::Editor, Role::Owner), Role::Editor);
    }
}
