//! The ops port (9102, plain HTTP): Kubernetes probes and Prometheus metrics.
//!
//! - `/probe/startup`: 200 once every listener is up and the first peer-recovery attempt is
//!   over.
//! - `/probe/liveness`: as startup, and the store must answer.
//! - `/probe/readiness`: 200 only while active (not uninitialized, not in recovery, not stale):
//!   only ready Coordinators are endpoints of the `coordinator-ready` Service that workloads use.
//! - `/metrics`, only with `--metrics` (`CONTRAST_METRICS`), as upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::Coordinator;
use crate::http::{ApiError, PlainService, Response, text};
use contrast_coordinator::Phase;

/// The ops service.
#[derive(Debug)]
pub(crate) struct Ops {
    coordinator: Arc<Coordinator>,
}

impl Ops {
    /// The ops endpoints of `coordinator`.
    pub(crate) fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

fn probe(ok: bool, detail: &str) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, "text/plain; charset=utf-8", format!("{detail}\n"))
}

impl PlainService for Ops {
    fn name(&self) -> &'static str {
        "ops"
    }

    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> Response {
        if request.method() != Method::GET {
            return ApiError::method_not_allowed(request.method(), request.uri().path(), "GET")
                .response();
        }
        let started = self.coordinator.started.load(Ordering::Acquire);
        match request.uri().path() {
            "/probe/startup" => probe(started, if started { "started" } else { "starting" }),
            "/probe/liveness" => match self.coordinator.core.history_store().has_latest().await {
                Ok(_) => probe(started, if started { "alive" } else { "starting" }),
                Err(error) => probe(false, &format!("store unreachable: {error}")),
            },
            "/probe/readiness" => match self.coordinator.core.phase().await {
                Ok(phase @ Phase::Active(_)) => probe(true, phase.name()),
                Ok(phase) => probe(false, phase.name()),
                Err(error) => probe(false, &format!("store unreachable: {error}")),
            },
            "/metrics" if self.coordinator.serve_metrics => text(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.coordinator.metrics.encode(),
            ),
            "/metrics" => text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "metrics are off: start the coordinator with --metrics (or CONTRAST_METRICS=1)\n"
                    .to_owned(),
            ),
            other => ApiError::not_found(other).response(),
        }
    }
}
