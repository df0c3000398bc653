//! The OpenAPI 3.1 document and Swagger UI, both served from the binary.

use axum::Router;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn API",
        description = "The versioned REST API of Cairn, a self-hostable AI agent platform. \
                       Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "auth", description = "Sign-up, sign-in, sessions and password recovery"),
        (name = "account", description = "The caller's own account"),
        (name = "projects", description = "Projects and their members"),
        (name = "api keys", description = "Project-scoped keys for integrations"),
        (name = "files", description = "The project library: uploads, versions, links, zip downloads"),
        (name = "tools", description = "The tools the agent calls, and calling them directly"),
        (name = "models", description = "The language models this deployment is configured with"),
        (name = "threads", description = "Threads, messages, agent runs and live events"),
        (name = "memory", description = "A project's long-term memory: remember, and search by meaning"),
        (name = "admin", description = "Users and the audit log (administrators)"),
        (name = "system", description = "Facts about the server"),
        (name = "probes", description = "Liveness and readiness"),
    ),
    components(schemas(crate::Problem, crate::presence::PresenceSignal)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// `oauth2`: the password flow against `/api/v1/auth/token` (Swagger UI's
/// "Authorize" button); `api_key`: a bearer API key (or access token).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let password = Password::new("/api/v1/auth/token", Scopes::new());
        components.add_security_scheme("oauth2", SecurityScheme::OAuth2(OAuth2::new([Flow::Password(password)])));
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A project-scoped API key (`cairn_k_…`), sent as `Authorization: Bearer <key>`"))
            .build();
        components.add_security_scheme("api_key", SecurityScheme::Http(bearer));
    }
}

pub(crate) fn base() -> Document {
    ApiDoc::openapi()
}

/// The document as the server publishes it (also used to check the
/// committed copy for drift).
pub fn openapi_document() -> Document {
    crate::api_routes().into_openapi()
}

pub(crate) fn docs<S: Clone + Send + Sync + 'static>(document: Document) -> Router<S> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", document))
}
