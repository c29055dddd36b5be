//! Finding the other Coordinator replicas.
//!
//! - Static (`--peer MESH_ADDR=OPS_ADDR`, repeatable): for several Coordinators on one machine
//!   sharing a file store. A peer is ready when its `/probe/readiness` answers 200.
//! - None: a single Coordinator.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A statically configured peer: its mesh API and its ops (probe) address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StaticPeer {
    /// `host:port` of the peer's mesh API.
    pub(crate) mesh: String,
    /// `host:port` of the peer's ops endpoint (readiness probe).
    pub(crate) ops: String,
}

impl FromStr for StaticPeer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (mesh, ops) = text.split_once('=').ok_or_else(|| {
            format!("{text:?} is not MESH_ADDR=OPS_ADDR (e.g. 127.0.0.1:7777=127.0.0.1:9102)")
        })?;
        for (what, addr) in [("mesh", mesh), ("ops", ops)] {
            if addr
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(format!("{what} address {addr:?} is not HOST:PORT"));
            }
        }
        Ok(Self {
            mesh: mesh.to_owned(),
            ops: ops.to_owned(),
        })
    }
}

/// How this Coordinator finds its peers.
#[derive(Clone, Debug, Default)]
pub(crate) enum Peers {
    /// No peers: a single replica.
    #[default]
    None,
    /// A fixed list.
    Static(Vec<StaticPeer>),
}

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Peers {
    /// The mesh API addresses of the peers that are ready (active) now.
    pub(crate) async fn ready_peers(&self) -> Vec<String> {
        match self {
            Peers::None => Vec::new(),
            Peers::Static(peers) => {
                let mut ready = Vec::new();
                for peer in peers {
                    match tokio::time::timeout(PROBE_TIMEOUT, probe_ready(&peer.ops)).await {
                        Ok(Ok(true)) => ready.push(peer.mesh.clone()),
                        Ok(Ok(false)) => {}
                        Ok(Err(error)) => {
                            tracing::debug!(peer = peer.ops, %error, "peer readiness probe failed");
                        }
                        Err(_) => {
                            tracing::debug!(peer = peer.ops, "peer readiness probe timed out");
                        }
                    }
                }
                ready
            }
        }
    }
}

/// `GET http://<ops>/probe/readiness` → whether it answered 200.
async fn probe_ready(ops: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = TcpStream::connect(ops).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(connection);
    let request = http::Request::get("/probe/readiness")
        .header(http::header::HOST, ops)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await;
    driver.abort();
    Ok(response?.status() == http::StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_peer_flag() {
        assert_eq!(
            "127.0.0.1:7001=127.0.0.1:9001"
                .parse::<StaticPeer>()
                .unwrap(),
            StaticPeer {
                mesh: "127.0.0.1:7001".into(),
                ops: "127.0.0.1:9001".into()
            }
        );
        for bad in ["127.0.0.1:7001", "a=b", "host:x=host:1", ":1=host:2"] {
            assert!(bad.parse::<StaticPeer>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_not_ready() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let peers = Peers::Static(vec![StaticPeer {
            mesh: "127.0.0.1:1".into(),
            ops: addr.to_string(),
        }]);
        assert!(peers.ready_peers().await.is_empty());
    }
}
