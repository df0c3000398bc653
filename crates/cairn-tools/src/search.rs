//! `web_search`: a pluggable search provider, configured by key or URL —
//! the Brave Search API (hosted) or a SearXNG instance. With none
//! configured, the tool says so plainly.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Args, Kind, Param, Tool, ToolContext, ToolError, ToolSpec};

/// The Brave Search API's web search endpoint.
pub const BRAVE_ENDPOINT: &str = "https://api.search.brave.com/res/v1/web/search";

/// Where searches go. The provider is the operator's choice, so it is
/// reached with a plain client (a SearXNG on the private network is fine).
#[derive(Debug, Clone)]
pub enum SearchProvider {
    /// The Brave Search API: `endpoint` (normally [`BRAVE_ENDPOINT`]) with
    /// the subscription token.
    Brave { endpoint: String, api_key: String, http: reqwest::Client },
    /// A SearXNG instance with the JSON format enabled.
    Searxng { base_url: String, http: reqwest::Client },
}

impl SearchProvider {
    /// The provider `tools.search_provider` names (`""`, `brave`, `searxng`).
    pub fn from_config(config: &cairn_config::ToolsConfig) -> Result<Option<SearchProvider>, ToolError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| ToolError::Unavailable(e.to_string()))?;
        Ok(match config.search_provider.as_str() {
            "" => None,
            "brave" => Some(SearchProvider::Brave {
                endpoint: if config.search_url.is_empty() {
                    BRAVE_ENDPOINT.to_owned()
                } else {
                    config.search_url.clone()
                },
                api_key: config.search_api_key.expose().to_owned(),
                http,
            }),
            "searxng" => Some(SearchProvider::Searxng { base_url: config.search_url.clone(), http }),
            other => return Err(ToolError::Unavailable(format!("unknown search provider `{other}`"))),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            SearchProvider::Brave { .. } => "Brave Search",
            SearchProvider::Searxng { .. } => "SearXNG",
        }
    }

    /// Up to `count` results, each {title, url, snippet}.
    pub async fn search(&self, query: &str, count: usize) -> Result<Vec<Value>, ToolError> {
        let count_text = count.to_string();
        let request = match self {
            SearchProvider::Brave { endpoint, api_key, http } => http
                .get(endpoint)
                .header("Accept", "application/json")
                .header("X-Subscription-Token", api_key)
                .query(&[("q", query), ("count", count_text.as_str())]),
            SearchProvider::Searxng { base_url, http } => http
                .get(format!("{}/search", base_url.trim_end_matches('/')))
                .query(&[("q", query), ("format", "json")]),
        };
        let failed = |why: String| ToolError::Failed(format!("{} failed: {why}", self.name()));
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.as_u16() == 429 {
            return Err(failed("the provider's rate limit was reached; try again shortly".into()));
        }
        if !status.is_success() {
            return Err(failed(format!("it answered {status}")));
        }
        let body: Value = response.json().await.map_err(|e| failed(format!("an answer that is not JSON ({e})")))?;
        let (items, snippet) = match self {
            SearchProvider::Brave { .. } => (&body["web"]["results"], "description"),
            SearchProvider::Searxng { .. } => (&body["results"], "content"),
        };
        Ok(items
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .take(count)
            .map(|item| json!({ "title": item["title"], "url": item["url"], "snippet": item[snippet] }))
            .collect())
    }
}

#[derive(Debug)]
pub(crate) struct WebSearch;

#[async_trait]
impl Tool for WebSearch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "web_search",
            description: "Search the web; returns a list of {title, url, snippet}.\n\nRead a result with \
                          web_fetch(url).",
            params: vec![
                Param::required("query", Kind::Str, "what to search for"),
                Param::optional("count", Kind::Int, "how many results (1 to 20)", json!(5)),
            ],
            returns: "list[dict]",
            timeout: Duration::from_secs(30),
            python_body: None,
        }
    }

    async fn run(&self, ctx: &ToolContext, args: Args) -> Result<Value, ToolError> {
        let Some(provider) = &ctx.services.search else {
            return Err(ToolError::Unavailable(
                "web search is not configured on this Cairn server (an administrator sets \
                 tools.search_provider to `brave` with tools.search_api_key, or to `searxng` with \
                 tools.search_url); use web_fetch on a known URL instead"
                    .into(),
            ));
        };
        let query = args.str("query")?;
        if query.trim().is_empty() {
            return Err(ToolError::Invalid("the query is empty".into()));
        }
        let count = args.int("count", 5).clamp(1, 20) as usize;
        Ok(Value::Array(provider.search(query, count).await?))
    }
}
