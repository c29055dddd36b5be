//! The workspace directory: upstream's file names, and loading or generating the owner keys.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use contrast_core::owner::{
    SeedshareOwnerPrivateKey, SeedshareOwnerPublicKey, WorkloadOwnerPrivateKey,
    WorkloadOwnerPublicKey,
};
use zeroize::Zeroizing;

/// The manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The workload owner's P-384 key (SEC1 `EC PRIVATE KEY` PEM).
pub const WORKLOAD_OWNER_KEY_FILE: &str = "workload-owner.pem";
/// The seed-share owner's RSA key (PKCS#1 `RSA PRIVATE KEY` PEM).
pub const SEEDSHARE_OWNER_KEY_FILE: &str = "seedshare-owner.pem";
/// The Coordinator's root CA certificate (stable across updates and recoveries), written by
/// `set` and `recover`, and under `verify/` by `verify`.
pub const ROOT_CA_FILE: &str = "coordinator-root-ca.pem";
/// The Coordinator's mesh CA certificate (new with every manifest and every recovery by a
/// seed-share owner), written by `set` and `recover`, and under `verify/` by `verify`.
pub const MESH_CA_FILE: &str = "mesh-ca.pem";
/// The seed shares written by the first `set`.
#[allow(dead_code)]
pub const SEED_SHARES_FILE: &str = "seed-shares.json";
/// The policy used for every workload when present (see `generate --help`).
pub const RULES_FILE: &str = "rules.rego";
/// Kata genpolicy settings, passed to genpolicy when present.
pub const GENPOLICY_SETTINGS_FILE: &str = "settings.json";
/// Kata genpolicy's image layer cache.
pub const LAYERS_CACHE_FILE: &str = "layers-cache.json";
/// The Coordinator's Kubernetes resources written by `generate --coordinator`.
pub const COORDINATOR_FILE: &str = "coordinator.yml";
/// What `sign --prepare` writes: the lowercase hex of the next transition hash, to be signed.
pub const NEXT_TRANSITION_FILE: &str = "next-transition";
/// What `sign` writes: the DER signature over [`NEXT_TRANSITION_FILE`]'s content.
pub const NEXT_TRANSITION_SIGNATURE_FILE: &str = "next-transition.sig";
/// Where `verify` writes what it fetched.
#[allow(dead_code)]
pub const VERIFY_DIR: &str = "verify";

/// The workspace directory given by `--workspace-dir`.
#[derive(Clone, Debug)]
pub struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `dir` (not created).
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The path of a file in the workspace.
    #[must_use]
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Creates the workspace directory if it is missing.
    pub fn create_dir(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| {
            format!(
                "could not create the workspace directory {}; check --workspace-dir and its permissions",
                self.dir.display()
            )
        })
    }
}

/// Whether an owner key was read from disk or generated now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Read from an existing file.
    Loaded,
    /// Generated and written by this run.
    Generated,
}

/// Loads the workload owner key at `path`, generating and writing it (mode 0600) when missing.
pub fn load_or_generate_workload_owner_key(
    path: &Path,
) -> anyhow::Result<(WorkloadOwnerPrivateKey, KeySource)> {
    if path.exists() {
        let pem = read_secret(path)?;
        let key = WorkloadOwnerPrivateKey::from_pem(&pem).with_context(|| {
            format!(
                "{} is not a P-384 workload owner key (SEC1 `EC PRIVATE KEY` or PKCS#8 PEM); \
                 fix or remove it to generate a new one",
                path.display()
            )
        })?;
        return Ok((key, KeySource::Loaded));
    }
    let key = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng)
        .context("could not generate the workload owner key")?;
    let pem = key
        .to_sec1_pem()
        .context("could not encode the workload owner key")?;
    write_secret(path, pem.as_bytes())?;
    Ok((key, KeySource::Generated))
}

/// Loads the seed-share owner key at `path`, generating an RSA-4096 key and writing it as
/// PKCS#1 PEM (mode 0600) when missing.
pub fn load_or_generate_seedshare_owner_key(
    path: &Path,
) -> anyhow::Result<(SeedshareOwnerPrivateKey, KeySource)> {
    if path.exists() {
        let pem = read_secret(path)?;
        let key = SeedshareOwnerPrivateKey::from_pem(&pem).with_context(|| {
            format!(
                "{} is not an RSA seed-share owner key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 PEM); \
                 fix or remove it to generate a new one",
                path.display()
            )
        })?;
        return Ok((key, KeySource::Loaded));
    }
    let pem = generate_rsa_pkcs1_pem()?;
    let key = SeedshareOwnerPrivateKey::from_pem(&pem)
        .context("the generated seed-share owner key did not parse back")?;
    write_secret(path, pem.as_bytes())?;
    Ok((key, KeySource::Generated))
}

/// A new RSA-4096 key as a PKCS#1 `RSA PRIVATE KEY` PEM (what upstream writes).
fn generate_rsa_pkcs1_pem() -> anyhow::Result<Zeroizing<String>> {
    use aws_lc_rs::encoding::AsDer as _;
    use der::Decode as _;

    let key_pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa4096)
        .map_err(|_| anyhow!("could not generate the RSA-4096 seed-share owner key"))?;
    let pkcs8 = key_pair
        .as_der()
        .map_err(|_| anyhow!("could not encode the generated seed-share owner key"))?;
    let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
    // The PKCS#8 privateKey OCTET STRING of an rsaEncryption key is the PKCS#1 RSAPrivateKey.
    let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8)
        .context("the generated seed-share owner key is not valid PKCS#8")?;
    let pem = der::pem::encode_string(
        "RSA PRIVATE KEY",
        der::pem::LineEnding::LF,
        info.private_key,
    )
    .map_err(|e| anyhow!("could not PEM-encode the seed-share owner key: {e}"))?;
    Ok(Zeroizing::new(pem))
}

/// Reads a workload owner public key for `--add-workload-owner-key`: a public key PEM, or a
/// private key PEM whose public part is used.
pub fn read_workload_owner_public_key(path: &Path) -> anyhow::Result<WorkloadOwnerPublicKey> {
    let pem = read_secret(path)?;
    WorkloadOwnerPublicKey::from_public_or_private_pem(&pem).with_context(|| {
        format!(
            "{} is neither a P-384 `PUBLIC KEY` PEM nor a workload owner private key PEM",
            path.display()
        )
    })
}

/// Reads a seed-share owner public key for `--add-seedshare-owner-key`: an `RSA PUBLIC KEY`
/// (PKCS#1) or `PUBLIC KEY` (PKIX) PEM, or a private key PEM whose public part is used.
pub fn read_seedshare_owner_public_key(path: &Path) -> anyhow::Result<SeedshareOwnerPublicKey> {
    let pem = read_secret(path)?;
    SeedshareOwnerPublicKey::from_public_or_private_pem(&pem).with_context(|| {
        format!(
            "{} is neither an RSA public key PEM (`RSA PUBLIC KEY` or `PUBLIC KEY`) nor a \
             seed-share owner private key PEM",
            path.display()
        )
    })
}

fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .with_context(|| format!("could not read {}", path.display()))
}

/// Writes a private key file with mode 0600, refusing to overwrite an existing file.
fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", path.display()))
}

/// Writes `bytes` to `path` (mode 0644 for new files) unless the file already holds exactly
/// these bytes. Returns whether the file was written.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    if fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("could not create the directory {}", parent.display()))?;
    }
    write_file(path, bytes)?;
    Ok(true)
}

/// Replaces `path` with `bytes` atomically (`contrast_fs::write_atomic`), keeping the mode of
/// an existing file and giving a new one 0644; returns the path.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    contrast_fs::write_atomic(path, bytes, Some(mode))
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(path.to_path_buf())
}
