//! The messages that carry secrets (seed, mesh CA key, workload secret), by hand:
//!
//! - `Debug` (the derived one is skipped in codegen): the secret fields print as `<redacted>`
//!   with their length, everything else as usual.
//! - [`Zeroize`], called by `Drop`: the secret fields are wiped when the message is dropped.
//!   tonic takes a message by value, encodes it and drops it; without this the encoded copy's
//!   source, a plain `Vec<u8>`, would be freed with the secret still in it.
//!
//! What this cannot reach: the buffers tonic and h2 encode into and decode from, and rustls'
//! plaintext buffers. They belong to those libraries; docs/ARCHITECTURE.md names the gap.

use std::fmt;

use zeroize::Zeroize;

use crate::{meshapi, userapi};

/// A secret field in `Debug` output: its length only.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0)
    }
}

impl fmt::Debug for userapi::RecoverRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverRequest")
            .field("seed", &Redacted(self.seed.len()))
            .field("salt", &self.salt)
            .field("force", &self.force)
            .field("history_contains", &self.history_contains)
            .finish()
    }
}

impl fmt::Debug for meshapi::NewMeshCertResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMeshCertResponse")
            .field("mesh_ca_cert", &String::from_utf8_lossy(&self.mesh_ca_cert))
            .field("cert_chain", &String::from_utf8_lossy(&self.cert_chain))
            .field("root_ca_cert", &String::from_utf8_lossy(&self.root_ca_cert))
            .field("workload_secret", &Redacted(self.workload_secret.len()))
            .finish()
    }
}

impl fmt::Debug for meshapi::RecoverResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverResponse")
            .field("seed", &Redacted(self.seed.len()))
            .field("salt", &self.salt)
            .field("mesh_ca_key", &Redacted(self.mesh_ca_key.len()))
            .field(
                "latest_manifest",
                &String::from_utf8_lossy(&self.latest_manifest),
            )
            .finish()
    }
}

impl Zeroize for userapi::RecoverRequest {
    fn zeroize(&mut self) {
        self.seed.zeroize();
        self.salt.zeroize();
    }
}

impl Drop for userapi::RecoverRequest {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl Zeroize for meshapi::NewMeshCertResponse {
    fn zeroize(&mut self) {
        self.workload_secret.zeroize();
    }
}

impl Drop for meshapi::NewMeshCertResponse {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl Zeroize for meshapi::RecoverResponse {
    fn zeroize(&mut self) {
        self.seed.zeroize();
        self.salt.zeroize();
        self.mesh_ca_key.zeroize();
    }
}

impl Drop for meshapi::RecoverResponse {
    fn drop(&mut self) {
        self.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every secret field is wiped; public fields are left alone (nothing else to wipe).
    #[test]
    fn zeroize_wipes_exactly_the_secret_fields() {
        let mut recover = userapi::RecoverRequest {
            seed: vec![0xab; 64],
            salt: vec![1; 32],
            force: true,
            history_contains: vec![2; 32],
        };
        recover.zeroize();
        assert!(recover.seed.is_empty() && recover.salt.is_empty());
        assert!(recover.force);
        assert_eq!(recover.history_contains, vec![2; 32]);

        let mut mesh = meshapi::NewMeshCertResponse {
            mesh_ca_cert: b"ca".to_vec(),
            cert_chain: b"chain".to_vec(),
            root_ca_cert: b"root".to_vec(),
            workload_secret: vec![0xab; 64],
        };
        mesh.zeroize();
        assert!(mesh.workload_secret.is_empty());
        assert_eq!(mesh.cert_chain, b"chain");

        let mut peer = meshapi::RecoverResponse {
            seed: vec![0xab; 64],
            salt: vec![1; 32],
            mesh_ca_key: vec![0xab; 48],
            latest_manifest: b"{}".to_vec(),
        };
        peer.zeroize();
        assert!(peer.seed.is_empty() && peer.salt.is_empty() && peer.mesh_ca_key.is_empty());
        assert_eq!(peer.latest_manifest, b"{}");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let recover = userapi::RecoverRequest {
            seed: vec![0xab; 64],
            salt: vec![1; 32],
            force: true,
            history_contains: vec![],
        };
        let mut mesh = meshapi::NewMeshCertResponse::default();
        mesh.workload_secret = vec![0xab; 64];
        let peer = meshapi::RecoverResponse {
            seed: vec![0xab; 64],
            salt: vec![1; 32],
            mesh_ca_key: vec![0xab; 48],
            latest_manifest: b"{}".to_vec(),
        };
        for text in [
            format!("{recover:?}"),
            format!("{mesh:?}"),
            format!("{peer:?}"),
        ] {
            assert!(!text.contains("171"), "{text}");
            assert!(text.contains("<redacted"), "{text}");
        }
        assert!(format!("{peer:?}").contains("<redacted 48 bytes>"));
    }
}
