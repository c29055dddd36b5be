//! A stand-in for a Coordinator over attested TLS: it attests with whatever
//! [`AtlsServer`] the test gives it (a simulated VM's issuer, a client validator or none), and
//! answers every HTTP/1.1 request with what the test's handler returns. The initializer's
//! tests use it as a mesh API; the CLI's as a Coordinator serving a tampered history.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use contrast_attest::atls::{AtlsServer, PeerSlot};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand_core::OsRng;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the stand-in answers: from the request's path and the connection's peer slot (the
/// verified client, once the handshake is over).
pub type Handler = Arc<dyn Fn(&str, &PeerSlot) -> Response<Full<Bytes>> + Send + Sync>;

/// The running stand-in (stopped when dropped). Every connection gets a fresh aTLS
/// configuration (fresh nonce) and its peer slot is recorded.
pub struct AtlsStub {
    addr: SocketAddr,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
    _runtime: tokio::runtime::Runtime,
}

impl AtlsStub {
    /// Listens on `addr` (port 0 for any) with `atls`, answering with `handler`.
    pub fn start(addr: SocketAddr, atls: AtlsServer, handler: Handler) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let slots = Arc::new(Mutex::new(Vec::new()));
        let slots_task = Arc::clone(&slots);
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok((config, slot)) = atls.config(&mut OsRng) else {
                    return;
                };
                slots_task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arc::clone(&slot));
                let acceptor = TlsAcceptor::from(Arc::new(config));
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = handler(request.uri().path(), &slot);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            slots,
            _runtime: runtime,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer slot of every connection so far, oldest first.
    pub fn slots(&self) -> Vec<Arc<PeerSlot>> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
