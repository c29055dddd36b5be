//! A stand-in for a Coordinator over attested TLS: it attests with whatever
//! [`AtlsServer`] the test gives it (a simulated VM's issuer, a client validator or none), and
//! answers every gRPC call of the user and mesh APIs with what the test's handler returns. The
//! initializer's tests use it as a mesh API; the CLI's as a Coordinator serving a tampered
//! history.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use contrast_attest::atls::{AtlsServer, PeerSlot};
use contrast_grpc::meshapi::mesh_api_server::{MeshApi, MeshApiServer};
use contrast_grpc::server::{Acceptor, Limits, connection};
use contrast_grpc::userapi::user_api_server::{UserApi, UserApiServer};
use contrast_grpc::{meshapi, userapi};
use hyper::body::Incoming;
use rand_core::OsRng;
use tokio::net::TcpListener;
use tonic::codegen::Service;
use tonic::{Request, Response, Status};

/// The stand-in's answer to one call.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Answer {
    /// A `GetManifests` response.
    Manifests(userapi::GetManifestsResponse),
    /// A `NewMeshCert` response.
    MeshCert(meshapi::NewMeshCertResponse),
    /// A refusal.
    Refuse(Status),
}

/// What the stand-in answers: from the full gRPC method name (`contrast_grpc::method`) and the
/// connection's peer slot (the verified client).
pub type Handler = Arc<dyn Fn(&str, &PeerSlot) -> Answer + Send + Sync>;

/// The running stand-in (stopped when dropped). Every connection gets a fresh aTLS
/// configuration (fresh nonce) and its peer slot is recorded.
pub struct AtlsStub {
    addr: SocketAddr,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
    _runtime: tokio::runtime::Runtime,
}

struct StubAcceptor {
    atls: AtlsServer,
    slots: Arc<Mutex<Vec<Arc<PeerSlot>>>>,
}

impl Acceptor for StubAcceptor {
    type Context = Arc<PeerSlot>;

    fn name(&self) -> &'static str {
        "stub"
    }

    fn configure(&self) -> Option<(rustls::ServerConfig, Arc<PeerSlot>, Arc<PeerSlot>)> {
        let (config, slot) = self.atls.config(&mut OsRng).ok()?;
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slot));
        Some((config, Arc::clone(&slot), slot))
    }
}

#[derive(Clone)]
struct Stub(Handler);

impl Stub {
    fn answer<T>(&self, request: &Request<T>, method: &str) -> Answer {
        match connection::<Arc<PeerSlot>, T>(request) {
            Some(connection) => (self.0)(method, &connection.context),
            None => Answer::Refuse(Status::internal("no connection")),
        }
    }
}

fn unexpected(answer: &Answer) -> Status {
    match answer {
        Answer::Refuse(status) => status.clone(),
        other => Status::internal(format!("the stand-in answered {other:?} to another call")),
    }
}

#[tonic::async_trait]
impl UserApi for Stub {
    async fn set_manifest(
        &self,
        request: Request<userapi::SetManifestRequest>,
    ) -> Result<Response<userapi::SetManifestResponse>, Status> {
        Err(unexpected(
            &self.answer(&request, contrast_grpc::method::SET_MANIFEST),
        ))
    }

    async fn get_manifests(
        &self,
        request: Request<userapi::GetManifestsRequest>,
    ) -> Result<Response<userapi::GetManifestsResponse>, Status> {
        match self.answer(&request, contrast_grpc::method::GET_MANIFESTS) {
            Answer::Manifests(response) => Ok(Response::new(response)),
            other => Err(unexpected(&other)),
        }
    }

    async fn recover(
        &self,
        request: Request<userapi::RecoverRequest>,
    ) -> Result<Response<userapi::RecoverResponse>, Status> {
        Err(unexpected(
            &self.answer(&request, contrast_grpc::method::USER_RECOVER),
        ))
    }
}

#[tonic::async_trait]
impl MeshApi for Stub {
    async fn new_mesh_cert(
        &self,
        request: Request<meshapi::NewMeshCertRequest>,
    ) -> Result<Response<meshapi::NewMeshCertResponse>, Status> {
        match self.answer(&request, contrast_grpc::method::NEW_MESH_CERT) {
            Answer::MeshCert(response) => Ok(Response::new(response)),
            other => Err(unexpected(&other)),
        }
    }

    async fn recover(
        &self,
        request: Request<meshapi::RecoverRequest>,
    ) -> Result<Response<meshapi::RecoverResponse>, Status> {
        Err(unexpected(
            &self.answer(&request, contrast_grpc::method::MESH_RECOVER),
        ))
    }
}

/// Both services on one listener, dispatched by the service name in the path.
#[derive(Clone)]
struct Both {
    user: UserApiServer<Stub>,
    mesh: MeshApiServer<Stub>,
}

type BoxFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl Service<http::Request<Incoming>> for Both {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> BoxFuture {
        if request.uri().path().starts_with("/meshapi.MeshAPI/") {
            Box::pin(self.mesh.call(request))
        } else {
            Box::pin(self.user.call(request))
        }
    }
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
        let acceptor = Arc::new(StubAcceptor {
            atls,
            slots: Arc::clone(&slots),
        });
        let stub = Stub(handler);
        let service = Both {
            user: UserApiServer::new(stub.clone()),
            mesh: MeshApiServer::new(stub),
        };
        runtime.spawn(async move {
            // Never stopped: the runtime's drop ends it.
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            contrast_grpc::server::serve(listener, acceptor, service, Limits::default(), shutdown)
                .await;
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
