//! `[tools]`: the agent's web access, search and browser.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret, refuse_zero};

/// The agent's tools: web access, search, the browser.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// How long one web request may take, in seconds.
    pub fetch_timeout_secs: u64,
    /// The largest page or file a web tool reads, in MiB.
    pub fetch_max_mb: u64,
    /// Exact `address:port` pairs the web tools and the browser may reach
    /// although they are private (an intranet site); everything else private,
    /// loopback, link-local or metadata is refused.
    pub allow_private: Vec<SocketAddr>,
    /// `""` (no web search), `brave` (the Brave Search API) or `searxng`.
    pub search_provider: String,
    /// SearXNG's base URL; for `brave`, another endpoint (empty: Brave's own).
    pub search_url: String,
    /// The Brave Search API subscription token.
    pub search_api_key: Secret,
    /// The Chromium executable; empty: `chromium` (or `chromium-browser`,
    /// `google-chrome`) on the PATH.
    pub browser_path: String,
    /// A browser context unused this long is closed, in seconds.
    pub browser_idle_secs: u64,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            fetch_timeout_secs: 30,
            fetch_max_mb: 20,
            allow_private: Vec::new(),
            search_provider: String::new(),
            search_url: String::new(),
            search_api_key: Secret::default(),
            browser_path: String::new(),
            browser_idle_secs: 600,
        }
    }
}

impl ToolsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([
            ("tools.fetch_timeout_secs", self.fetch_timeout_secs, "at least 1"),
            ("tools.fetch_max_mb", self.fetch_max_mb, "at least 1"),
            ("tools.browser_idle_secs", self.browser_idle_secs, "at least 1"),
        ])?;
        match self.search_provider.as_str() {
            "" => {}
            "brave" if !self.search_api_key.is_empty() => {}
            "searxng" if self.search_url.starts_with("http://") || self.search_url.starts_with("https://") => {}
            other => {
                return Err(Error::Invalid {
                    key: "tools.search_provider",
                    expected: "empty, `brave` (with tools.search_api_key) or `searxng` (with an http(s) tools.search_url)",
                    got: other.to_owned(),
                });
            }
        }
        Ok(())
    }
}
