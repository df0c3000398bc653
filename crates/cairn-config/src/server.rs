//! `[server]`: the HTTP listeners.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret, refuse_zero};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes (uploads have their own limit).
    pub body_limit_bytes: usize,
    /// Origins allowed to call the API from a browser; empty allows only the
    /// same origin, `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_secs: u64,
    /// A second listener for operators (`/metrics`, `/healthz`, `/readyz`,
    /// no credentials): an address reachable only inside the deployment.
    /// Empty: no admin listener.
    pub admin_bind: String,
    /// Bearer token that unlocks `/metrics` on the public listener (at
    /// least 32 characters). Empty: `/metrics` there is refused.
    pub metrics_token: Secret,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 2 * 1024 * 1024,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            admin_bind: String::new(),
            metrics_token: Secret::default(),
        }
    }
}

impl ServerConfig {
    /// The admin listener's address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_bind.parse().ok()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        refuse_zero([("server.body_limit_bytes", self.body_limit_bytes as u64, "a size in bytes of at least 1")])?;
        let admin = &self.admin_bind;
        if !admin.is_empty() && admin.parse::<SocketAddr>().is_err() {
            return Err(Error::Invalid {
                key: "server.admin_bind",
                expected: "empty (no admin listener) or an address such as 127.0.0.1:9090",
                got: admin.clone(),
            });
        }
        let metrics_token = &self.metrics_token;
        if !metrics_token.is_empty() && metrics_token.len() < 32 {
            return Err(Error::Invalid {
                key: "server.metrics_token",
                expected: "empty (metrics only on the admin listener) or at least 32 characters",
                got: format!("{} characters", metrics_token.len()),
            });
        }
        for origin in &self.cors_origins {
            let ok = origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
            if !ok {
                return Err(Error::Invalid {
                    key: "server.cors_origins",
                    expected: "`*` or origins like https://app.example.com",
                    got: origin.clone(),
                });
            }
        }
        Ok(())
    }
}
