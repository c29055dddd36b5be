//! Contrast's certificate authority: the root, intermediate and mesh CA certificates, and the
//! workload ("mesh") certificates the Coordinator issues in `NewMeshCert`.
//!
//! # Hierarchy
//!
//! | certificate | subject CN | key | signed by |
//! |---|---|---|---|
//! | root | `system:coordinator:root` | seed-derived P-384 root key | itself |
//! | intermediate | `system:coordinator:intermediate` | mesh CA key | root key |
//! | mesh CA | `system:coordinator:intermediate` | mesh CA key | itself |
//! | workload leaf | first DNS SAN | the workload's key | mesh CA key, issuer = mesh CA |
//!
//! The intermediate and the mesh CA share subject and key, hence key identifier, so a leaf chains
//! to `mesh-ca.pem` (this manifest generation only) and, through the intermediate in
//! `certChain.pem`, to `coordinator-root-ca.pem` (every generation of the deployment).
//!
//! # Encoding (as Go's `x509.CreateCertificate`)
//!
//! Version 3, random serial in `[0, 2^128)`, ecdsa-with-SHA384, subject with only a CN
//! (PrintableString when Go's printable set allows, else UTF8String), UTCTime before 2050.
//! CA certificates: KeyUsage DigitalSignature + CertSign (critical), BasicConstraints CA:true
//! (critical), SKID = first 20 bytes of SHA-256 of the subjectPublicKey bits, AKID = issuer SKID
//! unless self-signed; validity `now` − 1 h … `now` + 10 years. Leaves: KeyUsage
//! DigitalSignature (critical), EKU clientAuth + serverAuth, BasicConstraints CA:false
//! (critical), AKID, SAN, then the caller's extensions; no SKID; validity `now` − 1 h … `now` + 1
//! year. Year arithmetic is calendar arithmetic like Go's `AddDate`.
//!
//! Everything is pure: the time and the randomness are parameters.
#![forbid(unsafe_code)]

mod ca;
mod cert;
pub mod claims;
mod error;
mod key;
pub mod san;

pub use ca::{
    CA_VALIDITY_YEARS, Ca, CaCertificate, INTERMEDIATE_CN, LEAF_VALIDITY_YEARS, LeafCertificate,
    ROOT_CN,
};
pub use claims::{mesh_cert_extensions, snp_claim_extensions, workload_secret_id_extension};
pub use contrast_attest::UnixTime;
pub use error::CaError;
pub use key::MeshCaKey;
pub use x509_cert;
pub use x509_cert::ext::Extension;
