//! The files the initializer leaves on the shared volume, written atomically with upstream's
//! modes.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use contrast_core::api::MeshCertResponse;
use zeroize::Zeroizing;

/// Directory of the TLS files, under the root.
pub(crate) const TLS_CONFIG_DIR: &str = "tls-config";
/// Directory of the workload secret, under the root.
pub(crate) const SECRETS_DIR: &str = "secrets";
/// The mesh CA certificate (PEM).
pub(crate) const MESH_CA_FILE: &str = "mesh-ca.pem";
/// The workload certificate followed by the intermediate (PEM).
pub(crate) const CERT_CHAIN_FILE: &str = "certChain.pem";
/// The workload's private key (PKCS#8 PEM).
pub(crate) const KEY_FILE: &str = "key.pem";
/// The root CA certificate (PEM).
pub(crate) const ROOT_CA_FILE: &str = "coordinator-root-ca.pem";
/// The workload secret, lowercase hex.
pub(crate) const WORKLOAD_SECRET_FILE: &str = "workload-secret-seed";

const DIR_MODE: u32 = 0o755;
const PUBLIC_MODE: u32 = 0o444;
const PRIVATE_MODE: u32 = 0o400;

/// Writes the Coordinator's answer and the private key under `root`, each file atomically:
/// `tls-config/{mesh-ca.pem, certChain.pem, coordinator-root-ca.pem}` (0444),
/// `tls-config/key.pem` (0400) and, when the secret is non-empty,
/// `secrets/workload-secret-seed` (0400, lowercase hex). Returns the paths written.
pub(crate) fn write_outputs(
    root: &Path,
    response: &MeshCertResponse,
    key_pem: &Zeroizing<String>,
) -> Result<Vec<PathBuf>> {
    let tls_dir = root.join(TLS_CONFIG_DIR);
    create_dir(&tls_dir)?;
    let mut written = Vec::new();
    for (name, contents, mode) in [
        (MESH_CA_FILE, response.mesh_ca_cert.as_slice(), PUBLIC_MODE),
        (CERT_CHAIN_FILE, response.cert_chain.as_slice(), PUBLIC_MODE),
        (KEY_FILE, key_pem.as_bytes(), PRIVATE_MODE),
        (ROOT_CA_FILE, response.root_ca_cert.as_slice(), PUBLIC_MODE),
    ] {
        let path = tls_dir.join(name);
        write_atomic(&path, contents, mode)?;
        written.push(path);
    }
    if !response.workload_secret.is_empty() {
        let secrets_dir = root.join(SECRETS_DIR);
        create_dir(&secrets_dir)?;
        let path = secrets_dir.join(WORKLOAD_SECRET_FILE);
        let secret_hex = Zeroizing::new(hex::encode(response.workload_secret.as_slice()));
        write_atomic(&path, secret_hex.as_bytes(), PRIVATE_MODE)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the empty done marker (0644), creating its directory if missing.
pub(crate) fn write_done_marker(path: &Path) -> Result<()> {
    Ok(contrast_fs::write_marker(path)?)
}

/// Creates `dir` (and missing parents) and sets it to 0755.
fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("cannot set the mode of {} to 0755", dir.display()))
}

/// Replaces `path` atomically and durably with exactly `mode` (`contrast_fs::write_atomic`:
/// temporary file, mode, fsync, rename even over a read-only file, directory fsync).
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    Ok(contrast_fs::write_atomic(path, contents, Some(mode))?)
}
