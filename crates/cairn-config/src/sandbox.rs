//! `[sandbox]`: where sandboxes run and what they may use.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Secret, SecretUrl, refuse_zero};

/// Where sandboxes run and what they may use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Empty: sandboxes run on this machine. `http://host:port`: they run on
    /// a `cairn serve --role sandbox-host` there.
    pub host_url: String,
    /// The service credential between Cairn and a sandbox host (at least 32
    /// characters): required by the `sandbox-host` role and by `host_url`.
    pub host_token: Secret,
    /// Place sandboxes on the sandbox hosts registered in the database (the
    /// distributed shape with several hosts) instead of `host_url` or this
    /// machine.
    pub cluster: bool,
    /// On a sandbox host: the URL workers and gateways reach it at. Set, the
    /// host registers in the database, keeps a heartbeat and snapshots its
    /// workspaces into the object store.
    pub advertise_url: String,
    /// How often a registered sandbox host reports it is alive; one silent
    /// for three times this long is taken for dead.
    pub heartbeat_secs: u64,
    /// The sandboxes' Python (a venv's `bin/python` with the data stack);
    /// empty: the `python3` on the PATH. With the container backend, its
    /// packages are mounted into the containers (read-only) and run by the
    /// image's interpreter.
    pub python: String,
    /// What isolates this machine's sandboxes: `bubblewrap` (namespaces,
    /// here) or `container` (a container each, through a Docker Engine API).
    pub backend: SandboxBackend,
    /// The container engine's socket (`unix:///run/podman/podman.sock`,
    /// Docker's `/var/run/docker.sock`), for the container backend.
    pub container_engine: String,
    /// The image sandboxes run in, for the container backend.
    pub container_image: String,
    /// The interpreter inside that image.
    pub container_python: String,
    /// E2B's API, for the `e2b` backend.
    pub e2b_api_url: String,
    /// One address for every E2B sandbox's services, routed by headers;
    /// empty: `https://{port}-{sandbox}.{e2b_domain}`.
    pub e2b_sandbox_url: String,
    pub e2b_domain: String,
    /// The E2B API key (`e2b_…`).
    pub e2b_api_key: Secret,
    /// The template E2B sandboxes start from.
    pub e2b_template: String,
    /// Seconds an E2B sandbox lives unused (E2B's timeout); paused ones are
    /// kept by E2B.
    pub e2b_timeout_secs: u64,
    /// Sandboxes kept started ahead of need.
    pub pool_size: usize,
    /// Default and largest memory of one sandbox, in MiB.
    pub memory_mb: u64,
    pub max_memory_mb: u64,
    /// Default and largest number of processes of one sandbox.
    pub processes: u32,
    pub max_processes: u32,
    /// Default and longest wall time of one execution, in seconds.
    pub wall_time_secs: u64,
    pub max_wall_time_secs: u64,
    /// Default and largest workspace size, in MiB.
    pub disk_mb: u64,
    pub max_disk_mb: u64,
    /// Output kept per execution, in KiB.
    pub output_kb: u64,
    /// A running sandbox idle this long is paused (processes stopped, files kept).
    pub idle_pause_secs: u64,
    /// A paused sandbox idle this long is deleted with its workspace.
    pub idle_reclaim_secs: u64,
    /// Running sandboxes per user and on this host.
    pub max_running_per_user: usize,
    pub max_running: usize,
    /// Whether a sandbox's policy may ask for network (HTTP and HTTPS through
    /// the egress proxy, which never reaches loopback or private addresses).
    pub allow_network: bool,
    /// Ports the egress proxy connects to.
    pub egress_ports: Vec<u16>,
    /// Exact `address:port` pairs the egress proxy may reach even though
    /// they are private (an internal package mirror).
    pub egress_allow: Vec<SocketAddr>,
    /// The package index (PEP 503 "simple" API) sandboxes of projects that
    /// allow package installs reach, and nothing else; empty: no project may
    /// install packages.
    pub package_index: SecretUrl,
    /// Host names the index sends package files from besides its own (for
    /// PyPI: `files.pythonhosted.org`).
    pub package_file_hosts: Vec<String>,
    /// Wall time of installing a project's requirements, in seconds.
    pub package_install_secs: u64,
    /// Size of one project's package environments together, in MiB: past
    /// it, an install is stopped.
    pub package_env_mb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            host_url: String::new(),
            host_token: Secret::default(),
            cluster: false,
            advertise_url: String::new(),
            heartbeat_secs: 5,
            python: String::new(),
            backend: SandboxBackend::Bubblewrap,
            container_engine: "unix:///var/run/docker.sock".to_owned(),
            container_image: String::new(),
            container_python: "/usr/bin/python3".to_owned(),
            e2b_api_url: "https://api.e2b.app".to_owned(),
            e2b_sandbox_url: String::new(),
            e2b_domain: "e2b.app".to_owned(),
            e2b_api_key: Secret::default(),
            e2b_template: "code-interpreter-v1".to_owned(),
            e2b_timeout_secs: 3600,
            pool_size: 2,
            memory_mb: 1024,
            max_memory_mb: 4096,
            processes: 256,
            max_processes: 1024,
            wall_time_secs: 120,
            max_wall_time_secs: 1800,
            disk_mb: 2048,
            max_disk_mb: 10240,
            output_kb: 1024,
            idle_pause_secs: 900,
            idle_reclaim_secs: 7 * 24 * 3600,
            max_running_per_user: 4,
            max_running: 32,
            allow_network: true,
            egress_ports: vec![80, 443],
            egress_allow: Vec::new(),
            package_index: "https://pypi.org/simple".into(),
            package_file_hosts: vec!["files.pythonhosted.org".to_owned()],
            package_install_secs: 900,
            package_env_mb: 4096,
        }
    }
}

/// `sandbox.backend`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SandboxBackend {
    #[default]
    Bubblewrap,
    Container,
    /// E2B's cloud sandboxes.
    E2b,
}

impl SandboxConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.backend == SandboxBackend::E2b && self.e2b_api_key.is_empty() {
            return Err(Error::Invalid {
                key: "sandbox.e2b_api_key",
                expected: "the E2B API key, with sandbox.backend = \"e2b\"",
                got: String::new(),
            });
        }
        if self.backend == SandboxBackend::Container && self.container_image.is_empty() {
            return Err(Error::Invalid {
                key: "sandbox.container_image",
                expected: "the image sandboxes run in, with sandbox.backend = \"container\"",
                got: String::new(),
            });
        }
        for (key, default, max) in [
            ("sandbox.memory_mb", self.memory_mb, self.max_memory_mb),
            ("sandbox.processes", self.processes.into(), self.max_processes.into()),
            ("sandbox.wall_time_secs", self.wall_time_secs, self.max_wall_time_secs),
            ("sandbox.disk_mb", self.disk_mb, self.max_disk_mb),
        ] {
            if default == 0 || default > max {
                return Err(Error::Invalid {
                    key,
                    expected: "at least 1 and at most its max_ counterpart",
                    got: format!("{default} (max {max})"),
                });
            }
        }
        refuse_zero([
            ("sandbox.output_kb", self.output_kb, "at least 1"),
            ("sandbox.idle_pause_secs", self.idle_pause_secs, "at least 1"),
            ("sandbox.idle_reclaim_secs", self.idle_reclaim_secs, "at least 1"),
            ("sandbox.max_running_per_user", self.max_running_per_user as u64, "at least 1"),
            ("sandbox.max_running", self.max_running as u64, "at least 1"),
            ("sandbox.heartbeat_secs", self.heartbeat_secs, "at least 1"),
            ("sandbox.package_install_secs", self.package_install_secs, "at least 1"),
            ("sandbox.package_env_mb", self.package_env_mb, "at least 1"),
        ])?;
        let http = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if !(self.package_index.is_empty() || http(self.package_index.expose())) {
            return Err(Error::Invalid {
                key: "sandbox.package_index",
                expected: "empty (no package installs) or the http:// or https:// URL of a package index",
                got: self.package_index.redacted(),
            });
        }
        if let Some(bad) = self.package_file_hosts.iter().find(|h| h.is_empty() || h.contains(['/', ':', ' '])) {
            return Err(Error::Invalid {
                key: "sandbox.package_file_hosts",
                expected: "host names (no scheme, port or path)",
                got: bad.clone(),
            });
        }
        if !(self.advertise_url.is_empty() || http(&self.advertise_url)) {
            return Err(Error::Invalid {
                key: "sandbox.advertise_url",
                expected: "empty (not registered) or the http:// or https:// URL others reach this host at",
                got: self.advertise_url.clone(),
            });
        }
        if self.cluster && !self.host_url.is_empty() {
            return Err(Error::Invalid {
                key: "sandbox.cluster",
                expected: "false when sandbox.host_url names one host (the registered hosts replace it)",
                got: "true".to_owned(),
            });
        }
        if (self.cluster || !self.advertise_url.is_empty()) && self.host_token.len() < 32 {
            return Err(Error::Invalid {
                key: "sandbox.host_token",
                expected: "the sandbox hosts' service credential (at least 32 characters) with sandbox.cluster \
                           or sandbox.advertise_url",
                got: format!("{} characters", self.host_token.len()),
            });
        }
        if !(self.host_url.is_empty() || self.host_url.starts_with("http://") || self.host_url.starts_with("https://"))
        {
            return Err(Error::Invalid {
                key: "sandbox.host_url",
                expected: "empty (sandboxes on this machine) or an http:// or https:// URL",
                got: self.host_url.clone(),
            });
        }
        if !self.host_url.is_empty() && self.host_token.len() < 32 {
            return Err(Error::Invalid {
                key: "sandbox.host_token",
                expected: "the sandbox host's service credential (at least 32 characters) when sandbox.host_url is set",
                got: format!("{} characters", self.host_token.len()),
            });
        }
        Ok(())
    }
}
