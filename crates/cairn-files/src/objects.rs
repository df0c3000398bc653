//! The object store behind the library, chosen by `files.store_url`.

use std::path::Path as FsPath;
use std::sync::Arc;

use cairn_config::FilesConfig;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore};

use crate::{Error, Result};

/// Where contents are stored, and how download links are made for them.
#[derive(Debug, Clone)]
pub struct Objects {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The cloud's own presigning; `None` for local storage, whose links the
    /// gateway signs and serves.
    pub(crate) signer: Option<Arc<dyn Signer>>,
    kind: &'static str,
}

impl Objects {
    /// Opens the store the configuration names; a local folder is created.
    pub fn from_config(config: &FilesConfig, data_dir: &FsPath) -> Result<Objects> {
        let url = config.store_url.as_str();
        let storage = |e: object_store::Error| Error::Storage(e.to_string());
        let client = ClientOptions::new().with_allow_http(config.allow_http);
        if url.is_empty() || url.starts_with("file://") {
            let root = match url.strip_prefix("file://") {
                Some(path) => std::path::PathBuf::from(path),
                None => data_dir.join("objects"),
            };
            std::fs::create_dir_all(&root).map_err(|e| Error::Storage(format!("{}: {e}", root.display())))?;
            let local = LocalFileSystem::new_with_prefix(&root).map_err(storage)?;
            return Ok(Objects { store: Arc::new(local), signer: None, kind: "local" });
        }
        if url.starts_with("s3://") {
            let mut builder = AmazonS3Builder::from_env().with_url(url).with_client_options(client);
            if !config.s3_region.is_empty() {
                builder = builder.with_region(&config.s3_region);
            }
            if !config.s3_endpoint.is_empty() {
                builder = builder.with_endpoint(&config.s3_endpoint);
            }
            if !config.s3_access_key_id.is_empty() {
                builder = builder
                    .with_access_key_id(config.s3_access_key_id.expose())
                    .with_secret_access_key(config.s3_secret_access_key.expose());
            }
            builder = builder.with_virtual_hosted_style_request(!config.s3_path_style);
            let s3 = Arc::new(builder.build().map_err(storage)?);
            return Ok(Objects { store: s3.clone(), signer: Some(s3), kind: "s3" });
        }
        if url.starts_with("gs://") {
            let gcs = Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_client_options(client)
                    .build()
                    .map_err(storage)?,
            );
            return Ok(Objects { store: gcs.clone(), signer: Some(gcs), kind: "gcs" });
        }
        let azure = Arc::new(
            MicrosoftAzureBuilder::from_env().with_url(url).with_client_options(client).build().map_err(storage)?,
        );
        Ok(Objects { store: azure.clone(), signer: Some(azure), kind: "azure" })
    }

    /// The underlying store, for tools and tests that look at raw objects.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `local`, `s3`, `gcs` or `azure`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}
