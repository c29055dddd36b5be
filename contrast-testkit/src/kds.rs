//! A stand-in for AMD's Key Distribution Service (or a collateral proxy) on loopback: serves
//! what a test puts at a path, misbehaves on demand ([`Fault`]) and logs every request.
// Test support fails loudly (a failed test), as the crate docs say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What a stand-in does with the next request to a path, instead of serving it.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` value, if given).
    Status(u16, Option<&'static str>),
    /// Answer 200 with these bytes.
    Body(Vec<u8>),
    /// Wait this long, then serve the content.
    Delay(Duration),
}

#[derive(Default)]
struct State {
    /// Content by path (without query).
    routes: HashMap<String, Vec<u8>>,
    /// Faults by path, used up in order.
    faults: HashMap<String, VecDeque<Fault>>,
    /// Every fault applies to every path, forever.
    always: Option<Fault>,
    /// Every request, path and query.
    log: Vec<String>,
}

/// A KDS (or collateral proxy) on loopback: plain HTTP (or HTTPS), content by path, a path prefix
/// stripped first (a proxy under a sub-path); faults on demand; every request logged.
#[derive(Clone)]
pub struct KdsStandIn {
    /// The base URL (`http://127.0.0.1:<port><prefix>`, or `https://localhost:…`).
    pub url: String,
    prefix: &'static str,
    state: Arc<Mutex<State>>,
}

impl KdsStandIn {
    /// Starts a stand-in whose paths are under `prefix` (`""` for a KDS, e.g. `/collateral` for
    /// a proxy under a sub-path).
    pub async fn start(prefix: &'static str) -> KdsStandIn {
        Self::start_with(prefix, None).await
    }

    /// As [`KdsStandIn::start`], over HTTPS with `tls` (as AMD's KDS is): the URL says
    /// `https://localhost:<port>`.
    pub async fn start_tls(prefix: &'static str, tls: rustls::ServerConfig) -> KdsStandIn {
        Self::start_with(prefix, Some(Arc::new(tls))).await
    }

    async fn start_with(
        prefix: &'static str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> KdsStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}{prefix}"),
            None => format!("http://127.0.0.1:{port}{prefix}"),
        };
        let stand_in = KdsStandIn {
            url,
            prefix,
            state: Arc::default(),
        };
        let server = stand_in.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(request).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        stand_in
    }

    async fn answer(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<Full<Bytes>> {
        let uri = request.uri();
        let full = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let path = uri
            .path()
            .strip_prefix(self.prefix)
            .unwrap_or("")
            .to_owned();
        let (fault, content) = {
            let mut state = self.state.lock().unwrap();
            state.log.push(full);
            let fault = state
                .faults
                .get_mut(&path)
                .and_then(VecDeque::pop_front)
                .or_else(|| state.always.clone());
            (fault, state.routes.get(&path).cloned())
        };
        let respond = |status: u16, body: Vec<u8>| {
            http::Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        match fault {
            Some(Fault::Status(status, retry_after)) => {
                let mut response = respond(status, b"refused".to_vec());
                if let Some(value) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", value.parse().unwrap());
                }
                response
            }
            Some(Fault::Body(body)) => respond(200, body),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                respond(200, content.unwrap_or_default())
            }
            None => match content {
                Some(body) => respond(200, body),
                None => respond(404, b"not found".to_vec()),
            },
        }
    }

    /// Serves `body` at `path` (without query).
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), body);
    }

    /// Queues faults for the next requests to `path`, in order.
    pub fn fault(&self, path: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(path.to_owned())
            .or_default()
            .extend(faults.iter().cloned());
    }

    /// Applies `fault` to every request from now on.
    pub fn always(&self, fault: Fault) {
        self.state.lock().unwrap().always = Some(fault);
    }

    /// Every request so far, path and query.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}
