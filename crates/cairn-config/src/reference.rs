//! The configuration reference of `docs/configuration.md`, generated: the
//! keys and their defaults come from `Config::default()` as it serializes,
//! the meanings from [`ROWS`] below, the one place they are written. A test
//! fails when a key of `Config` has no row, when a row names a key `Config`
//! does not have, or when the document's generated table differs from
//! [`markdown`]; `CAIRN_UPDATE_DOCS=1 cargo test -p cairn-config` rewrites
//! the table between the markers.

use figment::value::{Num, Value};

use crate::{Config, ENV_PREFIX};

/// The line before the generated table in `docs/configuration.md`.
pub const BEGIN: &str = "<!-- BEGIN GENERATED: key reference from crates/cairn-config/src/reference.rs; \
     regenerate with CAIRN_UPDATE_DOCS=1 cargo test -p cairn-config -->";
/// The line after it.
pub const END: &str = "<!-- END GENERATED: key reference -->";

/// One row of the reference: a key, or keys read together.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// In `section.key` form.
    keys: &'static [&'static str],
    meaning: &'static str,
    /// Said after the default, e.g. `(2 MiB)`.
    note: &'static str,
    /// A list of tables, written in the TOML file rather than a variable.
    toml_only: bool,
}

impl Row {
    const fn new(keys: &'static [&'static str], meaning: &'static str) -> Row {
        Row { keys, meaning, note: "", toml_only: false }
    }

    const fn note(self, note: &'static str) -> Row {
        Row { note, ..self }
    }

    const fn toml_only(self) -> Row {
        Row { toml_only: true, ..self }
    }
}

/// What each key means, in the order of the reference.
const ROWS: &[Row] = &[
    Row::new(
        &["data_dir"],
        "where embedded backends keep their files (the SQLite database, local objects, sandbox \
         workspaces under `sandboxes/`)",
    ),
    Row::new(&["server.bind"], "address the HTTP server listens on"),
    Row::new(&["server.body_limit_bytes"], "largest request body accepted (413 `payload_too_large` beyond)")
        .note("(2 MiB)"),
    Row::new(
        &["server.cors_origins"],
        "browser origins allowed to call the API; empty allows only the same origin, `[\"*\"]` \
         any",
    ),
    Row::new(&["server.shutdown_grace_secs"], "how long shutdown waits for requests in flight"),
    Row::new(
        &["server.admin_bind"],
        "a second listener with `/metrics`, `/healthz` and `/readyz` and no credentials, for the \
         deployment's monitoring (e.g. `0.0.0.0:9090` inside a cluster); empty: none",
    ),
    Row::new(
        &["server.metrics_token"],
        "bearer token (≥32 characters) that unlocks `/metrics` on the public listener; empty: \
         `/metrics` there answers 403",
    ),
    Row::new(
        &["database.url"],
        "empty: SQLite file `cairn.db` in the data dir; `sqlite://PATH`; or \
         `postgres://user:pass@host:5432/db`",
    ),
    Row::new(
        &["database.max_connections"],
        "connection pool size (a process that runs agent steps keeps one connection more, for their checkpoints)",
    ),
    Row::new(&["database.acquire_timeout_secs"], "how long a request waits for a connection before failing with 503"),
    Row::new(
        &["redis.url"],
        "empty: in-process bus (the queue lives in the database); `redis://host:6379` for the \
         distributed shape",
    ),
    Row::new(&["redis.prefix"], "prefix of every Redis key, so deployments can share a server"),
    Row::new(&["queue.lease_secs"], "how long a worker may hold a job without a heartbeat before another takes it"),
    Row::new(
        &["queue.max_deliveries"],
        "deliveries of a job before it is set aside as a dead letter (its run or task then ends failed, saying why)",
    ),
    Row::new(
        &["webhooks.retry_secs"],
        "seconds between a failed webhook attempt and the next, one per retry (Standard Webhooks' schedule, \
         a day and some); after the last the delivery fails",
    ),
    Row::new(&["webhooks.timeout_secs"], "how long one webhook attempt may take"),
    Row::new(&["webhooks.rotation_grace_hours"], "hours a rotated webhook secret still signs beside the new one"),
    Row::new(
        &["retention.step_details_days"],
        "days finished runs keep their step details (code, outputs, checkpoints); a project's own setting wins; \
         0 keeps them for ever. Answers, messages and files are never removed",
    ),
    Row::new(&["retention.audit_days"], "days the audit log keeps an entry; 0 keeps them for ever"),
    Row::new(&["retention.interval_secs"], "seconds between two passes of the retention job"),
    Row::new(&["auth.issuer"], "`iss` of access tokens"),
    Row::new(&["auth.audience"], "`aud` of access tokens"),
    Row::new(&["auth.access_token_ttl_secs"], "access-token lifetime (at most 900)"),
    Row::new(&["auth.refresh_token_ttl_secs"], "refresh-token lifetime; each use issues a new one").note("(30 days)"),
    Row::new(&["auth.reset_token_ttl_secs"], "password-recovery link lifetime (at most 900)"),
    Row::new(&["auth.ticket_ttl_secs"], "how long a WebSocket ticket may wait to be used (at most 900; it works once)"),
    Row::new(
        &["auth.signing_keys"],
        "HMAC keys `[{kid = \"2026-11\", secret = \"<base64url, ≥32 bytes>\"}]`; the first signs, \
         all verify. Empty: a key is generated on first start into \
         `<data_dir>/auth/signing-keys.json` (mode 0600). Set it when several gateways share a \
         database",
    ),
    Row::new(
        &["auth.public_url"],
        "where people reach the web app: links in e-mails, the origin browser sessions may come \
         from, `Secure` cookies and HSTS when it is https",
    ),
    Row::new(
        &["mail.smtp_url"],
        "`smtps://user:pass@host:465`, `smtp://user:pass@host:587?tls=required`; empty writes \
         mail to the outbox (below)",
    ),
    Row::new(&["mail.from"], "sender of every message"),
    Row::new(&["rate_limit.per_user_per_minute"], "API requests per minute per signed-in user"),
    Row::new(&["rate_limit.per_api_key_per_minute"], "API requests per minute per API key"),
    Row::new(&["rate_limit.per_address_per_minute"], "API requests per minute per client address"),
    Row::new(&["rate_limit.sign_in_failures_per_account"], "failed sign-ins per account per window before 429"),
    Row::new(&["rate_limit.sign_in_failures_per_address"], "failed sign-ins per client address per window before 429"),
    Row::new(&["rate_limit.sign_in_window_secs"], "the window of the sign-in limits"),
    Row::new(
        &["rate_limit.client_address_header"],
        "behind a trusted reverse proxy, the header carrying the client address (e.g. \
         `x-forwarded-for`); empty uses the connection's address",
    ),
    Row::new(
        &["files.store_url"],
        "where file contents live: empty for `<data_dir>/objects`, `file:///path`, `s3://bucket`, \
         `gs://bucket`, `az://container` (cloud credentials from the usual `AWS_*`, `GOOGLE_*`, \
         `AZURE_*` variables or the keys below)",
    ),
    Row::new(&["files.s3_endpoint"], "S3-compatible endpoint (MinIO…), e.g. `http://minio:9000`"),
    Row::new(&["files.s3_region"], "the region of the S3 bucket"),
    Row::new(&["files.s3_access_key_id", "files.s3_secret_access_key"], "S3 credentials (else from `AWS_*`)"),
    Row::new(&["files.s3_path_style"], "path-style requests (most S3-compatible servers)"),
    Row::new(&["files.allow_http"], "allow a plain-HTTP object store endpoint (a local MinIO only)"),
    Row::new(
        &["files.gcs_endpoint"],
        "GCS JSON API endpoint; empty: Google's (with no service account: an emulator, reached \
         without credentials)",
    ),
    Row::new(&["files.gcs_service_account"], "path of a GCS service account key (else `GOOGLE_*`, metadata)"),
    Row::new(&["files.azure_account", "files.azure_access_key"], "Azure storage account and key (else `AZURE_*`)"),
    Row::new(
        &["files.azure_endpoint"],
        "Azure Blob endpoint, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`; empty: the \
         account's own",
    ),
    Row::new(
        &["files.links"],
        "`auto`: download links presigned by the cloud store where it can sign them, else by Cairn; \
         `gateway`: always signed by Cairn and served through it (buckets browsers cannot reach)",
    )
    .note("(auto)"),
    Row::new(&["files.max_upload_bytes"], "largest single upload (413 beyond; nothing is kept)").note("(10 GiB)"),
    Row::new(&["files.project_quota_bytes"], "bytes a project may store, all versions counted").note("(100 GiB)"),
    Row::new(&["files.link_ttl_secs"], "default lifetime of a download link"),
    Row::new(&["files.link_max_ttl_secs"], "longest lifetime a link may ask for (at most 3600)"),
    Row::new(
        &["files.link_signing_key"],
        "HMAC key (base64url, ≥32 bytes) for links Cairn signs; empty: generated into \
         `<data_dir>/files/link-key`",
    ),
    Row::new(
        &["sandbox.host_url"],
        "empty: sandboxes run on this machine; `http://host:port`: on a `cairn serve --role \
         sandbox-host` there",
    ),
    Row::new(
        &["sandbox.host_token"],
        "the service credential between Cairn and a sandbox host (≥32 characters); required by \
         the `sandbox-host` role and with `host_url`",
    ),
    Row::new(
        &["sandbox.cluster"],
        "place sandboxes on the sandbox hosts registered in the database (least loaded first; a \
         sandbox whose host is gone moves, its workspace restored); instead of `host_url`",
    ),
    Row::new(
        &["sandbox.advertise_url"],
        "on a sandbox host: the URL workers and gateways reach it at; set, the host registers, keeps \
         a heartbeat and snapshots workspaces into the object store (`files.*`)",
    ),
    Row::new(
        &["sandbox.heartbeat_secs"],
        "how often a registered sandbox host reports it is alive; silent for 3× this long, it is \
         taken for dead",
    ),
    Row::new(
        &["sandbox.python"],
        "the sandboxes' Python (a venv's `bin/python` with the data stack; `run.sh` builds one); \
         empty: `python3` on the PATH; with containers, its packages are mounted into them",
    ),
    Row::new(
        &["sandbox.backend"],
        "`bubblewrap`: each sandbox in namespaces on this machine; `container`: each a container of a \
         Docker Engine API (Docker, or Podman's socket); `e2b`: each an E2B cloud sandbox — see \
         docs/backends.md",
    ),
    Row::new(&["sandbox.container_engine"], "the container engine's socket, for the container backend"),
    Row::new(&["sandbox.container_image"], "the image sandboxes run in, for the container backend"),
    Row::new(&["sandbox.container_python"], "the interpreter inside that image"),
    Row::new(&["sandbox.e2b_api_url"], "E2B's API, for the `e2b` backend"),
    Row::new(
        &["sandbox.e2b_sandbox_url"],
        "one address for every E2B sandbox's services, routed by E2B's headers; empty: \
         `https://{port}-{sandbox}.{e2b_domain}`",
    ),
    Row::new(&["sandbox.e2b_domain"], "E2B's sandbox domain"),
    Row::new(&["sandbox.e2b_api_key"], "the E2B API key (`e2b_…`), for the `e2b` backend"),
    Row::new(&["sandbox.e2b_template"], "the template E2B sandboxes start from"),
    Row::new(&["sandbox.e2b_timeout_secs"], "seconds an E2B sandbox lives unused (E2B's timeout)"),
    Row::new(&["sandbox.pool_size"], "sandboxes kept started ahead of need (the warm pool)"),
    Row::new(
        &["sandbox.memory_mb", "sandbox.max_memory_mb"],
        "memory of one sandbox (all its processes): the default, and the most a policy may ask \
         for",
    ),
    Row::new(&["sandbox.processes", "sandbox.max_processes"], "processes and threads of one sandbox"),
    Row::new(
        &["sandbox.wall_time_secs", "sandbox.max_wall_time_secs"],
        "wall time of one execution; then it is interrupted (and the kernel restarted if it does \
         not stop)",
    ),
    Row::new(&["sandbox.disk_mb", "sandbox.max_disk_mb"], "workspace size"),
    Row::new(&["sandbox.output_kb"], "output kept per execution (the rest is dropped and the execution interrupted)"),
    Row::new(
        &["sandbox.idle_pause_secs"],
        "a running sandbox idle this long is paused (processes stopped, files kept)",
    ),
    Row::new(&["sandbox.idle_reclaim_secs"], "a paused sandbox idle this long is deleted with its workspace")
        .note("(7 days)"),
    Row::new(
        &["sandbox.max_running_per_user", "sandbox.max_running"],
        "running sandboxes per user and per host; at a cap the least recently used idle one is \
         paused (with `sandbox.cluster`, the per-user cap holds over all the hosts together)",
    ),
    Row::new(
        &["sandbox.allow_network"],
        "whether a sandbox's policy may ask for network (HTTP/HTTPS through the egress proxy)",
    ),
    Row::new(&["sandbox.egress_ports"], "ports the egress proxy connects to"),
    Row::new(
        &["sandbox.egress_allow"],
        "exact private `address:port` pairs the proxy may reach anyway (an internal package \
         mirror)",
    ),
    Row::new(
        &["sandbox.package_index"],
        "the package index (PEP 503 simple API) of projects that allow package installs; their \
         sandboxes reach it and nothing else; empty: no installs",
    ),
    Row::new(
        &["sandbox.package_file_hosts"],
        "host names the index serves package files from besides its own (PyPI's \
         `files.pythonhosted.org`)",
    ),
    Row::new(&["sandbox.package_install_secs"], "wall time of installing a project's requirements"),
    Row::new(&["sandbox.package_env_mb"], "size of one project's package environments together"),
    Row::new(&["tools.fetch_timeout_secs"], "how long one web request of a tool may take"),
    Row::new(&["tools.fetch_max_mb"], "the largest page or file a web tool reads"),
    Row::new(
        &["tools.allow_private"],
        "exact private `address:port` pairs the web tools and the browser may reach (an intranet \
         site); everything else private is refused",
    ),
    Row::new(
        &["tools.search_provider"],
        "`brave` (Brave Search API, with `search_api_key`) or `searxng` (with `search_url`); \
         empty: `web_search` says it is not configured",
    ),
    Row::new(
        &["tools.search_url", "tools.search_api_key"],
        "SearXNG's base URL; Brave's subscription token (and, optionally, another endpoint)",
    ),
    Row::new(&["tools.browser_path"], "the Chromium executable; empty: `chromium` on the PATH"),
    Row::new(&["tools.browser_idle_secs"], "a thread's browser context unused this long is closed"),
    Row::new(
        &["llm.providers"],
        "the model providers: `name`, `kind` (`openai`, `anthropic`, `azure-openai`, \
         `openai-compatible` — Ollama, vLLM, llama.cpp, LM Studio, OpenRouter, Gemini), \
         `base_url` (empty: the provider's own API, or `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` \
         as the SDKs read them), `api_key`, `api_version` (Azure), and `models` (`name`; what the \
         model takes and costs comes from its family, overridable: see \
         [docs/models.md](models.md))",
    )
    .toml_only(),
    Row::new(
        &["llm.secret_keys"],
        "keys that seal the provider keys administrators enter in the app, `[{kid = \"2026-11\", \
         secret = \"<base64url, ≥32 bytes>\"}]`: the first seals, all open (rotate by adding a \
         new key first; stored keys are sealed again at start). Empty: generated into \
         `<data_dir>/llm/secret-keys.json` (mode 0600)",
    )
    .toml_only(),
    Row::new(
        &["llm.discover"],
        "with no `llm.providers`, connect what the environment offers at start: `OPENAI_API_KEY`, \
         `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) and an Ollama answering on 127.0.0.1:11434 \
         (see [docs/models.md](models.md))",
    ),
    Row::new(
        &["llm.embedding_model"],
        "`provider/model` of an `openai` or `openai-compatible` provider's `/embeddings`, for \
         project memory; empty: memory is off (`memory_unavailable`)",
    ),
    Row::new(
        &["llm.default_model"],
        "`provider/model` used when a project or thread names none; empty: the first configured",
    ),
    Row::new(
        &["llm.max_retries"],
        "retries of a call that fails before its first token (429 honouring `Retry-After`, 5xx, \
         dropped connections, timeouts), with exponential backoff and jitter",
    ),
    Row::new(
        &["llm.first_token_timeout_secs", "llm.idle_timeout_secs"],
        "how long a call may wait for its first token, and a stream between tokens",
    ),
    Row::new(&["agent.workers"], "agent runs one process works on at once"),
    Row::new(
        &["agent.max_steps", "agent.max_tokens", "agent.max_cost_usd", "agent.max_wall_secs"],
        "a run's budget (model calls, tokens, US dollars, seconds in steps); reaching one ends \
         the run cleanly with a message",
    ),
    Row::new(
        &["agent.require_approval"],
        "tools whose calls wait for a member's approval: the run pauses with the question \"May \
         the agent run …?\" and goes on when someone answers yes",
    ),
    Row::new(
        &["agent.plan_approval"],
        "when a planned run waits for a member to approve (or edit) its plan: `never`, `always`, \
         or a number N (plans of more than N tasks)",
    ),
    Row::new(
        &["agent.agents"],
        "the sub-agents plans give tasks to: `name`, `role` (added to its prompt), `tools` (the \
         only tools it may call; empty: all), `model` (empty: the run's), `max_steps` (model \
         calls per task, default 12); empty: the built-in `analyst`, `researcher` and `writer`",
    )
    .toml_only(),
    Row::new(&["log.level"], "a tracing filter, e.g. `cairn_gateway=debug,info`"),
    Row::new(&["log.format"], "`json` (one object per line) or `pretty`"),
    Row::new(
        &["log.otlp_endpoint"],
        "an OpenTelemetry collector's OTLP/HTTP address (e.g. `http://otel-collector:4318`): \
         every process sends its spans there, one trace per run from the gateway through the \
         queue and the worker to model calls, sandbox executions and tool calls; empty: off",
    ),
    Row::new(
        &["log.trace_sample_ratio"],
        "the share of traces kept, 0 to 1 (a trace begun in another process keeps its choice)",
    ),
];

/// Every key of `Config` in `section.key` form (`data_dir` for the one
/// top-level key), from its defaults as they serialize.
pub fn keys() -> Vec<String> {
    fn walk(prefix: &str, value: &Value, keys: &mut Vec<String>) {
        match value {
            Value::Dict(_, dict) => {
                for (name, value) in dict {
                    let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    walk(&key, value, keys);
                }
            }
            _ => keys.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    if let Ok(defaults) = Value::serialize(Config::default()) {
        walk("", &defaults, &mut keys);
    }
    keys
}

/// The reference as a Markdown table: key, environment variable, default,
/// meaning.
pub fn markdown() -> String {
    let defaults = Value::serialize(Config::default()).ok();
    let mut out = String::from("| key | environment variable | default | meaning |\n|---|---|---|---|\n");
    for row in ROWS {
        let keys: Vec<String> = row.keys.iter().map(|key| format!("`{key}`")).collect();
        let variables: Vec<String> =
            row.keys.iter().map(|key| format!("`{ENV_PREFIX}{}`", key.to_uppercase().replace('.', "__"))).collect();
        let variables = if row.toml_only { "(TOML)".to_owned() } else { variables.join(", ") };
        let mut values: Vec<String> = row
            .keys
            .iter()
            .map(|key| match defaults.as_ref().and_then(|d| d.find_ref(key)) {
                Some(value) => default_cell(value),
                None => "?".to_owned(),
            })
            .collect();
        // Keys read together often share their default: then say it once.
        if values.windows(2).all(|pair| pair[0] == pair[1]) {
            values.truncate(1);
        }
        let mut default = values.join(", ");
        if !row.note.is_empty() {
            default = format!("{default} {}", row.note);
        }
        out.push_str(&format!("| {} | {variables} | {default} | {} |\n", keys.join(", "), row.meaning));
    }
    out
}

/// A default as the table shows it: `empty`, or the value in backquotes.
fn default_cell(value: &Value) -> String {
    match value {
        Value::String(_, s) if s.is_empty() => "empty".to_owned(),
        Value::String(_, s) => format!("`{s}`"),
        other => format!("`{}`", literal(other)),
    }
}

/// A value as one would write it in TOML.
fn literal(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, Num::F32(f)) => format!("{f:?}"),
        Value::Num(_, Num::F64(f)) => format!("{f:?}"),
        Value::Num(_, n) => {
            n.to_i128().map(|i| i.to_string()).or_else(|| n.to_u128().map(|u| u.to_string())).unwrap_or_default()
        }
        Value::Empty(..) => String::new(),
        Value::Array(_, items) => format!("[{}]", items.iter().map(literal).collect::<Vec<_>>().join(", ")),
        Value::Dict(_, dict) => {
            let pairs: Vec<String> = dict.iter().map(|(k, v)| format!("{k} = {}", literal(v))).collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn every_key_has_one_row_and_every_row_names_keys_that_exist() {
        let keys: BTreeSet<String> = keys().into_iter().collect();
        let mut documented = BTreeSet::new();
        let twice: Vec<&str> =
            ROWS.iter().flat_map(|row| row.keys).copied().filter(|key| !documented.insert(key.to_string())).collect();
        let missing: Vec<&String> = keys.difference(&documented).collect();
        let unknown: Vec<&String> = documented.difference(&keys).collect();
        assert!(
            missing.is_empty() && unknown.is_empty() && twice.is_empty(),
            "reference.rs's ROWS are out of step with Config: keys without a row {missing:?}, \
             rows naming keys Config does not have {unknown:?}, keys in two rows {twice:?}"
        );
    }

    #[test]
    fn docs_configuration_md_holds_the_generated_reference() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (before, rest) = text.split_once(BEGIN).expect("docs/configuration.md lacks the BEGIN marker");
        let (current, after) = rest.split_once(END).expect("docs/configuration.md lacks the END marker");
        let generated = format!("\n{}", markdown());
        if current == generated {
            return;
        }
        if std::env::var_os("CAIRN_UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{before}{BEGIN}{generated}{END}{after}")).unwrap();
        } else {
            panic!(
                "docs/configuration.md's key reference differs from the one cairn-config generates; \
                 regenerate it with CAIRN_UPDATE_DOCS=1 cargo test -p cairn-config"
            );
        }
    }
}
