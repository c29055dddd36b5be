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
use contrast_core::duration::parse_duration;
use contrast_core::initdata::{self, Initdata};
use contrast_core::manifest::ManifestDocument;
use contrast_core::owner::WorkloadOwnerPrivateKey;
use contrast_core::seedshare::SeedShareDocument;
use contrast_sdk::{ClientError, CoordinatorClient};
use zeroize::Zeroizing;

use crate::connect::{
    self, DEFAULT_TIMEOUT, attested_client, client_failure, runtime, with_retries,
};
use crate::workspace::{self, Workspace};
use crate::{ExitStatus, GlobalArgs, Outcome, UsageError, generate, kube};

/// Shown by `contrast set --help`.
pub const LONG_ABOUT: &str = "\
Set the manifest at the Coordinator.

1. The manifest is validated. The initdata annotations of the confidential resources in PATHs
   must be exactly the manifest's policies (each annotation's digest a policy key, and every
   policy key found); the decoded initdata documents are the policies sent.
2. The Coordinator is attested against the manifest's reference values and coordinator
   policies before anything is sent. The client key is the workload owner key (needed for
   updates; a missing file is fine for the first set).
3. While the Coordinator is unreachable or not ready, the call is retried every second until
   --timeout. A first set (the Coordinator has no manifest yet) declares that there is no
   previous transition, so a retry of a first set whose answer was lost cannot silently become
   an update: set fails and says that the seed shares were lost and what to do.
4. coordinator-root-ca.pem and mesh-ca.pem are written to the workspace, and on the first set
   seed-shares.json (the seed encrypted to every seed-share owner key).";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast set -c 127.0.0.1:1313 deployment/
  contrast set -c coordinator.example:1313 -m manifest.json app.yml coordinator.yml
  contrast set -c 127.0.0.1:1313 --policy-file web.toml --policy-file coordinator.toml

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
    /// The Coordinator's user API, HOST[:PORT]; the port defaults to 1313.
    #[arg(short = 'c', long, value_name = "HOST[:PORT]", value_parser = crate::connect::user_api_address)]
    pub coordinator: String,
    /// The manifest to set [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The workload owner key [default: <workspace>/workload-owner.pem; a missing file is fine].
    #[arg(long, value_name = "FILE")]
    pub workload_owner_key: Option<PathBuf>,
    /// A raw policy (initdata) document to send, for use without Kubernetes YAML (repeatable).
    #[arg(long, value_name = "FILE")]
    pub policy_file: Vec<PathBuf>,
    /// How long to retry while the Coordinator is unreachable or not ready, e.g. 30s or 3m.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = parse_duration)]
    pub timeout: Duration,
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
    let manifest = load_manifest(&manifest_path)?;
    let policies = collect_policies(&args.paths, &args.policy_file)?;
    check_policies_match_manifest(&manifest, &policies)?;

    let key_path = args
        .workload_owner_key
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::WORKLOAD_OWNER_KEY_FILE));
    let key = load_workload_owner_atls_key(&key_path)?;
    let client = attested_client(&args.coordinator, &manifest, key)?;
    let runtime = runtime()?;
    let first = runtime
        .block_on(has_no_manifest(&client, args.timeout))
        .map_err(|error| client_failure(error, &args.coordinator))?;
    // A first set declares "no previous transition": if its answer is lost and it is sent
    // again, the second one is a conflict, not an update that returns no seed shares.
    let request = SetManifestRequest {
        manifest: manifest.raw().to_vec(),
        policies: policies.into_values().collect(),
        previous_transition_hash: first.then(|| vec![0; 32]),
        signature: None,
    };
    let attempts = std::cell::Cell::new(0usize);
    let response = runtime
        .block_on(with_retries("setting the manifest", args.timeout, || {
            attempts.set(attempts.get() + 1);
            client.set_manifest(&request)
        }))
        .map_err(|error| {
            if first && error.api_code() == Some(&ErrorCode::ManifestConflict) {
                first_set_conflict(attempts.get(), &args.coordinator)
            } else {
                client_failure(error, &args.coordinator)
            }
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
            args.coordinator
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
        args.coordinator
    );
    human.push_str(&attested_text);
    for path in &written {
        human.push_str(&format!("  wrote {}\n", path.display()));
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
            "coordinator": args.coordinator,
            "attested": attested_json,
            "manifest": manifest_path,
            "manifest_hash": manifest_hash,
            "first_set": first_set,
            "written": written,
        }),
    })
}

/// Reads and validates a manifest file.
pub fn load_manifest(path: &Path) -> anyhow::Result<ManifestDocument> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "could not read the manifest {}; run `contrast generate` or pass -m",
            path.display()
        )
    })?;
    let document = ManifestDocument::parse(bytes)
        .with_context(|| format!("{} is not a manifest", path.display()))?;
    document
        .manifest()
        .validate()
        .with_context(|| format!("the manifest {} is not valid", path.display()))?;
    Ok(document)
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

/// The workload owner key at `path` as an aTLS client key; `None` when the file is missing.
pub fn load_workload_owner_atls_key(path: &Path) -> anyhow::Result<Option<AtlsKey>> {
    let pem = match fs::read_to_string(path) {
        Ok(pem) => Zeroizing::new(pem),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    let key = WorkloadOwnerPrivateKey::from_pem(&pem)
        .with_context(|| format!("{} is not a P-384 workload owner key", path.display()))?;
    let sec1 = key
        .to_sec1_pem()
        .context("could not encode the workload owner key")?;
    let secret = p384::SecretKey::from_sec1_pem(&sec1)
        .map_err(|_| anyhow!("{} is not a P-384 SEC1 key", path.display()))?;
    let key = AtlsKey::from_p384(&p384::ecdsa::SigningKey::from(secret))
        .context("could not load the workload owner key")?;
    Ok(Some(key))
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
