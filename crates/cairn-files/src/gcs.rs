//! Google Cloud Storage through its JSON API, the one Google's own client
//! libraries speak (and the one GCS emulators implement): simple media
//! uploads, resumable uploads for large files, ranged reads, listing and
//! rewrites. Authentication is a bearer token from the service account or
//! the environment (`GOOGLE_*`, the metadata server), taken from
//! `object_store`'s GCS credential chain; an emulator is reached without one.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::gcp::GcpCredentialProvider;
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, Extensions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UploadPart,
};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{Mutex, watch};

const STORE: &str = "GCS";

/// Resumable uploads take chunks in multiples of 256 KiB, but for the last.
const CHUNK_ALIGN: usize = 256 * 1024;

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

fn generic(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: error.into() }
}

/// A bucket on GCS (or an emulator) spoken to through the JSON API.
#[derive(Clone)]
pub(crate) struct GcsJson {
    http: reqwest::Client,
    /// `https://storage.googleapis.com`, or an emulator's address.
    base: Url,
    bucket: String,
    /// `None`: anonymous requests (an emulator).
    credentials: Option<GcpCredentialProvider>,
}

impl fmt::Debug for GcsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsJson").field("base", &self.base.as_str()).field("bucket", &self.bucket).finish()
    }
}

impl fmt::Display for GcsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcsJson({}, {})", self.base, self.bucket)
    }
}

/// An object resource, as the JSON API describes one.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    name: String,
    #[serde(default, deserialize_with = "number_text")]
    size: u64,
    #[serde(default)]
    generation: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

/// The JSON API writes 64-bit numbers as strings.
fn number_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Text(String),
        Plain(u64),
    }
    match Number::deserialize(deserializer)? {
        Number::Plain(n) => Ok(n),
        Number::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    items: Vec<Resource>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rewrite {
    done: bool,
    #[serde(default)]
    rewrite_token: Option<String>,
}

impl Resource {
    fn meta(self) -> Result<ObjectMeta> {
        let last_modified = match self.updated.as_deref() {
            Some(text) => chrono::DateTime::parse_from_rfc3339(text).map_err(generic)?.to_utc(),
            None => chrono::DateTime::UNIX_EPOCH,
        };
        Ok(ObjectMeta {
            location: Path::parse(&self.name)?,
            last_modified,
            size: self.size,
            e_tag: self.etag,
            version: self.generation,
        })
    }

    fn put_result(self) -> PutResult {
        PutResult { e_tag: self.etag, version: self.generation, extensions: Extensions::default() }
    }
}

impl GcsJson {
    pub(crate) fn new(
        base: &str,
        bucket: &str,
        credentials: Option<GcpCredentialProvider>,
        allow_http: bool,
    ) -> Result<GcsJson> {
        let base = Url::parse(base).map_err(generic)?;
        if base.scheme() != "https" && !allow_http {
            return Err(generic(format!("{base} is plain HTTP: set files.allow_http for a local emulator")));
        }
        let http =
            reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build().map_err(generic)?;
        Ok(GcsJson { http, base, bucket: bucket.to_owned(), credentials })
    }

    /// `{base}/{segments…}`, each segment percent-encoded (an object's name
    /// is one segment: its slashes are encoded).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn object_url(&self, location: &Path) -> Url {
        self.url(&["storage", "v1", "b", &self.bucket, "o", location.as_ref()])
    }

    fn upload_url(&self) -> Url {
        self.url(&["upload", "storage", "v1", "b", &self.bucket, "o"])
    }

    async fn request(&self, method: Method, url: Url) -> Result<RequestBuilder> {
        let builder = self.http.request(method, url);
        match &self.credentials {
            Some(provider) => Ok(builder.bearer_auth(&provider.get_credential().await?.bearer)),
            None => Ok(builder),
        }
    }

    /// Sends a request; an error status becomes the matching store error.
    async fn send(&self, builder: RequestBuilder, location: &str) -> Result<reqwest::Response> {
        let response = builder.send().await.map_err(generic)?;
        let status = response.status();
        if status.is_success() || status == StatusCode::PERMANENT_REDIRECT {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let source = format!("{status}: {}", body.chars().take(300).collect::<String>()).into();
        let path = location.to_owned();
        Err(match status {
            StatusCode::NOT_FOUND => object_store::Error::NotFound { path, source },
            StatusCode::PRECONDITION_FAILED => object_store::Error::Precondition { path, source },
            StatusCode::NOT_MODIFIED => object_store::Error::NotModified { path, source },
            _ => object_store::Error::Generic { store: STORE, source },
        })
    }

    async fn metadata(&self, location: &Path) -> Result<Resource> {
        let request = self.request(Method::GET, self.object_url(location)).await?;
        self.send(request, location.as_ref()).await?.json().await.map_err(generic)
    }

    async fn list_page(&self, prefix: Option<&Path>, delimiter: bool, token: Option<String>) -> Result<Listing> {
        let mut url = self.url(&["storage", "v1", "b", &self.bucket, "o"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(prefix) = prefix.filter(|p| !p.as_ref().is_empty()) {
                query.append_pair("prefix", &format!("{prefix}/"));
            }
            if delimiter {
                query.append_pair("delimiter", "/");
            }
            if let Some(token) = &token {
                query.append_pair("pageToken", token);
            }
        }
        let request = self.request(Method::GET, url).await?;
        self.send(request, prefix.map(AsRef::as_ref).unwrap_or_default()).await?.json().await.map_err(generic)
    }
}

/// The concrete byte range a request asks of an object of `size` bytes.
fn resolve(range: Option<&GetRange>, size: u64, location: &Path) -> Result<Range<u64>> {
    let invalid =
        |why: String| object_store::Error::Generic { store: STORE, source: format!("{location}: {why}").into() };
    match range {
        None => Ok(0..size),
        Some(GetRange::Bounded(r)) if r.start >= r.end || r.start >= size => {
            Err(invalid(format!("range {}..{} is outside the object's {size} bytes", r.start, r.end)))
        }
        Some(GetRange::Bounded(r)) => Ok(r.start..r.end.min(size)),
        Some(GetRange::Offset(start)) if *start >= size && size > 0 => {
            Err(invalid(format!("offset {start} is past the object's {size} bytes")))
        }
        Some(GetRange::Offset(start)) => Ok((*start).min(size)..size),
        Some(GetRange::Suffix(n)) => Ok(size.saturating_sub(*n)..size),
    }
}

#[async_trait]
impl ObjectStore for GcsJson {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let mut url = self.upload_url();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("uploadType", "media").append_pair("name", location.as_ref());
            match &opts.mode {
                PutMode::Overwrite => {}
                PutMode::Create => {
                    query.append_pair("ifGenerationMatch", "0");
                }
                PutMode::Update(version) => {
                    let generation = version.version.as_deref().ok_or_else(|| {
                        generic("a conditional update on GCS needs the object's generation (its version)")
                    })?;
                    query.append_pair("ifGenerationMatch", generation);
                }
            }
        }
        let body = Bytes::from(payload);
        let request = self.request(Method::POST, url).await?.header("content-type", "application/octet-stream");
        match self.send(request.body(body), location.as_ref()).await {
            Ok(response) => Ok(response.json::<Resource>().await.map_err(generic)?.put_result()),
            Err(object_store::Error::Precondition { path, source }) if matches!(opts.mode, PutMode::Create) => {
                Err(object_store::Error::AlreadyExists { path, source })
            }
            Err(error) => Err(error),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let mut url = self.upload_url();
        url.query_pairs_mut().append_pair("uploadType", "resumable").append_pair("name", location.as_ref());
        let request = self
            .request(Method::POST, url)
            .await?
            .header("x-upload-content-type", "application/octet-stream")
            .header("content-length", "0");
        let response = self.send(request, location.as_ref()).await?;
        let session = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Url::parse(v).ok())
            .ok_or_else(|| generic("GCS did not give the resumable upload's address"))?;
        let (turn, _) = watch::channel(0u64);
        Ok(Box::new(Resumable {
            store: self.clone(),
            location: location.clone(),
            session,
            state: Arc::new(Mutex::new(Session::default())),
            turn: Arc::new(turn),
            parts: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
        {
            return Err(object_store::Error::NotImplemented {
                operation: "conditional reads".into(),
                implementer: "Cairn's GCS client".into(),
            });
        }
        let resource = match &options.version {
            Some(generation) => {
                let mut url = self.object_url(location);
                url.query_pairs_mut().append_pair("generation", generation);
                let request = self.request(Method::GET, url).await?;
                self.send(request, location.as_ref()).await?.json().await.map_err(generic)?
            }
            None => self.metadata(location).await?,
        };
        let generation = resource.generation.clone();
        let meta = resource.meta()?;
        let range = resolve(options.range.as_ref(), meta.size, location)?;
        let attributes = Attributes::new();
        let extensions = Extensions::default();
        if options.head || range.is_empty() {
            let payload = GetResultPayload::Stream(futures::stream::empty().boxed());
            return Ok(GetResult { payload, meta, range, attributes, extensions });
        }
        let mut url = self.object_url(location);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("alt", "media");
            // The very generation described above, though a newer one lands.
            if let Some(generation) = &generation {
                query.append_pair("generation", generation);
            }
        }
        let mut request = self.request(Method::GET, url).await?;
        if range != (0..meta.size) {
            request = request.header("range", format!("bytes={}-{}", range.start, range.end - 1));
        }
        let response = self.send(request, location.as_ref()).await?;
        let stream = response.bytes_stream().map_err(generic).boxed();
        Ok(GetResult { payload: GetResultPayload::Stream(stream), meta, range, attributes, extensions })
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let store = self.clone();
        locations
            .and_then(move |location| {
                let store = store.clone();
                async move {
                    let request = store.request(Method::DELETE, store.object_url(&location)).await?;
                    store.send(request, location.as_ref()).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned();
        futures::stream::try_unfold(Some(None), move |token: Option<Option<String>>| {
            let store = store.clone();
            let prefix = prefix.clone();
            async move {
                let Some(token) = token else { return Ok::<_, object_store::Error>(None) };
                let page = store.list_page(prefix.as_ref(), false, token).await?;
                let next = page.next_page_token.map(Some);
                let metas = page.items.into_iter().map(Resource::meta).collect::<Result<Vec<_>>>()?;
                Ok(Some((futures::stream::iter(metas.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result =
            ListResult { common_prefixes: Vec::new(), objects: Vec::new(), extensions: Extensions::default() };
        let mut token = None;
        loop {
            let page = self.list_page(prefix, true, token).await?;
            for folder in page.prefixes {
                result.common_prefixes.push(Path::parse(folder.trim_end_matches('/'))?);
            }
            for item in page.items {
                result.objects.push(item.meta()?);
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return Ok(result),
            }
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut url = self.url(&["storage", "v1", "b", &self.bucket, "o", from.as_ref(), "rewriteTo", "b"]);
            if let Ok(mut path) = url.path_segments_mut() {
                path.extend([self.bucket.as_str(), "o", to.as_ref()]);
            }
            {
                let mut query = url.query_pairs_mut();
                if matches!(options.mode, CopyMode::Create) {
                    query.append_pair("ifGenerationMatch", "0");
                }
                if let Some(token) = &token {
                    query.append_pair("rewriteToken", token);
                }
            }
            let request = self.request(Method::POST, url).await?.header("content-type", "application/json").body("{}");
            let rewrite: Rewrite = match self.send(request, to.as_ref()).await {
                Ok(response) => response.json().await.map_err(generic)?,
                Err(object_store::Error::Precondition { path, source }) => {
                    return Err(object_store::Error::AlreadyExists { path, source });
                }
                Err(error) => return Err(error),
            };
            if rewrite.done {
                return Ok(());
            }
            token = Some(rewrite.rewrite_token.ok_or_else(|| generic("an unfinished rewrite without a token"))?);
        }
    }
}

/// A resumable upload's progress, shared by its parts.
#[derive(Debug, Default)]
struct Session {
    /// Bytes GCS has taken.
    sent: u64,
    /// Bytes held back until a whole 256 KiB chunk (or the end) is there.
    held: Vec<u8>,
    failed: Option<String>,
}

/// A large upload as one resumable upload session. `WriteMultipart` may
/// run parts at once; they are sent in the order they were made.
#[derive(Debug)]
struct Resumable {
    store: GcsJson,
    location: Path,
    session: Url,
    state: Arc<Mutex<Session>>,
    /// The index of the part whose turn it is.
    turn: Arc<watch::Sender<u64>>,
    parts: u64,
}

impl Resumable {
    /// Sends `bytes` at `offset`; `total` when they end the object.
    async fn send_chunk(
        store: &GcsJson,
        session: &Url,
        location: &Path,
        offset: u64,
        bytes: Vec<u8>,
        total: Option<u64>,
    ) -> Result<reqwest::Response> {
        let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range = if bytes.is_empty() {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {}-{}/{total_text}", offset, offset + bytes.len() as u64 - 1)
        };
        let request = store.request(Method::PUT, session.clone()).await?.header("content-range", range);
        store.send(request.body(bytes), location.as_ref()).await
    }
}

#[async_trait]
impl MultipartUpload for Resumable {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = self.parts;
        self.parts += 1;
        let (store, session, location) = (self.store.clone(), self.session.clone(), self.location.clone());
        let (state, turn) = (self.state.clone(), self.turn.clone());
        Box::pin(async move {
            let mut waiting = turn.subscribe();
            waiting.wait_for(|current| *current == index).await.map_err(generic)?;
            let mut session_state = state.lock().await;
            let outcome = match session_state.failed.clone() {
                Some(why) => Err(generic(why)),
                None => {
                    for chunk in data.iter() {
                        session_state.held.extend_from_slice(chunk);
                    }
                    let whole = session_state.held.len() / CHUNK_ALIGN * CHUNK_ALIGN;
                    if whole == 0 {
                        Ok(())
                    } else {
                        let rest = session_state.held.split_off(whole);
                        let chunk = std::mem::replace(&mut session_state.held, rest);
                        let sent = session_state.sent;
                        match Self::send_chunk(&store, &session, &location, sent, chunk, None).await {
                            Ok(_) => {
                                session_state.sent += whole as u64;
                                Ok(())
                            }
                            Err(error) => {
                                session_state.failed = Some(error.to_string());
                                Err(error)
                            }
                        }
                    }
                }
            };
            drop(session_state);
            turn.send_modify(|current| *current += 1);
            outcome
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let mut waiting = self.turn.subscribe();
        let parts = self.parts;
        waiting.wait_for(|current| *current == parts).await.map_err(generic)?;
        let mut state = self.state.lock().await;
        if let Some(why) = state.failed.clone() {
            return Err(generic(why));
        }
        let rest = std::mem::take(&mut state.held);
        let total = state.sent + rest.len() as u64;
        let response =
            Self::send_chunk(&self.store, &self.session, &self.location, state.sent, rest, Some(total)).await?;
        if response.status() == StatusCode::PERMANENT_REDIRECT {
            return Err(generic("GCS did not finish the resumable upload"));
        }
        state.sent = total;
        Ok(response.json::<Resource>().await.map_err(generic)?.put_result())
    }

    async fn abort(&mut self) -> Result<()> {
        // Cancelling a session is a DELETE of its address (GCS answers 499).
        let request = self.store.request(Method::DELETE, self.session.clone()).await?;
        let _ = request.header("content-length", "0").send().await;
        Ok(())
    }
}
