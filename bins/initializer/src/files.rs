//! The files the initializer leaves on the shared volume, written atomically with upstream's
//! modes.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
const DONE_MODE: u32 = 0o644;

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
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory {}", parent.display()))?;
    }
    write_atomic(path, b"", DONE_MODE)
}

/// Creates `dir` (and missing parents) and sets it to 0755.
fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("cannot set the mode of {} to 0755", dir.display()))
}

/// Temp file in the same directory, write, set the mode, fsync, rename over `path` (which
/// replaces an existing file even when it is read-only), fsync the directory.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    // A leftover from an interrupted run with the same pid (e.g. a restarted container).
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove {}", temp.display()));
        }
    }
    let result = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        file.write_all(contents)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        // Set explicitly: the creation mode is subject to the umask.
        file.set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", temp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", temp.display()))?;
        fs::rename(&temp, path)
            .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync the directory {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn atomic_write_replaces_read_only_files_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.pem");
        write_atomic(&path, b"one", PUBLIC_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o444);
        write_atomic(&path, b"two", PRIVATE_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o400);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.pem")]);
    }
}
