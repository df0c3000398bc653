//! Workspace snapshots in the object store: a zip of a sandbox's workspace
//! (deflate-compressed), written when the sandbox pauses and after an
//! execution that changed its files, and unpacked into a new sandbox with
//! the same id on another host when the first one is gone.
//!
//! A snapshot is taken only when the workspace changed since the last one
//! (a fingerprint of every path, size and modification time), so an
//! execution that only computes costs one walk of the folder, not an upload.

use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cairn_core::SandboxId;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Files up to this size are read whole and deflated at the fastest level;
/// larger ones are streamed at the default level.
const WHOLE_MAX: u64 = 64 << 20;

/// How big a snapshot was and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotStats {
    /// Files in the workspace.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The snapshot's bytes (compressed).
    pub stored_bytes: u64,
    pub seconds: f64,
}

/// Where snapshots go: an object store, under a prefix.
#[derive(Debug, Clone)]
pub struct Snapshots {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

type Failure = std::io::Error;

fn failure(error: impl std::fmt::Display) -> Failure {
    std::io::Error::other(error.to_string())
}

impl Snapshots {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Snapshots {
        Snapshots { store, prefix: prefix.trim_matches('/').to_owned() }
    }

    fn key(&self, id: SandboxId) -> ObjectPath {
        ObjectPath::from(format!("{}/{id}.zip", self.prefix))
    }

    /// Packs `workspace` into `scratch` (a file the caller may overwrite)
    /// and uploads it as the sandbox's snapshot, replacing the last one.
    pub async fn save(&self, id: SandboxId, workspace: &Path, scratch: &Path) -> Result<SnapshotStats, Failure> {
        let started = Instant::now();
        let root = workspace.to_owned();
        let files = tokio::task::spawn_blocking(move || list_files(&root)).await.map_err(failure)??;
        let (count, bytes) = pack(workspace, &files, scratch).await?;
        let stored_bytes = tokio::fs::metadata(scratch).await?.len();
        let upload = self.store.put_multipart(&self.key(id)).await.map_err(failure)?;
        let mut writer = WriteMultipart::new(upload);
        let mut file = tokio::fs::File::open(scratch).await?;
        let mut buffer = vec![0_u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]);
        }
        writer.finish().await.map_err(failure)?;
        let _ = tokio::fs::remove_file(scratch).await;
        Ok(SnapshotStats { files: count, bytes, stored_bytes, seconds: started.elapsed().as_secs_f64() })
    }

    /// Unpacks the sandbox's snapshot into `workspace` (through `scratch`);
    /// `None` when it has none. Entries that would land outside the
    /// workspace are refused.
    pub async fn restore(
        &self,
        id: SandboxId,
        workspace: &Path,
        scratch: &Path,
    ) -> Result<Option<SnapshotStats>, Failure> {
        let started = Instant::now();
        let object = match self.store.get(&self.key(id)).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(failure(error)),
        };
        let mut file = tokio::fs::File::create(scratch).await?;
        let mut chunks = object.into_stream();
        let mut stored_bytes = 0_u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(failure)?;
            stored_bytes += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        drop(file);
        let (files, bytes) = unpack(scratch, workspace).await?;
        let _ = tokio::fs::remove_file(scratch).await;
        Ok(Some(SnapshotStats { files, bytes, stored_bytes, seconds: started.elapsed().as_secs_f64() }))
    }

    /// Forgets the sandbox's snapshot (it was destroyed).
    pub async fn delete(&self, id: SandboxId) {
        match self.store.delete(&self.key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => tracing::warn!(sandbox = %id, %error, "cannot delete a workspace snapshot"),
        }
    }
}

/// A fingerprint of the workspace's paths, sizes and modification times:
/// equal fingerprints, nothing to snapshot.
pub fn fingerprint(workspace: &Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if let Ok(files) = list_files(workspace) {
        for (path, meta) in files {
            path.hash(&mut hasher);
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
            meta.is_dir().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// Every regular file and folder under `root` (relative paths, sorted);
/// symbolic links and special files are left out.
fn list_files(root: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, Failure> {
    let mut found = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(root.join(&folder)) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            let relative = folder.join(entry.file_name());
            if meta.is_dir() {
                folders.push(relative.clone());
                found.push((relative, meta));
            } else if meta.is_file() {
                found.push((relative, meta));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn entry_name(path: &Path, folder: bool) -> Option<String> {
    let name = path.to_str()?.replace('\\', "/");
    Some(if folder { format!("{name}/") } else { name })
}

async fn pack(root: &Path, files: &[(PathBuf, std::fs::Metadata)], scratch: &Path) -> Result<(u64, u64), Failure> {
    use async_zip::tokio::write::ZipFileWriter;
    use async_zip::{Compression, ZipEntryBuilder};
    let out = tokio::fs::File::create(scratch).await?;
    let mut zip = ZipFileWriter::with_tokio(tokio::io::BufWriter::new(out));
    let (mut count, mut bytes) = (0_u64, 0_u64);
    let mut buffer = vec![0_u8; 1 << 16];
    for (path, meta) in files {
        let Some(name) = entry_name(path, meta.is_dir()) else { continue };
        if meta.is_dir() {
            zip.write_entry_whole(ZipEntryBuilder::new(name.into(), Compression::Stored), &[])
                .await
                .map_err(failure)?;
            continue;
        }
        let mut source = match tokio::fs::File::open(root.join(path)).await {
            Ok(file) => file,
            // Deleted while we walked: it is simply not in this snapshot.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        // The first block decides: bytes that look random (an image, a
        // compressed or encrypted file) are stored as they are, the rest
        // deflated, at the fastest level for files up to WHOLE_MAX (read
        // whole; the library's streaming writer knows only its default).
        let first = source.read(&mut buffer).await?;
        let stored = looks_compressed(&buffer[..first]);
        if meta.len() <= WHOLE_MAX {
            let mut whole = buffer[..first].to_vec();
            source.read_to_end(&mut whole).await?;
            let builder = if stored {
                ZipEntryBuilder::new(name.into(), Compression::Stored)
            } else {
                ZipEntryBuilder::new(name.into(), Compression::Deflate)
                    .deflate_option(async_zip::DeflateOption::Other(1))
            };
            zip.write_entry_whole(builder, &whole).await.map_err(failure)?;
            bytes += whole.len() as u64;
            count += 1;
            continue;
        }
        let compression = if stored { Compression::Stored } else { Compression::Deflate };
        let mut entry =
            zip.write_entry_stream(ZipEntryBuilder::new(name.into(), compression)).await.map_err(failure)?;
        let mut n = first;
        while n > 0 {
            entry.write_all(&buffer[..n]).await?;
            bytes += n as u64;
            n = source.read(&mut buffer).await?;
        }
        entry.close().await.map_err(failure)?;
        count += 1;
    }
    let mut inner = zip.close().await.map_err(failure)?;
    inner.close().await?;
    Ok((count, bytes))
}

/// Whether a block's bytes are spread like compressed data's (over 7.5 bits
/// of entropy per byte), so deflating them would only cost time.
fn looks_compressed(block: &[u8]) -> bool {
    if block.len() < 1024 {
        return false;
    }
    let mut counts = [0_u32; 256];
    for byte in block {
        counts[usize::from(*byte)] += 1;
    }
    let total = block.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / total;
            -p * p.log2()
        })
        .sum();
    entropy > 7.5
}

/// The path an entry name stands for under the workspace, if it stays inside.
fn inside(workspace: &Path, name: &str) -> Option<PathBuf> {
    let relative = Path::new(name.trim_end_matches('/'));
    let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !name.trim_end_matches('/').is_empty()).then(|| workspace.join(relative))
}

async fn unpack(archive: &Path, workspace: &Path) -> Result<(u64, u64), Failure> {
    use async_zip::base::read1::seek::ZipArchiveReader;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let file = futures::io::BufReader::new(tokio::fs::File::open(archive).await?.compat());
    let mut zip = ZipArchiveReader::open(file).await.map_err(failure)?;
    tokio::fs::create_dir_all(workspace).await?;
    let names: Vec<String> = zip
        .cdrs()
        .iter()
        .map(|cdr| {
            cdr.insecure_file_name
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| failure("a file name in the snapshot is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    // Every name is checked before anything is written.
    if let Some(name) = names.iter().find(|name| inside(workspace, name).is_none()) {
        return Err(failure(format!("the snapshot holds a path outside the workspace: {name:?}")));
    }
    let (mut count, mut bytes) = (0_u64, 0_u64);
    let mut buffer = vec![0_u8; 1 << 16];
    for (index, name) in names.iter().enumerate() {
        let Some(target) = inside(workspace, name) else { continue };
        if name.ends_with('/') {
            tokio::fs::create_dir_all(&target).await?;
            continue;
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut out = tokio::fs::File::create(&target).await?;
        let mut entry = zip.file(index).await.map_err(failure)?;
        loop {
            let n = entry.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            out.write_all(&buffer[..n]).await?;
            bytes += n as u64;
        }
        out.flush().await?;
        count += 1;
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_look_compressed_and_text_does_not() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert!(looks_compressed(&noise));
        assert!(!looks_compressed("date,region,units\n2026-01-01,north,12\n".repeat(2000).as_bytes()));
        assert!(!looks_compressed(&noise[..100]), "too little to judge: deflated");
    }

    #[test]
    fn entry_names_stay_inside_the_workspace() {
        let root = Path::new("/w");
        assert_eq!(inside(root, "a/b.csv"), Some(PathBuf::from("/w/a/b.csv")));
        assert_eq!(inside(root, "a/"), Some(PathBuf::from("/w/a")));
        for hostile in ["../x", "a/../../x", "/etc/passwd", "", "/", "./a"] {
            assert_eq!(inside(root, hostile), None, "{hostile}");
        }
    }
}
