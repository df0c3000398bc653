//! Workspace files, reached from the host.
//!
//! The workspace is written by untrusted code, which can plant symbolic
//! links (`out.txt -> /etc/shadow`) or swap a folder for a link while the
//! host works in it. So the host never resolves a workspace path the usual
//! way: every open goes through `openat2` from the workspace's own folder
//! with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, which the kernel refuses as
//! soon as any step would leave the workspace or pass through a link — with
//! no window between a check and a use.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use cairn_core::sandbox::{EntryKind, SandboxError, SandboxResult, WorkspaceEntry};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use time::OffsetDateTime;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Entries one listing returns at most.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// The longest workspace path accepted.
const MAX_PATH: usize = 4096;

/// A path relative to the workspace root: `/workspace/a/b`, `a/b` and
/// `./a//b` all become `a/b`; `""` is the root. `..`, NUL and absolute paths
/// elsewhere are refused.
pub(crate) fn clean(path: &str) -> SandboxResult<String> {
    let invalid = |why: &str| SandboxError::InvalidPath(format!("{path:?}: {why}"));
    if path.len() > MAX_PATH {
        return Err(invalid("too long"));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL character"));
    }
    let relative = match path.strip_prefix('/') {
        None => path,
        Some(rest) => match rest.strip_prefix("workspace") {
            Some(tail) if tail.is_empty() || tail.starts_with('/') => tail,
            _ => return Err(invalid("absolute paths must be under /workspace")),
        },
    };
    let mut parts = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("`..` is not allowed")),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

fn error(errno: Errno, path: &str) -> SandboxError {
    match errno {
        Errno::LOOP | Errno::XDEV => {
            SandboxError::InvalidPath(format!("{path:?} passes through a symbolic link or leaves the workspace"))
        }
        Errno::NOENT => SandboxError::NoSuchPath(path.to_owned()),
        Errno::NOTDIR => SandboxError::InvalidPath(format!("{path:?}: a part of it is not a folder")),
        Errno::ISDIR => SandboxError::InvalidPath(format!("{path:?} is a folder")),
        Errno::NOSPC | Errno::DQUOT => SandboxError::WorkspaceFull("the host's disk is full".into()),
        other => SandboxError::Internal(format!("{path:?}: {other}")),
    }
}

fn open_root(root: &Path) -> SandboxResult<OwnedFd> {
    rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| match e {
            Errno::NOENT => SandboxError::NotFound,
            other => SandboxError::Internal(format!("cannot open the workspace: {other}")),
        })
}

/// `.` for the root (an empty relative path).
fn dot(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

fn open_beneath<P: rustix::path::Arg>(dir: impl AsFd, path: P, flags: OFlags, shown: &str) -> SandboxResult<OwnedFd> {
    // openat2 wants no mode unless it creates.
    let mode = if flags.contains(OFlags::CREATE) { Mode::from_bits_truncate(0o644) } else { Mode::empty() };
    rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, mode, RESOLVE)
        .map_err(|e| error(e, shown))
}

fn open_dir<P: rustix::path::Arg>(dir: impl AsFd, path: P, shown: &str) -> SandboxResult<OwnedFd> {
    open_beneath(dir, path, OFlags::DIRECTORY | OFlags::RDONLY, shown)
}

fn kind_of(mode: u32) -> EntryKind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Directory,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn entry(path: String, stat: &rustix::fs::Stat) -> WorkspaceEntry {
    let kind = kind_of(stat.st_mode);
    WorkspaceEntry {
        path,
        kind,
        size: if kind == EntryKind::File { u64::try_from(stat.st_size).unwrap_or(0) } else { 0 },
        modified: OffsetDateTime::from_unix_timestamp(stat.st_mtime).ok(),
    }
}

/// The names in a folder (without `.` and `..`).
fn names(dir: &OwnedFd) -> SandboxResult<Vec<std::ffi::CString>> {
    let mut reader = Dir::read_from(dir).map_err(|e| error(e, "folder"))?;
    let mut names = Vec::new();
    while let Some(item) = reader.read() {
        let item = item.map_err(|e| error(e, "folder"))?;
        let name = item.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn join(prefix: &str, name: &std::ffi::CStr) -> String {
    let name = name.to_string_lossy();
    if prefix.is_empty() { name.into_owned() } else { format!("{prefix}/{name}") }
}

/// The entries of a folder, and of every folder below it when `recursive`.
pub(crate) fn list(root: &Path, dir: &str, recursive: bool) -> SandboxResult<Vec<WorkspaceEntry>> {
    let root = open_root(root)?;
    let start = open_dir(&root, dot(dir), dir)?;
    let mut found = Vec::new();
    walk(&start, dir, recursive, &mut found)?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn walk(dir: &OwnedFd, prefix: &str, recursive: bool, found: &mut Vec<WorkspaceEntry>) -> SandboxResult<()> {
    for name in names(dir)? {
        let path = join(prefix, &name);
        let Ok(stat) = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // removed meanwhile
        };
        if found.len() >= MAX_ENTRIES {
            return Err(SandboxError::TooLarge(format!("more than {MAX_ENTRIES} entries; list a folder further down")));
        }
        let listed = entry(path.clone(), &stat);
        let descend = recursive && listed.kind == EntryKind::Directory;
        found.push(listed);
        if descend && let Ok(sub) = open_dir(dir, name.as_c_str(), &path) {
            walk(&sub, &path, true, found)?;
        }
    }
    Ok(())
}

/// Bytes the workspace occupies on disk (allocated blocks, so sparse files
/// count for what they use). Best effort: what vanishes meanwhile is skipped.
pub(crate) fn usage(root: &Path) -> u64 {
    fn sum(dir: &OwnedFd) -> u64 {
        let Ok(names) = names(dir) else { return 0 };
        names
            .iter()
            .filter_map(|name| {
                let stat = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
                let own = u64::try_from(stat.st_blocks).unwrap_or(0) * 512;
                let below = match kind_of(stat.st_mode) {
                    EntryKind::Directory => open_dir(dir, name.as_c_str(), "").map(|sub| sum(&sub)).unwrap_or(0),
                    _ => 0,
                };
                Some(own + below)
            })
            .sum()
    }
    open_root(root).map(|fd| sum(&fd)).unwrap_or(0)
}

/// [`usage`] off the async runtime.
pub(crate) async fn usage_of(root: &Path) -> u64 {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || usage(&root)).await.unwrap_or(0)
}

/// One entry, not following a link at its end.
pub(crate) fn stat(root: &Path, path: &str) -> SandboxResult<WorkspaceEntry> {
    let root = open_root(root)?;
    let (parent, name) = split(path)?;
    let dir = open_dir(&root, dot(parent), path)?;
    let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| error(e, path))?;
    Ok(entry(path.to_owned(), &stat))
}

fn split(path: &str) -> SandboxResult<(&str, &str)> {
    if path.is_empty() {
        return Err(SandboxError::InvalidPath("the workspace root is a folder, not a file".into()));
    }
    Ok(path.rsplit_once('/').unwrap_or(("", path)))
}

/// A regular file, open for reading.
pub(crate) fn open_file(root: &Path, path: &str) -> SandboxResult<std::fs::File> {
    let root = open_root(root)?;
    // NONBLOCK: opening a FIFO the code planted must not hang the host.
    let fd = open_beneath(&root, path, OFlags::RDONLY | OFlags::NONBLOCK, path)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| error(e, path))?;
    if kind_of(stat.st_mode) != EntryKind::File {
        return Err(SandboxError::InvalidPath(format!("{path:?} is not a regular file")));
    }
    Ok(std::fs::File::from(fd))
}

/// A file being written: bytes go to a hidden temporary file beside the
/// target, which replaces the target only on [`Upload::commit`]. Dropped
/// uncommitted, it removes the temporary file: a failed upload leaves the old
/// file or nothing.
#[derive(Debug)]
pub(crate) struct Upload {
    parent: OwnedFd,
    temp: String,
    name: String,
    committed: bool,
}

impl Upload {
    /// Creates the folders on the way and the temporary file; returns the
    /// upload and the file to write to, and the size of the file it replaces.
    pub(crate) fn begin(root: &Path, path: &str) -> SandboxResult<(Upload, std::fs::File, u64)> {
        let root = open_root(root)?;
        // What the host creates belongs to the workspace's owner (a
        // container's user, when Cairn runs as root).
        let owner = rustix::fs::fstat(&root).map_err(|e| error(e, "."))?;
        let adopt = |fd: &OwnedFd| {
            if owner.st_uid != rustix::process::getuid().as_raw() {
                let _ = rustix::fs::fchown(
                    fd,
                    Some(rustix::fs::Uid::from_raw(owner.st_uid)),
                    Some(rustix::fs::Gid::from_raw(owner.st_gid)),
                );
            }
        };
        let (parent_path, name) = split(path)?;
        let mut dir = root;
        let mut walked = String::new();
        for part in parent_path.split('/').filter(|p| !p.is_empty()) {
            walked = if walked.is_empty() { part.to_owned() } else { format!("{walked}/{part}") };
            let created = match rustix::fs::mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(error(e, &walked)),
            };
            dir = open_dir(&dir, part, &walked)?;
            if created {
                adopt(&dir);
            }
        }
        let replaced = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if kind_of(stat.st_mode) == EntryKind::Directory => {
                return Err(SandboxError::InvalidPath(format!("{path:?} is a folder")));
            }
            Ok(stat) => u64::try_from(stat.st_blocks).unwrap_or(0) * 512,
            Err(_) => 0,
        };
        let temp = format!(".cairn-upload-{}", uuid::Uuid::now_v7().simple());
        let file = open_beneath(&dir, &temp, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, path)?;
        adopt(&file);
        let upload = Upload { parent: dir, temp, name: name.to_owned(), committed: false };
        Ok((upload, std::fs::File::from(file), replaced))
    }

    /// Puts the written file in place (replacing a file or link of that name).
    pub(crate) fn commit(mut self) -> SandboxResult<()> {
        rustix::fs::renameat(&self.parent, self.temp.as_str(), &self.parent, self.name.as_str())
            .map_err(|e| error(e, &self.name))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.parent, self.temp.as_str(), AtFlags::empty());
        }
    }
}

/// Deletes a file, link, or folder with everything in it.
pub(crate) fn delete(root: &Path, path: &str) -> SandboxResult<()> {
    let root = open_root(root)?;
    let (parent_path, name) = split(path)?;
    let parent = open_dir(&root, dot(parent_path), path)?;
    let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| error(e, path))?;
    if kind_of(stat.st_mode) == EntryKind::Directory {
        let name = std::ffi::CString::new(name).map_err(|_| SandboxError::InvalidPath(path.to_owned()))?;
        remove_tree(&parent, &name, path)
    } else {
        rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(|e| error(e, path))
    }
}

fn remove_tree(parent: &OwnedFd, name: &std::ffi::CStr, shown: &str) -> SandboxResult<()> {
    let dir = open_dir(parent, name, shown)?;
    for entry in names(&dir)? {
        let is_dir = rustix::fs::statat(&dir, entry.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|s| kind_of(s.st_mode) == EntryKind::Directory)
            .unwrap_or(false);
        if is_dir {
            remove_tree(&dir, entry.as_c_str(), shown)?;
        } else {
            match rustix::fs::unlinkat(&dir, entry.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(error(e, shown)),
            }
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| error(e, shown))
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean("/workspace").unwrap(), "");
        assert_eq!(clean("/workspace/a//b/./c").unwrap(), "a/b/c");
        assert_eq!(clean("./a/b").unwrap(), "a/b");
        assert_eq!(clean("").unwrap(), "");
        for bad in ["/etc/passwd", "/workspaces/x", "a/../../etc", "..", "a\0b"] {
            assert!(clean(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
