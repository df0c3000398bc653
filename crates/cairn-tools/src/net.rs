//! The one HTTP client of host-side network tools, guarded against
//! server-side request forgery: every destination must be a public address
//! (see [`cairn_core::net::is_public`]) unless the operator allowlisted that
//! exact address and port. The guard runs before each request and on every
//! redirect (followed by hand, one hop at a time), and again inside the
//! client's DNS resolver, so a name that resolves differently the second
//! time (DNS rebinding) still cannot reach a private address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::ToolError;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// A fetched response, read whole (up to the size cap).
#[derive(Debug)]
pub struct Fetched {
    /// Where the content finally came from (after redirects).
    pub url: Url,
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

/// The guarded HTTP client.
#[derive(Debug, Clone)]
pub struct SafeHttp {
    client: reqwest::Client,
    allow: Arc<Vec<SocketAddr>>,
    max_bytes: usize,
}

/// The resolver behind the client: only addresses that are public, or
/// allowlisted, come out of it.
#[derive(Debug)]
struct GuardedResolver {
    allow: Arc<Vec<SocketAddr>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| cairn_core::net::is_public(a.ip()) || allow.iter().any(|allowed| allowed.ip() == a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

impl SafeHttp {
    /// A client with a per-request `timeout`, reading at most `max_bytes`
    /// of a body; `allow` lists private `address:port` pairs it may reach.
    pub fn new(timeout: Duration, max_bytes: usize, allow: Vec<SocketAddr>) -> Result<SafeHttp, ToolError> {
        let allow = Arc::new(allow);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow: allow.clone() }))
            .user_agent(concat!("Cairn/", env!("CARGO_PKG_VERSION"), " (web tools)"))
            .build()
            .map_err(|e| ToolError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(SafeHttp { client, allow, max_bytes })
    }

    /// The largest body read.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Refuses a URL whose destination is not public (after resolving it)
    /// and not allowlisted.
    pub async fn vet(&self, url: &Url) -> Result<(), ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Refused(format!("only http and https URLs are fetched, not {}:", url.scheme())));
        }
        let host = url.host_str().ok_or_else(|| ToolError::Invalid(format!("{url} has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ToolError::Failed(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(ToolError::Failed(format!("{host} has no address")));
        }
        if let Some(private) = addresses.iter().find(|a| !cairn_core::net::is_public(a.ip()) && !self.allow.contains(a))
        {
            return Err(ToolError::Refused(format!(
                "{host} resolves to {}, which is not a public address; Cairn does not fetch from private, \
                 loopback, link-local or metadata addresses",
                private.ip()
            )));
        }
        Ok(())
    }

    /// GETs a URL, following redirects (each hop vetted), and reads the
    /// body up to the size cap.
    pub async fn get(&self, url: &str) -> Result<Fetched, ToolError> {
        let mut url = Url::parse(url).map_err(|e| ToolError::Invalid(format!("not a valid URL: {url:?} ({e})")))?;
        for _ in 0..=MAX_REDIRECTS {
            self.vet(&url).await?;
            let response = self.client.get(url.clone()).send().await.map_err(|e| describe(&url, e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| ToolError::Failed(format!("{url} redirected ({status}) without a location")))?;
                url = url.join(location).map_err(|e| ToolError::Failed(format!("a bad redirect from {url}: {e}")))?;
                continue;
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            if let Some(length) = response.content_length()
                && length > self.max_bytes as u64
            {
                return Err(self.too_large(&url));
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| describe(&url, e))?;
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(self.too_large(&url));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Fetched { url, status: status.as_u16(), content_type, body: Bytes::from(body) });
        }
        Err(ToolError::Failed(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// POSTs a JSON body with `headers` to a vetted destination; its
    /// answer's status. A redirect is not followed: it is the answer (a
    /// webhook endpoint that moved says so by failing).
    pub async fn post_json(&self, url: &str, headers: &[(&str, String)], body: Bytes) -> Result<u16, ToolError> {
        let (_, response) = self.post(url, headers, body).await?;
        Ok(response.status().as_u16())
    }

    /// The POST both of the above send: vetted, JSON, not redirected.
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(Url, reqwest::Response), ToolError> {
        let url = Url::parse(url).map_err(|e| ToolError::Invalid(format!("not a valid URL: {url:?} ({e})")))?;
        self.vet(&url).await?;
        let mut request = self.client.post(url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.body(body).send().await.map_err(|e| describe(&url, e))?;
        Ok((url, response))
    }

    /// POSTs a JSON body with `headers` to a vetted destination and reads
    /// the answer (up to the size cap): its status, headers and body. A
    /// redirect is not followed.
    pub async fn post_read(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(u16, reqwest::header::HeaderMap, Bytes), ToolError> {
        let (url, response) = self.post(url, headers, body).await?;
        let (status, answer_headers) = (response.status().as_u16(), response.headers().clone());
        let mut read = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| describe(&url, e))?;
            if read.len() + chunk.len() > self.max_bytes {
                return Err(self.too_large(&url));
            }
            read.extend_from_slice(&chunk);
        }
        Ok((status, answer_headers, Bytes::from(read)))
    }

    fn too_large(&self, url: &Url) -> ToolError {
        ToolError::Failed(format!("{url} is larger than the limit of {} MiB", self.max_bytes >> 20))
    }
}

fn describe(url: &Url, error: reqwest::Error) -> ToolError {
    if error.is_timeout() {
        ToolError::Failed(format!("{url} did not answer in time"))
    } else if error.is_connect() {
        // The resolver's refusal surfaces as a connection error.
        let text = format!("{error:?}");
        if text.contains("no public address") {
            ToolError::Refused(format!("{url} does not resolve to a public address"))
        } else {
            ToolError::Failed(format!("cannot connect to {url}"))
        }
    } else {
        ToolError::Failed(format!("fetching {url} failed: {error}"))
    }
}
