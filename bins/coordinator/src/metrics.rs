//! Prometheus metrics (`GET /metrics` on the ops port), in the text exposition format.

use std::time::Duration;

use contrast_core::api;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an attestation outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttestationLabels {
    /// `mesh` (workload certificate) or `peer` (peer recovery).
    pub(crate) endpoint: String,
    /// `ok` or `denied`.
    pub(crate) result: String,
    /// Why it was denied (`""` when ok): a short stable reason.
    pub(crate) reason: String,
}

/// Labels of a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabels {
    /// `user` or `mesh`.
    pub(crate) listener: String,
    /// `ok` or `failed`.
    pub(crate) result: String,
}

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The route: one of the evidence API's paths, or `other` (never the raw request path,
    /// which the client chooses: labels stay a fixed set).
    pub(crate) path: &'static str,
    /// The response status code.
    pub(crate) status: String,
}

/// Labels of a gRPC call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    /// The full gRPC method name (one of `contrast_grpc::method`).
    pub(crate) method: &'static str,
    /// The gRPC status code's name (`ok`, `permission_denied`, ...).
    pub(crate) code: &'static str,
}

/// Labels of a gRPC call's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MethodLabels {
    /// The full gRPC method name (one of `contrast_grpc::method`).
    pub(crate) method: &'static str,
}

/// Labels of a connection closed at its listener's cap.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusedLabels {
    /// `user`, `mesh`, `evidence`, `ops` or `transit`.
    pub(crate) listener: &'static str,
}

/// Labels of a transit engine request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransitLabels {
    /// `encrypt`, `decrypt` or `other` (an unknown path).
    pub(crate) operation: &'static str,
    /// `ok` or `contrast_coordinator::transit::TransitError::reason` (a fixed set).
    pub(crate) result: &'static str,
}

/// Labels of a tampered store head.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TamperingLabels {
    /// `contrast_coordinator::Tampering::kind` (`foreign_head`, `rollback`, ...).
    pub(crate) kind: &'static str,
}

/// The Coordinator's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    attestations: Family<AttestationLabels, Counter>,
    handshakes: Family<ListenerLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    generation: Gauge,
    tampering: Family<TamperingLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    transit: Family<TransitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let attestations = Family::<AttestationLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_attestations",
            "Workload attestations on the mesh API by result and reason",
            attestations.clone(),
        );
        let handshakes = Family::<ListenerLabels, Histogram>::new_with_constructor(
            handshake_histogram as fn() -> Histogram,
        );
        registry.register(
            "contrast_coordinator_handshake_seconds",
            "aTLS handshake latency by listener and result",
            handshakes.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_requests",
            "Plain HTTP API requests (evidence API) by path and status",
            requests.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_grpc_calls",
            "gRPC calls (user and mesh API) by method and status code",
            calls.clone(),
        );
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(
            handshake_histogram as fn() -> Histogram,
        );
        registry.register(
            "contrast_coordinator_grpc_call_seconds",
            "gRPC call latency (handler) by method",
            latency.clone(),
        );
        let generation = Gauge::default();
        registry.register(
            "contrast_coordinator_manifest_generation",
            "Number of manifests in the history (0 until the first set or recovery)",
            generation.clone(),
        );
        let tampering = Family::<TamperingLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_history_tampering",
            "Store heads no replica can have written (the Coordinator stops serving), by kind",
            tampering.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_connections_refused",
            "Connections closed on accept because their listener was at --max-connections",
            refused.clone(),
        );
        let transit = Family::<TransitLabels, Counter>::default();
        registry.register(
            "contrast_coordinator_transit_requests",
            "Transit engine requests by operation and result",
            transit.clone(),
        );
        Self {
            registry,
            attestations,
            handshakes,
            requests,
            calls,
            latency,
            generation,
            tampering,
            refused,
            transit,
        }
    }

    /// Counts a transit engine request (`operation` and `result` from fixed sets).
    pub(crate) fn transit(&self, operation: &'static str, result: &'static str) {
        self.transit
            .get_or_create(&TransitLabels { operation, result })
            .inc();
    }

    /// Counts a connection closed at `listener`'s connection cap.
    pub(crate) fn connection_refused(&self, listener: &'static str) {
        self.refused
            .get_or_create(&RefusedLabels { listener })
            .inc();
    }

    /// Counts a tampered store head.
    pub(crate) fn tampering(&self, kind: &'static str) {
        self.tampering
            .get_or_create(&TamperingLabels { kind })
            .inc();
    }

    /// Counts an attestation outcome.
    pub(crate) fn attestation(&self, endpoint: &str, denied_reason: Option<&str>) {
        self.attestations
            .get_or_create(&AttestationLabels {
                endpoint: endpoint.to_owned(),
                result: if denied_reason.is_some() {
                    "denied"
                } else {
                    "ok"
                }
                .to_owned(),
                reason: denied_reason.unwrap_or_default().to_owned(),
            })
            .inc();
    }

    /// Records a handshake's latency.
    pub(crate) fn handshake(&self, listener: &str, elapsed: Duration, ok: bool) {
        self.handshakes
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request.
    pub(crate) fn request(&self, path: &str, status: u16) {
        let route = [api::path::ATTEST, api::path::CAPABILITIES]
            .into_iter()
            .find(|known| *known == path)
            .unwrap_or("other");
        self.requests
            .get_or_create(&RequestLabels {
                path: route,
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts a gRPC call and records its latency. `method` is one of `contrast_grpc::method`
    /// (a fixed set, so the label cardinality is bounded).
    pub(crate) fn call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: contrast_grpc::code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the manifest generation.
    pub(crate) fn set_generation(&self, generation: usize) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics");
        }
        out
    }
}

fn handshake_histogram() -> Histogram {
    // 0.5 ms … ~1 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric_with_labels() {
        let metrics = Metrics::new();
        metrics.attestation("mesh", None);
        metrics.attestation("mesh", Some("unknown_host_data"));
        metrics.handshake("mesh", Duration::from_millis(3), true);
        metrics.request("/attest", 200);
        metrics.call(
            contrast_grpc::method::NEW_MESH_CERT,
            tonic::Code::PermissionDenied,
            Duration::from_millis(1),
        );
        metrics.set_generation(2);
        metrics.transit("encrypt", "unauthorized");
        let text = metrics.encode();
        assert!(
            text.contains(
                "contrast_coordinator_transit_requests_total{operation=\"encrypt\",result=\"unauthorized\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "contrast_coordinator_grpc_calls_total{method=\"/meshapi.MeshAPI/NewMeshCert\",code=\"permission_denied\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "contrast_coordinator_grpc_call_seconds_count{method=\"/meshapi.MeshAPI/NewMeshCert\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "contrast_coordinator_attestations_total{endpoint=\"mesh\",result=\"denied\",reason=\"unknown_host_data\"} 1"
        ), "{text}");
        assert!(
            text.contains("contrast_coordinator_manifest_generation 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "contrast_coordinator_handshake_seconds_count{listener=\"mesh\",result=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("contrast_coordinator_requests_total{path=\"/attest\",status=\"200\"} 1"),
            "{text}"
        );
    }
}
