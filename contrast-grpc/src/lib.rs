//! Upstream Contrast's gRPC APIs: the user API (`edgelesssys.contrast.userapi.UserAPI`, port
//! 1313) and the mesh API (`meshapi.MeshAPI`, port 7777), as prost messages and tonic clients and
//! servers.
//!
//! The `.proto` files in `proto/` are written from the field tables of upstream's API (names,
//! numbers and types); the Rust code in `src/generated/` is generated from them by `cargo run -p
//! xtask -- codegen` and checked for freshness in CI.
#![forbid(unsafe_code)]

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
