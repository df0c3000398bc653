//! Cairn's authentication service: accounts and passwords, access and
//! refresh tokens, password recovery, API keys, project access (RBAC), the
//! audit trail of all of it, and the throttles that slow down guessing.
//!
//! Architecture invariant: every decision about who may do what is made
//! here, in one place: [`Auth::authorize`] for anything inside a project,
//! [`Principal::require_admin`] for administration. The gateway only carries
//! credentials in and answers out; it never inspects roles itself.

mod access;
mod error;
mod keyring;
mod keys;
pub mod mail;
mod password;
mod service;
mod throttle;
mod tickets;
mod tokens;
mod users;

pub use access::{Access, Credential, Principal, ProjectGrant};
pub use error::{Error, Result};
pub use keyring::KeyRing;
pub use keys::{SigningKeys, write_private};
pub use password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
pub use service::{AccountDeleted, Auth, IssuedKey, MemberRef, ServiceAccount, Session};
pub use throttle::{Limit, RateLimitStatus};
pub use tokens::{AccessClaims, link_digest, link_secret};
