//! The project library: upload (multipart, or one raw body for big files and
//! scripts), list, inspect, version history, move and rename, delete,
//! download (with ranges), download links, and folders as zip archives.
//! Every route reaches files through `cairn_files::Files`, which checks the
//! caller's project role first.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::{FileId, ProjectId};
use cairn_files::{ByteRange, Download};
use futures::TryStreamExt;
use serde_json::json;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::files::{
    DeleteQuery, FileResponse, FolderQuery, LinkRequest, LinkResponse, ListingResponse, MoveRequest, MoveResponse,
    PathQuery,
};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(upload, list, delete_path).layer(DefaultBodyLimit::disable())))
        .routes(crate::v1(routes!(put_content).layer(DefaultBodyLimit::disable())))
        .routes(crate::v1(routes!(get_file)))
        .routes(crate::v1(routes!(get_content)))
        .routes(crate::v1(routes!(versions)))
        .routes(crate::v1(routes!(move_files)))
        .routes(crate::v1(routes!(create_link)))
        .routes(crate::v1(routes!(zip)))
        .routes(crate::v1(routes!(open_link)))
}

/// Upload one or more files (multipart/form-data; each part's file name is
/// the name in `folder`). Uploading to an existing path adds a version.
#[utoipa::path(post, path = "/projects/{project_id}/files", tag = "files", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), FolderQuery),
    request_body(content_type = "multipart/form-data", description = "One or more file parts"),
    responses(
        (status = 201, description = "The stored files", body = [FileResponse]),
        (status = 403, description = "Viewers cannot upload", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large` or `quota_exceeded`; nothing was stored", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upload(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<FolderQuery>,
    mut multipart: Multipart,
) -> Result<(StatusCode, ApiJson<Vec<FileResponse>>), ApiError> {
    let folder = query.folder.trim_end_matches('/');
    let mut stored = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(ApiError::UploadInterrupted { detail: e.body_text() }),
        };
        let Some(name) = field.file_name().map(str::to_owned) else { continue };
        let path = cairn_files::paths::join(folder, &name);
        let body = field.map_err(|e| std::io::Error::other(e.body_text()));
        let record = state.files.upload(&principal, project_id, &path, body).await?;
        state.memory.index_in_background(state.files.clone(), record.clone());
        stored.push(record.into());
    }
    if stored.is_empty() {
        return Err(ApiError::Invalid { code: "no_files", detail: "the form has no file parts".to_owned() });
    }
    Ok((StatusCode::CREATED, ApiJson(stored)))
}

/// Upload one file as the raw request body (any size up to the limit), to `path`.
#[utoipa::path(put, path = "/projects/{project_id}/files/content", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), PathQuery),
    request_body(content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "The stored file", body = FileResponse),
        (status = 413, description = "`payload_too_large` or `quota_exceeded`", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn put_content(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<PathQuery>,
    body: Body,
) -> Result<(StatusCode, ApiJson<FileResponse>), ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let record = state.files.upload(&principal, project_id, &query.path, stream).await?;
    state.memory.index_in_background(state.files.clone(), record.clone());
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// A folder of the library: its sub-folders and files.
#[utoipa::path(get, path = "/projects/{project_id}/files", tag = "files", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), FolderQuery),
    responses((status = 200, description = "The folder", body = ListingResponse))
)]
async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<FolderQuery>,
) -> Result<ApiJson<ListingResponse>, ApiError> {
    let listing = state.files.list(&principal, project_id, &query.folder).await?;
    Ok(ApiJson(ListingResponse {
        folder: query.folder.trim_end_matches('/').to_owned(),
        folders: listing.folders,
        files: listing.files.into_iter().map(FileResponse::from).collect(),
    }))
}

/// Delete a file (every version) or a folder.
#[utoipa::path(delete, path = "/projects/{project_id}/files", tag = "files", security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Nothing at that path", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_path(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let removed = state.files.delete_versions(&principal, project_id, &query.path, query.folder).await?;
    let detail = json!({ "path": query.path, "folder": query.folder, "versions": removed.len() });
    crate::audit::record(&state, &principal, Some(project_id), "file.deleted", detail, &addr).await;
    // Their text leaves the project's memory too.
    let mut paths: Vec<String> = removed.into_iter().map(|r| r.path).collect();
    paths.sort();
    paths.dedup();
    state.memory.forget_files(project_id, &paths).await;
    Ok(StatusCode::NO_CONTENT)
}

/// One file version's details.
#[utoipa::path(get, path = "/projects/{project_id}/files/{file_id}", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("file_id" = FileId, Path)),
    responses((status = 200, description = "The file", body = FileResponse))
)]
async fn get_file(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((project_id, file_id)): Path<(ProjectId, FileId)>,
) -> Result<ApiJson<FileResponse>, ApiError> {
    Ok(ApiJson(state.files.file(&principal, project_id, file_id).await?.into()))
}

fn requested_range(headers: &HeaderMap) -> Option<ByteRange> {
    headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(ByteRange::parse)
}

/// The bytes, as an attachment browsers will neither sniff nor run.
fn download_response(download: Download) -> Response {
    let record = &download.record;
    let length = download.range.end - download.range.start;
    let status = if download.partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let name = record.path.rsplit('/').next().unwrap_or("download");
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, record.content_type.clone());
    set(header::CONTENT_LENGTH, length.to_string());
    set(header::ACCEPT_RANGES, "bytes".to_owned());
    set(header::ETAG, format!("\"{}\"", record.sha256));
    set(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"));
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned());
    set(header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".to_owned());
    set(header::CACHE_CONTROL, "private, max-age=0".to_owned());
    if download.partial {
        set(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", download.range.start, download.range.end - 1, record.size),
        );
    }
    (status, headers, Body::from_stream(download.body)).into_response()
}

/// Download a file version; honours `Range: bytes=…`.
#[utoipa::path(get, path = "/projects/{project_id}/files/{file_id}/content", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("file_id" = FileId, Path)),
    responses(
        (status = 200, description = "The whole file, with the content type it was stored with", content_type = "*/*"),
        (status = 206, description = "The requested range", content_type = "*/*"),
        (status = 416, description = "`range_not_satisfiable`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_content(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((project_id, file_id)): Path<(ProjectId, FileId)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let download = state.files.download(&principal, project_id, file_id, requested_range(&headers)).await?;
    Ok(download_response(download))
}

/// Every version of the file at `path`, newest first.
#[utoipa::path(get, path = "/projects/{project_id}/files/versions", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), PathQuery),
    responses((status = 200, description = "The versions", body = [FileResponse]))
)]
async fn versions(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<PathQuery>,
) -> Result<ApiJson<Vec<FileResponse>>, ApiError> {
    let versions = state.files.versions(&principal, project_id, &query.path).await?;
    Ok(ApiJson(versions.into_iter().map(FileResponse::from).collect()))
}

/// Rename or move a file (with its versions) or a folder.
#[utoipa::path(post, path = "/projects/{project_id}/files/move", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path)),
    request_body = MoveRequest,
    responses(
        (status = 200, description = "Moved", body = MoveResponse),
        (status = 409, description = "The target exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn move_files(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    ApiJson(body): ApiJson<MoveRequest>,
) -> Result<ApiJson<MoveResponse>, ApiError> {
    let moved = state.files.rename(&principal, project_id, &body.from, &body.to, body.folder).await?;
    let detail = json!({ "path": body.from, "to": body.to, "folder": body.folder });
    crate::audit::record(&state, &principal, Some(project_id), "file.moved", detail, &addr).await;
    Ok(ApiJson(MoveResponse { moved }))
}

/// A time-limited download link for one file version.
#[utoipa::path(post, path = "/projects/{project_id}/files/{file_id}/links", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), ("file_id" = FileId, Path)),
    request_body = LinkRequest,
    responses((status = 201, description = "The link", body = LinkResponse))
)]
async fn create_link(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    Path((project_id, file_id)): Path<(ProjectId, FileId)>,
    ApiJson(body): ApiJson<LinkRequest>,
) -> Result<(StatusCode, ApiJson<LinkResponse>), ApiError> {
    let ttl = body.expires_in_secs.map(std::time::Duration::from_secs);
    let link = state.files.link(&principal, project_id, file_id, ttl).await?;
    let detail = json!({ "file": file_id, "expires_at": link.expires_at.unix_timestamp() });
    crate::audit::record(&state, &principal, Some(project_id), "file.shared", detail, &addr).await;
    Ok((StatusCode::CREATED, ApiJson(LinkResponse { url: link.url, expires_at: link.expires_at })))
}

/// A download link of a locally stored file: the link is the credential.
#[utoipa::path(get, path = "/links/{token}", tag = "files",
    params(("token" = String, Path)),
    responses(
        (status = 200, description = "The file, with the content type it was stored with", content_type = "*/*"),
        (status = 403, description = "`link_invalid`: expired, altered or foreign", body = Problem,
         content_type = "application/problem+json"),
    )
)]
async fn open_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let download = state.files.open_link(&token, requested_range(&headers)).await?;
    Ok(download_response(download))
}

/// A folder (the newest version of every file under it) as a zip archive.
#[utoipa::path(get, path = "/projects/{project_id}/files/zip", tag = "files",
    security(("oauth2" = []), ("api_key" = [])),
    params(("project_id" = ProjectId, Path), FolderQuery),
    responses((status = 200, description = "The archive", content_type = "application/zip"))
)]
async fn zip(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(project_id): Path<ProjectId>,
    Query(query): Query<FolderQuery>,
) -> Result<Response, ApiError> {
    let archive = state.files.zip(&principal, project_id, &query.folder).await?;
    let name = query.folder.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("library");
    Ok(attachment(Body::from_stream(archive), "application/zip", &format!("{}.zip", safe_stem(name))))
}

/// A download the browser saves as `name` (ASCII, no quotes: see [`safe_stem`]).
pub(crate) fn attachment(body: Body, content_type: &'static str, name: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// A name fit for a download's file name: ASCII letters, digits, `-` and
/// `_` kept, anything else `_`.
pub(crate) fn safe_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_".contains(c) { c } else { '_' }).collect()
}
