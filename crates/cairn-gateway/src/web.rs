//! The web app, embedded in the binary at build time (read from `web/dist`
//! on disk in debug builds), served at `/` with a single-page-app fallback.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>Cairn is running</h1>
<p>This binary was built without the web app. Build it, then rebuild Cairn:</p>
<pre>npm --prefix web ci && npm --prefix web run build
cargo build --release -p cairn</pre>
<p>The API works already: see the <a href="/api/docs">API documentation</a>,
the <a href="/api/openapi.json">OpenAPI document</a> and <a href="/readyz">readiness</a>.</p>
</body></html>
"#;

/// Everything no route matched: API paths get a 404 problem, other GETs the
/// asset or, for app routes, `index.html`.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") || crate::openai::is_openai_path(path) {
        return ApiError::RouteNotFound { path: path.to_owned() }.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let file = path.trim_start_matches('/');
    if let Some(asset) = (!file.is_empty()).then(|| Assets::get(file)).flatten() {
        let mime = asset.metadata.mimetype();
        // Vite fingerprints everything under assets/: it never changes.
        let cache = if file.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return asset_response(asset.data.into_owned(), mime, cache);
    }
    // A path that looks like a file and is missing is a 404, not the app.
    let last = file.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return ApiError::NotFound { entity: "file" }.into_response();
    }
    match Assets::get("index.html") {
        Some(index) => asset_response(index.data.into_owned(), "text/html; charset=utf-8", "no-cache"),
        None => (StatusCode::OK, Html(NOT_BUILT)).into_response(),
    }
}

fn asset_response(body: Vec<u8>, mime: &str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
