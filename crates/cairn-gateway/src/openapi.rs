//! The OpenAPI 3.1 document and Swagger UI, both served from the binary.

use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn API",
        description = "The versioned REST API of Cairn, a self-hostable AI agent platform. \
                       Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "system", description = "Facts about the server"),
        (name = "probes", description = "Liveness and readiness"),
    ),
    components(schemas(crate::Problem))
)]
struct ApiDoc;

pub(crate) fn base() -> Document {
    ApiDoc::openapi()
}

/// The document as the server publishes it (also used to check the
/// committed copy for drift).
pub fn openapi_document() -> Document {
    crate::api_routes().into_openapi()
}

pub(crate) fn docs(document: Document) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", document))
}
