//! Cairn's file service: each project's library of files — uploaded by
//! people or saved by the agent — with versions, folders, zip downloads and
//! time-limited download links. Contents live in an object store (a local
//! folder, S3 and compatibles, GCS, Azure) through `object_store`; metadata
//! and lineage live in the database.
//!
//! Architecture invariant: every call that names a project goes through
//! `Auth::authorize` first (the artifact API, used by the agent's own
//! runs, is the one exception, and takes no caller). A file's object is
//! immutable: a new upload is a new object and a new version; renaming and
//! moving touch only metadata.

mod error;
mod gcs;
mod links;
mod objects;
pub mod paths;
mod service;
mod sniff;

pub use error::{Error, Result};
pub use links::link_secret;
pub use objects::Objects;
pub use service::{ByteRange, Download, Files, Link, Listing, ZipPart};
