//! The sidecar's Prometheus metrics. Labels come from a fixed set (the listener kinds, results
//! and directions below), never from a peer or the configuration, so their number is bounded.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Which listener a connection came through.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Listener {
    /// Inbound, mutual TLS required (port 15006).
    IngressMtls,
    /// Inbound, TLS without client certificate (port 15007).
    IngressTls,
    /// Outbound, from the application's plain connection to mutual TLS.
    Egress,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    /// Proxied until one side closed.
    Ok,
    /// The TLS handshake failed (e.g. no or a foreign client certificate) or timed out.
    HandshakeFailed,
    /// The destination could not be reached.
    UpstreamFailed,
    /// A connection addressed to the proxy's own ingress port: closed (it would loop).
    Blackholed,
    /// Closed at the connection cap.
    Refused,
    /// An I/O error while proxying.
    Broken,
}

/// Which way bytes went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// From the connecting side to the destination.
    Forward,
    /// From the destination back.
    Back,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    listener: Listener,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: Listener,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    listener: Listener,
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    ok: bool,
}

/// The sidecar's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<ConnectionLabels, Counter>,
    active: Family<ListenerLabels, Gauge>,
    bytes: Family<BytesLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the prefix `contrast_mesh`.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("contrast_mesh");
        let connections = Family::default();
        let active = Family::default();
        let bytes = Family::default();
        let reloads = Family::default();
        let ready = Gauge::default();
        registry.register(
            "connections",
            "Connections by listener and outcome",
            connections.clone(),
        );
        registry.register(
            "active_connections",
            "Connections being proxied now",
            active.clone(),
        );
        registry.register("bytes", "Bytes proxied", bytes.clone());
        registry.register(
            "certificate_reloads",
            "Reloads of the mesh certificate files (ok=false: kept the previous ones)",
            reloads.clone(),
        );
        registry.register(
            "ready",
            "1 once the rules are in place and the listeners serve",
            ready.clone(),
        );
        Self {
            registry,
            connections,
            active,
            bytes,
            reloads,
            ready,
        }
    }

    /// Counts a finished connection.
    pub fn connection(&self, listener: Listener, outcome: Outcome) {
        self.connections
            .get_or_create(&ConnectionLabels { listener, outcome })
            .inc();
    }

    /// Counts a connection as active until the guard is dropped.
    #[must_use]
    pub fn active(&self, listener: Listener) -> ActiveGuard {
        let gauge = self
            .active
            .get_or_create(&ListenerLabels { listener })
            .clone();
        gauge.inc();
        ActiveGuard(gauge)
    }

    /// Adds proxied bytes.
    pub fn bytes(&self, listener: Listener, direction: Direction, count: u64) {
        self.bytes
            .get_or_create(&BytesLabels {
                listener,
                direction,
            })
            .inc_by(count);
    }

    /// Counts a reload of the certificate files.
    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&ReloadLabels { ok }).inc();
    }

    /// Marks the sidecar ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The metrics in Prometheus' text format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Decrements the active-connection gauge when dropped.
#[derive(Debug)]
pub struct ActiveGuard(Gauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
