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
        (name = "api keys", description = "Project-scoped keys for integrations, and service accounts"),
        (name = "mcp", description = "Cairn as an MCP server (streamable HTTP, JSON answers): a project's tools for other agents"),
        (name = "schedules", description = "Runs a project schedules with cron expressions, posted as a service account"),
        (name = "webhooks", description = "Project events POSTed to endpoints, signed the Standard Webhooks way"),
        (name = "files", description = "The project library: uploads, versions, links, zip downloads"),
        (name = "tools", description = "The tools the agent calls, and calling them directly"),
        (name = "models", description = "The language models this deployment is configured with"),
        (name = "threads", description = "Threads, messages, agent runs and live events"),
        (name = "memory", description = "A project's long-term memory: remember, and search by meaning"),
        (name = "admin", description = "Users and the audit log (administrators)"),
        (name = "system", description = "Facts about the server"),
        (name = "probes", description = "Liveness and readiness"),
        (name = "openai", description = "OpenAI-compatible chat completions: Cairn's agents as models, for \
                                         OpenAI's SDKs and chat clients (a project's API key; errors in OpenAI's shape)"),
    ),
    components(schemas(crate::Problem, crate::wire::presence::PresenceSnapshot, crate::openai::OpenAiErrorResponse)),
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
    let mut document = crate::api_routes().into_openapi();
    finish(&mut document);
    document
}

/// What is added to the routes' document before it is published.
pub(crate) fn finish(document: &mut Document) {
    document_common_errors(document);
    plain_unions(document);
}

/// Unions written so that client generators read them: an object that is
/// `allOf` a union and more fields (a serde-flattened enum) becomes a union
/// of objects, each variant with the fields added; and each variant of a
/// union told apart by a one-value tag is titled after its tag, so the
/// generated models are named for what they are. The document means the
/// same; only its form changes.
fn plain_unions(document: &mut Document) {
    let Some(components) = document.components.as_mut() else { return };
    let Ok(serde_json::Value::Object(mut schemas)) = serde_json::to_value(&components.schemas) else { return };
    let names: Vec<String> = schemas.keys().cloned().collect();
    let mut changed = Vec::new();
    for name in &names {
        let Some(union) = flattened_union(&schemas, name) else { continue };
        schemas.insert(name.clone(), union);
        changed.push(name.clone());
    }
    for name in &names {
        if let Some(variants) = schemas.get_mut(name).and_then(|s| s.get_mut("oneOf")).and_then(|v| v.as_array_mut()) {
            let mut titled = false;
            for variant in variants {
                titled |= title_by_tag(name, variant);
            }
            if titled && !changed.contains(name) {
                changed.push(name.clone());
            }
        }
    }
    for name in changed {
        match serde_json::from_value(schemas[&name].clone()) {
            Ok(plain) => {
                components.schemas.insert(name, plain);
            }
            Err(error) => tracing::error!(%error, %name, "a union could not be written plainly"),
        }
    }
}

/// `allOf: [{$ref: U}, {type: object, …}]` where `U` is a `oneOf` of
/// objects: that `oneOf`, each variant with the object's fields.
fn flattened_union(schemas: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<serde_json::Value> {
    use serde_json::Value;
    let parts = schemas.get(name)?.get("allOf")?.as_array()?;
    let [first, extra] = parts.as_slice() else { return None };
    let union = first.get("$ref")?.as_str()?.strip_prefix("#/components/schemas/")?;
    let variants = schemas.get(union)?.get("oneOf")?.as_array()?;
    if extra.get("type")?.as_str()? != "object"
        || variants.iter().any(|v| v.get("type").and_then(Value::as_str) != Some("object"))
    {
        return None;
    }
    let merged: Vec<Value> = variants
        .iter()
        .map(|variant| {
            let mut variant = variant.clone();
            for key in ["properties", "required"] {
                let Some(added) = extra.get(key) else { continue };
                match (variant.get_mut(key), added) {
                    (Some(Value::Object(mine)), Value::Object(more)) => {
                        mine.extend(more.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    (Some(Value::Array(mine)), Value::Array(more)) => mine.extend(more.iter().cloned()),
                    (None, more) => {
                        variant[key] = more.clone();
                    }
                    _ => {}
                }
            }
            variant
        })
        .collect();
    let mut plain = serde_json::json!({ "oneOf": merged });
    if let Some(description) = schemas.get(name)?.get("description") {
        plain["description"] = description.clone();
    }
    Some(plain)
}

/// Titles a union's variant `<Union><Tag>` when one of its string fields
/// holds a single value (`"kind": {"enum": ["run.status"]}` → `RunEventRunStatus`).
fn title_by_tag(union: &str, variant: &mut serde_json::Value) -> bool {
    if variant.get("title").is_some() {
        return false;
    }
    let Some(properties) = variant.get("properties").and_then(|p| p.as_object()) else { return false };
    let tag = properties.values().find_map(|p| match p.get("enum").and_then(|e| e.as_array()) {
        Some(values) if values.len() == 1 => values[0].as_str().map(str::to_owned),
        _ => None,
    });
    let Some(tag) = tag else { return false };
    let pascal: String = tag
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
        .collect();
    variant["title"] = serde_json::Value::String(format!("{union}{pascal}"));
    true
}

/// The problems any operation may answer, whatever it does: the middleware,
/// the extractors and the backends answer them before or around the handler.
/// Each is added where an operation does not document the status already;
/// where it does with another body (OAuth2's error shape), the problem body
/// is added beside it, since either may come.
pub(crate) fn document_common_errors(document: &mut Document) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const COMMON: [(&str, &str, bool); 10] = [
        ("400", "`malformed_json`, `bad_request`: the body or a parameter cannot be read", false),
        ("401", "`unauthenticated`, `invalid_token`: no valid credentials (see `WWW-Authenticate`)", true),
        ("403", "`forbidden`: the caller may not do this", true),
        ("404", "`not_found`: no such thing, or not the caller's to see", false),
        ("405", "`method_not_allowed`", false),
        ("413", "`payload_too_large`: the body is over the limit", false),
        ("415", "`unsupported_media_type`: the body's content type is not the one documented", false),
        ("422", "`invalid_input` and the operation's own validation codes", false),
        ("429", "`rate_limited`: too many requests (see `Retry-After` and `RateLimit-*`)", false),
        ("503", "`dependency_unavailable`, `storage_unavailable`: a backend is down; retry later", false),
    ];
    for (path, item) in document.paths.paths.iter_mut() {
        // Under /v1 errors are OpenAI's shape (see `openai::openai_errors`).
        let openai = crate::openai::is_openai_path(path);
        let api = path.starts_with("/api/v1/") || openai || path == "/mcp";
        let (content_type, schema) =
            if openai { ("application/json", "OpenAiErrorResponse") } else { (crate::error::PROBLEM_JSON, "Problem") };
        let problem = || ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let has_body = operation.request_body.is_some();
            for (status, description, needs_api) in COMMON {
                if (needs_api && !api) || (!has_body && matches!(status, "413" | "415")) {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                match responses.get_mut(status) {
                    Some(utoipa::openapi::RefOr::T(response)) => {
                        if !response.content.contains_key(content_type) {
                            response.content.insert(content_type.to_owned(), problem().into());
                        }
                    }
                    Some(utoipa::openapi::RefOr::Ref(_)) => {}
                    None => {
                        let response = ResponseBuilder::new().description(description).content(content_type, problem());
                        responses.insert(status.to_owned(), response.build().into());
                    }
                }
            }
        }
    }
}

pub(crate) fn docs<S: Clone + Send + Sync + 'static>(document: Document) -> Router<S> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", document))
}
