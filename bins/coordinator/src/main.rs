//! The Contrast Coordinator.
//!
//! Runs inside a confidential VM. It attests itself to users (aTLS), accepts the manifest,
//! keeps the signed manifest history in its store, acts as the deployment's CA (every
//! workload's initializer attests to it and gets a mesh certificate and its workload secret),
//! and is recovered after a restart by a seed-share owner or a ready peer replica.
//!
//! This binary is wiring: flags, listeners, signals, logging and metrics. The state machine and
//! every request rule are the library `contrast_coordinator`; the modules here adapt it to the
//! listeners: [`user_api`] (1313) and [`mesh_api`] (7777), upstream's gRPC services served by
//! `contrast_grpc::server`, [`evidence_api`] (1314), [`ops`] (9102), [`transit_api`] (8200, off
//! unless `--transit-addr`);
//! [`http`] is the plain HTTP serving machinery, [`recovery`] the peer-recovery transport, [`peers`]
//! replica discovery, [`metrics`] the Prometheus metrics.

#![forbid(unsafe_code)]

mod evidence_api;
mod http;
mod mesh_api;
mod metrics;
mod ops;
mod peers;
mod recovery;
mod transit_api;
mod user_api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use contrast_attest::{CrlPolicy, Issuer};
use contrast_coordinator::{HeadObservation, Options, OsEntropy, Phase, SystemClock};
use contrast_core::api::{EVIDENCE_API_PORT, MESH_API_PORT, OPS_PORT, USER_API_PORT};
use contrast_core::duration::parse_duration;
use contrast_store::{AnyStore, FileStore, FileStoreOptions, HistoryStore, Key, Store};
use rand_core::OsRng;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::http::serve_plain;
use crate::metrics::Metrics;
use crate::peers::{Peers, StaticPeer};

const EXAMPLES: &str = "\
Examples:
  # On this machine, with the simulated SEV-SNP platform and a file store:
  coordinator --tee simulated --sim-dir ./sim --sim-host-data <coordinator policy hash> \\
      --state-dir ./state --user-addr 127.0.0.1:1313 --mesh-addr 127.0.0.1:7777

  # In Kubernetes (the StatefulSet `contrast generate --coordinator` writes):
  coordinator --store kubernetes

Exit codes: 0 after a graceful shutdown (SIGTERM/SIGINT), 1 if it cannot start (the error says
which flag or resource is wrong).

States: uninitialized (no history: the first `contrast set` initializes it), active,
needs-recovery (history found at start: `contrast recover`, or a ready peer, restores it),
stale (another replica moved the history: recovered from a peer). Only an active Coordinator
is ready (/probe/readiness) and serves the mesh API.";

/// Where the history is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// One file per key under --state-dir (the default; several Coordinators on one machine may
    /// share it).
    File,
    /// One ConfigMap per key in the pod's namespace (in-cluster config).
    Kubernetes,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How a missing AMD CRL is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CrlMode {
    /// Check a CRL when the attestation document carries one; accept without (a host that
    /// leaves the CRL out decides whether revocation is checked).
    BestEffort,
    /// Refuse documents without a fresh, ARK-signed CRL.
    Required,
}

/// The Contrast Coordinator: attestation, CA and secret root of a confidential deployment.
#[derive(Debug, Parser)]
#[command(
    name = "coordinator",
    version = contrast_tee::binary_version!(),
    long_version = contrast_tee::binary_long_version!(),
    after_long_help = EXAMPLES
)]
struct Args {
    /// User API (gRPC over aTLS; set manifest, get manifests, recover).
    #[arg(long, default_value_t = any_addr(USER_API_PORT), env = "CONTRAST_USER_ADDR")]
    user_addr: SocketAddr,
    /// Mesh API (gRPC over mutual aTLS; workload certificates, peer recovery).
    #[arg(long, default_value_t = any_addr(MESH_API_PORT), env = "CONTRAST_MESH_ADDR")]
    mesh_addr: SocketAddr,
    /// Evidence API (plain HTTP; POST /attest, GET /capabilities).
    #[arg(long, default_value_t = any_addr(EVIDENCE_API_PORT), env = "CONTRAST_EVIDENCE_ADDR")]
    evidence_addr: SocketAddr,
    /// Probes and /metrics (plain HTTP).
    #[arg(long, default_value_t = any_addr(OPS_PORT), env = "CONTRAST_OPS_ADDR")]
    ops_addr: SocketAddr,
    /// Serve Prometheus metrics on the ops port's /metrics (off by default, as upstream: the
    /// port is plain HTTP and unauthenticated). Any value of CONTRAST_METRICS but 0/false/no/off
    /// turns it on.
    #[arg(long, env = "CONTRAST_METRICS")]
    metrics: bool,
    /// Serve the transit engine here (off by default; upstream's port is 8200, e.g.
    /// 0.0.0.0:8200): Vault-compatible POST /v1/transit/encrypt/{name} and
    /// /v1/transit/decrypt/{name} over HTTPS with a mesh certificate, for workloads (Vault or
    /// OpenBao auto-unseal) whose mesh client certificate carries the workload secret ID {name}.
    /// Keys derive from the seed, so every replica and recovered Coordinator decrypts alike.
    /// Served only while a state is active; otherwise connections are closed before the
    /// handshake.
    #[arg(long, value_name = "ADDR", env = "CONTRAST_TRANSIT_ADDR")]
    transit_addr: Option<SocketAddr>,
    /// Where the history is kept.
    #[arg(long, value_enum, default_value = "file")]
    store: StoreKind,
    /// The file store's directory (--store file).
    #[arg(
        long,
        default_value = "/var/lib/contrast/coordinator",
        env = "CONTRAST_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// The namespace of the ConfigMaps (--store kubernetes; default: the pod's namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// This pod's name (--store kubernetes: the store's owner is found through it).
    #[arg(long, env = "HOSTNAME")]
    pod_name: Option<String>,
    /// A peer replica as MESH_ADDR=OPS_ADDR (repeatable), for several Coordinators sharing a
    /// file store on one machine.
    #[arg(long = "peer", value_name = "MESH_ADDR=OPS_ADDR")]
    peers: Vec<StaticPeer>,
    /// How often a Coordinator in recovery tries its peers.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    recovery_interval: Duration,
    /// A TLS handshake (and a plain HTTP request's headers) must finish within this
    /// (upstream's aTLS server handshake timeout).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Any connection is closed after this.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    connection_timeout: Duration,
    /// Open connections per listener. Beyond it a new connection is closed as soon as it is
    /// accepted (logged, counted in contrast_coordinator_connections_refused_total); a
    /// connection that ends frees its place. A connection whose attestation was refused is
    /// closed after the refusal is answered.
    #[arg(long, default_value_t = contrast_grpc::server::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// How a missing AMD CRL in a workload's attestation is treated. Initializers and
    /// Coordinators send one (fetched from the KDS); best-effort is for TEEs that cannot.
    #[arg(long, value_enum, default_value = "required")]
    crl: CrlMode,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, default_value = "info", env = "CONTRAST_LOG")]
    log_level: String,
    #[command(flatten)]
    tee: contrast_tee::TeeArgs,
}

/// `0.0.0.0:port`, the default of each listener flag.
fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// The Coordinator's core over the store and peers this binary wires.
pub(crate) type Core = contrast_coordinator::Coordinator<AnyStore, Peers>;

/// What every listener shares.
pub(crate) struct Coordinator {
    core: Core,
    issuer: Arc<dyn Issuer>,
    metrics: Metrics,
    /// Whether `/metrics` is served (`--metrics`).
    serve_metrics: bool,
    /// Listeners are up and the first recovery attempt is over (startup probe).
    started: AtomicBool,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = init_logging(&args) {
        eprintln!(
            "coordinator: {}",
            contrast_core::error_chain::describe(error.as_ref())
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "starting the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", contrast_core::error_chain::describe(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("initialising logging: {e}"))
}

async fn open_store(args: &Args) -> anyhow::Result<(AnyStore, Peers)> {
    let static_peers = || {
        if args.peers.is_empty() {
            Peers::None
        } else {
            Peers::Static(args.peers.clone())
        }
    };
    match args.store {
        StoreKind::File => {
            let store = FileStore::open(&args.state_dir, FileStoreOptions::default())
                .await
                .with_context(|| {
                    format!("opening the file store in {}", args.state_dir.display())
                })?;
            Ok((AnyStore::from(store), static_peers()))
        }
        StoreKind::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;
            let namespace = match &args.namespace {
                Some(namespace) => namespace.clone(),
                None => tokio::fs::read_to_string(
                    "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
                )
                .await
                .context("reading the pod's namespace; pass --namespace outside a pod")?
                .trim()
                .to_owned(),
            };
            let pod_name = args
                .pod_name
                .as_deref()
                .context("--store kubernetes needs the pod name (--pod-name or $HOSTNAME)")?;
            let peers = if args.peers.is_empty() {
                Peers::Kubernetes(Box::new(peers::KubernetesPeers::new(
                    client.clone(),
                    &namespace,
                    pod_name,
                    args.mesh_addr.port(),
                )))
            } else {
                static_peers()
            };
            let store = contrast_store::kubernetes::ConfigMapStore::discover(
                client,
                &namespace,
                pod_name,
                contrast_store::kubernetes::DEFAULT_STATEFULSET,
                contrast_store::kubernetes::ConfigMapStoreOptions::default(),
            )
            .await
            .with_context(|| {
                format!("finding the Coordinator StatefulSet that owns pod {pod_name}")
            })?;
            Ok((AnyStore::from(store), peers))
        }
    }
}

/// Connections the kernel queues for `accept`. std's 128 overflowed when every workload
/// re-attested at once and the accept loop waited behind handshakes: each dropped connection
/// cost its client a 1 s SYN retransmission. The kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As std's bind does: a restarted Coordinator can bind while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("listening on {addr} for the {what}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    args.tee
        .check_simulated_allowed("coordinator", cfg!(feature = "simulated"))?;
    let tee = args
        .tee
        .open(&mut OsRng)
        .context("setting up the TEE (see --tee)")?;
    // VCEK, CA chain and CRL from the KDS (or proxy, or cache) into the Coordinator's evidence,
    // so clients can require the CRL without network access of their own.
    let _collateral = tee.collateral.map(|feed| tokio::spawn(feed.run()));
    let (issuer, environment) = (tee.issuer, tee.sim_dir);
    if let Some(dir) = &environment {
        tracing::warn!(
            dir = %dir.display(),
            "running on the SIMULATED SEV-SNP platform: no hardware protection"
        );
    }
    let (store, peers) = open_store(&args).await?;
    let crl = match args.crl {
        CrlMode::BestEffort => {
            tracing::warn!(
                "--crl best-effort: attestations without a CRL are accepted, so whoever \
                 controls the host decides whether revoked certificates are noticed"
            );
            CrlPolicy::BestEffort
        }
        CrlMode::Required => CrlPolicy::Required,
    };
    let coordinator = Arc::new(Coordinator {
        core: Core::new(
            HistoryStore::new(store),
            peers,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
            Options::default().with_crl_policy(crl),
        ),
        issuer,
        metrics: Metrics::new(),
        serve_metrics: args.metrics,
        started: AtomicBool::new(false),
    });

    let user = bind(args.user_addr, "user API")?;
    let mesh = bind(args.mesh_addr, "mesh API")?;
    let evidence = bind(args.evidence_addr, "evidence API")?;
    let ops = bind(args.ops_addr, "probes and metrics")?;
    let transit = args
        .transit_addr
        .map(|addr| bind(addr, "transit engine"))
        .transpose()?;
    let limits = contrast_grpc::server::Limits {
        handshake_timeout: args.handshake_timeout,
        connection_timeout: args.connection_timeout,
        max_connections: args.max_connections,
    };
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(contrast_grpc::server::serve(
        user,
        Arc::new(user_api::UserAcceptor::new(Arc::clone(&coordinator))),
        user_api::UserApi::service(Arc::clone(&coordinator)),
        limits,
        shutdown.clone(),
    ));
    servers.spawn(contrast_grpc::server::serve(
        mesh,
        Arc::new(mesh_api::MeshAcceptor::new(Arc::clone(&coordinator))),
        mesh_api::MeshApi::service(Arc::clone(&coordinator)),
        limits,
        shutdown.clone(),
    ));
    servers.spawn(serve_plain(
        evidence,
        Arc::new(evidence_api::EvidenceApi::new(Arc::clone(&coordinator))),
        limits,
        shutdown.clone(),
        refused(&coordinator, "evidence"),
    ));
    servers.spawn(serve_plain(
        ops,
        Arc::new(ops::Ops::new(Arc::clone(&coordinator))),
        limits,
        shutdown.clone(),
        refused(&coordinator, "ops"),
    ));
    if let Some(transit) = transit {
        servers.spawn(transit_api::serve(
            transit,
            Arc::clone(&coordinator),
            limits,
            shutdown.clone(),
        ));
    }
    let watcher = tokio::spawn(watch_history(Arc::clone(&coordinator)));

    // As upstream: one recovery attempt before the startup probe passes.
    if tokio::time::timeout(
        recovery::STARTUP_ATTEMPT_TIMEOUT,
        recovery::recover_round(&coordinator),
    )
    .await
    .is_err()
    {
        tracing::warn!("the first peer recovery attempt timed out");
    }
    let recovery_loop = tokio::spawn(recovery::run(
        Arc::clone(&coordinator),
        args.recovery_interval,
        shutdown.clone(),
    ));
    let phase = coordinator
        .core
        .phase()
        .await
        .context("reading the store")?;
    coordinator.started.store(true, Ordering::Release);
    tracing::info!(
        user = %args.user_addr,
        mesh = %args.mesh_addr,
        evidence = %args.evidence_addr,
        ops = %args.ops_addr,
        transit = ?args.transit_addr,
        state = phase.name(),
        "coordinator started"
    );
    match phase {
        Phase::Uninitialized => tracing::info!(
            "waiting for the first manifest: `contrast set` sets it; until then initializers are \
             told that there is no manifest"
        ),
        Phase::NeedsRecovery => tracing::info!(
            "the store holds a history but this process does not hold its seed: waiting for a \
             ready peer, or a seed-share owner's `contrast recover`"
        ),
        _ => {}
    }

    wait_for_signal().await?;
    tracing::info!("shutting down: draining connections");
    let _ = shutdown_tx.send(true);
    watcher.abort();
    recovery_loop.abort();
    while servers.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Counts the connections a plain listener closes at its cap.
fn refused(
    coordinator: &Arc<Coordinator>,
    listener: &'static str,
) -> impl FnMut(SocketAddr) + use<> {
    let coordinator = Arc::clone(coordinator);
    move |_| coordinator.metrics.connection_refused(listener)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Watches `transitions/latest` and has the core judge the stored head on every change: stale
/// when another replica moved the history, tampered when no replica can have written it.
async fn watch_history(coordinator: Arc<Coordinator>) {
    let core = &coordinator.core;
    loop {
        match core
            .history_store()
            .store()
            .watch(&Key::latest_transition())
            .await
        {
            Ok(mut watch) => {
                while let Some(value) = watch.next().await {
                    // The event only says the head changed: the core reads the store anew, so
                    // a late or garbled event cannot mislead it, and logs what it finds.
                    if let Err(error) = value {
                        tracing::warn!(%error, "reading transitions/latest");
                    }
                    match core.observe_head().await {
                        Ok(HeadObservation::Tampered(tampering)) => {
                            coordinator.metrics.tampering(tampering.kind());
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "checking the stored head"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "watching transitions/latest"),
        }
        // As upstream: a broken watch restarts after 5 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
