#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The proxy on loopback (no TPROXY: the ingress forwards to a fixed address), with mesh
//! certificates issued by contrast-ca as the Coordinator issues them: bytes go through an
//! egress and an ingress listener; a client without a certificate, or with one from another
//! deployment's mesh CA, is refused; a server from another mesh CA is refused by the egress;
//! new files are put in force for new connections; files that do not belong together are not.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contrast_ca::Ca;
use contrast_mesh::config::EgressEntry;
use contrast_mesh::metrics::Metrics;
use contrast_mesh::proxy::{self, Context, Forward, IngressTls, Limits, TlsHandle};
use contrast_mesh::tls::{MeshFiles, MeshTls, TlsError};
use contrast_testkit::mesh;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn deployment() -> Ca {
    mesh::new_deployment()
}

/// The files an initializer writes for a workload of `ca`.
fn workload_files(ca: &Ca, name: &str) -> MeshFiles {
    let pems = mesh::workload_pems(ca, name);
    MeshFiles {
        mesh_ca_pem: pems.mesh_ca,
        cert_chain_pem: pems.cert_chain,
        key_pem: zeroize::Zeroizing::new(pems.key),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls(files: &MeshFiles) -> MeshTls {
    MeshTls::build(files, &provider(), rustls::pki_types::UnixTime::now()).unwrap()
}

fn context(files: &MeshFiles) -> Context {
    Context {
        tls: TlsHandle::new(tls(files)),
        metrics: Arc::new(Metrics::new()),
        limits: Limits {
            handshake_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
    }
}

/// An echo server that prefixes each reply, so a reply proves the bytes reached it.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buffer = vec![0; 65536];
                loop {
                    let n = tcp.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buffer[..n]);
                    if tcp.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

async fn ingress(kind: IngressTls, to: SocketAddr, cx: &Context) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(proxy::run_ingress(
        listener,
        kind,
        Forward::To(to),
        cx.clone(),
    ));
    address
}

async fn egress(remote: SocketAddr, cx: &Context) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let SocketAddr::V4(listen_v4) = listen else {
        panic!("not IPv4: {listen}")
    };
    let entry = EgressEntry {
        name: "backend".into(),
        listen: listen_v4,
        remote_host: remote.ip().to_string(),
        remote_port: remote.port(),
    };
    tokio::spawn(proxy::run_egress(listener, entry, cx.clone()));
    listen
}

/// Sends `message` over a plain connection and returns the reply (empty when refused).
async fn plain_round_trip(address: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(message).await.unwrap();
    let mut reply = vec![0; message.len() + 5];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut reply)).await {
        Ok(Ok(_)) => reply,
        _ => Vec::new(),
    }
}

/// A TLS client with `config`: the reply to `message`, or the error.
async fn tls_round_trip(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("backend").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(message).await.map_err(|e| e.to_string())?;
    let mut reply = vec![0; message.len() + 5];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

fn roots_of(files: &MeshFiles) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&files.mesh_ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// A client trusting the mesh CA of `server` without a certificate of its own.
fn anonymous_client(server: &MeshFiles) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots_of(server))
            .with_no_client_auth(),
    )
}

/// A client presenting `client`'s chain (another deployment's) and trusting `server`'s mesh CA,
/// so only the server's verdict on the client's certificate decides.
fn stranger_client(client: &MeshFiles, server: &MeshFiles) -> Arc<rustls::ClientConfig> {
    let chain = CertificateDer::pem_slice_iter(&client.cert_chain_pem)
        .map(Result::unwrap)
        .collect();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots_of(server))
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(&client.key_pem).unwrap(),
            )
            .unwrap(),
    )
}

/// Waits until `metrics` show `line` (a connection is counted when its task ends, a reload when
/// the reloader next looks): fails after 10 s.
async fn eventually_counted(metrics: &Metrics, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics.encode();
        if text.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "missing {line:?} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn bytes_go_through_egress_and_mutual_ingress() {
    let ca = deployment();
    let (a, b) = (workload_files(&ca, "a"), workload_files(&ca, "backend"));
    let echo = echo_server().await;
    let cx_b = context(&b);
    let ingress = ingress(IngressTls::Mutual, echo, &cx_b).await;
    let cx_a = context(&a);
    let egress = egress(ingress, &cx_a).await;

    let message = vec![b'x'; 20_000];
    let mut tcp = TcpStream::connect(egress).await.unwrap();
    tcp.write_all(&message).await.unwrap();
    let mut received = Vec::new();
    while received.len() < message.len() {
        let mut buffer = vec![0; 65536];
        let n = tcp.read(&mut buffer).await.unwrap();
        assert_ne!(n, 0, "closed after {} bytes", received.len());
        received.extend_from_slice(&buffer[..n]);
        // Each chunk the echo server read comes back prefixed: strip the prefixes.
        while let Some(at) = find(&received, b"echo:") {
            received.drain(at..at + 5);
        }
    }
    assert_eq!(received, message);
    drop(tcp);
    eventually_counted(
        &cx_b.metrics,
        "contrast_mesh_connections_total{listener=\"IngressMtls\",outcome=\"Ok\"} 1",
    )
    .await;
}

#[tokio::test]
async fn mutual_ingress_refuses_clients_without_or_with_a_foreign_certificate() {
    let ca = deployment();
    let b = workload_files(&ca, "backend");
    let echo = echo_server().await;
    let cx_b = context(&b);
    let mutual = ingress(IngressTls::Mutual, echo, &cx_b).await;

    // Plain bytes: no TLS handshake, nothing reaches the application.
    assert_eq!(
        plain_round_trip(mutual, b"GET / HTTP/1.0\r\n\r\n").await,
        b""
    );
    // TLS without a client certificate.
    let error = tls_round_trip(mutual, anonymous_client(&b), b"hi").await;
    assert!(error.is_err(), "{error:?}");
    // A workload of another deployment: its certificate is from another mesh CA.
    let stranger = workload_files(&deployment(), "stranger");
    let error = tls_round_trip(mutual, stranger_client(&stranger, &b), b"hi").await;
    assert!(error.is_err(), "{error:?}");
    // A member of the deployment gets through.
    let member = workload_files(&ca, "member");
    assert_eq!(
        tls_round_trip(mutual, Arc::clone(&tls(&member).client), b"hi")
            .await
            .unwrap(),
        b"echo:hi"
    );
    eventually_counted(
        &cx_b.metrics,
        "contrast_mesh_connections_total{listener=\"IngressMtls\",outcome=\"HandshakeFailed\"} 3",
    )
    .await;
}

#[tokio::test]
async fn tls_ingress_needs_no_client_certificate() {
    let ca = deployment();
    let b = workload_files(&ca, "backend");
    let echo = echo_server().await;
    let cx_b = context(&b);
    let server_only = ingress(IngressTls::ServerOnly, echo, &cx_b).await;
    assert_eq!(
        tls_round_trip(server_only, anonymous_client(&b), b"hi")
            .await
            .unwrap(),
        b"echo:hi"
    );
}

#[tokio::test]
async fn egress_refuses_a_server_of_another_mesh_ca() {
    let a = workload_files(&deployment(), "a");
    let foreign = workload_files(&deployment(), "backend");
    let echo = echo_server().await;
    // The foreign server does not even ask for a client certificate.
    let cx_foreign = context(&foreign);
    let server = ingress(IngressTls::ServerOnly, echo, &cx_foreign).await;
    let cx_a = context(&a);
    let egress = egress(server, &cx_a).await;
    assert_eq!(plain_round_trip(egress, b"secret").await, b"");
    eventually_counted(
        &cx_a.metrics,
        "contrast_mesh_connections_total{listener=\"Egress\",outcome=\"HandshakeFailed\"} 1",
    )
    .await;
}

fn write_files(dir: &Path, files: &MeshFiles) {
    std::fs::write(dir.join("mesh-ca.pem"), &files.mesh_ca_pem).unwrap();
    std::fs::write(dir.join("certChain.pem"), &files.cert_chain_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &*files.key_pem).unwrap();
}

#[tokio::test]
async fn new_files_are_put_in_force_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = deployment();
    let old = workload_files(&old_ca, "backend");
    write_files(dir.path(), &old);
    let cx = context(&proxy::read_files(dir.path()).await.unwrap());
    tokio::spawn(proxy::reload_loop(
        dir.path().to_owned(),
        cx.tls.clone(),
        provider(),
        Duration::from_millis(50),
        Arc::clone(&cx.metrics),
    ));
    let echo = echo_server().await;
    let mutual = ingress(IngressTls::Mutual, echo, &cx).await;
    let old_client = tls(&workload_files(&old_ca, "old-client")).client;
    assert!(
        tls_round_trip(mutual, Arc::clone(&old_client), b"1")
            .await
            .is_ok()
    );

    // A manifest update: a new mesh CA. Half-way (only the CA replaced) nothing changes.
    let new_ca = deployment();
    let new = workload_files(&new_ca, "backend");
    std::fs::write(dir.path().join("mesh-ca.pem"), &new.mesh_ca_pem).unwrap();
    eventually_counted(&cx.metrics, "certificate_reloads_total{ok=\"false\"} 1").await;
    assert!(
        tls_round_trip(mutual, Arc::clone(&old_client), b"2")
            .await
            .is_ok()
    );

    write_files(dir.path(), &new);
    eventually_counted(&cx.metrics, "certificate_reloads_total{ok=\"true\"} 1").await;
    let new_client = tls(&workload_files(&new_ca, "new-client")).client;
    assert_eq!(
        tls_round_trip(mutual, new_client, b"3").await.unwrap(),
        b"echo:3"
    );
    assert!(tls_round_trip(mutual, old_client, b"4").await.is_err());
}

#[test]
fn files_that_do_not_belong_together_are_refused() {
    let ca = deployment();
    let a = workload_files(&ca, "a");
    let other = workload_files(&deployment(), "b");
    let now = rustls::pki_types::UnixTime::now();

    let mut wrong_key = a.clone();
    wrong_key.key_pem.clone_from(&other.key_pem);
    let error = MeshTls::build(&wrong_key, &provider(), now).unwrap_err();
    assert!(matches!(error, TlsError::Inconsistent(_)), "{error}");
    assert!(
        error.to_string().contains("key.pem is not the key"),
        "{error}"
    );

    let mut wrong_ca = a.clone();
    wrong_ca.mesh_ca_pem.clone_from(&other.mesh_ca_pem);
    let error = MeshTls::build(&wrong_ca, &provider(), now).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("certChain.pem does not lead to mesh-ca.pem"),
        "{error}"
    );

    let mut no_ca = a;
    no_ca.mesh_ca_pem = b"not pem".to_vec();
    let error = MeshTls::build(&no_ca, &provider(), now).unwrap_err();
    assert!(error.to_string().starts_with("mesh-ca.pem:"), "{error}");
}
