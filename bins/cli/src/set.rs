//! `contrast set`: attest the Coordinator against the manifest's reference values and set the
//! manifest with its policies (the initdata documents). Also loading and checking the manifest,
//! which `verify` and `recover` share.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use contrast_attest::atls::AtlsKey;
use contrast_core::api::{ErrorCode, SetManifestRequest};
use contrast_core::initdata::{self, Initdata};
use contrast_core::manifest::ManifestDocument;
use contrast_core::owner::{
    AuthorizationError, WorkloadOwnerPrivateKey, WorkloadOwnerPublicKey, authorize_update_by_key,
};
use contrast_core::seedshare::SeedShareDocument;
use contrast_sdk::{ClientError, CoordinatorClient};
use zeroize::Zeroizing;

use crate::connect::{self, attested_client, client_failure, runtime, with_retries};
use crate::workspace::{self, Workspace};
use crate::{ExitStatus, GlobalArgs, Outcome, UsageError, generate, kube, sign};

/// Shown by `contrast set --help`.
pub const LONG_ABOUT: &str = "\
Set the manifest at the Coordinator.

1. The manifest is checked and validated. Keys that name no manifest field are refused (Go
   would ignore them, so a misspelt WorkloadOwnerPubKeys silently leaves the deployment without
   owners): each is named with the nearest field; --allow-unknown-keys sets the manifest anyway.
   A manifest without workload owner keys can never be updated: it is refused unless
   --immutable says that is the intent (as `contrast generate --disable-updates` writes it).
   When the workload owner key is not an owner of the new manifest, set warns: after it, you
   cannot update the deployment with that key. The initdata annotations of the confidential
   resources in PATHs must be exactly the manifest's policies (each annotation's digest a
   policy key, and every policy key found); the decoded initdata documents are the policies
   sent.
2. The Coordinator is attested against the manifest's reference values and coordinator
   policies before anything is sent. The client key is the workload owner key (needed for
   updates unless --signature authorises the update; a missing file at the default path is fine
   for the first set, a missing --workload-owner-key file is an error).
   --signature sends a detached signature made by `contrast sign` (or by an HSM over the file
   `contrast sign --prepare` writes). --atomic sends the latest transition this update is based
   on (--latest-transition, else verify/latest-transition as `contrast verify` writes it): the
   Coordinator refuses the update if its history moved on since, instead of replacing a
   manifest you have not reviewed.
3. While the Coordinator is starting or recovering, the call is retried every second until
   --timeout; what waiting cannot fix ends set at once. A first set (the Coordinator has no
   manifest yet) declares that there is no previous transition, so a retry of a first set
   whose answer was lost cannot silently become an update: set fails and says that the seed
   shares were lost and what to do.
4. coordinator-root-ca.pem and mesh-ca.pem are written to the workspace, and on the first set
   seed-shares.json (the seed encrypted to every seed-share owner key).";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast set -c 127.0.0.1:1313 deployment/
  contrast set -c coordinator.example:1313 -m manifest.json app.yml coordinator.yml
  contrast set -c 127.0.0.1:1313 --policy-file web.toml --policy-file coordinator.toml

  # An update signed by a workload owner elsewhere (e.g. an HSM), only if nobody else updated
  # the Coordinator since `contrast verify` wrote verify/latest-transition:
  contrast verify -c coordinator.example:1313
  contrast sign --prepare                # writes next-transition (hex) to sign
  openssl dgst -sha256 -sign owner.pem -out next-transition.sig next-transition
  contrast set -c coordinator.example:1313 --atomic --signature next-transition.sig deployment/

  # A deployment nobody can ever update (the manifest names no workload owner keys):
  contrast generate --disable-updates ... app.yml
  contrast set -c 127.0.0.1:1313 --immutable deployment/

Exit codes:
  0  the manifest is set
  1  error (the message says what went wrong and what to do)
  2  usage error
  5  the Coordinator's attestation was refused (the failed check is printed)";

/// Flags of `contrast set`.
// The doc comments of these flags are their `--help` text, written for a terminal: `<workspace>`
// and `[:PORT]` are meant literally, not as HTML or intra-doc links.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub connect: crate::connect::CoordinatorArgs,
    /// The manifest to set [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The workload owner key [default: <workspace>/workload-owner.pem; a missing default file is
    /// fine for a first set or with --signature].
    #[arg(long, value_name = "FILE")]
    pub workload_owner_key: Option<PathBuf>,
    /// Set the manifest although it has keys that name no manifest field (they are ignored, as
    /// Go ignores them; usually a typo).
    #[arg(long)]
    pub allow_unknown_keys: bool,
    /// The manifest names no workload owner keys on purpose: nobody can ever update the
    /// deployment (as `contrast generate --disable-updates` writes it). Refused for a manifest
    /// that names owners.
    #[arg(long)]
    pub immutable: bool,
    /// A detached signature of this update (DER ECDSA, from `contrast sign` or `openssl dgst
    /// -sha256 -sign` over the file of `contrast sign --prepare`), sent instead of relying on the
    /// client key.
    #[arg(short = 's', long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Only update if the Coordinator's latest transition is still the one this update is based
    /// on (--latest-transition, else <workspace>/verify/latest-transition).
    #[arg(long)]
    pub atomic: bool,
    /// The latest transition the update is based on: 64 hex digits, or a file holding them
    /// [default: <workspace>/verify/latest-transition].
    #[arg(long, value_name = "HEX|FILE", requires = "atomic")]
    pub latest_transition: Option<String>,
    /// A raw policy (initdata) document to send, for use without Kubernetes YAML (repeatable).
    #[arg(long, value_name = "FILE")]
    pub policy_file: Vec<PathBuf>,
    /// Kubernetes YAML files (or directories) whose initdata annotations are the policies.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs `contrast set`.
pub fn run(global: &GlobalArgs, args: &SetArgs) -> anyhow::Result<Outcome> {
    let workspace = Workspace::new(&global.workspace_dir);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::MANIFEST_FILE));
    if args.paths.is_empty() && args.policy_file.is_empty() {
        return Err(UsageError(
            "no policies to send: give the Kubernetes YAML files generate processed, or \
             --policy-file for raw policy documents"
                .into(),
        )
        .into());
    }
    let manifest = read_manifest(&manifest_path)?;
    let mut warnings =
        check_unknown_keys(&manifest, &manifest_path, args.allow_unknown_keys, "set")?;
    validate_manifest(&manifest, &manifest_path)?;
    let key_path = args
        .workload_owner_key
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::WORKLOAD_OWNER_KEY_FILE));
    let owner_key = load_workload_owner_key(&key_path, args.workload_owner_key.is_some())?;
    warnings.extend(check_owners(
        &manifest,
        &manifest_path,
        args.immutable,
        owner_key
            .as_ref()
            .map(|key| (key.public_key(), key_path.as_path())),
    )?);
    let signature = args.signature.as_deref().map(read_signature).transpose()?;
    let based_on = if args.atomic {
        sign::latest_transition(&workspace, args.latest_transition.as_deref())?
    } else {
        None
    };
    let policies = collect_policies(&args.paths, &args.policy_file)?;
    check_policies_match_manifest(&manifest, &policies)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }

    let key = owner_key.as_ref().map(atls_key).transpose()?;
    let client = attested_client(&args.connect.coordinator, &manifest, key)?;
    let runtime = runtime()?;
    let first = runtime
        .block_on(has_no_manifest(&client, args.connect.timeout))
        .map_err(|error| client_failure(error, &args.connect.coordinator))?;
    // A first set declares "no previous transition": if its answer is lost and it is sent
    // again, the second one is a conflict, not an update that returns no seed shares. An
    // atomic update declares the transition it is based on.
    let previous = match (&based_on, args.atomic, first) {
        (Some(latest), _, _) => Some(latest.hash),
        (None, true, false) => {
            return Err(anyhow!(
                "--atomic needs the latest transition this update is based on, and there is \
                 none: run `contrast verify -c {}` (it writes {}) and review the history, or \
                 pass --latest-transition",
                args.connect.coordinator,
                crate::verify::latest_transition_path(&workspace).display()
            ));
        }
        (None, _, true) => Some([0; 32]),
        (None, false, false) => None,
    };
    let request = SetManifestRequest {
        manifest: manifest.raw().to_vec(),
        policies: policies.into_values().collect(),
        previous_transition_hash: previous.map(|hash| hash.to_vec()),
        signature,
    };
    let attempts = std::cell::Cell::new(0usize);
    let response = runtime
        .block_on(with_retries(
            "setting the manifest",
            args.connect.timeout,
            || {
                attempts.set(attempts.get() + 1);
                client.set_manifest(&request)
            },
        ))
        .map_err(|error| match (error.api_code(), &based_on) {
            (Some(ErrorCode::ManifestConflict), Some(latest))
                if !first || latest.hash != [0; 32] =>
            {
                atomic_conflict(&error, latest, attempts.get(), &args.connect.coordinator)
            }
            (Some(ErrorCode::ManifestConflict), _) if first => {
                first_set_conflict(attempts.get(), &args.connect.coordinator)
            }
            (Some(ErrorCode::InvalidSignature), _) => {
                signature_refused(&error, args, based_on.as_ref())
            }
            _ => client_failure(error, &args.connect.coordinator),
        })?;
    let (attested_text, attested_json) = connect::attested_summary(&response.peer, &manifest);
    let response = response.value;
    let recoverable = manifest
        .manifest()
        .seedshare_owner_pub_keys
        .as_ref()
        .is_some_and(|keys| !keys.is_empty());
    if first && recoverable && response.seed_shares_doc.is_none() {
        bail!(
            "the coordinator at {} answered the first set without seed shares although the \
             manifest names seed-share owners: nobody holds this deployment's seed, so it \
             cannot be recovered after a restart; reset the coordinator (wipe its store) and \
             set the manifest again",
            args.connect.coordinator
        );
    }

    workspace.create_dir()?;
    let mut written = vec![
        workspace::write_file(&workspace.path(workspace::ROOT_CA_FILE), &response.root_ca)?,
        workspace::write_file(&workspace.path(workspace::MESH_CA_FILE), &response.mesh_ca)?,
    ];
    let first_set = response.seed_shares_doc.is_some();
    if let Some(shares) = response.seed_shares_doc {
        let json = SeedShareDocument::from(shares)
            .to_json()
            .context("could not encode seed-shares.json")?;
        written.push(workspace::write_file(
            &workspace.path(workspace::SEED_SHARES_FILE),
            &json,
        )?);
    }
    let manifest_hash = hex::encode(manifest.hash());
    let mut human = format!(
        "manifest {} set at {} (manifest hash {manifest_hash})\n",
        manifest_path.display(),
        args.connect.coordinator
    );
    human.push_str(&attested_text);
    for path in &written {
        human.push_str(&format!("  wrote {}\n", path.display()));
    }
    for warning in &warnings {
        human.push_str(&format!("  warning: {warning}\n"));
    }
    if first_set {
        human.push_str(
            "  keep seed-shares.json and seedshare-owner.pem safe: they recover the Coordinator\n",
        );
    }
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({
            "coordinator": args.connect.coordinator,
            "attested": attested_json,
            "manifest": manifest_path,
            "manifest_hash": manifest_hash,
            "first_set": first_set,
            "written": written,
            "atomic": args.atomic,
            "signed": args.signature.is_some(),
            "warnings": warnings,
        }),
    })
}

/// Reads and validates a manifest file.
pub fn load_manifest(path: &Path) -> anyhow::Result<ManifestDocument> {
    let document = read_manifest(path)?;
    validate_manifest(&document, path)?;
    Ok(document)
}

/// Reads and parses a manifest file, without validating it.
pub fn read_manifest(path: &Path) -> anyhow::Result<ManifestDocument> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "could not read the manifest {}; run `contrast generate` or pass -m",
            path.display()
        )
    })?;
    ManifestDocument::parse(bytes).with_context(|| format!("{} is not a manifest", path.display()))
}

/// Validates a manifest read from `path`.
pub fn validate_manifest(document: &ManifestDocument, path: &Path) -> anyhow::Result<()> {
    document
        .manifest()
        .validate()
        .with_context(|| format!("the manifest {} is not valid", path.display()))
}

/// The keys of a manifest that name no field, each with the nearest field: an error unless
/// `allow` (the flag `--allow-unknown-keys` of `command`), else the warnings to print.
pub fn check_unknown_keys(
    document: &ManifestDocument,
    path: &Path,
    allow: bool,
    command: &str,
) -> anyhow::Result<Vec<String>> {
    let unknown = document.unknown_keys();
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    if allow {
        return Ok(list
            .into_iter()
            .map(|line| {
                format!(
                    "the manifest {}: {line}; it has no effect (--allow-unknown-keys)",
                    path.display()
                )
            })
            .collect());
    }
    bail!(
        "the manifest {} has {} key(s) that name no manifest field; a Coordinator ignores them, \
         as Go does, so what they say has no effect:\n  {}\nfix the spelling (a misspelt \
         WorkloadOwnerPubKeys leaves the deployment without owners, and nobody can ever update \
         it), or run `contrast {command}` again with --allow-unknown-keys to use the manifest as \
         it is",
        path.display(),
        list.len(),
        list.join("\n  ")
    )
}

/// The owner rules of the manifest to set: without workload owner keys it is refused unless
/// `immutable`; with them, `immutable` is refused; the caller's key (with its file) not being
/// an owner is a warning (returned).
fn check_owners(
    document: &ManifestDocument,
    path: &Path,
    immutable: bool,
    caller: Option<(WorkloadOwnerPublicKey, &Path)>,
) -> anyhow::Result<Vec<String>> {
    let manifest = document.manifest();
    let pub_keys = manifest
        .workload_owner_pub_keys
        .as_deref()
        .unwrap_or_default();
    let digests = manifest
        .workload_owner_key_digests
        .as_deref()
        .unwrap_or_default();
    let owners = pub_keys.len() + digests.len();
    if owners == 0 {
        if immutable {
            return Ok(Vec::new());
        }
        bail!(
            "the manifest {} names no workload owner keys (WorkloadOwnerPubKeys is empty or \
             missing, and so is WorkloadOwnerKeyDigests): once it is set, nobody can ever update \
             this deployment. If that is the intent (as `contrast generate --disable-updates` \
             writes it), run set again with --immutable; otherwise run `contrast generate` \
             without --disable-updates, or check the manifest for a misspelt \
             WorkloadOwnerPubKeys",
            path.display()
        );
    }
    if immutable {
        bail!(
            "--immutable was given, but the manifest {} names {owners} workload owner key(s), \
             so it can be updated; drop --immutable, or regenerate the manifest with \
             `contrast generate --disable-updates`",
            path.display()
        );
    }
    let Some((caller, key_path)) = caller else {
        return Ok(Vec::new());
    };
    match authorize_update_by_key(
        manifest.workload_owner_pub_keys.as_deref(),
        manifest.workload_owner_key_digests.as_deref(),
        &caller,
    ) {
        Err(AuthorizationError::NotAnOwner { caller_digest }) => Ok(vec![format!(
            "the workload owner key {} (public key SHA-256 {caller_digest}) is not an owner of \
             the manifest {}: once it is set, this key cannot update the deployment, only the \
             {owners} owner key(s) the manifest names can; to keep it, add it with `contrast \
             generate -w {}` and set again",
            key_path.display(),
            path.display(),
            key_path.display()
        )]),
        _ => Ok(Vec::new()),
    }
}

/// Reads a detached update signature (DER).
fn read_signature(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "could not read the signature {}; create it with `contrast sign`",
            path.display()
        )
    })?;
    if bytes.is_empty() {
        bail!(
            "the signature {} is empty; create it with `contrast sign` (or `openssl dgst -sha256 \
             -sign KEY -out {} FILE` over the file `contrast sign --prepare` writes)",
            path.display(),
            path.display()
        );
    }
    Ok(bytes)
}

/// An atomic update refused because the Coordinator's history moved on.
fn atomic_conflict(
    error: &ClientError,
    based_on: &sign::LatestTransition,
    attempts: usize,
    addr: &str,
) -> anyhow::Error {
    let who = if attempts > 1 {
        format!(
            "someone else updated the manifest since, or an earlier of the {attempts} attempts \
             of this set did and its answer was lost"
        )
    } else {
        "someone else updated the manifest since".to_owned()
    };
    anyhow!(
        "the coordinator at {addr} refused the atomic update: its latest transition is no longer \
         {} (from {}), so {who} ({error}). Nothing was changed by this request. Run `contrast \
         verify -c {addr}` to fetch and review the new history, apply your change to the \
         manifest now in force, and set again (sign again if you use --signature)",
        hex::encode(based_on.hash),
        based_on.source
    )
}

/// A detached signature the Coordinator did not accept.
fn signature_refused(
    error: &ClientError,
    args: &SetArgs,
    based_on: Option<&sign::LatestTransition>,
) -> anyhow::Error {
    let signature = args
        .signature
        .as_deref()
        .map_or_else(|| "(none)".to_owned(), |path| path.display().to_string());
    let base = based_on.map_or_else(String::new, |latest| {
        format!(" (this update is based on {})", hex::encode(latest.hash))
    });
    anyhow!(
        "the coordinator at {} refused the signature {signature}{base}: {error}. It must be a \
         signature by a workload owner key of the manifest in force, over this manifest and the \
         coordinator's latest transition: run `contrast verify` to get the latest transition, \
         then `contrast sign` (or sign the file of `contrast sign --prepare`) again",
        args.connect.coordinator
    )
}

/// The policies to send, by digest (hex): the initdata annotations of the confidential
/// resources in `paths` (decoded) and the raw `policy_files` (SHA-256).
pub fn collect_policies(
    paths: &[PathBuf],
    policy_files: &[PathBuf],
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut policies = BTreeMap::new();
    for file in generate::collect_input_files(paths)? {
        let text = fs::read_to_string(&file)
            .with_context(|| format!("could not read {}", file.display()))?;
        for document in kube::split_documents(&text) {
            let mut resource = kube::parse_document(&document)
                .with_context(|| format!("in {}", file.display()))?;
            let Some(workload) = kube::confidential_workload(&resource)
                .with_context(|| format!("in {}", file.display()))?
            else {
                continue;
            };
            let annotation = kube::pod_template_mut(&mut resource)
                .and_then(|template| template.get("metadata"))
                .and_then(|metadata| metadata.get("annotations"))
                .and_then(|annotations| annotations.get(initdata::ANNOTATION_KEY))
                .and_then(serde_norway::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    anyhow!(
                        "{} in {} has no {} annotation; run `contrast generate` on it first",
                        workload.qualified_name(),
                        file.display(),
                        initdata::ANNOTATION_KEY
                    )
                })?;
            let document = Initdata::from_annotation(&annotation).with_context(|| {
                format!(
                    "the initdata annotation of {} in {} does not decode",
                    workload.qualified_name(),
                    file.display()
                )
            })?;
            policies.insert(document.digest().to_hex(), document.into_raw());
        }
    }
    for file in policy_files {
        let blob = fs::read(file)
            .with_context(|| format!("could not read the policy file {}", file.display()))?;
        policies.insert(hex::encode(contrast_core::sha256(&blob)), blob);
    }
    Ok(policies)
}

/// Requires the policies' digests to be exactly the manifest's policy keys.
pub fn check_policies_match_manifest(
    manifest: &ManifestDocument,
    policies: &BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    let expected = &manifest.manifest().policies;
    let unknown: Vec<&str> = policies
        .keys()
        .filter(|digest| !expected.contains_key(digest.as_str()))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = expected
        .keys()
        .filter(|digest| !policies.contains_key(digest.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() || !missing.is_empty() {
        bail!(
            "the policies do not match the manifest: not in the manifest: [{}]; in the manifest \
             but not given: [{}]; run `contrast generate` on the same files, then set them all \
             (including the Coordinator's resources)",
            unknown.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
}

/// The workload owner key at `path`; `None` when the file is missing and was not named
/// `explicit`ly (`--workload-owner-key`), where a missing file is an error.
pub fn load_workload_owner_key(
    path: &Path,
    explicit: bool,
) -> anyhow::Result<Option<WorkloadOwnerPrivateKey>> {
    let pem = match fs::read_to_string(path) {
        Ok(pem) => Zeroizing::new(pem),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(None);
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "the workload owner key {} (--workload-owner-key) does not exist; give the path \
                 of your key, or leave the flag out to use <workspace>/{} if it exists",
                path.display(),
                workspace::WORKLOAD_OWNER_KEY_FILE
            );
        }
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    let key = WorkloadOwnerPrivateKey::from_pem(&pem)
        .with_context(|| format!("{} is not a P-384 workload owner key", path.display()))?;
    Ok(Some(key))
}

/// A workload owner key as an aTLS client key.
fn atls_key(key: &WorkloadOwnerPrivateKey) -> anyhow::Result<AtlsKey> {
    let sec1 = key
        .to_sec1_pem()
        .context("could not encode the workload owner key")?;
    let secret = p384::SecretKey::from_sec1_pem(&sec1)
        .map_err(|_| anyhow!("the workload owner key is not a P-384 SEC1 key"))?;
    AtlsKey::from_p384(&p384::ecdsa::SigningKey::from(secret))
        .context("could not load the workload owner key")
}

/// Whether the Coordinator has no manifest yet (so this set is the first), asked before
/// anything is sent; waits like every call while it is unreachable or in recovery.
async fn has_no_manifest(
    client: &CoordinatorClient,
    timeout: Duration,
) -> Result<bool, ClientError> {
    let answer = with_retries(
        "asking the coordinator for its manifests",
        timeout,
        || async {
            match client.get_manifests().await {
                Ok(_) => Ok(false),
                Err(error) if is_no_manifest(&error) => Ok(true),
                Err(error) => Err(error),
            }
        },
    )
    .await?;
    Ok(answer)
}

/// `GetManifests` refused because no manifest is set: our code, or upstream's status and
/// message (an upstream Coordinator sends no `contrast-error-code`).
fn is_no_manifest(error: &ClientError) -> bool {
    match error {
        ClientError::Api {
            code,
            status,
            message,
            ..
        } => {
            *code == ErrorCode::NoManifest
                || (*status == tonic::Code::FailedPrecondition
                    && message.contains(contrast_core::api::NO_MANIFEST_MESSAGE))
        }
        _ => false,
    }
}

/// A first set refused as a conflict: an earlier attempt whose answer was lost most likely set
/// the manifest (and its seed shares were in that answer), or someone else set one meanwhile.
fn first_set_conflict(attempts: usize, addr: &str) -> anyhow::Error {
    if attempts > 1 {
        anyhow!(
            "the first set was sent {attempts} times because an answer did not arrive, and the \
             coordinator at {addr} now has a manifest: an earlier attempt most likely set it, \
             and the seed shares were in the lost answer. Nobody holds this deployment's seed, \
             so it cannot be recovered after a restart. Check with `contrast verify`; to get \
             seed shares, reset the coordinator (wipe its store) and set the manifest again"
        )
    } else {
        anyhow!(
            "the coordinator at {addr} got its first manifest from someone else meanwhile; \
             check it with `contrast verify`, and update it with the workload owner key if you \
             are its owner"
        )
    }
}
