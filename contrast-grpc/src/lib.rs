//! Upstream Contrast's gRPC APIs: the user API (`edgelesssys.contrast.userapi.UserAPI`, port
//! 1313) and the mesh API (`meshapi.MeshAPI`, port 7777), as prost messages and tonic clients and
//! servers, and the transport both sides use: gRPC over attested TLS.
//!
//! - [`server::serve`]: accepts TCP connections, runs the aTLS handshake per connection and
//!   serves a tonic service over hyper's HTTP/2; handlers find the verified client
//!   ([`server::Connection`]: client certificate key, attested report) in the request's
//!   extensions ([`server::connection`]).
//! - [`client::connect`]: one aTLS connection as a tonic transport ([`client::AtlsChannel`])
//!   with the attested server ([`client::Connected::peer`]).
//! - [`grpc_code`], [`status`], [`error_code`]: the one mapping between the Coordinator's
//!   [`ErrorCode`](contrast_core::api::ErrorCode)s and gRPC codes (upstream's), with our code in
//!   the metadata key [`ERROR_CODE_METADATA`].
//! - `From` conversions between the messages and the core's typed requests
//!   ([`contrast_core::api`]).
//!
//! ALPN is upstream's: the client offers `atls:v1:nonce:<64 lowercase hex>` then `h2`, the
//! server selects `h2`.
//!
//! The `.proto` files in `proto/` are written from the field tables of upstream's API (names,
//! numbers and types); the Rust code in `src/generated/` is generated from them by `cargo run -p
//! xtask -- codegen` and checked for freshness in CI. `SetManifestRequest` fields 3
//! (`PreviousTransitionHash`) and 4 (`Signature`) are upstream's 2026 additions whose field
//! numbers could not be confirmed from a released `.proto`.
#![forbid(unsafe_code)]

pub mod client;
mod convert;
mod secret;
pub mod server;
mod status;

pub use status::{ERROR_CODE_METADATA, code_name, error_code, grpc_code, status};

/// Largest request the user API accepts: a `SetManifest` with its policies
/// ([`MANIFEST_BODY_LIMIT`](contrast_core::api::MANIFEST_BODY_LIMIT)).
pub const USER_API_MAX_REQUEST: usize = contrast_core::api::MANIFEST_BODY_LIMIT;
/// Largest request the mesh API accepts: its requests are empty.
pub const MESH_API_MAX_REQUEST: usize = 4 * 1024;
/// Largest response a client accepts by default: a `GetManifests` response carries the whole
/// history and every policy.
pub const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// The full method names, the label set of per-method metrics.
pub mod method {
    /// `/edgelesssys.contrast.userapi.UserAPI/SetManifest`.
    pub const SET_MANIFEST: &str = "/edgelesssys.contrast.userapi.UserAPI/SetManifest";
    /// `/edgelesssys.contrast.userapi.UserAPI/GetManifests`.
    pub const GET_MANIFESTS: &str = "/edgelesssys.contrast.userapi.UserAPI/GetManifests";
    /// `/edgelesssys.contrast.userapi.UserAPI/Recover`.
    pub const USER_RECOVER: &str = "/edgelesssys.contrast.userapi.UserAPI/Recover";
    /// `/meshapi.MeshAPI/NewMeshCert`.
    pub const NEW_MESH_CERT: &str = "/meshapi.MeshAPI/NewMeshCert";
    /// `/meshapi.MeshAPI/Recover`.
    pub const MESH_RECOVER: &str = "/meshapi.MeshAPI/Recover";
}

/// `edgelesssys.contrast.userapi`: SetManifest, GetManifests, Recover.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod userapi {
    include!("generated/edgelesssys.contrast.userapi.rs");
}

/// `meshapi`: NewMeshCert, Recover (peer recovery).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod meshapi {
    include!("generated/meshapi.rs");
}
