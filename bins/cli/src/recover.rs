//! `contrast recover`: decrypt the caller's seed share and recover a restarted Coordinator,
//! authenticating with the seed-share owner's RSA key.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use contrast_attest::atls::AtlsKey;
use contrast_core::api::{ErrorCode, RecoverRequest};
use contrast_core::owner::SeedshareOwnerPrivateKey;
use contrast_core::seedshare::SeedShareDocument;
use zeroize::Zeroizing;

use crate::connect;
use crate::set;
use crate::workspace::{self, Workspace};
use crate::{ExitStatus, Failure, GlobalArgs, Outcome};

/// Shown by `contrast recover --help`.
pub const LONG_ABOUT: &str = "\
Recover a Coordinator that restarted and waits for its seed (recovery mode).

1. The seed-share owner's RSA key is loaded and the caller's share in seed-shares.json (the one
   naming this key) is decrypted (RSA-OAEP-SHA256).
2. The Coordinator is attested against the manifest's reference values and coordinator
   policies; the seed-share owner key is the client key (the Coordinator checks it against the
   manifest's seed-share owners).
3. The seed and salt are sent. --force recovers even when ready peers exist (normally a
   Coordinator recovers from its peers by itself).
4. If verify/latest-transition holds the head an earlier `contrast verify` saw, the
   Coordinator recovers only a history that contains it: a store rolled back to an older head
   is refused before anything changes (exit 4). --accept-rollback recovers the older history
   knowingly. The recovered head and generation are printed.
5. The Coordinator's root CA and its new mesh CA (a recovery makes one) are written to the
   workspace as coordinator-root-ca.pem and mesh-ca.pem, replacing the stale copies.";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast recover -c 127.0.0.1:1313
  contrast recover -c coordinator.example:1313 --seedshare-owner-key ~/keys/seedshare-owner.pem \\
      --seed seed-shares.json

Exit codes:
  0  the Coordinator is recovered
  1  error (the message says what went wrong and what to do)
  2  usage error
  4  the stored history does not contain the head verify/latest-transition holds (rolled back)
  5  the Coordinator's attestation was refused (the failed check is printed)";

/// Flags of `contrast recover`.
// The doc comments of these flags are their `--help` text, written for a terminal: `<workspace>`
// and `[:PORT]` are meant literally, not as HTML or intra-doc links.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub connect: crate::connect::CoordinatorArgs,
    /// The manifest whose reference values attest the Coordinator
    /// [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The seed-share owner's RSA key [default: <workspace>/seedshare-owner.pem].
    #[arg(long, value_name = "FILE")]
    pub seedshare_owner_key: Option<PathBuf>,
    /// The seed shares written by the first `set` [default: <workspace>/seed-shares.json].
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Recover even when ready peers exist.
    #[arg(long)]
    pub force: bool,
    /// Recover even if the stored history does not contain the head an earlier `contrast
    /// verify` saw (verify/latest-transition): accept a rolled-back history knowingly.
    #[arg(long)]
    pub accept_rollback: bool,
}

/// Runs `contrast recover`.
pub fn run(global: &GlobalArgs, args: &RecoverArgs) -> anyhow::Result<Outcome> {
    let workspace = Workspace::new(&global.workspace_dir);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::MANIFEST_FILE));
    let key_path = args
        .seedshare_owner_key
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::SEEDSHARE_OWNER_KEY_FILE));
    let seed_path = args
        .seed
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::SEED_SHARES_FILE));

    let (owner_key, atls_key) = load_seedshare_owner_key(&key_path)?;
    let shares = fs::read(&seed_path)
        .with_context(|| format!("could not read the seed shares {}", seed_path.display()))?;
    let shares = SeedShareDocument::from_json(&shares)
        .with_context(|| format!("{} is not a seed-shares.json", seed_path.display()))?;
    let share = shares.share_for(&owner_key.public_key()).ok_or_else(|| {
        anyhow!(
            "{} holds no share for the key {}; use the seed-share owner key the manifest names",
            seed_path.display(),
            key_path.display()
        )
    })?;
    let seed = share.decrypt(&owner_key).with_context(|| {
        format!(
            "could not decrypt the share in {} with {}",
            seed_path.display(),
            key_path.display()
        )
    })?;
    let request = RecoverRequest {
        seed,
        salt: shares.salt.clone(),
        force: args.force,
        history_contains: None,
    };
    let seen_file = crate::verify::latest_transition_path(&workspace);
    let seen = crate::verify::read_previous_head(&seen_file)?.filter(|_| !args.accept_rollback);
    let request = RecoverRequest {
        history_contains: seen.map(|hash| hash.to_vec()),
        ..request
    };

    let manifest = set::load_manifest(&manifest_path)?;
    let client = connect::attested_client(&args.connect.coordinator, &manifest, Some(atls_key))?;
    let runtime = connect::runtime()?;
    let recovered = runtime
        .block_on(connect::with_retries(
            "recovering the coordinator",
            args.connect.timeout,
            || client.recover(&request),
        ))
        .map_err(|error| {
            if error.api_code() == Some(&ErrorCode::HistoryTampered) {
                Failure {
                    status: ExitStatus::HistoryNotExtending,
                    message: format!(
                        "{error}\nthe coordinator at {} was not recovered: its store holds an \
                         older history than the head in {} (seen by an earlier verify). \
                         Restore the store from a backup; --accept-rollback recovers the older \
                         history knowingly (workloads removed since then are admitted again)",
                        args.connect.coordinator,
                        seen_file.display()
                    ),
                }
                .into()
            } else if error.api_code() == Some(&ErrorCode::PermissionDenied) {
                // Not only the key: a seed of another deployment is refused the same way.
                anyhow::Error::new(error).context(format!(
                    "the coordinator at {} refused the recovery: either {} is not a seed-share \
                     owner key of its stored manifest, or the seed in {} is not this \
                     deployment's (the coordinator's message says which)",
                    args.connect.coordinator,
                    key_path.display(),
                    seed_path.display()
                ))
            } else {
                connect::client_failure(error, &args.connect.coordinator)
            }
        })?;
    let (attested_text, attested_json) = connect::attested_summary(&recovered.peer, &manifest);
    let recovered = recovered.value;
    // A recovery by a seed-share owner makes a new mesh CA: the workspace's copy is stale.
    let refreshed = runtime
        .block_on(connect::with_retries(
            "fetching the new CAs",
            args.connect.timeout,
            || client.get_manifests(),
        ))
        .map_err(|error| connect::client_failure(error, &args.connect.coordinator))
        .and_then(|manifests| {
            workspace.create_dir()?;
            Ok(vec![
                workspace::write_file(
                    &workspace.path(workspace::ROOT_CA_FILE),
                    &manifests.value.root_ca,
                )?,
                workspace::write_file(
                    &workspace.path(workspace::MESH_CA_FILE),
                    &manifests.value.mesh_ca,
                )?,
            ])
        });
    let head = hex::encode(&recovered.latest_transition_hash);
    let mut human = format!(
        "the coordinator at {} is recovered\n{attested_text}",
        args.connect.coordinator
    );
    if recovered.latest_transition_hash.is_empty() {
        human.push_str(
            "  it does not report what it recovered to (an upstream Coordinator): run `contrast \
             verify` to check its history\n",
        );
    } else {
        human.push_str(&format!(
            "  head {head}, {} manifest(s) in its history\n",
            recovered.generation
        ));
    }
    let written = match refreshed {
        Ok(written) => {
            for path in &written {
                human.push_str(&format!("  wrote {}\n", path.display()));
            }
            written
        }
        Err(error) => {
            human.push_str(&format!(
                "  warning: {} in {} is from before the recovery (the mesh CA is new) and could \
                 not be refreshed: {}; run `contrast verify` to fetch the new one\n",
                workspace::MESH_CA_FILE,
                global.workspace_dir.display(),
                contrast_core::error_chain::describe(error.as_ref())
            ));
            Vec::new()
        }
    };
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({
            "coordinator": args.connect.coordinator,
            "attested": attested_json,
            "recovered": true,
            "force": args.force,
            "latest_transition": (!head.is_empty()).then_some(head),
            "generation": recovered.generation,
            "checked_against": seen.map(hex::encode),
            "written": written,
        }),
    })
}

pub fn load_seedshare_owner_key(
    path: &Path,
) -> anyhow::Result<(SeedshareOwnerPrivateKey, AtlsKey)> {
    let pem = fs::read_to_string(path)
        .map(Zeroizing::new)
        .with_context(|| {
            format!(
                "could not read the seed-share owner key {}; pass --seedshare-owner-key",
                path.display()
            )
        })?;
    let owner_key = SeedshareOwnerPrivateKey::from_pem(&pem)
        .with_context(|| format!("{} is not an RSA seed-share owner key", path.display()))?;
    let (label, der) = der::pem::decode_vec(pem.as_bytes())
        .map_err(|e| anyhow!("{} is not a PEM file: {e}", path.display()))?;
    let der = Zeroizing::new(der);
    let atls_key = match label {
        "RSA PRIVATE KEY" => AtlsKey::rsa_from_pkcs1_der(&der),
        "PRIVATE KEY" => AtlsKey::rsa_from_pkcs8_der(&der),
        other => bail!(
            "{} holds a {other:?} PEM; expected `RSA PRIVATE KEY` or `PRIVATE KEY`",
            path.display()
        ),
    }
    .with_context(|| format!("{} cannot be used as a TLS client key", path.display()))?;
    Ok((owner_key, atls_key))
}
