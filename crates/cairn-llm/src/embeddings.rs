//! Embeddings through an OpenAI-compatible `/embeddings` endpoint, for
//! project memory (`llm.embedding_model`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{LlmError, retry_after};

/// Texts sent in one request at most.
const BATCH: usize = 64;

/// An embedding model of a configured provider.
#[derive(Debug, Clone)]
pub struct Embedder {
    http: reqwest::Client,
    url: String,
    api_key: String,
    /// `provider/model`.
    pub id: String,
    model: String,
}

impl Embedder {
    /// The embedder `llm.embedding_model` names; `None` when it is empty.
    pub fn from_config(config: &cairn_config::LlmConfig) -> Result<Option<Embedder>, LlmError> {
        if config.embedding_model.is_empty() {
            return Ok(None);
        }
        let (provider_name, model) = config
            .embedding_model
            .split_once('/')
            .ok_or_else(|| LlmError::UnknownModel(config.embedding_model.clone()))?;
        let provider = config
            .providers
            .iter()
            .find(|p| p.name == provider_name && p.kind != "anthropic")
            .ok_or_else(|| LlmError::UnknownModel(config.embedding_model.clone()))?;
        let base = if provider.base_url.is_empty() { "https://api.openai.com/v1" } else { &provider.base_url };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| LlmError::Connection(e.to_string()))?;
        Ok(Some(Embedder {
            http,
            url: format!("{}/embeddings", base.trim_end_matches('/')),
            api_key: provider.api_key.expose().to_owned(),
            id: config.embedding_model.clone(),
            model: model.to_owned(),
        }))
    }

    /// One vector per text, in order; retried once on 429, 5xx and
    /// connection errors.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let mut attempt = 0;
            loop {
                match self.request(batch).await {
                    Ok(mut got) => {
                        vectors.append(&mut got);
                        break;
                    }
                    Err(error) if error.retryable() && attempt == 0 => {
                        attempt += 1;
                        let wait = match &error {
                            LlmError::RateLimited { retry_after: Some(after) } => (*after).min(Duration::from_secs(10)),
                            _ => Duration::from_millis(500),
                        };
                        tokio::time::sleep(wait).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(vectors)
    }

    async fn request(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut request = self.http.post(&self.url).json(&json!({ "model": self.model, "input": batch }));
        if !self.api_key.is_empty() {
            request = request.bearer_auth(&self.api_key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() { LlmError::Timeout(e.to_string()) } else { LlmError::Connection(e.to_string()) }
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            let after = retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            return Err(LlmError::from_status(status, after, &body, &self.model));
        }
        let body: Value = response.json().await.map_err(|e| LlmError::Protocol(e.to_string()))?;
        let mut data: Vec<(usize, Vec<f32>)> = body["data"]
            .as_array()
            .ok_or_else(|| LlmError::Protocol("no `data` list in the embeddings answer".into()))?
            .iter()
            .enumerate()
            .map(|(n, item)| {
                let index = item["index"].as_u64().map_or(n, |i| i as usize);
                let vector = item["embedding"]
                    .as_array()
                    .map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32).collect())
                    .unwrap_or_default();
                (index, vector)
            })
            .collect();
        data.sort_by_key(|(index, _)| *index);
        if data.len() != batch.len() || data.iter().any(|(_, v)| v.is_empty()) {
            return Err(LlmError::Protocol(format!("{} texts sent, {} embeddings received", batch.len(), data.len())));
        }
        Ok(data.into_iter().map(|(_, v)| v).collect())
    }
}
