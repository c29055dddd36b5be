//! The service mesh's cost: the same traffic direct over loopback TCP and through two sidecars
//! (`contrast_mesh::proxy`: the client's egress listener, mutual TLS across, the server's
//! ingress listener), in one criterion group per measure, so each ratio comes from one run:
//!
//! - `mesh_round_trip_64B/{direct,two_sidecars}`: one established connection, 64 bytes written
//!   and echoed back: the latency a request adds.
//! - `mesh_transfer_1MiB/{direct,two_sidecars}`: 1 MiB written and echoed back on an
//!   established connection (reported as throughput of the bytes sent).
//! - `mesh_connect/{direct,two_sidecars}`: a new connection, one 64-byte round trip, close:
//!   1 / connections per second, each through a full mutual-TLS handshake (P-256 leaf, P-384
//!   mesh CA) on the mesh path.
//!
//! Everything runs in this process on loopback, sharing the machine's cores: the echo server,
//! both proxies and the client. Without TPROXY (no root needed) the ingress forwards to the echo
//! server's address (`Forward::To`); the per-connection work is the same.
//!
//! ```sh
//! cargo bench -p contrast-benches --bench mesh
//! ```
// A bench whose setup fails must stop loudly rather than time something else.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contrast_mesh::config::EgressEntry;
use contrast_mesh::metrics::Metrics;
use contrast_mesh::proxy::{self, Context, Forward, IngressTls, Limits, TlsHandle};
use contrast_mesh::tls::{MeshFiles, MeshTls};
use contrast_testkit::mesh::{new_deployment, workload_pems};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

fn context(ca: &contrast_ca::Ca, name: &str) -> Context {
    let pems = workload_pems(ca, name);
    let files = MeshFiles {
        mesh_ca_pem: pems.mesh_ca,
        cert_chain_pem: pems.cert_chain,
        key_pem: zeroize::Zeroizing::new(pems.key),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = MeshTls::build(&files, &provider, rustls::pki_types::UnixTime::now()).unwrap();
    Context {
        tls: TlsHandle::new(tls),
        metrics: Arc::new(Metrics::new()),
        limits: Limits::default(),
    }
}

/// A plain echo server.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// The echo server behind two sidecars: returns the client's egress address.
async fn through_two_sidecars(echo: SocketAddr) -> SocketAddr {
    let ca = new_deployment();
    let server = context(&ca, "server");
    let client = context(&ca, "client");
    let ingress = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingress_address = ingress.local_addr().unwrap();
    tokio::spawn(proxy::run_ingress(
        ingress,
        IngressTls::Mutual,
        Forward::To(echo),
        server,
    ));
    let egress = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(listen) = egress.local_addr().unwrap() else {
        panic!("loopback is IPv4")
    };
    let entry = EgressEntry {
        name: "server".into(),
        listen,
        remote_host: ingress_address.ip().to_string(),
        remote_port: ingress_address.port(),
    };
    tokio::spawn(proxy::run_egress(egress, entry, client));
    SocketAddr::V4(listen)
}

async fn connect(address: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(address).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

async fn round_trip(tcp: &mut TcpStream, message: &[u8], reply: &mut [u8]) {
    tcp.write_all(message).await.unwrap();
    tcp.read_exact(reply).await.unwrap();
}

/// Writes `data` and reads it back concurrently (the echo would stall if the client only
/// wrote).
async fn transfer(tcp: &mut TcpStream, data: &[u8], back: &mut [u8]) {
    let (mut read, mut write) = tcp.split();
    let sending = async {
        write.write_all(data).await.unwrap();
    };
    let receiving = async {
        read.read_exact(back).await.unwrap();
    };
    tokio::join!(sending, receiving);
}

fn mesh(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let (direct, mesh) = runtime.block_on(async {
        let echo = echo_server().await;
        (echo, through_two_sidecars(echo).await)
    });
    let paths = [("direct", direct), ("two_sidecars", mesh)];

    let message = [7u8; 64];
    let mut group = c.benchmark_group("mesh_round_trip_64B");
    for (name, address) in paths {
        let mut tcp = runtime.block_on(connect(address));
        let mut reply = [0u8; 64];
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(round_trip(&mut tcp, &message, &mut reply)));
        });
    }
    group.finish();

    let data = vec![0x5a; 1 << 20];
    let mut group = c.benchmark_group("mesh_transfer_1MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.measurement_time(Duration::from_secs(8));
    for (name, address) in paths {
        let mut tcp = runtime.block_on(connect(address));
        let mut back = vec![0u8; data.len()];
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(transfer(&mut tcp, &data, &mut back)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mesh_connect");
    for (name, address) in paths {
        let mut reply = [0u8; 64];
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut tcp = connect(address).await;
                    round_trip(&mut tcp, &message, &mut reply).await;
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, mesh);
criterion_main!(benches);
