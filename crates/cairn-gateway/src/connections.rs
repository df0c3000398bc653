//! Model connections administrators make in the app: add, test, edit,
//! disable and remove providers (kind, base URL, key, models and prices).
//! Keys are sealed by the auth crate's key ring before they are stored and never
//! leave the server (the last four characters are shown); every change is in
//! the audit log and reaches every process at once (the models are rebuilt
//! here and on a bus signal elsewhere). Providers from the configuration
//! file (and those a first run found in the environment) are listed too,
//! read-only.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use cairn_auth::KeyRing;
use cairn_config::{LlmConfig, LlmModel, LlmProvider};
use cairn_core::ConnectionId;
use cairn_core::bus::Bus;
use cairn_core::model::{ModelConnection, ModelConnectionUpdate, NewModelConnection};
use cairn_core::store::Store;
use cairn_llm::{ChatRequest, Message, Models};
use futures::StreamExt;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::wire::connections::{
    ConnectionModel, ConnectionRequest, ConnectionResponse, ConnectionTestResponse, ConnectionUpdate, key_hint,
};
use crate::{ApiError, ApiJson, AppState, Problem};

/// The bus topic on which a process announces that connections changed.
const TOPIC: &str = "llm.connections";
const KINDS: [&str; 4] = ["openai", "anthropic", "azure-openai", "openai-compatible"];

/// The connections, the key ring that seals their keys, and the models they
/// make. Cheap to clone.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: KeyRing,
    models: Arc<Models>,
    /// The configuration's providers (read-only here) and LLM settings.
    file: LlmConfig,
    bus: Bus,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("file_providers", &self.inner.file.providers.len()).finish_non_exhaustive()
    }
}

/// Why the stored connections cannot become models.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionsError {
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
    #[error("a stored provider key cannot be opened: {0}")]
    Key(String),
    #[error(transparent)]
    Models(#[from] cairn_llm::LlmError),
}

impl Connections {
    /// `file` is the LLM configuration as loaded (with what a first run
    /// found); `models` the registry the agent shares.
    pub fn new(file: LlmConfig, store: Arc<dyn Store>, keys: KeyRing, models: Arc<Models>, bus: Bus) -> Connections {
        Connections { inner: Arc::new(Inner { store, keys, models, file, bus }) }
    }

    /// The configuration's providers and the enabled stored connections,
    /// with their keys opened.
    async fn llm_config(&self) -> Result<LlmConfig, ConnectionsError> {
        let mut config = self.inner.file.clone();
        // A compatible server configured without models offers what it lists.
        for provider in config.providers.iter_mut().filter(|p| p.models.is_empty()) {
            match cairn_llm::discover::server_models(&provider.base_url, provider.api_key.expose()).await {
                Some(names) => {
                    provider.models = names.into_iter().map(|name| LlmModel { name, ..Default::default() }).collect();
                }
                None => tracing::warn!(
                    provider = %provider.name,
                    "the provider lists no models at {}/models; none of its models can be used",
                    provider.base_url
                ),
            }
        }
        for connection in self.inner.store.connections().await? {
            if !connection.enabled {
                continue;
            }
            config.providers.push(self.provider(&connection)?);
        }
        if !config.default_model.is_empty()
            && !config
                .providers
                .iter()
                .any(|p| p.models.iter().any(|m| format!("{}/{}", p.name, m.name) == config.default_model))
        {
            config.default_model.clear();
        }
        Ok(config)
    }

    fn provider(&self, connection: &ModelConnection) -> Result<LlmProvider, ConnectionsError> {
        let api_key = match &connection.key_ciphertext {
            Some(sealed) => {
                let opened = self.inner.keys.open(sealed).map_err(|e| ConnectionsError::Key(e.to_string()))?;
                String::from_utf8(opened).map_err(|e| ConnectionsError::Key(e.to_string()))?
            }
            None => String::new(),
        };
        Ok(LlmProvider {
            name: connection.name.clone(),
            kind: connection.kind.clone(),
            base_url: connection.base_url.clone(),
            api_key: api_key.into(),
            api_version: connection.api_version.clone(),
            models: serde_json::from_value(connection.models.clone()).unwrap_or_default(),
        })
    }

    /// Rebuilds the models from the configuration and the stored connections.
    pub async fn reload(&self) -> Result<(), ConnectionsError> {
        let config = self.llm_config().await?;
        self.inner.models.replace(Models::from_config(&config)?);
        Ok(())
    }

    /// Seals again, under the ring's first key, every key sealed under
    /// another (after a rotation); how many.
    pub async fn reseal(&self) -> Result<usize, ConnectionsError> {
        let mut resealed = 0;
        for connection in self.inner.store.connections().await? {
            let Some(sealed) = connection.key_ciphertext.filter(|s| self.inner.keys.needs_reseal(s)) else { continue };
            let opened = self.inner.keys.open(&sealed).map_err(|e| ConnectionsError::Key(e.to_string()))?;
            let again = self.inner.keys.seal(&opened).map_err(|e| ConnectionsError::Key(e.to_string()))?;
            self.inner.store.reseal_connection_key(connection.id, again).await?;
            resealed += 1;
        }
        Ok(resealed)
    }

    /// Reloads whenever another process announces a change (needs a runtime).
    pub fn listen(&self) {
        let connections = self.clone();
        tokio::spawn(async move {
            let mut changes = match connections.inner.bus.pubsub.subscribe(TOPIC).await {
                Ok(changes) => changes,
                Err(error) => {
                    tracing::warn!(%error, "model connections changed elsewhere will not be seen here");
                    return;
                }
            };
            while changes.next().await.is_some() {
                if let Err(error) = connections.reload().await {
                    tracing::error!(%error, "the models could not be rebuilt after a connection changed");
                }
            }
        });
    }

    /// After a change: the models here at once, and everywhere else.
    async fn changed(&self) -> Result<(), ApiError> {
        self.reload().await.map_err(|error| {
            tracing::error!(%error, "the models could not be rebuilt after a connection changed");
            ApiError::Internal
        })?;
        if let Err(error) = self.inner.bus.pubsub.publish(TOPIC, Bytes::from_static(b"changed")).await {
            tracing::warn!(%error, "other processes were not told that a connection changed");
        }
        Ok(())
    }

    fn seal(&self, key: &str) -> Result<(Vec<u8>, String), ApiError> {
        Ok((self.seal_secret(key)?, key_hint(key)))
    }

    /// A secret sealed by the key ring (for other records that keep secrets:
    /// MCP servers' credentials).
    pub(crate) fn seal_secret(&self, secret: &str) -> Result<Vec<u8>, ApiError> {
        self.inner.keys.seal(secret.as_bytes()).map_err(|error| {
            tracing::error!(%error, "a secret could not be sealed");
            ApiError::Internal
        })
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(list_connections, create_connection)))
        .routes(crate::v1(routes!(update_connection, delete_connection)))
        .routes(crate::v1(routes!(test_connection)))
}

impl From<&ConnectionModel> for LlmModel {
    fn from(m: &ConnectionModel) -> Self {
        LlmModel {
            name: m.name.trim().to_owned(),
            input_usd_per_mtok: m.input_usd_per_mtok,
            output_usd_per_mtok: m.output_usd_per_mtok,
            ..Default::default()
        }
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid { code: "invalid_input", detail: detail.into() }
}

fn check_base_url(kind: &str, base_url: &str) -> Result<(), ApiError> {
    let needed = matches!(kind, "azure-openai" | "openai-compatible");
    if base_url.is_empty() && needed {
        return Err(invalid(format!("a {kind} connection needs a base URL")));
    }
    if !(base_url.is_empty() || base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(invalid("the base URL must start with http:// or https://"));
    }
    if base_url.chars().count() > 500 {
        return Err(invalid("the base URL is longer than 500 characters"));
    }
    Ok(())
}

fn check_models(models: &[ConnectionModel]) -> Result<serde_json::Value, ApiError> {
    if models.is_empty() || models.len() > 100 {
        return Err(invalid("a connection has 1 to 100 models"));
    }
    for model in models {
        let name = model.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(invalid("each model needs a name of 1 to 200 characters"));
        }
        let prices = [model.input_usd_per_mtok, model.output_usd_per_mtok];
        if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0 || *p > 10_000.0) {
            return Err(invalid("prices are US dollars per million tokens, from 0 to 10000"));
        }
    }
    let models: Vec<LlmModel> = models.iter().map(LlmModel::from).collect();
    serde_json::to_value(models).map_err(|_| ApiError::Internal)
}

/// Every model connection: the configuration's (read-only) and the app's.
#[utoipa::path(get, path = "/admin/connections", tag = "admin", security(("oauth2" = [])), responses(
    (status = 200, description = "The connections", body = [ConnectionResponse]),
    (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
))]
async fn list_connections(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<ApiJson<Vec<ConnectionResponse>>, ApiError> {
    principal.require_admin()?;
    let mut listed: Vec<ConnectionResponse> =
        state.connections.inner.file.providers.iter().map(ConnectionResponse::from).collect();
    listed.extend(state.store.connections().await?.iter().map(ConnectionResponse::from));
    Ok(ApiJson(listed))
}

/// Connect a model provider. Its models are usable at once, on every process.
#[utoipa::path(post, path = "/admin/connections", tag = "admin", security(("oauth2" = [])),
    request_body = ConnectionRequest,
    responses(
        (status = 201, description = "The connection (its key never shown again)", body = ConnectionResponse),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_connection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddr(addr): ClientAddr,
    ApiJson(request): ApiJson<ConnectionRequest>,
) -> Result<(StatusCode, ApiJson<ConnectionResponse>), ApiError> {
    principal.require_admin()?;
    let name = request.name.trim().to_owned();
    let name_ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        return Err(invalid("the name has 1 to 40 lowercase letters, digits, `-` or `_`"));
    }
    if !KINDS.contains(&request.kind.as_str()) {
        return Err(invalid("the kind is openai, anthropic, azure-openai or openai-compatible"));
    }
    if state.connections.inner.file.providers.iter().any(|p| p.name == name) {
        return Err(ApiError::Conflict { entity: "a provider of that name in the configuration" });
    }
    let base_url = request.base_url.trim().trim_end_matches('/').to_owned();
    check_base_url(&request.kind, &base_url)?;
    let models = check_models(&request.models)?;
    let key = request.api_key.trim();
    let (key_ciphertext, key_hint) = match key {
        "" => (None, None),
        key => {
            let (sealed, hint) = state.connections.seal(key)?;
            (Some(sealed), Some(hint))
        }
    };
    let created = state
        .store
        .create_connection(NewModelConnection {
            name: name.clone(),
            kind: request.kind.clone(),
            base_url,
            api_version: request.api_version.trim().to_owned(),
            key_ciphertext,
            key_hint,
            models,
            enabled: request.enabled,
            created_by: principal.user.id,
        })
        .await?;
    crate::audit::record(
        &state,
        &principal,
        None,
        "model_connection.created",
        json!({ "name": name, "kind": request.kind }),
        &addr,
    )
    .await;
    state.connections.changed().await?;
    Ok((StatusCode::CREATED, ApiJson(ConnectionResponse::from(&created))))
}

/// Change a connection: its base URL, key, API version, models, or whether it is enabled.
#[utoipa::path(patch, path = "/admin/connections/{connection_id}", tag = "admin", security(("oauth2" = [])),
    params(("connection_id" = ConnectionId, Path)),
    request_body = ConnectionUpdate,
    responses(
        (status = 200, description = "The connection", body = ConnectionResponse),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_connection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<ConnectionId>,
    ApiJson(request): ApiJson<ConnectionUpdate>,
) -> Result<ApiJson<ConnectionResponse>, ApiError> {
    principal.require_admin()?;
    let current = state.store.connection(id).await?;
    let base_url = request.base_url.map(|u| u.trim().trim_end_matches('/').to_owned());
    check_base_url(&current.kind, base_url.as_deref().unwrap_or(&current.base_url))?;
    let models = request.models.as_deref().map(check_models).transpose()?;
    let key = match request.api_key.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(key) => Some(Some(state.connections.seal(key)?)),
    };
    let changed: Vec<&str> = [
        ("base_url", base_url.is_some()),
        ("api_key", key.is_some()),
        ("api_version", request.api_version.is_some()),
        ("models", models.is_some()),
        ("enabled", request.enabled.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let update = ModelConnectionUpdate {
        base_url,
        api_version: request.api_version.map(|v| v.trim().to_owned()),
        key,
        models,
        enabled: request.enabled,
    };
    let updated = state.store.update_connection(id, update).await?;
    crate::audit::record(
        &state,
        &principal,
        None,
        "model_connection.updated",
        json!({ "name": updated.name, "changed": changed, "enabled": updated.enabled }),
        &addr,
    )
    .await;
    state.connections.changed().await?;
    Ok(ApiJson(ConnectionResponse::from(&updated)))
}

/// Remove a connection; its models are gone at once.
#[utoipa::path(delete, path = "/admin/connections/{connection_id}", tag = "admin", security(("oauth2" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_connection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<ConnectionId>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    let current = state.store.connection(id).await?;
    state.store.delete_connection(id).await?;
    crate::audit::record(&state, &principal, None, "model_connection.removed", json!({ "name": current.name }), &addr)
        .await;
    state.connections.changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Try a connection with one tiny request to its first model; the answer
/// says what happened, in words.
#[utoipa::path(post, path = "/admin/connections/{connection_id}/test", tag = "admin", security(("oauth2" = [])),
    params(("connection_id" = ConnectionId, Path)),
    responses(
        (status = 200, description = "What happened (also when the provider refused)", body = ConnectionTestResponse),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn test_connection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<ConnectionId>,
) -> Result<ApiJson<ConnectionTestResponse>, ApiError> {
    principal.require_admin()?;
    let connection = state.store.connection(id).await?;
    let mut provider = state.connections.provider(&connection).map_err(|error| {
        tracing::error!(%error, "a provider key could not be opened");
        ApiError::Internal
    })?;
    provider.models.truncate(1);
    let model = provider.models.first().map(|m| m.name.clone()).unwrap_or_default();
    let id_text = format!("{}/{model}", provider.name);
    // One try, no retries: the administrator is waiting.
    let config = LlmConfig {
        providers: vec![provider],
        max_retries: 0,
        discover: false,
        ..state.connections.inner.file.clone()
    };
    let started = Instant::now();
    let outcome = match Models::from_config(&config) {
        Ok(models) => match models.get(Some(&id_text)) {
            Ok((client, _)) => {
                let request = ChatRequest {
                    model: model.clone(),
                    messages: vec![Message::user("Reply with the word OK.")],
                    max_tokens: 16,
                    ..ChatRequest::default()
                };
                client.complete(&request).await.map(|_| ())
            }
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ok, detail) = match outcome {
        Ok(()) => (true, format!("The model answered in {latency_ms} ms.")),
        Err(error) => (false, error.to_string()),
    };
    crate::audit::record(
        &state,
        &principal,
        None,
        "model_connection.tested",
        json!({ "name": connection.name, "ok": ok }),
        &addr,
    )
    .await;
    Ok(ApiJson(ConnectionTestResponse { ok, detail, model: id_text, latency_ms }))
}
