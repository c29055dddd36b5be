//! `contrast verify`: as a data owner, attest the Coordinator against the local manifest, fetch
//! its history, check it, write upstream's flat `verify/` layout, and require the newest
//! manifest to be the local one. Beyond upstream: the head seen last is remembered in
//! `verify/latest-transition` and the next history must extend it, and the root CA's key (from
//! the seed, stable across updates and recoveries) seen last must not change.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use contrast_core::history::Hash;
use contrast_core::initdata::Initdata;
use contrast_sdk::verify_deployment;

use crate::connect;
use crate::set;
use crate::workspace::{self, Workspace};
use crate::{ExitStatus, Failure, GlobalArgs, Outcome};

/// Shown by `contrast verify --help`.
pub const LONG_ABOUT: &str = "\
Verify the Coordinator as a data owner.

1. The Coordinator is attested against the local manifest's reference values and coordinator
   policies (no client key).
2. Its manifest history is fetched and checked: the transition chain rebuilt from the
   manifests must end in the head the Coordinator claims, every policy of the newest manifest
   must be present, the CAs must be certificates.
   A history that does not verify is refused (exit 6).
3. If verify/latest-transition holds the head seen by an earlier run, the new history must
   contain it: otherwise the history was rolled back or forked (exit 4). If
   verify/coordinator-root-ca.pem holds the root CA seen by an earlier run, the new root CA
   must have the same key: otherwise the Coordinator was re-initialised with a new seed, so
   every workload secret changed and the old seed shares recover nothing (exit 7). Setting
   the same manifest again gives the same head, so only the root key tells. --accept-reset
   accepts a deliberate reset and pins the new root and head.
4. The verify/ directory is written (0755, files 0644): coordinator-root-ca.pem, mesh-ca.pem,
   manifest.<i>.json (0 = oldest), initdata.<hexdigest>.toml per policy, latest-transition
   (hex of the head).
5. The newest manifest must equal the local manifest byte for byte (else exit 3).
Then review the manifest history and the policies in verify/.";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast verify -c 127.0.0.1:1313
  contrast verify -c coordinator.example:1313 -m manifest.json --json

Exit codes:
  0  the Coordinator runs the local manifest
  1  error (the message says what went wrong and what to do)
  2  usage error
  3  the newest manifest at the Coordinator differs from the local manifest
  4  the history does not extend the head in verify/latest-transition (rolled back or forked)
  5  the Coordinator's attestation was refused (the failed check is printed)
  6  the Coordinator's history is inconsistent: a manifest was changed, removed or reordered
  7  the Coordinator's root CA key changed since the last verify (re-initialised)";

/// The file that remembers the head seen last.
pub const LATEST_TRANSITION_FILE: &str = "latest-transition";

/// Flags of `contrast verify`.
// The doc comments of these flags are their `--help` text, written for a terminal: `<workspace>`
// and `[:PORT]` are meant literally, not as HTML or intra-doc links.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connect: crate::connect::CoordinatorArgs,
    /// The expected manifest [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Accept that the Coordinator was re-initialised since the last verify (a new root CA key
    /// and a new history): pin the new root and head instead of refusing (exit 7 or 4).
    #[arg(long)]
    pub accept_reset: bool,
}

/// Runs `contrast verify`.
pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let workspace = Workspace::new(&global.workspace_dir);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::MANIFEST_FILE));
    let manifest = set::load_manifest(&manifest_path)?;
    let client = connect::attested_client(&args.connect.coordinator, &manifest, None)?;
    let response = connect::runtime()?
        .block_on(connect::with_retries(
            "fetching the manifests",
            args.connect.timeout,
            || client.get_manifests(),
        ))
        .map_err(|error| connect::client_failure(error, &args.connect.coordinator))?;
    let (attested_text, attested_json) = connect::attested_summary(&response.peer, &manifest);
    let response = response.value;
    let deployment = verify_deployment(&response).map_err(|error| Failure {
        status: ExitStatus::InconsistentHistory,
        message: format!(
            "the coordinator at {} sent an inconsistent history: {error}; do not trust this \
             coordinator (its history was changed, truncated or reordered); nothing was written",
            args.connect.coordinator
        ),
    })?;

    let dir = workspace.path(workspace::VERIFY_DIR);
    let head_file = latest_transition_path(&workspace);
    let root_file = dir.join(workspace::ROOT_CA_FILE);
    let previous_root = read_previous_root_key(&root_file)?;
    let root = root_key(&response.root_ca)?;
    if let Some(previous_root) = &previous_root
        && *previous_root != root
        && !args.accept_reset
    {
        return Err(Failure {
            status: ExitStatus::RootChanged,
            message: format!(
                "the coordinator's root CA key is not the one seen last (in {}): the \
                 coordinator was re-initialised with a new seed, so every workload secret and \
                 the mesh CA changed and the old seed shares recover nothing; if you reset it \
                 deliberately, run again with --accept-reset, else do not trust it; nothing \
                 was written",
                root_file.display()
            ),
        }
        .into());
    }
    let previous = read_previous_head(&head_file)?.filter(|_| !args.accept_reset);
    if let Some(previous) = &previous
        && let Err(error) = deployment.check_extends(previous)
    {
        let detail = error.to_string();
        return Err(Failure {
            status: ExitStatus::HistoryNotExtending,
            message: format!(
                "the coordinator's history does not extend the head {} seen last (in {}): {detail}; \
                 do not trust this coordinator, and investigate before removing {}",
                hex::encode(previous),
                head_file.display(),
                head_file.display()
            ),
        }
        .into());
    }

    create_dir(&dir)?;
    let mut written = vec![
        write_public(&root_file, &response.root_ca)?,
        write_public(&dir.join(workspace::MESH_CA_FILE), &response.mesh_ca)?,
    ];
    for (index, manifest) in response.manifests.iter().enumerate() {
        written.push(write_public(
            &dir.join(format!("manifest.{index}.json")),
            manifest,
        )?);
    }
    for policy in &response.policies {
        let digest = Initdata::parse(policy.clone()).map_or_else(
            |_| hex::encode(contrast_core::sha256(policy)),
            |initdata| initdata.digest().to_hex(),
        );
        written.push(write_public(
            &dir.join(format!("initdata.{digest}.toml")),
            policy,
        )?);
    }
    let head = hex::encode(deployment.latest_transition_hash);
    written.push(write_public(&head_file, head.as_bytes())?);

    let newest = response.manifests.last().map(Vec::as_slice);
    if newest != Some(manifest.raw()) {
        return Err(Failure {
            status: ExitStatus::ManifestMismatch,
            message: format!(
                "the active manifest at {} does not match the expected manifest {}; it is \
                 {}; compare them, and verify the manifest history and policies in {}",
                args.connect.coordinator,
                manifest_path.display(),
                dir.join(format!(
                    "manifest.{}.json",
                    response.manifests.len().saturating_sub(1)
                ))
                .display(),
                dir.display()
            ),
        }
        .into());
    }

    let human = format!(
        "the coordinator at {} runs the manifest {} ({} manifests in its history, head {head})\n\
         {attested_text}  wrote {} files to {}\n  please verify the manifest history and policies there\n",
        args.connect.coordinator,
        manifest_path.display(),
        response.manifests.len(),
        written.len(),
        dir.display()
    );
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({
            "coordinator": args.connect.coordinator,
            "attested": attested_json,
            "manifest": manifest_path,
            "manifests": response.manifests.len(),
            "latest_transition": head,
            "previous_transition": previous.map(hex::encode),
            "root_changed": previous_root.is_some_and(|previous| previous != root),
            "verify_dir": dir,
            "written": written,
        }),
    })
}

/// The SubjectPublicKeyInfo (DER) of a PEM certificate.
fn root_key(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    use der::{DecodePem as _, Encode as _};
    let cert = x509_cert::Certificate::from_pem(pem)
        .map_err(|error| anyhow!("the root CA is not a PEM certificate: {error}"))?;
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|error| anyhow!("the root CA's key does not encode: {error}"))
}

/// Where `contrast verify` keeps the latest transition it saw (`verify/latest-transition`), which
/// `recover`, `sign` and `set --atomic` read.
pub fn latest_transition_path(workspace: &Workspace) -> PathBuf {
    workspace
        .path(workspace::VERIFY_DIR)
        .join(LATEST_TRANSITION_FILE)
}

/// The root CA key pinned in `path`, or `None` when the file does not exist.
fn read_previous_root_key(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(pem) = read_pin(path)? else {
        return Ok(None);
    };
    root_key(&pem).map(Some).with_context(|| {
        format!(
            "{} does not hold the root CA seen last; restore it, or remove it to accept the \
             coordinator's root as new",
            path.display()
        )
    })
}

/// The contents of a pin file under `verify/`, or `None` when it does not exist (nothing was
/// seen yet).
fn read_pin(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

/// The head in `path` (hex), or `None` when the file does not exist.
pub fn read_previous_head(path: &Path) -> anyhow::Result<Option<Hash>> {
    let Some(text) = read_pin(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&text);
    let bytes = hex::decode(text.trim()).ok();
    let hash = bytes
        .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| {
            anyhow!(
                "{} does not hold a transition hash (64 hex digits); restore it, or remove it \
                 to accept the coordinator's history as new",
                path.display()
            )
        })?;
    Ok(Some(hash))
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("could not create the directory {}", dir.display()))?;
    set_mode(dir, 0o755)
}

/// Replaces a file atomically, with mode 0644.
fn write_public(path: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    contrast_fs::write_atomic(path, bytes, Some(0o644))
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("could not set the mode of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
