//! The rows most tests start from, written through the `Store` trait: a
//! user, and a user who owns a project with one thread in it.

use cairn_core::model::{NewProject, NewThread, NewUser, Project, Thread, User};
use cairn_core::store::Store;

/// What `owner_with_thread` made: the user, the project they own and the
/// thread in it.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub user: User,
    pub project: Project,
    pub thread: Thread,
}

/// A registration for `email`: not an admin, the display name the part
/// before the `@`, and a password hash no password matches (these users
/// never log in; tests act as them directly).
pub fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        display_name: email.split('@').next().unwrap_or(email).to_owned(),
        password_hash: "$argon2id$placeholder".to_owned(),
        is_admin: false,
    }
}

/// Creates the user `new_user(email)` describes. Panics if the store
/// refuses, e.g. when the e-mail is taken.
pub async fn user(store: &dyn Store, email: &str) -> User {
    store.create_user(new_user(email)).await.unwrap_or_else(|e| panic!("cannot create user {email}: {e}"))
}

/// Creates a user, a project "P" they own and a thread "T" in it (with no
/// model of its own). Panics if the store refuses any of them.
pub async fn owner_with_thread(store: &dyn Store, email: &str) -> Seeded {
    let user = user(store, email).await;
    let project = store
        .create_project(NewProject { name: "P".to_owned(), owner: user.id })
        .await
        .unwrap_or_else(|e| panic!("cannot create a project for {email}: {e}"));
    let thread = store
        .create_thread(NewThread { project_id: project.id, title: "T".to_owned(), created_by: user.id, model: None })
        .await
        .unwrap_or_else(|e| panic!("cannot create a thread for {email}: {e}"));
    Seeded { user, project, thread }
}
