//! `Debug` for the messages that carry secrets (their derived `Debug` is skipped in codegen):
//! the secret fields print as `<redacted>` with their length, everything else as usual.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let recover = userapi::RecoverRequest {
            seed: vec![0xab; 64],
            salt: vec![1; 32],
            force: true,
            history_contains: vec![],
        };
        let mesh = meshapi::NewMeshCertResponse {
            workload_secret: vec![0xab; 64],
            ..Default::default()
        };
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
