//! Mesh certificates as the Coordinator issues them, without a Coordinator: a deployment's CA
//! (contrast-ca) and the three files an initializer writes for a workload. For the service
//! mesh's tests and benches.
// Test support: a certificate that cannot be made is a failed test.
#![allow(clippy::unwrap_used)]

use contrast_ca::{Ca, MeshCaKey, UnixTime};
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use rand_core::OsRng;

/// The contents of `tls-config/{mesh-ca.pem, certChain.pem, key.pem}`.
#[derive(Clone, Debug)]
pub struct WorkloadPems {
    /// `mesh-ca.pem`.
    pub mesh_ca: Vec<u8>,
    /// `certChain.pem`: the workload's certificate, then the intermediate.
    pub cert_chain: Vec<u8>,
    /// `key.pem`: the workload's P-256 key, PKCS#8.
    pub key: Vec<u8>,
}

fn now() -> UnixTime {
    UnixTime::from(std::time::SystemTime::now())
}

/// A new deployment's CA (fresh root and mesh CA keys).
pub fn new_deployment() -> Ca {
    let root = p384::ecdsa::SigningKey::random(&mut OsRng);
    Ca::new(&root, MeshCaKey::generate(&mut OsRng), now(), &mut OsRng).unwrap()
}

/// The files of a workload named `name` (SANs `name` and `*`, as `contrast generate` writes
/// them) of the deployment `ca`, with a fresh key.
pub fn workload_pems(ca: &Ca, name: &str) -> WorkloadPems {
    let key = p256::SecretKey::random(&mut OsRng);
    let spki = key.public_key().to_public_key_der().unwrap();
    let leaf = ca
        .issue_mesh_cert(
            spki.as_bytes(),
            &[name.to_owned(), "*".to_owned()],
            &[],
            now(),
            &mut OsRng,
        )
        .unwrap();
    WorkloadPems {
        mesh_ca: leaf.mesh_ca_pem.into_bytes(),
        cert_chain: leaf.cert_chain_pem.into_bytes(),
        key: key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
    }
}
