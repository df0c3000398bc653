//! The object store behind the library, chosen by `files.store_url`.

use std::path::Path as FsPath;
use std::sync::Arc;

use cairn_config::{FilesConfig, LinkMode};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore};

use crate::gcs::GcsJson;
use crate::{Error, Result};

/// Google's JSON API.
const GCS_API: &str = "https://storage.googleapis.com";

/// Where contents are stored, and how download links are made for them.
#[derive(Debug, Clone)]
pub struct Objects {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The cloud's own presigning; `None` for local storage, an emulator or
    /// `files.links = "gateway"`: the gateway signs and serves those links.
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
            return Ok(Objects::new(s3.clone(), Some(s3), "s3", config.links));
        }
        let (store, signer, kind): (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>, _) = if url.starts_with("gs://") {
            let bucket = url.trim_start_matches("gs://").split('/').next().unwrap_or_default();
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url).with_client_options(client);
            if !config.gcs_service_account.is_empty() {
                builder = builder.with_service_account_path(&config.gcs_service_account);
            }
            // An endpoint without a service account is an emulator: no
            // credentials, and links signed by Cairn.
            let anonymous = !config.gcs_endpoint.is_empty() && config.gcs_service_account.is_empty();
            let base = if config.gcs_endpoint.is_empty() { GCS_API } else { config.gcs_endpoint.as_str() };
            if anonymous {
                let store = GcsJson::new(base, bucket, None, config.allow_http).map_err(storage)?;
                (Arc::new(store), None, "gcs")
            } else {
                let signing = Arc::new(builder.build().map_err(storage)?);
                let credentials = Some(signing.credentials().clone());
                let store = GcsJson::new(base, bucket, credentials, config.allow_http).map_err(storage)?;
                (Arc::new(store), Some(signing), "gcs")
            }
        } else {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url).with_client_options(client);
            if !config.azure_account.is_empty() {
                builder = builder.with_account(&config.azure_account);
            }
            if !config.azure_access_key.is_empty() {
                builder = builder.with_access_key(config.azure_access_key.expose());
            }
            if !config.azure_endpoint.is_empty() {
                builder = builder.with_endpoint(config.azure_endpoint.clone());
            }
            let azure = Arc::new(builder.build().map_err(storage)?);
            (azure.clone(), Some(azure), "azure")
        };
        Ok(Objects::new(store, signer, kind, config.links))
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        kind: &'static str,
        links: LinkMode,
    ) -> Objects {
        let signer = signer.filter(|_| links == LinkMode::Auto);
        Objects { store, signer, kind }
    }

    /// The underlying store, for tools and tests that look at raw objects.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Whether download links are the store's own presigned ones (else
    /// Cairn signs them and the gateway serves them).
    pub fn signs_links(&self) -> bool {
        self.signer.is_some()
    }

    /// `local`, `s3`, `gcs` or `azure`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}
