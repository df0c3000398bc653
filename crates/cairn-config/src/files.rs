//! `[files]`: the object store behind project files, limits and links.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Where file contents live: empty for a folder `objects` in the data dir,
    /// `file:///path`, `s3://bucket[/prefix]`, `gs://bucket`, `az://container`.
    /// Cloud credentials come from the usual `AWS_*`, `GOOGLE_*`, `AZURE_*`
    /// environment variables or the keys below.
    pub store_url: String,
    /// S3-compatible endpoint (MinIO and the like), e.g. `http://127.0.0.1:9000`.
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: Secret,
    pub s3_secret_access_key: Secret,
    /// `true` for path-style requests (most S3-compatible servers).
    pub s3_path_style: bool,
    /// Allow plain-HTTP endpoints (a local MinIO); never for the internet.
    pub allow_http: bool,
    /// GCS JSON API endpoint; empty: Google's. Set with no service account
    /// to reach an emulator without credentials.
    pub gcs_endpoint: String,
    /// Path of a GCS service account key (JSON); empty: `GOOGLE_*` or the
    /// metadata server.
    pub gcs_service_account: String,
    /// Azure storage account name; empty: `AZURE_STORAGE_ACCOUNT_NAME`.
    pub azure_account: String,
    pub azure_access_key: Secret,
    /// Azure Blob endpoint (Azurite: `http://127.0.0.1:10000/devstoreaccount1`);
    /// empty: the account's own.
    pub azure_endpoint: String,
    /// How download links are made: `auto` (signed by the cloud store when it
    /// can sign, else by Cairn) or `gateway` (always signed by Cairn and
    /// served through it, for buckets browsers cannot reach).
    pub links: LinkMode,
    /// Largest single upload, in bytes.
    pub max_upload_bytes: u64,
    /// Bytes a project may store, every version counted.
    pub project_quota_bytes: u64,
    /// Default lifetime of a download link, in seconds (at most `link_max_ttl_secs`).
    pub link_ttl_secs: u64,
    /// Longest lifetime a download link may ask for (at most 3600).
    pub link_max_ttl_secs: u64,
    /// HMAC key (base64url, ≥32 bytes) for links to locally stored files;
    /// empty: generated on first start and kept in the data dir.
    pub link_signing_key: Secret,
}

/// `files.links`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// The cloud store's own presigned links where it can sign them.
    #[default]
    Auto,
    /// Links signed by Cairn and served by the gateway, on every store.
    Gateway,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            store_url: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: Secret::default(),
            s3_secret_access_key: Secret::default(),
            s3_path_style: false,
            allow_http: false,
            gcs_endpoint: String::new(),
            gcs_service_account: String::new(),
            azure_account: String::new(),
            azure_access_key: Secret::default(),
            azure_endpoint: String::new(),
            links: LinkMode::Auto,
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            project_quota_bytes: 100 * 1024 * 1024 * 1024,
            link_ttl_secs: 300,
            link_max_ttl_secs: 3600,
            link_signing_key: Secret::default(),
        }
    }
}

impl FilesConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let store_ok = ["", "file://", "s3://", "gs://", "az://", "azure://", "abfs://"].iter().any(|scheme| {
            if scheme.is_empty() { self.store_url.is_empty() } else { self.store_url.starts_with(scheme) }
        });
        if !store_ok {
            return Err(Error::Invalid {
                key: "files.store_url",
                expected: "empty (a folder in the data dir), file://, s3://, gs:// or az:// URL",
                got: self.store_url.clone(),
            });
        }
        if self.link_max_ttl_secs == 0 || self.link_max_ttl_secs > 3600 {
            return Err(Error::Invalid {
                key: "files.link_max_ttl_secs",
                expected: "1 to 3600 seconds",
                got: self.link_max_ttl_secs.to_string(),
            });
        }
        if self.link_ttl_secs == 0 || self.link_ttl_secs > self.link_max_ttl_secs {
            return Err(Error::Invalid {
                key: "files.link_ttl_secs",
                expected: "at least 1 second and at most files.link_max_ttl_secs",
                got: self.link_ttl_secs.to_string(),
            });
        }
        if self.max_upload_bytes == 0 || self.project_quota_bytes == 0 {
            return Err(Error::Invalid {
                key: "files.max_upload_bytes",
                expected: "upload and quota limits of at least 1 byte",
                got: format!("{} / {}", self.max_upload_bytes, self.project_quota_bytes),
            });
        }
        Ok(())
    }
}
