//! The file service proper.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_auth::{Access, Auth, Principal};
use cairn_config::FilesConfig;
use cairn_core::model::{FileRecord, NewFile};
use cairn_core::store::Store;
use cairn_core::{FileId, ProjectId, RunId, ThreadId, UserId};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::links::{LinkClaims, LinkKey};
use crate::objects::Objects;
use crate::{Error, Result, paths, sniff};

/// Parts of a multipart upload in flight at once: with 5 MiB parts, an
/// upload holds at most about 20 MiB in memory whatever its size.
const UPLOAD_CONCURRENCY: usize = 3;

/// A folder's direct content: sub-folders (names) and the newest version of
/// each file in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub folders: Vec<String>,
    pub files: Vec<FileRecord>,
}

/// Part of a file: `bytes=a-b`, `bytes=a-` or `bytes=-n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    Bounded { start: u64, end_inclusive: u64 },
    From(u64),
    Last(u64),
}

impl ByteRange {
    /// Parses one `Range` header value; `None` for anything else (several
    /// ranges, other units), which is then answered with the whole file.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        match (start.trim(), end.trim()) {
            ("", last) => last.parse().ok().map(ByteRange::Last),
            (start, "") => start.parse().ok().map(ByteRange::From),
            (start, end) => {
                let (start, end_inclusive) = (start.parse().ok()?, end.parse().ok()?);
                (start <= end_inclusive).then_some(ByteRange::Bounded { start, end_inclusive })
            }
        }
    }

    /// The range to ask the store for, of a file of `size` bytes (the last
    /// bytes as an offset: Azure's API has no suffix ranges).
    fn to_get_range(self, size: u64) -> GetRange {
        match self {
            ByteRange::Bounded { start, end_inclusive } => GetRange::Bounded(start..end_inclusive.saturating_add(1)),
            ByteRange::From(start) => GetRange::Offset(start),
            ByteRange::Last(n) => GetRange::Offset(size.saturating_sub(n)),
        }
    }
}

/// A file's content on its way to the client.
pub struct Download {
    pub record: FileRecord,
    /// The bytes sent: the whole file, or the range asked for.
    pub range: std::ops::Range<u64>,
    /// Whether a range was asked for (answer 206).
    pub partial: bool,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("record", &self.record).field("range", &self.range).finish_non_exhaustive()
    }
}

/// A download link and when it stops working.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Absolute for cloud stores; for local storage a path on this server.
    pub url: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    objects: Objects,
    auth: Auth,
    config: FilesConfig,
    links: LinkKey,
}

/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

fn object_key(project: ProjectId, id: FileId) -> ObjectPath {
    ObjectPath::from(format!("projects/{project}/objects/{id}"))
}

/// Where a thread's picture is kept; a name that is not a plain file name
/// (letters, digits, `.`, `-`, `_`; up to 100) is refused. A name that
/// begins with a run's id and `-` (`<run>-<step>-<n>.jpg`, as the agent
/// names its screenshots) is kept in that run's folder, so the run's
/// pictures can go on their own.
fn media_key(project: ProjectId, thread: ThreadId, name: &str) -> Result<ObjectPath> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return Err(Error::InvalidPath { path: name.to_owned(), reason: "not a plain file name".into() });
    }
    let folder = |run: &str| format!("projects/{project}/threads/{thread}/media/{run}");
    let key = match name.split_at_checked(36) {
        Some((run, rest)) if rest.len() > 1 && rest.starts_with('-') && run.parse::<RunId>().is_ok() => {
            format!("{}/{}", folder(run), &rest[1..])
        }
        _ => format!("{}/{name}", folder("_")),
    };
    Ok(ObjectPath::from(key))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Files {
    /// `link_secret` signs download links of locally stored files (≥32 bytes).
    pub fn new(
        config: &FilesConfig,
        store: Arc<dyn Store>,
        objects: Objects,
        auth: Auth,
        link_secret: &[u8],
    ) -> Result<Files> {
        let inner = Inner { store, objects, auth, config: config.clone(), links: LinkKey::new(link_secret)? };
        Ok(Files { inner: Arc::new(inner) })
    }

    pub fn objects(&self) -> &Objects {
        &self.inner.objects
    }

    async fn grant(&self, principal: &Principal, project: ProjectId, access: Access) -> Result<()> {
        self.inner.auth.authorize(principal, project, access).await?;
        Ok(())
    }

    /// Uploads a new file, or a new version of an existing one. The content
    /// streams to storage as it arrives (memory stays bounded), is hashed on
    /// the way, and its type is judged from its first bytes. If the upload
    /// breaks, is too large or would pass the project's quota, nothing is
    /// kept: no object, no row.
    pub async fn upload<S, E>(
        &self,
        principal: &Principal,
        project: ProjectId,
        path: &str,
        body: S,
    ) -> Result<FileRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.grant(principal, project, Access::Write).await?;
        self.store_file(project, path, body, Some(principal.user.id), None).await
    }

    /// The artifact API: the agent saves bytes (or a sandbox file's stream)
    /// into the project's library with the run and step that made it.
    /// Idempotent per run, step and path: a step that runs again (after a
    /// crash) gets the version it saved the first time, not a second one.
    pub async fn save_artifact<S, E>(
        &self,
        project: ProjectId,
        path: &str,
        body: S,
        run: RunId,
        step: i64,
        fence: Option<cairn_core::model::Fence>,
    ) -> Result<FileRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let checked = paths::check(path, false)?;
        // Any version, not only the newest: other runs may have saved the
        // same path since.
        let versions = self.inner.store.file_versions(project, &checked).await?;
        if let Some(saved) = versions.into_iter().find(|f| f.run_id == Some(run) && f.step == Some(step)) {
            return Ok(saved);
        }
        self.store_file(project, path, body, None, Some((run, step, fence))).await
    }

    /// Saves bytes into the library on a user's behalf, for callers that
    /// already authorized the user (the tool API runs `save_artifact` outside
    /// an agent run this way).
    pub async fn save_for_user<S, E>(&self, project: ProjectId, path: &str, body: S, user: UserId) -> Result<FileRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.store_file(project, path, body, Some(user), None).await
    }

    async fn store_file<S, E>(
        &self,
        project: ProjectId,
        path: &str,
        mut body: S,
        created_by: Option<UserId>,
        run: Option<(RunId, i64, Option<cairn_core::model::Fence>)>,
    ) -> Result<FileRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let path = paths::check(path, false)?;
        let limit = self.inner.config.max_upload_bytes;
        let quota = self.inner.config.project_quota_bytes;
        let used = u64::try_from(self.inner.store.project_usage(project).await?).unwrap_or(0);
        let room = quota.saturating_sub(used);
        let id = FileId::new();
        let key = object_key(project, id);
        let upload = self.inner.objects.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head = Vec::with_capacity(sniff::SNIFF_BYTES);
        let outcome: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Error::Interrupted(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(Error::TooLarge { limit });
                }
                if size > room {
                    return Err(Error::QuotaExceeded { quota, used });
                }
                if head.len() < sniff::SNIFF_BYTES {
                    let take = (sniff::SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                hasher.update(&chunk);
                writer.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%abort, "cannot abort an upload that failed");
            }
            return Err(error);
        }
        writer.finish().await?;
        let new = NewFile {
            id,
            project_id: project,
            content_type: sniff::content_type(&head, &path),
            path,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: hex(&hasher.finalize()),
            object_key: key.to_string(),
            created_by,
            run_id: run.map(|(id, _, _)| id),
            step: run.map(|(_, step, _)| step),
            fence: run.and_then(|(_, _, fence)| fence),
        };
        match self.inner.store.insert_file(new).await {
            Ok(record) => Ok(record),
            Err(error) => {
                // The row is what makes a file exist: without it, drop the object.
                let _ = self.inner.objects.store.delete(&key).await;
                Err(error.into())
            }
        }
    }

    /// The folder's sub-folders and the newest version of each file in it.
    pub async fn list(&self, principal: &Principal, project: ProjectId, folder: &str) -> Result<Listing> {
        self.grant(principal, project, Access::Read).await?;
        let folder = paths::check(folder, true)?;
        let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        let mut folders = Vec::new();
        let mut files = Vec::new();
        for record in self.inner.store.files(project, &prefix).await? {
            match record.path[prefix.len()..].split_once('/') {
                Some((sub, _)) => {
                    if folders.last().is_none_or(|last: &String| last != sub) {
                        folders.push(sub.to_owned());
                    }
                }
                None => files.push(record),
            }
        }
        folders.dedup();
        Ok(Listing { folders, files })
    }

    /// One file version, if it belongs to the project.
    pub async fn file(&self, principal: &Principal, project: ProjectId, id: FileId) -> Result<FileRecord> {
        self.grant(principal, project, Access::Read).await?;
        self.in_project(project, id).await
    }

    async fn in_project(&self, project: ProjectId, id: FileId) -> Result<FileRecord> {
        let record = self.inner.store.file(id).await?;
        if record.project_id != project {
            return Err(cairn_core::Error::NotFound { entity: "file" }.into());
        }
        Ok(record)
    }

    /// Every version of the file at `path`, newest first.
    pub async fn versions(&self, principal: &Principal, project: ProjectId, path: &str) -> Result<Vec<FileRecord>> {
        self.grant(principal, project, Access::Read).await?;
        let path = paths::check(path, false)?;
        let versions = self.inner.store.file_versions(project, &path).await?;
        if versions.is_empty() {
            return Err(cairn_core::Error::NotFound { entity: "file" }.into());
        }
        Ok(versions)
    }

    /// Renames or moves a file, or with `folder` a whole folder. Only
    /// metadata changes; contents stay where they are.
    pub async fn rename(
        &self,
        principal: &Principal,
        project: ProjectId,
        from: &str,
        to: &str,
        folder: bool,
    ) -> Result<u64> {
        self.grant(principal, project, Access::Write).await?;
        let (from, to) = (paths::check(from, folder)?, paths::check(to, folder)?);
        if folder && (from.is_empty() || to.is_empty() || to == from || to.starts_with(&format!("{from}/"))) {
            return Err(Error::InvalidPath { path: to, reason: "a folder cannot move into itself or the root".into() });
        }
        Ok(self.inner.store.move_files(project, &from, &to, folder).await?)
    }

    /// Deletes a file (every version) or a folder, contents included; how
    /// many file versions went.
    pub async fn delete(&self, principal: &Principal, project: ProjectId, path: &str, folder: bool) -> Result<u64> {
        Ok(self.delete_versions(principal, project, path, folder).await?.len() as u64)
    }

    /// [`Files::delete`], answering the versions that went.
    pub async fn delete_versions(
        &self,
        principal: &Principal,
        project: ProjectId,
        path: &str,
        folder: bool,
    ) -> Result<Vec<FileRecord>> {
        self.grant(principal, project, Access::Write).await?;
        let path = paths::check(path, folder)?;
        if folder && path.is_empty() {
            return Err(Error::InvalidPath { path, reason: "the library's root cannot be deleted".into() });
        }
        let removed = self.inner.store.delete_files(project, &path, folder).await?;
        for record in &removed {
            if let Err(error) = self.inner.objects.store.delete(&ObjectPath::from(record.object_key.as_str())).await {
                tracing::warn!(%error, key = %record.object_key, "an object outlived its file");
            }
        }
        Ok(removed)
    }

    /// Keeps a picture a run showed (a browser screenshot) beside its
    /// thread, outside the library: it counts toward no quota, is listed
    /// nowhere, and goes with the thread. `name` is a plain file name.
    pub async fn put_media(&self, project: ProjectId, thread: ThreadId, name: &str, bytes: Bytes) -> Result<()> {
        let key = media_key(project, thread, name)?;
        self.inner.objects.store.put(&key, bytes.into()).await?;
        Ok(())
    }

    /// A picture kept with [`Files::put_media`], for callers that already
    /// authorized the access. `NotFound` when there is none of that name.
    pub async fn read_media(&self, project: ProjectId, thread: ThreadId, name: &str) -> Result<Bytes> {
        let key = media_key(project, thread, name)?;
        match self.inner.objects.store.get(&key).await {
            Ok(found) => Ok(found.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => {
                Err(Error::Backend(cairn_core::Error::NotFound { entity: "picture" }))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the pictures one run of the thread showed (its step details
    /// went); how many went.
    pub async fn delete_run_media(&self, project: ProjectId, thread: ThreadId, run: RunId) -> Result<u64> {
        self.delete_prefix(ObjectPath::from(format!("projects/{project}/threads/{thread}/media/{run}/"))).await
    }

    /// Deletes the pictures kept for a thread, for its deletion; how many went.
    pub async fn delete_thread_media(&self, project: ProjectId, thread: ThreadId) -> Result<u64> {
        self.delete_prefix(ObjectPath::from(format!("projects/{project}/threads/{thread}/"))).await
    }

    /// Deletes every object stored for the project (every version of every
    /// file, and any an interrupted upload left), for a project's deletion;
    /// how many went.
    pub async fn delete_project_objects(&self, project: ProjectId) -> Result<u64> {
        self.delete_prefix(ObjectPath::from(format!("projects/{project}/"))).await
    }

    async fn delete_prefix(&self, prefix: ObjectPath) -> Result<u64> {
        let store = &self.inner.objects.store;
        let mut listed = store.list(Some(&prefix));
        let mut deleted = 0;
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(deleted)
    }

    /// Streams the newest version of a path, for callers that already
    /// authorized the access (the agent's tools, working for a run in the
    /// project). `NotFound` when nothing is stored there.
    pub async fn read_latest(&self, project: ProjectId, path: &str) -> Result<Download> {
        let checked = paths::check(path, false)?;
        let newest = self.inner.store.file_versions(project, &checked).await?.into_iter().next();
        let record = newest.ok_or(Error::Backend(cairn_core::Error::NotFound { entity: "file" }))?;
        self.stream(record, None).await
    }

    /// Streams a file version (or a range of it) to a member.
    pub async fn download(
        &self,
        principal: &Principal,
        project: ProjectId,
        id: FileId,
        range: Option<ByteRange>,
    ) -> Result<Download> {
        let record = self.file(principal, project, id).await?;
        self.stream(record, range).await
    }

    async fn stream(&self, record: FileRecord, range: Option<ByteRange>) -> Result<Download> {
        let size = u64::try_from(record.size).unwrap_or(0);
        if let Some(r) = range {
            let unsatisfiable = match r {
                ByteRange::Bounded { start, .. } | ByteRange::From(start) => start >= size,
                ByteRange::Last(n) => n == 0 || size == 0,
            };
            if unsatisfiable {
                return Err(Error::BadRange { size });
            }
        }
        let options = GetOptions { range: range.map(|r| r.to_get_range(size)), ..Default::default() };
        let result = self.inner.objects.store.get_opts(&ObjectPath::from(record.object_key.as_str()), options).await?;
        let served = result.range.clone();
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(Download { record, range: served, partial: range.is_some(), body })
    }

    /// A link that downloads this version of the file without signing in,
    /// until it expires (default and maximum lifetimes from configuration).
    pub async fn link(
        &self,
        principal: &Principal,
        project: ProjectId,
        id: FileId,
        ttl: Option<Duration>,
    ) -> Result<Link> {
        let record = self.file(principal, project, id).await?;
        let config = &self.inner.config;
        let ttl = ttl.unwrap_or(Duration::from_secs(config.link_ttl_secs));
        if ttl.is_zero() || ttl > Duration::from_secs(config.link_max_ttl_secs) {
            return Err(Error::Auth(cairn_auth::Error::InvalidInput(format!(
                "a link lives 1 to {} seconds",
                config.link_max_ttl_secs
            ))));
        }
        let expires_at = now() + ttl;
        let key = ObjectPath::from(record.object_key.as_str());
        let url = match &self.inner.objects.signer {
            Some(signer) => signer.signed_url(http_get(), &key, ttl).await?.to_string(),
            None => {
                let token =
                    self.inner.links.sign(&LinkClaims { k: record.object_key.clone(), e: expires_at.unix_timestamp() });
                format!("/api/v1/links/{token}")
            }
        };
        Ok(Link { url, expires_at })
    }

    /// Serves a local download link: the token is the only credential.
    pub async fn open_link(&self, token: &str, range: Option<ByteRange>) -> Result<Download> {
        let claims = self.inner.links.verify(token, now().unix_timestamp())?;
        let id = claims
            .k
            .rsplit('/')
            .next()
            .and_then(|id| id.parse::<FileId>().ok())
            .ok_or(Error::LinkInvalid("this download link is not valid"))?;
        let record = self.inner.store.file(id).await?;
        if record.object_key != claims.k {
            return Err(Error::LinkInvalid("this download link is not valid"));
        }
        // A deleted project's files are not served, even before its
        // deletion job removed them.
        self.inner.store.project(record.project_id).await?;
        self.stream(record, range).await
    }

    /// The newest version of every file under `folder`, as a zip archive
    /// written while it is sent (nothing is staged on disk or in memory).
    pub async fn zip(
        &self,
        principal: &Principal,
        project: ProjectId,
        folder: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        self.grant(principal, project, Access::Read).await?;
        let folder = paths::check(folder, true)?;
        let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        let records = self.inner.store.files(project, &prefix).await?;
        if records.is_empty() {
            return Err(cairn_core::Error::NotFound { entity: "folder" }.into());
        }
        let parts = records.into_iter().map(move |record| {
            let name = record.path[prefix.len()..].to_owned();
            Ok(ZipPart::File { name, record })
        });
        Ok(self.zip_parts(futures::stream::iter(parts).boxed()))
    }

    /// A zip archive of `parts`, written while it is sent: each part is
    /// read when its turn comes (a file's bytes from the object store), so
    /// nothing is staged on disk or in memory beyond one part's own bytes.
    /// A part that fails ends the archive early (the download is cut).
    pub fn zip_parts(
        &self,
        parts: BoxStream<'static, std::result::Result<ZipPart, String>>,
    ) -> BoxStream<'static, std::io::Result<Bytes>> {
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let store = self.inner.objects.store.clone();
        tokio::spawn(async move {
            if let Err(error) = write_zip(writer, store, parts).await {
                tracing::warn!(%error, "zip download stopped");
            }
        });
        tokio_util::io::ReaderStream::new(reader).boxed()
    }
}

/// One entry of a zip archive.
#[derive(Debug, Clone)]
pub enum ZipPart {
    /// Bytes made by the caller (a JSON or Markdown document).
    Bytes { name: String, bytes: Bytes },
    /// A version of a library file, read from the object store.
    File { name: String, record: FileRecord },
}

async fn write_zip(
    writer: tokio::io::DuplexStream,
    store: Arc<dyn object_store::ObjectStore>,
    mut parts: BoxStream<'static, std::result::Result<ZipPart, String>>,
) -> std::result::Result<(), String> {
    use async_zip::tokio::write::ZipFileWriter;
    use async_zip::{Compression, ZipEntryBuilder};
    use futures::AsyncWriteExt;
    let mut zip = ZipFileWriter::with_tokio(writer);
    while let Some(part) = parts.next().await {
        match part? {
            ZipPart::Bytes { name, bytes } => {
                let entry = ZipEntryBuilder::new(name.into(), Compression::Deflate);
                zip.write_entry_whole(entry, &bytes).await.map_err(|e| e.to_string())?;
            }
            ZipPart::File { name, record } => {
                let compression =
                    if record.content_type.starts_with("text/") { Compression::Deflate } else { Compression::Stored };
                let entry = ZipEntryBuilder::new(name.into(), compression);
                let mut entry_writer = zip.write_entry_stream(entry).await.map_err(|e| e.to_string())?;
                let key = ObjectPath::from(record.object_key.as_str());
                let object = store.get(&key).await.map_err(|e| e.to_string())?;
                let mut chunks = object.into_stream();
                while let Some(chunk) = chunks.next().await {
                    entry_writer.write_all(&chunk.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
                }
                entry_writer.close().await.map_err(|e| e.to_string())?;
            }
        }
    }
    let mut inner = zip.close().await.map_err(|e| e.to_string())?;
    inner.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn http_get() -> object_store::signer::Method {
    object_store::signer::Method::GET
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_are_parsed() {
        let cases = [
            ("bytes=0-99", Some(ByteRange::Bounded { start: 0, end_inclusive: 99 })),
            ("bytes=100-", Some(ByteRange::From(100))),
            ("bytes=-500", Some(ByteRange::Last(500))),
            ("bytes=5-1", None),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=x-1", None),
        ];
        for (header, expected) in cases {
            assert_eq!(ByteRange::parse(header), expected, "{header}");
        }
    }
}
