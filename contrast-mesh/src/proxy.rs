//! The proxy: ingress listeners that terminate (mutual) TLS and forward the plain bytes to the
//! connection's original destination, egress listeners that take the application's plain
//! connections and originate mutual TLS to the declared remote, and the reloader that swaps in
//! new certificates when the initializer's files change.
//!
//! Under TPROXY a redirected connection keeps its destination: the accepted socket's local
//! address is where the client meant to go ([`Forward::OriginalDestination`]); the listening
//! socket must be transparent ([`bind_transparent`]). Without the rules (benchmarks, tests on
//! loopback) the destination is given ([`Forward::To`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{EgressEntry, MTLS_INGRESS_PORT, TLS_INGRESS_PORT};
use crate::metrics::{Direction, Listener, Metrics, Outcome};
use crate::tls::{CERT_CHAIN_FILE, KEY_FILE, MESH_CA_FILE, MeshFiles, MeshTls, TlsError};

/// The TLS configurations in force; new connections take the current ones, connections already
/// open keep theirs.
#[derive(Clone, Debug)]
pub struct TlsHandle(Arc<RwLock<Arc<MeshTls>>>);

impl TlsHandle {
    /// A handle with `tls` in force.
    #[must_use]
    pub fn new(tls: MeshTls) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(tls))))
    }

    /// The configurations in force.
    #[must_use]
    pub fn current(&self) -> Arc<MeshTls> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts `tls` in force.
    pub fn replace(&self, tls: MeshTls) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(tls);
    }
}

/// Reads the initializer's three files from `dir` (its `tls-config` directory).
///
/// # Errors
///
/// A file that cannot be read, with its path.
pub async fn read_files(dir: &Path) -> io::Result<MeshFiles> {
    let read = |name: &str| {
        let path = dir.join(name);
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
    };
    Ok(MeshFiles {
        mesh_ca_pem: read(MESH_CA_FILE).await?,
        cert_chain_pem: read(CERT_CHAIN_FILE).await?,
        key_pem: zeroize::Zeroizing::new(read(KEY_FILE).await?),
    })
}

/// Builds the configurations from the files in `dir`.
///
/// # Errors
///
/// The files cannot be read or do not make a configuration.
pub async fn load(dir: &Path, provider: &Arc<CryptoProvider>) -> Result<MeshTls, LoadError> {
    let files = read_files(dir).await?;
    Ok(MeshTls::build(&files, provider, UnixTime::now())?)
}

/// Why the certificate files could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file cannot be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The files do not make a configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Watches the files in `dir` every `interval` and puts new ones in force once they make a
/// consistent configuration (the initializer replaces them one by one: until all three are new,
/// the previous configuration stays). Runs until the task is dropped.
pub async fn reload_loop(
    dir: PathBuf,
    handle: TlsHandle,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    metrics: Arc<Metrics>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_failure: Option<[u8; 32]> = None;
    loop {
        ticker.tick().await;
        let files = match read_files(&dir).await {
            Ok(files) => files,
            Err(error) => {
                tracing::debug!(%error, "certificate files not readable; keeping the current ones");
                continue;
            }
        };
        let fingerprint = files.fingerprint();
        if fingerprint == handle.current().fingerprint || last_failure == Some(fingerprint) {
            continue;
        }
        match MeshTls::build(&files, &provider, UnixTime::now()) {
            Ok(tls) => {
                let new_ca = tls.mesh_ca_der != handle.current().mesh_ca_der;
                handle.replace(tls);
                last_failure = None;
                metrics.reload(true);
                tracing::info!(mesh_ca_changed = new_ca, "new mesh certificates in force");
            }
            Err(error) => {
                last_failure = Some(fingerprint);
                metrics.reload(false);
                tracing::warn!(%error, "new certificate files do not make a configuration (yet); keeping the current ones");
            }
        }
    }
}

/// A listening socket with `IP_TRANSPARENT`, as TPROXY requires of the socket it redirects to.
///
/// # Errors
///
/// Socket errors; setting the option needs `CAP_NET_ADMIN`.
pub fn bind_transparent(port: u16) -> io::Result<TcpListener> {
    let address = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_ip_transparent_v4(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Where an ingress connection's plain bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// The connection's original destination (its local address under TPROXY).
    OriginalDestination,
    /// A fixed address.
    To(SocketAddr),
}

/// Which TLS an ingress listener requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngressTls {
    /// A client certificate from the mesh CA is required.
    Mutual,
    /// No client certificate.
    ServerOnly,
}

impl IngressTls {
    fn listener(self) -> Listener {
        match self {
            Self::Mutual => Listener::IngressMtls,
            Self::ServerOnly => Listener::IngressTls,
        }
    }
}

/// Bounds on each connection and on their number.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Connecting to the destination must succeed within this.
    pub connect_timeout: Duration,
    /// Connections per listener; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// The shared parts every connection needs.
#[derive(Clone, Debug)]
pub struct Context {
    /// The certificates in force.
    pub tls: TlsHandle,
    /// Where connections are counted.
    pub metrics: Arc<Metrics>,
    /// The bounds.
    pub limits: Limits,
}

/// Serves an ingress listener until the task is dropped.
pub async fn run_ingress(listener: TcpListener, kind: IngressTls, forward: Forward, cx: Context) {
    accept_loop(
        listener,
        kind.listener(),
        "ingress",
        cx,
        move |tcp, peer, cx| async move { ingress_connection(tcp, peer, kind, forward, &cx).await },
    )
    .await;
}

/// Accepts on `listener` until the task is dropped: at most `max_connections` connections at
/// once (more are closed at once and counted as refused), each served by `serve` in a task of
/// its own and counted with the outcome it returns. `name` names the listener in logs.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    label: Listener,
    name: &str,
    cx: Context,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Context) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(cx.limits.max_connections));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, listener = ?label, name, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            cx.metrics.connection(label, Outcome::Refused);
            continue;
        };
        let metrics = Arc::clone(&cx.metrics);
        let connection = serve(tcp, peer, cx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = connection.await;
            metrics.connection(label, outcome);
        });
    }
}

async fn ingress_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: IngressTls,
    forward: Forward,
    cx: &Context,
) -> Outcome {
    let label = kind.listener();
    let destination = match forward {
        Forward::To(address) => address,
        Forward::OriginalDestination => match tcp.local_addr() {
            Ok(local) if [MTLS_INGRESS_PORT, TLS_INGRESS_PORT].contains(&local.port()) => {
                tracing::debug!(%peer, "connection to the proxy's own port: closed");
                return Outcome::Blackholed;
            }
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%peer, %error, "no original destination");
                return Outcome::Broken;
            }
        },
    };
    let _ = tcp.set_nodelay(true);
    let tls = cx.tls.current();
    let config = match kind {
        IngressTls::Mutual => Arc::clone(&tls.mutual_server),
        IngressTls::ServerOnly => Arc::clone(&tls.server),
    };
    drop(tls);
    let accepted = tokio::time::timeout(
        cx.limits.handshake_timeout,
        TlsAcceptor::from(config).accept(tcp),
    )
    .await;
    let mut stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%peer, %destination, %error, listener = ?label, "TLS handshake refused");
            return Outcome::HandshakeFailed;
        }
        Err(_) => {
            tracing::info!(%peer, %destination, listener = ?label, "TLS handshake timed out");
            return Outcome::HandshakeFailed;
        }
    };
    let mut upstream = match connect(destination, cx.limits.connect_timeout).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::info!(%peer, %destination, %error, "destination unreachable");
            return Outcome::UpstreamFailed;
        }
    };
    let _active = cx.metrics.active(label);
    splice(&mut stream, &mut upstream, label, &cx.metrics).await
}

/// Serves an egress listener until the task is dropped: each plain connection from the
/// application becomes a mutual-TLS connection to the entry's remote.
pub async fn run_egress(listener: TcpListener, entry: EgressEntry, cx: Context) {
    let entry = Arc::new(entry);
    let name = entry.name.clone();
    accept_loop(
        listener,
        Listener::Egress,
        &name,
        cx,
        move |tcp, peer, cx| {
            let entry = Arc::clone(&entry);
            async move { egress_connection(tcp, peer, &entry, &cx).await }
        },
    )
    .await;
}

async fn egress_connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    entry: &EgressEntry,
    cx: &Context,
) -> Outcome {
    let _ = tcp.set_nodelay(true);
    let remote = format!("{}:{}", entry.remote_host, entry.remote_port);
    let upstream = match resolve_ipv4(&entry.remote_host, entry.remote_port).await {
        Ok(address) => connect(address, cx.limits.connect_timeout).await,
        Err(error) => Err(error),
    };
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::info!(%peer, %remote, %error, egress = %entry.name, "remote unreachable");
            return Outcome::UpstreamFailed;
        }
    };
    let server_name = match ServerName::try_from(entry.remote_host.clone()) {
        Ok(name) => name,
        Err(error) => {
            tracing::info!(%remote, %error, "not a server name");
            return Outcome::UpstreamFailed;
        }
    };
    let config = Arc::clone(&cx.tls.current().client);
    let connected = tokio::time::timeout(
        cx.limits.handshake_timeout,
        TlsConnector::from(config).connect(server_name, upstream),
    )
    .await;
    let mut stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%peer, %remote, %error, egress = %entry.name, "TLS handshake with the remote failed");
            return Outcome::HandshakeFailed;
        }
        Err(_) => {
            tracing::info!(%peer, %remote, egress = %entry.name, "TLS handshake with the remote timed out");
            return Outcome::HandshakeFailed;
        }
    };
    let _active = cx.metrics.active(Listener::Egress);
    splice(&mut tcp, &mut stream, Listener::Egress, &cx.metrics).await
}

async fn resolve_ipv4(host: &str, port: u16) -> io::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no IPv4 address"),
            )
        })
}

async fn connect(address: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Copies both ways until both sides are done; a side's end of stream is passed on as a
/// shutdown (a TLS close_notify on the TLS side).
async fn splice<A, B>(a: &mut A, b: &mut B, listener: Listener, metrics: &Metrics) -> Outcome
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(a, b).await {
        Ok((forward, back)) => {
            metrics.bytes(listener, Direction::Forward, forward);
            metrics.bytes(listener, Direction::Back, back);
            Outcome::Ok
        }
        Err(error) => {
            tracing::debug!(%error, ?listener, "connection broken");
            Outcome::Broken
        }
    }
}
