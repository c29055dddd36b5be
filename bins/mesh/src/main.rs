//! `contrast-mesh`: the service-mesh sidecar. Every inbound TCP connection to the pod is
//! redirected (iptables TPROXY) to the proxy, which requires mutual TLS with a certificate from
//! the deployment's mesh CA and forwards the plain bytes to the port the client meant; every
//! declared egress gets a loopback listener that turns the application's plain connection into
//! mutual TLS to the remote. Applications stay unchanged.
//!
//! The configuration comes from upstream Contrast's annotations, which `contrast generate`
//! copies into the environment; the rules and the parsing are `contrast_mesh`'s.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use contrast_core::duration::parse_duration;
use contrast_core::kubernetes::{SECRETS_MOUNT_PATH, SERVICE_MESH_READY_FILE};
use contrast_mesh::admin::{self, Readiness};
use contrast_mesh::config::{
    self, ADMIN_PORT_ENV, EGRESS_ENV, EgressEntry, INGRESS_ENV, Ingress, MTLS_INGRESS_PORT,
    TLS_INGRESS_PORT,
};
use contrast_mesh::iptables::{self, IPTABLES, IPTABLES_RESTORE, NO_SUCH_RULE};
use contrast_mesh::metrics::Metrics;
use contrast_mesh::proxy::{self, Context, Forward, IngressTls, Limits, TlsHandle};
use contrast_mesh::tls::TLS_CONFIG_DIR;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

const LONG_ABOUT: &str = "\
The service-mesh sidecar of contrast-rs: mutual TLS between confidential workloads with the
mesh certificates the initializer wrote, without changing the applications.

Start-up, in this order:
  1. Parse the configuration (below); an entry it cannot parse is named and the sidecar exits 2.
  2. Wait for the initializer's files in --tls-dir (mesh-ca.pem, certChain.pem, key.pem) and
     check that they belong together.
  3. Listen: 15006 (mutual TLS: a client certificate from the mesh CA is required), 15007 (TLS
     without client certificate), both transparent; one loopback listener per egress entry; the
     admin interface if a port is given.
  4. Install the iptables rules (table mangle, chains CONTRAST_INBOUND and CONTRAST_IN_REDIRECT):
     inbound TCP that is not on loopback and not established goes to 15006, to 15007 for ports
     declared disableTLS=false, and passes for ports declared disableTLS=true.
  5. Remove the pod VM's default-deny rule (filter INPUT: conntrack ! ESTABLISHED,RELATED DROP).
  6. Write --ready-file and report ready on the admin interface.
Then serve until SIGTERM or SIGINT. The certificate files are read again every
--reload-interval: new connections use new files once all three belong together (a manifest
update rotates the mesh CA); open connections keep theirs.

Configuration (upstream Contrast's annotations, which `contrast generate` copies here):
  CONTRAST_INGRESS_PROXY_CONFIG  <name>#<port>#<disableTLS> entries separated by ##; empty:
                                 every port requires mutual TLS; DISABLED: no redirection
  CONTRAST_EGRESS_PROXY_CONFIG   <name>#<127.x.y.z>:<port>#<remote host>:<port> entries
                                 separated by ##: listen on the loopback address, connect to
                                 the remote with mutual TLS (its chain must lead to the mesh CA)
  CONTRAST_ADMIN_PORT            port of the admin interface: GET /ready, GET /metrics";

const AFTER_HELP: &str = "\
Needs CAP_NET_ADMIN (transparent sockets, iptables) and the programs iptables and
iptables-restore on PATH.

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  failure: the files never became a valid configuration within --cert-timeout, a listener
     could not be bound, or the rules could not be installed (the log says which)
  2  invalid command line or configuration (the entry is named)

Example (what the injected sidecar runs; the configuration comes from the environment):
  CONTRAST_EGRESS_PROXY_CONFIG='db#127.137.0.1:5432#db:5432' \\
  CONTRAST_INGRESS_PROXY_CONFIG='metrics#9090#true' contrast-mesh";

/// The sidecar's command line.
#[derive(Debug, Parser)]
#[command(
    name = "contrast-mesh",
    version = contrast_tee::version_line!(env!("CONTRAST_BUILD_COMMIT")),
    about = "The service-mesh sidecar: transparent mutual TLS between confidential workloads",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
struct Args {
    /// Ingress entries (see above).
    #[arg(long, env = INGRESS_ENV, default_value = "", value_parser = parse_ingress, hide_default_value = true)]
    ingress: Ingress,
    /// Egress entries (see above).
    #[arg(long, env = EGRESS_ENV, default_value = "", value_parser = parse_egress, hide_default_value = true)]
    egress: Egresses,
    /// Port of the admin interface (all addresses).
    #[arg(long, env = ADMIN_PORT_ENV, value_name = "PORT")]
    admin_port: Option<String>,
    /// The initializer's TLS directory.
    #[arg(long, value_name = "DIR", default_value_os_t = Path::new(SECRETS_MOUNT_PATH).join(TLS_CONFIG_DIR))]
    tls_dir: PathBuf,
    /// Written once the sidecar is ready (a startup probe can test it).
    #[arg(long, value_name = "PATH", default_value = SERVICE_MESH_READY_FILE)]
    ready_file: PathBuf,
    /// How often the certificate files are read again.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    reload_interval: Duration,
    /// How long to wait at start for the certificate files.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    cert_timeout: Duration,
    /// The TLS handshake of each connection must finish within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Connections per listener; more are closed at once.
    #[arg(long, value_name = "N", default_value = "4096")]
    max_connections: usize,
}

/// The parsed egress entries (a newtype: clap treats a bare `Vec` as a repeated flag).
#[derive(Clone, Debug)]
struct Egresses(Vec<EgressEntry>);

fn parse_ingress(value: &str) -> Result<Ingress, String> {
    config::parse_ingress(INGRESS_ENV, value).map_err(|e| e.to_string())
}

fn parse_egress(value: &str) -> Result<Egresses, String> {
    config::parse_egress(EGRESS_ENV, value)
        .map(Egresses)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let admin_port = match args
        .admin_port
        .as_deref()
        .map(|value| config::parse_admin_port(value, &args.egress.0))
        .transpose()
    {
        Ok(port) => port,
        Err(e) => {
            use clap::CommandFactory as _;
            Args::command()
                .error(clap::error::ErrorKind::ValueValidation, e.to_string())
                .exit();
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, admin_port)) {
        Ok(signal) => {
            info!(signal, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(
                error = contrast_core::error_chain::describe(e.as_ref()),
                "the mesh sidecar failed"
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, admin_port: Option<u16>) -> Result<u8> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();

    let tls = tokio::select! {
        tls = wait_for_certificates(&args.tls_dir, &provider, args.cert_timeout) => tls?,
        _ = sigterm.recv() => return Ok(15),
        _ = sigint.recv() => return Ok(2),
    };
    let cx = Context {
        tls: TlsHandle::new(tls),
        metrics: Arc::clone(&metrics),
        limits: Limits {
            handshake_timeout: args.handshake_timeout,
            max_connections: args.max_connections,
            ..Limits::default()
        },
    };

    // Listen before any traffic is redirected to the listeners.
    let mut tasks = tokio::task::JoinSet::new();
    if let Ingress::Redirect(entries) = &args.ingress {
        for (port, kind) in [
            (MTLS_INGRESS_PORT, IngressTls::Mutual),
            (TLS_INGRESS_PORT, IngressTls::ServerOnly),
        ] {
            let listener = proxy::bind_transparent(port).with_context(|| {
                format!("cannot listen on the transparent port {port} (CAP_NET_ADMIN is needed)")
            })?;
            tasks.spawn(proxy::run_ingress(
                listener,
                kind,
                Forward::OriginalDestination,
                cx.clone(),
            ));
        }
        info!(
            entries = entries.len(),
            "ingress: mutual TLS on {MTLS_INGRESS_PORT}, TLS on {TLS_INGRESS_PORT}"
        );
        for entry in entries {
            info!(name = %entry.name, port = entry.port, mode = %entry.mode, "ingress entry");
        }
    } else {
        info!("ingress: DISABLED, inbound traffic is not redirected");
    }
    for entry in &args.egress.0 {
        let listener = TcpListener::bind(entry.listen).await.with_context(|| {
            format!("egress {:?}: cannot listen on {}", entry.name, entry.listen)
        })?;
        info!(name = %entry.name, listen = %entry.listen, remote = %format!("{}:{}", entry.remote_host, entry.remote_port), "egress");
        tasks.spawn(proxy::run_egress(listener, entry.clone(), cx.clone()));
    }
    if let Some(port) = admin_port {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("cannot listen on the admin port {port}"))?;
        info!(port, "admin interface: GET /ready, GET /metrics");
        tasks.spawn(admin::serve(
            listener,
            readiness.clone(),
            Arc::clone(&metrics),
        ));
    }
    tasks.spawn(proxy::reload_loop(
        args.tls_dir.clone(),
        cx.tls.clone(),
        Arc::clone(&provider),
        args.reload_interval,
        Arc::clone(&metrics),
    ));

    if let Some(rules) = iptables::ingress_rules(&args.ingress) {
        install_rules(&rules).await?;
        info!("iptables: inbound TCP redirected to the proxy");
    }
    remove_default_deny().await?;
    contrast_fs::write_marker(&args.ready_file)
        .with_context(|| format!("cannot write the ready file {}", args.ready_file.display()))?;
    readiness.set(true);
    metrics.set_ready(true);
    info!(ready_file = %args.ready_file.display(), "ready");

    let signal = tokio::select! {
        _ = sigterm.recv() => 15,
        _ = sigint.recv() => 2,
        Some(ended) = tasks.join_next() => {
            bail!("a listener stopped: {ended:?}");
        }
    };
    readiness.set(false);
    tasks.abort_all();
    Ok(signal)
}

/// Waits for the initializer's files to exist and make a configuration, logging progress.
async fn wait_for_certificates(
    dir: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    timeout: Duration,
) -> Result<contrast_mesh::tls::MeshTls> {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        match proxy::load(dir, provider).await {
            Ok(tls) => {
                info!(dir = %dir.display(), "mesh certificates loaded");
                return Ok(tls);
            }
            Err(e) if started.elapsed() >= timeout => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the mesh certificates in {} are not usable after {timeout:?} \
                     (--cert-timeout): did the initializer run?",
                    dir.display()
                )));
            }
            Err(e) => {
                if last_report == started || last_report.elapsed() >= Duration::from_secs(10) {
                    last_report = Instant::now();
                    info!(dir = %dir.display(), reason = %e, waited_s = started.elapsed().as_secs(), "waiting for the initializer's certificate files");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies the rules with `iptables-restore --noflush` (both chains atomically), then adds the
/// jump from PREROUTING unless an earlier run left it.
async fn install_rules(rules: &str) -> Result<()> {
    let mut child = Command::new(IPTABLES_RESTORE)
        .arg("--noflush")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {IPTABLES_RESTORE} (is iptables installed?)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .await
            .with_context(|| format!("cannot write the rules to {IPTABLES_RESTORE}"))?;
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "{IPTABLES_RESTORE} refused the rules: {}\nrules:\n{rules}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let present = Command::new(IPTABLES)
        .args(iptables::prerouting_jump("-C"))
        .output()
        .await?
        .status
        .success();
    if !present {
        iptables_run(
            &iptables::prerouting_jump("-A"),
            "cannot add the PREROUTING jump",
        )
        .await?;
    }
    Ok(())
}

/// Removes the default-deny rule; absent is fine (no pod VM rule here, or removed already).
async fn remove_default_deny() -> Result<()> {
    let output = Command::new(IPTABLES)
        .args(iptables::default_deny("-D"))
        .output()
        .await
        .with_context(|| format!("cannot run {IPTABLES}"))?;
    match output.status.code() {
        Some(0) => info!("removed the default-deny rule: inbound connections are accepted"),
        Some(NO_SUCH_RULE) => warn!("no default-deny rule to remove"),
        _ => bail!(
            "cannot remove the default-deny rule: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
    Ok(())
}

async fn iptables_run(args: &[String], what: &str) -> Result<()> {
    let output = Command::new(IPTABLES)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {IPTABLES}"))?;
    if !output.status.success() {
        bail!(
            "{what}: `{IPTABLES} {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
