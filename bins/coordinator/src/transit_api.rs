//! The transit engine (`--transit-addr`, upstream's port 8200): HTTPS/1.1 with a server
//! certificate from the active state's mesh CA, client certificates required and verified
//! against that mesh CA, `POST /v1/transit/{encrypt,decrypt}/{name}`. The rules (who may use
//! which key, keys, bodies, ciphertext) are `contrast_coordinator::transit`; this module is
//! the TLS and HTTP around them.
//!
//! The mesh CA changes with every manifest and recovery, so each connection is configured from
//! the state active when it is accepted (the server identity and verifier are built once per
//! state and cached). While no state is active (no manifest yet, in recovery, stale or
//! tampered) a connection is closed before the handshake: upstream does not serve then either,
//! and there is no mesh CA to verify a client against. A request on a connection accepted
//! under a state that is no longer in force gets 503 and the connection closes.
//!
//! Limits: the handshake (and each request's headers) within `--handshake-timeout`, the
//! connection within `--connection-timeout`, bodies up to
//! [`TRANSIT_BODY_LIMIT`] (beyond it 400), at most
//! `--max-connections` connections. Logs name the operation, key name, client and outcome,
//! never keys, plaintext or ciphertext.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use contrast_coordinator::State;
use contrast_coordinator::transit::{self, TransitError, TransitRequest};
use contrast_core::api::TRANSIT_BODY_LIMIT;
use contrast_grpc::server::{ConnectionSlot, Limits, accept_loop};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::Coordinator;
use crate::http::{Response, http1_server, json_body};

/// The listener's name in logs and metrics.
const NAME: &str = "transit";

/// The TLS config of the state it was built for.
type Cached = (Arc<State>, Arc<rustls::ServerConfig>);

/// Builds and caches the TLS config per active state.
struct Configs {
    coordinator: Arc<Coordinator>,
    cached: Mutex<Option<Cached>>,
}

impl Configs {
    /// The config for the state active now, or `None` (not serving, or it cannot be built:
    /// logged).
    fn for_active_state(&self) -> Option<Cached> {
        let state = self.coordinator.core.active()?;
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((built_for, config)) = cached.as_ref()
            && Arc::ptr_eq(built_for, &state)
        {
            return Some((Arc::clone(built_for), Arc::clone(config)));
        }
        match self.build(&state) {
            Ok(config) => {
                let config = Arc::new(config);
                *cached = Some((Arc::clone(&state), Arc::clone(&config)));
                Some((state, config))
            }
            Err(error) => {
                tracing::error!(%error, "building the transit engine's TLS config");
                None
            }
        }
    }

    fn build(&self, state: &State) -> anyhow::Result<rustls::ServerConfig> {
        let identity = self.coordinator.core.transit_server_identity(state)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(identity.mesh_ca_der.clone()))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?;
        let chain = identity
            .cert_chain_der
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8_der.to_vec()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Serves the transit engine on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    coordinator: Arc<Coordinator>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let configs = Arc::new(Configs {
        coordinator: Arc::clone(&coordinator),
        cached: Mutex::new(None),
    });
    let refused = Arc::clone(&coordinator);
    accept_loop(
        listener,
        NAME,
        limits.max_connections,
        shutdown,
        move |_| refused.metrics.connection_refused(NAME),
        |tcp, remote, slot| {
            let Some((state, config)) = configs.for_active_state() else {
                tracing::debug!(%remote, "transit connection closed: no active state to serve");
                return;
            };
            tokio::spawn(serve_connection(
                Arc::clone(&coordinator),
                limits,
                (tcp, remote),
                (state, config),
                slot,
            ));
        },
    )
    .await;
}

/// The handshake, then HTTP/1.1 on one connection.
async fn serve_connection(
    coordinator: Arc<Coordinator>,
    limits: Limits,
    (tcp, remote): (TcpStream, SocketAddr),
    (state, config): Cached,
    slot: ConnectionSlot,
) {
    let started = Instant::now();
    let tls = match tokio::time::timeout(
        limits.handshake_timeout,
        TlsAcceptor::from(config).accept(tcp),
    )
    .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            coordinator
                .metrics
                .handshake(NAME, started.elapsed(), false);
            tracing::info!(listener = NAME, %remote, %error, "handshake failed");
            return;
        }
        Err(_) => {
            coordinator
                .metrics
                .handshake(NAME, started.elapsed(), false);
            tracing::info!(listener = NAME, %remote, timeout = ?limits.handshake_timeout, "handshake timed out");
            return;
        }
    };
    coordinator.metrics.handshake(NAME, started.elapsed(), true);
    let client: Option<Arc<[u8]>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Arc::from(leaf.as_ref()));
    let service = hyper::service::service_fn(move |request| {
        let coordinator = Arc::clone(&coordinator);
        let state = Arc::clone(&state);
        let client = client.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                answer(&coordinator, &state, client.as_deref(), remote, request).await,
            )
        }
    });
    let http = http1_server(limits).serve_connection(TokioIo::new(tls), service);
    slot.serve(NAME, remote, limits.connection_timeout, http, None)
        .await;
}

/// Answers one request.
async fn answer(
    coordinator: &Coordinator,
    state: &State,
    client: Option<&[u8]>,
    remote: SocketAddr,
    request: http::Request<Incoming>,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let body = match Limited::new(body, TRANSIT_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let error = if error.is::<http_body_util::LengthLimitError>() {
                TransitError::BodyTooLarge {
                    limit: TRANSIT_BODY_LIMIT,
                }
            } else {
                tracing::info!(listener = NAME, %remote, %error, "reading a transit request body");
                return json_body(
                    StatusCode::BAD_REQUEST,
                    transit::error_body("reading the request body failed"),
                );
            };
            return refusal(coordinator, remote, "other", &error);
        }
    };
    let request = TransitRequest {
        method: parts.method.as_str(),
        path,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
        body: &body,
        client_certificate: client,
    };
    let operation = transit::Operation::route(path).map_or("other", |(op, _)| op.as_str());
    match coordinator.core.transit(state, &request) {
        Ok(answer) => {
            coordinator.metrics.transit(operation, "ok");
            tracing::info!(
                listener = NAME,
                %remote,
                operation,
                name = answer.name,
                "transit request served"
            );
            json_body(StatusCode::OK, answer.body.to_vec())
        }
        Err(error) => refusal(coordinator, remote, operation, &error),
    }
}

/// The error response of `error`, counted and logged (its message carries no secrets).
fn refusal(
    coordinator: &Coordinator,
    remote: SocketAddr,
    operation: &'static str,
    error: &TransitError,
) -> Response {
    coordinator.metrics.transit(operation, error.reason());
    if error.status() >= 500 {
        tracing::error!(listener = NAME, %remote, operation, %error, "transit request failed");
    } else {
        tracing::info!(listener = NAME, %remote, operation, %error, "transit request refused");
    }
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_body(status, error.body());
    if matches!(error, TransitError::NotServing(_)) {
        // The connection was accepted under another state: the client reconnects.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
