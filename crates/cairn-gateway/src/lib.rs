//! Cairn's API gateway: the HTTP face of every component. It routes the
//! versioned REST API under `/api/v1`, publishes its OpenAPI 3.1 document and
//! Swagger UI, answers health, readiness and metrics probes, and serves the
//! embedded web app.
//!
//! Architecture invariant: only this crate knows HTTP and JSON wire shapes.
//! Handlers extract, call a component through its trait, and convert; every
//! error leaves as RFC 9457 problem+json with a stable `code`.

mod accounts;
mod admin;
mod audit;
mod authn;
mod budgets;
mod connections;
mod error;
mod export;
mod files;
mod health;
mod keys;
mod lifecycle;
mod mcp;
mod mcp_servers;
mod memory;
mod metrics;
mod middleware;
mod models;
mod openai;
mod openapi;
mod presence;
mod projects;
mod sandbox_host;
mod schedules;
mod security;
mod server;
mod service_accounts;
mod system;
mod threads;
mod tools;
mod web;
mod webhooks;
mod wire;

use std::sync::Arc;

use axum::Router;
use cairn_config::Config;
use cairn_core::bus::Bus;
use cairn_core::store::Store;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;

pub use authn::{Authenticated, ClientAddr};
pub use connections::{Connections, ConnectionsError};
pub use error::{ApiError, ApiJson, Problem};
pub use openapi::openapi_document;
pub use sandbox_host::{sandbox_host_admin_app, sandbox_host_app, sandbox_host_openapi_document};
pub use server::serve;

/// Installs the process's metrics recorder. A process calls it first, so
/// nothing it does before its HTTP application is built (a worker's first
/// run) goes uncounted; building the application installs it too.
pub fn install_metrics() {
    metrics::install();
}

/// The process role the gateway reports (`cairn serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServerRole {
    /// Every component in one process.
    All,
    /// The API, the web app and the event streams; queues runs, works none.
    Gateway,
    /// Works runs from the queue; serves only probes and metrics.
    Worker,
}

impl ServerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::All => "all",
            ServerRole::Gateway => "gateway",
            ServerRole::Worker => "worker",
        }
    }
}

/// What every handler can reach, behind one shared pointer: axum clones the
/// state for every extractor and middleware of every request, so a clone is
/// one reference count, not one per service (profiled: cloning and dropping
/// the services field by field took a fifth of an authenticated request).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl AppState {
    /// The parts, to change before serving (copied if already shared).
    pub fn parts_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// The services behind [`AppState`].
#[derive(Debug, Clone)]
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub bus: Bus,
    pub auth: cairn_auth::Auth,
    pub files: cairn_files::Files,
    pub role: ServerRole,
    /// Every tool, for the listing.
    pub registry: std::sync::Arc<cairn_tools::Registry>,
    /// Running tools for API callers; `None` where sandboxes are unavailable.
    pub tools: Option<cairn_tools::ToolRunner>,
    /// The configured language models.
    pub models: std::sync::Arc<cairn_llm::Models>,
    /// Agent runs; `None` where the agent cannot run (no sandboxes).
    pub runs: Option<cairn_agent::Runs>,
    /// Project memory (off, with a clear error, without an embedding model).
    pub memory: cairn_memory::Memory,
    /// Model connections made in the app (they rebuild `models`).
    pub connections: Connections,
    /// Project webhooks: endpoints, secrets, deliveries; also where
    /// handlers tell project events (a member added).
    pub webhooks: cairn_webhooks::Webhooks,
    /// Who is in which thread, as this process's streams see it.
    pub presence: Arc<presence::Presence>,
    /// Raised when the server begins to shut down: event streams end then,
    /// so clients reconnect (to another gateway) with `Last-Event-ID`
    /// instead of holding the shutdown up.
    pub stopping: Stopping,
}

/// A signal, raised once, that the server is shutting down.
#[derive(Debug, Clone)]
pub struct Stopping(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Stopping {
    fn default() -> Self {
        Stopping(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Stopping {
    /// Raises the signal.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the signal is raised.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.subscribe();
        async move {
            let _ = receiver.wait_for(|stopping| *stopping).await;
        }
    }
}

/// Routes of the `/api/v1` API at their full paths. Each API module
/// registers its handlers through this instead of the API being nested
/// under the prefix: a nested route strips the prefix from every request's
/// URI and is boxed once more, which cost every API request about a tenth
/// of its own work. The document's paths are the same either way.
pub(crate) fn v1(
    (schemas, mut paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    paths.paths = paths.paths.into_iter().map(|(path, item)| (format!("/api/v1{path}"), item)).collect();
    (schemas, paths, method_router)
}

/// The API routes, as documented in the OpenAPI document.
fn api_routes() -> OpenApiRouter<AppState> {
    let v1 = system::routes()
        .merge(accounts::routes())
        .merge(projects::routes())
        .merge(keys::routes())
        .merge(service_accounts::routes())
        .merge(webhooks::routes())
        .merge(schedules::routes())
        .merge(mcp_servers::routes())
        .merge(files::routes())
        .merge(tools::routes())
        .merge(models::routes())
        .merge(memory::routes())
        .merge(threads::routes())
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(lifecycle::routes())
        .merge(export::routes())
        .merge(budgets::routes())
        .merge(connections::routes());
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::routes())
        .merge(openai::routes())
        .merge(mcp::routes())
        .merge(v1)
}

/// The whole application: API, docs, probes, metrics and the web app, with
/// the middleware every request passes through.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The application with `extra` routes merged in, behind the same
/// middleware. Tests use it to exercise the stack (body limits, JSON errors,
/// shutdown) on handlers of their own.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let (api, mut document) = api_routes().split_for_parts();
    openapi::finish(&mut document);
    let router = api
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authn::authenticate))
        .merge(openapi::docs(document))
        .merge(metrics::routes())
        .fallback(web::serve)
        .method_not_allowed_fallback(error::method_not_allowed);
    // Outermost: errors under /v1 leave in OpenAI's shape, whoever made them.
    middleware::wrap(router, &state.config).layer(axum::middleware::from_fn(openai::openai_errors)).with_state(state)
}

/// The admin listener (`server.admin_bind`): `/metrics`, `/healthz` and
/// `/readyz` without credentials, for the deployment's own monitoring.
pub fn admin_app(state: AppState) -> Router {
    middleware::wrap(metrics::admin_routes().fallback(error::route_not_found), &state.config).with_state(state)
}

/// Serves an admin application (metrics and probes) on `listener` in the
/// background, for as long as the process lives.
pub fn serve_admin(listener: TcpListener, app: Router) {
    tokio::spawn(async move {
        if let Err(error) = serve(listener, app, std::future::pending()).await {
            tracing::error!(%error, "the admin listener stopped");
        }
    });
}
