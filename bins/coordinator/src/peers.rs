//! Finding the other Coordinator replicas.
//!
//! - Kubernetes (with `--store kubernetes`): pods in the namespace labelled
//!   `app.kubernetes.io/name=coordinator` whose annotation `contrast.edgeless.systems/pod-role`
//!   is `coordinator`, whose `Ready` condition is true, other than this pod; their pod IPs with
//!   the mesh port. Needs RBAC `pods: get, list`.
//! - Static (`--peer MESH_ADDR=OPS_ADDR`, repeatable): for several Coordinators on one machine
//!   sharing a file store. A peer is ready when its `/probe/readiness` answers 200.
//! - None: a single Coordinator.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use contrast_core::kubernetes::{COORDINATOR_POD_ROLE, COORDINATOR_SELECTOR, POD_ROLE_ANNOTATION};
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
    /// Coordinator pods of the StatefulSet.
    Kubernetes(Box<KubernetesPeers>),
}

/// Peer discovery through the Kubernetes API.
#[derive(Clone)]
pub(crate) struct KubernetesPeers {
    pods: kube::Api<k8s_openapi::api::core::v1::Pod>,
    own_pod: String,
    mesh_port: u16,
}

impl std::fmt::Debug for KubernetesPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesPeers")
            .field("own_pod", &self.own_pod)
            .field("mesh_port", &self.mesh_port)
            .finish_non_exhaustive()
    }
}

impl KubernetesPeers {
    /// Discovery in `namespace`, excluding `own_pod`, dialing peers on `mesh_port`.
    pub(crate) fn new(
        client: kube::Client,
        namespace: &str,
        own_pod: &str,
        mesh_port: u16,
    ) -> Self {
        Self {
            pods: kube::Api::namespaced(client, namespace),
            own_pod: own_pod.to_owned(),
            mesh_port,
        }
    }

    async fn ready_peers(&self) -> Result<Vec<String>, kube::Error> {
        let pods = self
            .pods
            .list(&kube::api::ListParams::default().labels(COORDINATOR_SELECTOR))
            .await?;
        Ok(pods
            .items
            .iter()
            .filter(|pod| pod.metadata.name.as_deref() != Some(self.own_pod.as_str()))
            .filter(|pod| {
                pod.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(POD_ROLE_ANNOTATION))
                    .is_some_and(|role| role == COORDINATOR_POD_ROLE)
            })
            .filter_map(|pod| {
                let status = pod.status.as_ref()?;
                let ready = status
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let ip = status.pod_ip.as_deref()?;
                ready.then(|| join_host_port(ip, self.mesh_port))
            })
            .collect())
    }
}

/// `host:port`, with brackets for IPv6 hosts.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl contrast_coordinator::PeerDirectory for Peers {
    /// The mesh API addresses of the peers that are ready (active) now.
    async fn ready_peers(&self) -> Vec<String> {
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
            Peers::Kubernetes(discovery) => match discovery.ready_peers().await {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::warn!(%error, "listing Coordinator pods");
                    Vec::new()
                }
            },
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
    use contrast_coordinator::PeerDirectory;

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
