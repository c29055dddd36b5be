//! `contrast sign`: a detached workload-owner signature of a manifest update (upstream's
//! `contrast sign`), or with `--prepare` the bytes to sign elsewhere (an HSM). Also where the
//! latest transition an update is based on comes from, which `set --atomic` shares.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use contrast_core::owner::{next_transition_hash, transition_signing_blob};

use crate::workspace::{self, Workspace};
use crate::{ExitStatus, GlobalArgs, Outcome, set};

/// Shown by `contrast sign --help`.
pub const LONG_ABOUT: &str = "\
Sign a manifest update with a workload owner key, or prepare the bytes to sign elsewhere.

An update is authorised by a workload owner of the manifest in force: either by the key set
presents as its TLS client key, or by a detached signature (set --signature). The signature
covers the next transition hash

  SHA-256( SHA-256(manifest bytes) || latest transition hash )

so it authorises exactly this manifest on exactly the history the signer saw. What is signed is
the 64 lowercase hex digits of that hash (no newline); the signature is ECDSA over SHA-256 of
them, DER-encoded: the same as `openssl dgst -sha256 -sign KEY FILE`.

The latest transition hash comes from --latest-transition (64 hex digits, or a file holding
them), else from verify/latest-transition in the workspace (written by `contrast verify`), else
it is 32 zero bytes (no manifest set yet).

--prepare writes the hex digits to --out [default: <workspace>/next-transition] for signing
with an HSM or openssl. Without it, the workload owner key signs them and the DER signature is
written to --out [default: <workspace>/next-transition.sig].";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  # Sign with the key file, then set (atomic: only on the history verify saw):
  contrast verify -c coordinator.example:1313
  contrast sign
  contrast set -c coordinator.example:1313 --atomic --signature next-transition.sig deployment/

  # Sign elsewhere:
  contrast sign --prepare --out to-sign
  openssl dgst -sha256 -sign workload-owner.pem -out to-sign.sig to-sign
  contrast set -c coordinator.example:1313 --signature to-sign.sig deployment/

  # Check a signature with the owner's public key:
  openssl dgst -sha256 -verify owner-pub.pem -signature next-transition.sig next-transition

Exit codes:
  0  the file is written
  1  error (the message says what went wrong and what to do)
  2  usage error";

/// Flags of `contrast sign`.
// The doc comments of these flags are their `--help` text, written for a terminal: `<workspace>`
// is meant literally, not as HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The manifest the update sets [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The workload owner key that signs [default: <workspace>/workload-owner.pem].
    #[arg(long, value_name = "FILE")]
    pub workload_owner_key: Option<PathBuf>,
    /// The Coordinator's latest transition the update is based on: 64 hex digits, or a file
    /// holding them [default: <workspace>/verify/latest-transition, else none yet].
    #[arg(long, value_name = "HEX|FILE")]
    pub latest_transition: Option<String>,
    /// Write the hex digits to sign instead of signing them.
    #[arg(long)]
    pub prepare: bool,
    /// Where to write [default: <workspace>/next-transition with --prepare, else
    /// <workspace>/next-transition.sig].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Sign the manifest although it has keys that name no manifest field.
    #[arg(long)]
    pub allow_unknown_keys: bool,
}

/// The latest transition an update is based on, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestTransition {
    /// The transition hash.
    pub hash: [u8; 32],
    /// Where it came from, for messages.
    pub source: String,
}

/// The latest transition from `flag` (64 hex digits, or a file holding them), else from the
/// workspace's `verify/latest-transition`; `None` when neither is there.
pub fn latest_transition(
    workspace: &Workspace,
    flag: Option<&str>,
) -> anyhow::Result<Option<LatestTransition>> {
    if let Some(value) = flag {
        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hash = hex::decode(value)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| anyhow!("--latest-transition {value} is not 64 hex digits"))?;
            return Ok(Some(LatestTransition {
                hash,
                source: "--latest-transition".into(),
            }));
        }
        let path = Path::new(value);
        let hash = crate::verify::read_previous_head(path)?.ok_or_else(|| {
            anyhow!(
                "--latest-transition {value} is neither 64 hex digits nor an existing file; give \
                 the Coordinator's latest transition hash, or the file `contrast verify` wrote it \
                 to ({})",
                crate::verify::latest_transition_path(workspace).display()
            )
        })?;
        return Ok(Some(LatestTransition {
            hash,
            source: path.display().to_string(),
        }));
    }
    let path = crate::verify::latest_transition_path(workspace);
    Ok(
        crate::verify::read_previous_head(&path)?.map(|hash| LatestTransition {
            hash,
            source: path.display().to_string(),
        }),
    )
}

/// Runs `contrast sign`.
pub fn run(global: &GlobalArgs, args: &SignArgs) -> anyhow::Result<Outcome> {
    let workspace = Workspace::new(&global.workspace_dir);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::MANIFEST_FILE));
    let manifest = set::read_manifest(&manifest_path)?;
    let warnings =
        set::check_unknown_keys(&manifest, &manifest_path, args.allow_unknown_keys, "sign")?;
    set::validate_manifest(&manifest, &manifest_path)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let latest =
        latest_transition(&workspace, args.latest_transition.as_deref())?.unwrap_or_else(|| {
            LatestTransition {
                hash: [0; 32],
                source: format!(
                    "none: {} does not exist, so no manifest is set yet",
                    crate::verify::latest_transition_path(&workspace).display()
                ),
            }
        });
    let next = next_transition_hash(&manifest.hash(), &latest.hash);
    let blob = transition_signing_blob(&next);

    let (out, what) = if args.prepare {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| workspace.path(workspace::NEXT_TRANSITION_FILE));
        workspace::write_file(&out, blob.as_bytes())?;
        (out, "the next transition hash to sign (hex)")
    } else {
        let key_path = args
            .workload_owner_key
            .clone()
            .unwrap_or_else(|| workspace.path(workspace::WORKLOAD_OWNER_KEY_FILE));
        let Some(key) = set::load_workload_owner_key(&key_path, args.workload_owner_key.is_some())?
        else {
            bail!(
                "no workload owner key at {}; sign with --workload-owner-key, or use --prepare \
                 and sign its file elsewhere",
                key_path.display()
            );
        };
        let signature = key
            .sign_transition(&next)
            .context("could not sign with the workload owner key")?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| workspace.path(workspace::NEXT_TRANSITION_SIGNATURE_FILE));
        workspace::write_file(&out, &signature)?;
        (out, "the signature (DER)")
    };

    let manifest_hash = hex::encode(manifest.hash());
    let latest_hex = hex::encode(latest.hash);
    let mut human = format!(
        "wrote {}: {what}\n  manifest {} (hash {manifest_hash})\n  latest transition \
         {latest_hex} (from {})\n  next transition {blob}\n",
        out.display(),
        manifest_path.display(),
        latest.source
    );
    if args.prepare {
        human.push_str(&format!(
            "  sign it, e.g. `openssl dgst -sha256 -sign workload-owner.pem -out {0}.sig {0}`, \
             then `contrast set --signature {0}.sig ...`\n",
            out.display()
        ));
    } else {
        human.push_str(&format!(
            "  set it with `contrast set --signature {} ...` (with --atomic to refuse a moved \
             history)\n",
            out.display()
        ));
    }
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({
            "manifest": manifest_path,
            "manifest_hash": manifest_hash,
            "latest_transition": latest_hex,
            "latest_transition_source": latest.source,
            "next_transition_hash": blob,
            "prepared": args.prepare,
            "out": out,
            "warnings": warnings,
        }),
    })
}
