//! The `cairn` binary: one executable for every shape of a deployment.
//! `serve` runs the server (all-in-one by default), `migrate` brings the
//! database schema up to date, `version` prints the version.
//!
//! Architecture invariant: this crate only wires components together from
//! configuration; it holds no behaviour of its own that a test of the
//! components would miss.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_auth::mail::{Mailer, Outbox, Smtp};
use cairn_auth::{Auth, SigningKeys};
use cairn_config::Config;
use cairn_core::bus::{Bus, QueueOptions};
use cairn_gateway::{AppParts, AppState, ServerRole};
use cairn_store::{Database, OpenOptions};
use clap::{Parser, Subcommand, ValueEnum};

mod client;
mod telemetry;

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "cairn", version, about = "Cairn: a self-hostable AI agent platform")]
struct Cli {
    /// A TOML configuration file; CAIRN__SECTION__KEY environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Applies pending migrations first.
    Serve {
        /// Which part of Cairn this process runs.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage accounts from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the version and exit.
    Version,
    /// The client's commands: talk to a Cairn server.
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from the first line of
    /// standard input, so it stays out of the shell history:
    /// `echo 'a long passphrase' | cairn user create --email ada@example.com --name Ada --admin`
    Create {
        #[arg(long)]
        email: String,
        /// The name shown to others.
        #[arg(long)]
        name: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Every component in one process, with embedded defaults.
    All,
    /// The API, the web app and event streams; queues runs, works none.
    Gateway,
    /// Works agent runs from the queue; serves only probes and metrics.
    Worker,
    /// Sandboxes for other processes.
    SandboxHost,
}

/// A failure that stops the command: the message is printed as one
/// paragraph, and configuration mistakes exit with 2, everything else with 1.
enum Failure {
    Config(anyhow::Error),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        return client::main(command);
    }
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(Failure::Runtime(anyhow::Error::new(e).context("cannot start the async runtime"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Version = cli.command {
        println!("cairn {}", cairn_core::VERSION);
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref()).map_err(|e| Failure::Config(e.into()))?;
    let service = match &cli.command {
        Command::Serve { role: Role::All } => Some("cairn"),
        Command::Serve { role: Role::Gateway } => Some("cairn-gateway"),
        Command::Serve { role: Role::Worker } => Some("cairn-worker"),
        Command::Serve { role: Role::SandboxHost } => Some("cairn-sandbox-host"),
        _ => None,
    };
    let traces = telemetry::init(&config, service).map_err(Failure::Config)?;
    let result = command(cli.command, config).await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    result
}

async fn command(command: Command, config: Config) -> Result<(), Failure> {
    match command {
        Command::Version => Ok(()),
        Command::Migrate => {
            let db = open_database(&config).await?;
            db.migrate().await.context("cannot migrate the database")?;
            println!("database is up to date ({})", db.store().backend());
            db.close().await;
            Ok(())
        }
        Command::Serve { role } => serve(config, role).await,
        Command::User(UserCommand::Create { email, name, admin }) => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let db = open_database(&config).await?;
            db.migrate().await.context("cannot migrate the database")?;
            let bus = cairn_bus::in_process(db.queue(QueueOptions::default()));
            let auth = build_auth(&config, db.store(), &bus)?;
            let user = auth.create_user(&email, password, &name, admin).await.context("cannot create the account")?;
            let role = if user.is_admin { "admin" } else { "member" };
            println!("created {} ({role}), id {}", user.email, user.id);
            db.close().await;
            Ok(())
        }
        // Handled before the configuration is read (`client::main`).
        Command::Client(_) => Ok(()),
    }
}

/// The file service on the configured object store; links of locally
/// stored files are signed with a key from configuration or the data dir.
fn build_files(
    config: &Config,
    store: Arc<dyn cairn_core::store::Store>,
    auth: Auth,
) -> anyhow::Result<cairn_files::Files> {
    let objects = cairn_files::Objects::from_config(&config.files, &config.data_dir).context("files.store_url")?;
    let secret =
        cairn_files::link_secret(config.files.link_signing_key.expose(), &config.data_dir.join("files/link-key"))
            .context("files.link_signing_key")?;
    Ok(cairn_files::Files::new(&config.files, store, objects, auth, &secret)?)
}

/// The authentication service: signing keys from configuration, or
/// generated once and kept in the data dir; mail by SMTP or to the outbox.
fn build_auth(config: &Config, store: Arc<dyn cairn_core::store::Store>, bus: &Bus) -> anyhow::Result<Auth> {
    let keys = if config.auth.signing_keys.is_empty() {
        if config.database_kind().is_ok_and(|k| matches!(k, cairn_config::DatabaseKind::Postgres { .. })) {
            tracing::warn!(
                "auth.signing_keys is not configured: this server signs with a key of its own data dir; \
                 configure the same keys on every gateway that shares this database"
            );
        }
        SigningKeys::load_or_generate(&config.data_dir).context("cannot load the access-token signing key")?
    } else {
        SigningKeys::from_config(&config.auth.signing_keys).context("auth.signing_keys")?
    };
    let mailer: Arc<dyn Mailer> = if config.mail.smtp_url.is_empty() {
        Arc::new(Outbox::new(config.data_dir.join("outbox"), &config.mail.from).context("mail.from")?)
    } else {
        Arc::new(Smtp::new(config.mail.smtp_url.expose(), &config.mail.from).context("mail.smtp_url")?)
    };
    Ok(Auth::new(config, store, bus, mailer, keys))
}

async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let kind = config.database_kind()?;
    let url = match &kind {
        cairn_config::DatabaseKind::Sqlite { url } | cairn_config::DatabaseKind::Postgres { url } => url.expose(),
    };
    let options = OpenOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_secs),
    };
    Ok(Database::open(url, &options).await?)
}

async fn serve(mut config: Config, role: Role) -> Result<(), Failure> {
    cairn_gateway::install_metrics();
    let role = match role {
        Role::All => ServerRole::All,
        Role::Gateway => ServerRole::Gateway,
        Role::Worker => ServerRole::Worker,
        Role::SandboxHost => return serve_sandbox_host(config).await,
    };
    // Bind first: a port already in use is the most common start-up failure,
    // and finding it before anything else is opened leaves nothing behind.
    // A worker has no public API: it listens for probes and metrics only, on
    // the admin address if one is set, else on `server.bind`.
    let (addr, key) = match (role, config.server.admin_addr()) {
        (ServerRole::Worker, Some(admin)) => (admin, "server.admin_bind"),
        _ => (config.server.bind, "server.bind"),
    };
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({key})"))?;
    let admin_listener = if role == ServerRole::Worker { None } else { bind_admin(&config).await? };
    let queue_options = QueueOptions {
        lease: Duration::from_secs(config.queue.lease_secs),
        max_deliveries: config.queue.max_deliveries,
    };
    let redis = match config.redis.url.expose() {
        "" => None,
        url => Some(
            cairn_bus::redis::connect(url, &config.redis.prefix, queue_options)
                .await
                .with_context(|| format!("the bus is configured on Redis at {}", config.redis.url))?,
        ),
    };
    let db = open_database(&config).await?;
    db.migrate().await.context("cannot migrate the database")?;
    let bus: Bus = redis.unwrap_or_else(|| cairn_bus::in_process(db.queue(queue_options)));
    let store = db.store();
    let auth = build_auth(&config, store.clone(), &bus)?;
    let files = build_files(&config, store.clone(), auth.clone())?;
    let registry = Arc::new(cairn_tools::Registry::builtin());
    let embedder = cairn_llm::Embedder::from_config(&config.llm).context("llm.embedding_model")?;
    let memory = cairn_memory::Memory::new(store.clone(), embedder);
    let (tools, local_sandboxes) = match build_tools(&config, role, &registry, files.clone(), store.clone()).await {
        Ok((mut runner, local)) => {
            runner.services.memory = Some(memory.clone());
            (Some(runner), local)
        }
        // Runs need sandboxes: a worker without them has nothing to do.
        Err(error) if role == ServerRole::Worker => {
            return Err(Failure::Runtime(error.context("a worker needs sandboxes to work runs")));
        }
        Err(error) => {
            tracing::warn!(%error, "sandboxes and tools are unavailable on this server; the rest of Cairn runs");
            (None, None)
        }
    };
    tracing::info!(
        version = cairn_core::VERSION,
        address = %addr,
        role = role.as_str(),
        database = store.backend(),
        bus = bus.health.backend(),
        "cairn is serving on http://{addr}"
    );
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    // Connections made in the app count as configured: a first run's
    // discovery only happens when there are none of either.
    let connected = store.connections().await.context("cannot read the model connections")?;
    if connected.is_empty() {
        discover_models(&mut config).await;
    }
    let models = Arc::new(cairn_llm::Models::from_config(&config.llm).context("llm.providers")?);
    let key_ring = || {
        if config.llm.secret_keys.is_empty() {
            cairn_auth::KeyRing::load_or_generate(&config.data_dir)
        } else {
            cairn_auth::KeyRing::from_config(&config.llm.secret_keys)
        }
        .map_err(|e| Failure::Config(anyhow::anyhow!("llm.secret_keys: {e}")))
    };
    let keys = key_ring()?;
    let webhooks =
        cairn_webhooks::Webhooks::new(store.clone(), key_ring()?, &config.webhooks, config.tools.allow_private.clone())
            .context("cannot start webhooks")?;
    let hooks: Arc<dyn cairn_core::hooks::Hooks> = Arc::new(webhooks.clone());
    let connections =
        cairn_gateway::Connections::new(config.llm.clone(), store.clone(), keys, models.clone(), bus.clone());
    let resealed = connections.reseal().await.context("cannot seal the model connections' keys again")?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed stored provider keys under the newest secret key");
    }
    connections.reload().await.context("cannot connect the models made in the app")?;
    connections.listen();
    let lease = Duration::from_secs(config.queue.lease_secs);
    let runs = match (role, &tools) {
        // A gateway queues runs and streams their events; workers (and
        // all-in-one processes) take them from the queue.
        (ServerRole::Gateway, _) => Some(
            cairn_agent::Runs::queue_only(store.clone(), bus.clone(), cairn_agent::Budget::default(), lease)
                .configured(&config.agent)
                .with_hooks(hooks.clone()),
        ),
        (_, Some(runner)) => {
            let agent = cairn_agent::Agent {
                models: models.clone(),
                registry: registry.clone(),
                services: runner.services.clone(),
                store: store.clone(),
                keys: Some(Arc::new(key_ring()?)),
            };
            let runs = cairn_agent::Runs::new(
                store.clone(),
                bus.clone(),
                Arc::new(agent),
                cairn_agent::Budget::default(),
                lease,
            )
            .configured(&config.agent)
            .with_max_deliveries(config.queue.max_deliveries)
            .with_hooks(hooks.clone());
            runs.start_workers(&format!("worker-{}", std::process::id()), config.agent.workers);
            Some(runs)
        }
        (_, None) => None,
    };
    // Every process that queues runs polls for scheduled ones; the store
    // gives each tick to one of them.
    if let Some(runs) = &runs {
        cairn_agent::schedules::Scheduler::new(store.clone(), runs.clone(), Duration::from_secs(1)).start();
    }
    // Processes that work runs also deliver webhooks (a gateway only queues them).
    if role != ServerRole::Gateway {
        webhooks.start();
    }
    // Deletions of threads and projects are worked where runs are (their
    // sandboxes are reachable there), one process at a time each.
    if role != ServerRole::Gateway {
        let sandboxes = tools.as_ref().map(|runner| runner.services.sandboxes.clone());
        let cache = bus.cache.clone();
        cairn_agent::deletions::Deleter::new(
            store.clone(),
            runs.clone(),
            sandboxes,
            files.clone(),
            cache,
            Duration::from_secs(1),
            lease,
        )
        .start();
    }
    // Retention passes, where runs are worked (idempotent across processes).
    if role != ServerRole::Gateway {
        cairn_agent::retention::Retention::new(store.clone(), config.retention.clone())
            .with_files(files.clone())
            .start();
    }
    // Processes that work runs hand them back when they stop (a gateway's
    // runs have no worker: draining them is immediate).
    let draining = runs.clone();
    if models.default_id().is_none() {
        tracing::warn!("no language model is configured (llm.providers): agent runs cannot start");
    }
    let state = AppState::from(AppParts {
        config: Arc::new(config),
        store,
        bus,
        auth,
        files,
        role,
        registry,
        tools,
        models,
        runs,
        memory,
        connections,
        webhooks,
        presence: Default::default(),
        stopping: Default::default(),
    });
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = state.stopping.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight, closing event streams");
        stopping.stop();
        let _ = stopping_tx.send(());
    };
    if let Some(admin) = admin_listener {
        // Metrics and probes for the deployment; it stops with the process.
        cairn_gateway::serve_admin(admin, cairn_gateway::admin_app(state.clone()));
    }
    let app = match role {
        ServerRole::Worker => cairn_gateway::admin_app(state),
        _ => cairn_gateway::app(state),
    };
    let server = cairn_gateway::serve(listener, app, shutdown);
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period; stopping anyway");
            Ok(())
        }
    };
    served.context("the server stopped with an error")?;
    if let Some(runs) = draining {
        tracing::info!(grace_secs = grace.as_secs(), "finishing the runs in hand; the rest go back to the queue");
        runs.drain(grace).await;
    }
    if let Some(sandboxes) = local_sandboxes {
        sandboxes.shutdown().await;
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// With no provider configured, the models the environment offers
/// (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, a local Ollama) become providers.
async fn discover_models(config: &mut Config) {
    if !config.llm.providers.is_empty() || !config.llm.discover {
        return;
    }
    let env = |name: &str| std::env::var(name).ok();
    let found = cairn_llm::discover::from_environment(&env, cairn_llm::discover::OLLAMA_URL).await;
    if found.providers.is_empty() {
        return;
    }
    tracing::info!(
        sources = %found.sources.join(", "),
        default_model = found.default_model.as_deref().unwrap_or(""),
        "connected the language models the environment offers"
    );
    config.llm.providers = found.providers;
    if config.llm.default_model.is_empty() {
        config.llm.default_model = found.default_model.unwrap_or_default();
    }
    if config.llm.embedding_model.is_empty() {
        config.llm.embedding_model = found.embedding_model.unwrap_or_default();
    }
}

/// Sandboxes (on this machine, or a sandbox host's) and the tools that run
/// in them. A gateway never runs sandboxes itself: its tool calls go to a
/// sandbox host, or there are none.
async fn build_tools(
    config: &Config,
    role: ServerRole,
    registry: &Arc<cairn_tools::Registry>,
    files: cairn_files::Files,
    store: Arc<dyn cairn_core::store::Store>,
) -> anyhow::Result<(cairn_tools::ToolRunner, Option<cairn_sandbox::LocalSandboxes>)> {
    let remote = !config.sandbox.host_url.is_empty() || config.sandbox.cluster;
    if role == ServerRole::Gateway && !remote {
        anyhow::bail!(
            "the gateway role runs no sandbox; tool calls through the API need sandbox hosts \
             (sandbox.cluster or sandbox.host_url)"
        );
    }
    let (sandboxes, local): (Arc<dyn cairn_core::sandbox::Sandboxes>, _) = if config.sandbox.cluster {
        let stale = Duration::from_secs(config.sandbox.heartbeat_secs * 3);
        let cluster = cairn_sandbox::ClusterSandboxes::new(store, config.sandbox.host_token.expose(), stale)
            .with_per_user_cap(config.sandbox.max_running_per_user);
        (Arc::new(cluster), None)
    } else if config.sandbox.host_url.is_empty() {
        let mut local = cairn_sandbox::LocalConfig::from_config(&config.sandbox, &config.data_dir)?;
        local.prelude = Some(registry.python_prelude());
        let sandboxes = cairn_sandbox::LocalSandboxes::start(local).await?;
        (Arc::new(sandboxes.clone()), Some(sandboxes))
    } else {
        (
            Arc::new(cairn_sandbox::RemoteSandboxes::new(
                &config.sandbox.host_url,
                config.sandbox.host_token.expose(),
            )?),
            None,
        )
    };
    let services = cairn_tools::Services::from_config(&config.tools, sandboxes, Some(files)).await?;
    Ok((cairn_tools::ToolRunner::new(registry.clone(), services), local))
}

/// The sandbox host: sandboxes on this machine for other Cairn processes,
/// over HTTP behind the service credential.
async fn serve_sandbox_host(config: Config) -> Result<(), Failure> {
    if config.sandbox.host_token.len() < 32 {
        return Err(Failure::Config(anyhow::anyhow!(
            "configuration key `sandbox.host_token` is invalid: the sandbox-host role needs the service credential \
             its callers use, at least 32 characters (got {})",
            config.sandbox.host_token.len()
        )));
    }
    if !config.sandbox.host_url.is_empty() {
        return Err(Failure::Config(anyhow::anyhow!(
            "configuration key `sandbox.host_url` must be empty on a sandbox host: it runs the sandboxes itself"
        )));
    }
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {} (server.bind)", config.server.bind))?;
    let admin_listener = bind_admin(&config).await?;
    let mut local = cairn_sandbox::LocalConfig::from_config(&config.sandbox, &config.data_dir)
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot set up sandboxes")?;
    local.prelude = Some(cairn_tools::Registry::builtin().python_prelude());
    // A registered host (the distributed shape): the database to report in,
    // and the object store its workspaces are snapshotted to.
    let registered = match config.sandbox.advertise_url.as_str() {
        "" => None,
        url => {
            let db = open_database(&config).await?;
            db.migrate().await.context("cannot migrate the database")?;
            let objects = cairn_files::Objects::from_config(&config.files, &config.data_dir)
                .context("cannot open the object store for workspace snapshots (files.*)")?;
            local.snapshots = Some(cairn_sandbox::Snapshots::new(objects.store().clone(), "sandbox-snapshots"));
            let capacity = u32::try_from(config.sandbox.max_running).unwrap_or(u32::MAX);
            Some(cairn_sandbox::Heartbeat::new(db.store(), url, capacity))
        }
    };
    let sandboxes = cairn_sandbox::LocalSandboxes::start(local)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot run sandboxes on this machine")?;
    let beating = registered.clone().map(|heartbeat| {
        let (sandboxes, every) = (sandboxes.clone(), Duration::from_secs(config.sandbox.heartbeat_secs));
        tokio::spawn(async move {
            heartbeat.run(every, sandboxes).await;
        })
    });
    tracing::info!(
        version = cairn_core::VERSION,
        address = %config.server.bind,
        role = "sandbox-host",
        cgroups = ?sandboxes.cgroups(),
        "cairn sandbox host is serving on http://{}",
        config.server.bind
    );
    if let Some(admin) = admin_listener {
        cairn_gateway::serve_admin(admin, cairn_gateway::sandbox_host_admin_app(&config, Arc::new(sandboxes.clone())));
    }
    let app = cairn_gateway::sandbox_host_app(&config, Arc::new(sandboxes.clone()));
    let stopping = sandboxes.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Executions in flight end (saying why) when their kernels stop, so
        // their streams finish and the server can drain.
        tracing::info!("shutting down: pausing sandboxes");
        if let Some(heartbeat) = &registered {
            if let Some(beating) = &beating {
                beating.abort();
            }
            heartbeat.drain().await;
        }
        // Pausing snapshots every workspace that changed; then the host
        // leaves the registry and its sandboxes move on their next use.
        stopping.shutdown().await;
        if let Some(heartbeat) = &registered {
            heartbeat.leave().await;
        }
    };
    cairn_gateway::serve(listener, app, shutdown).await.context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// The admin listener (`server.admin_bind`: metrics and probes without
/// credentials), bound when one is configured.
async fn bind_admin(config: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = config.server.admin_addr() else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (server.admin_bind)"))?;
    Ok(Some(listener))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
