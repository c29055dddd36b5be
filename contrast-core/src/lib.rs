//! The pure model of Contrast: everything that is a format or a derivation, and nothing that
//! does I/O.
//!
//! - [`manifest`]: the manifest JSON (upstream schema, Go decoding rules), its hash and
//!   validation.
//! - [`initdata`]: the initdata TOML document, its digest, the pod annotation and the device
//!   image.
//! - [`seed`]: the seed engine: HKDF derivations and deterministic P-384 keys.
//! - [`seedshare`]: RSA-OAEP seed shares and the `seed-shares.json` document.
//! - [`owner`]: workload-owner and seed-share-owner keys, and the rules that authorise manifest
//!   updates and recovery.
//! - [`history`]: transitions, the signed head, chain rebuild and history verification.
//! - [`api`]: request and response bodies of the network API, and its ports.
//! - [`san`]: how a policy's subject alternative names are classified and checked.
//! - [`coordinator_identity`]: what a workload's initializer expects of its Coordinator.
//! - [`kubernetes`]: the names, labels and annotations Contrast's Kubernetes objects share.
//! - [`duration`]: the duration syntax of every command-line flag.
//! - [`edit_distance`]: the Levenshtein distance behind "did you mean" messages.
//!
//! Time and randomness are parameters; secrets are zeroized on drop. Every format that crosses a
//! boundary is byte-compatible with upstream Contrast.
#![forbid(unsafe_code)]

pub mod api;
pub mod coordinator_identity;
pub mod duration;
pub mod edit_distance;
pub mod error_chain;
mod gocompat;
pub mod hexstring;
pub mod history;
pub mod initdata;
pub mod kubernetes;
pub mod manifest;
pub mod owner;
pub mod san;
pub mod seed;
pub mod seedshare;

/// SHA-256 of `bytes`: the content address of every stored blob and the manifest hash.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
