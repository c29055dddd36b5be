//! `contrast generate`: give every confidential pod its identity (initdata), inject the
//! initializer, and write the manifest that names those identities.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, anyhow, bail};
use contrast_core::coordinator_identity::{CoordinatorIdentity, IdentityError};
use contrast_core::initdata::{self, Algorithm, Initdata};
use contrast_core::kubernetes::{
    COORDINATOR_IDENTITY_ENV, SECURE_PV_ANNOTATION, SKIP_INITIALIZER_ANNOTATION,
};
use contrast_core::manifest::{
    Manifest, ManifestDocument, PolicyEntry, Role, SIMULATED_SNP_PLATFORM, SnpReferenceValues,
};
use serde_json::json;

use crate::command_line::{self, CommandLine, CoordinatorAddrs};
use crate::coordinator_resources::{
    self, CoordinatorOptions, DEFAULT_COORDINATOR_IMAGE, DEFAULT_COORDINATOR_MEMORY_MIB,
};
use crate::kube::{self, ConfidentialWorkload};
use crate::workspace::{self, KeySource, Workspace};
use crate::{ExitStatus, GlobalArgs, Outcome, UsageError};

/// Default container image of the injected initializer.
pub const DEFAULT_INITIALIZER_IMAGE: &str = "localhost/contrast-rs/initializer:0.1.0";

/// Default container image of the injected service-mesh sidecar (the `contrast-mesh` binary of
/// bins/mesh).
pub const DEFAULT_SERVICE_MESH_IMAGE: &str = "localhost/contrast-rs/mesh:0.1.0";

/// Key of the agent policy in the initdata `[data]` table (CoCo convention).
pub const POLICY_DATA_KEY: &str = "policy.rego";

/// Platforms `--reference-values` accepts. Only the simulated one has values built in (from
/// `--sim-dir`); the others need `--reference-values-file`.
pub const PLATFORMS: [&str; 6] = [
    SIMULATED_SNP_PLATFORM,
    "Metal-QEMU-SNP",
    "Metal-QEMU-SNP-GPU",
    "K3s-QEMU-SNP",
    "K3s-QEMU-SNP-GPU",
    "AKS-CLH-SNP",
];

/// An agent policy that allows every request. For development only.
pub const INSECURE_ALLOW_ALL_POLICY: &str = "\
# INSECURE: this Kata agent policy allows every request. Anyone who can change the pod spec
# can change what runs in the confidential VM, and the VM's identity proves nothing about it.
# Written by `contrast generate --insecure-allow-all-policy`; never use it in production.
package agent_policy

default AddARPNeighborsRequest := true
default AddSwapRequest := true
default CloseStdinRequest := true
default CopyFileRequest := true
default CreateContainerRequest := true
default CreateSandboxRequest := true
default DestroySandboxRequest := true
default ExecProcessRequest := true
default GetMetricsRequest := true
default GetOOMEventRequest := true
default GuestDetailsRequest := true
default ListInterfacesRequest := true
default ListRoutesRequest := true
default MemHotplugByProbeRequest := true
default OnlineCPUMemRequest := true
default PauseContainerRequest := true
default PullImageRequest := true
default ReadStreamRequest := true
default RemoveContainerRequest := true
default RemoveStaleVirtiofsShareMountsRequest := true
default ReseedRandomDevRequest := true
default ResumeContainerRequest := true
default SetGuestDateTimeRequest := true
default SetPolicyRequest := true
default SignalProcessRequest := true
default StartContainerRequest := true
default StartTracingRequest := true
default StatsContainerRequest := true
default StopTracingRequest := true
default TtyWinResizeRequest := true
default UpdateContainerRequest := true
default UpdateEphemeralMountsRequest := true
default UpdateInterfaceRequest := true
default UpdateRoutesRequest := true
default WaitProcessRequest := true
default WriteStreamRequest := true
";

/// Long description of `generate` (`--help`).
pub const LONG_ABOUT: &str = "\
Add initdata and the initializer to Kubernetes resources and write manifest.json.

Every resource with a pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob) whose runtimeClassName is contrast-cc gets:
  - the initdata annotation (io.katacontainers.config.hypervisor.cc_init_data): a TOML
    document whose [data] \"policy.rego\" is the workload's agent policy; its SHA-256 digest is
    the workload's identity and its key in the manifest's Policies;
  - the init container contrast-initializer and the emptyDir volume contrast-secrets
    (not with --skip-initializer, and never in the Coordinator's pod). The initializer's
    environment holds the Coordinator's identity (CONTRAST_COORDINATOR_IDENTITY: the
    Coordinator's policy hashes and the manifest's SEV-SNP reference values); it attests the
    Coordinator with it before trusting the certificates and secret it returns. The
    Coordinator's pods are processed first, so with --coordinator the identity is that of this
    run's Coordinator; otherwise the manifest must already name one (a policy with role
    coordinator), else generate refuses. The identity is set before the policy is computed, so
    the policy, and with it the pod's initdata digest, covers it: re-run generate for the
    workloads whenever the Coordinator's policy or the reference values change.
Upstream's pod annotations (read from the pod template's metadata, else the resource's own):
  contrast.edgeless.systems/skip-initializer: \"true\" injects no initializer into that pod (an
    initializer injected by an earlier run is removed); the pod still gets its initdata and its
    manifest entry. \"false\" (or no annotation) injects it; any other value is refused.
  contrast.edgeless.systems/pod-role and contrast.edgeless.systems/workload-secret-id are
    honoured (the manifest's Role and WorkloadSecretID).
  contrast.edgeless.systems/secure-pv: \"<device volume>:<mount volume>\" injects, right after
    the initializer, the sidecar contrast-secure-pv: the initializer image with the arguments
    cryptsetup --device-path /dev/csi0 --mount-point /state, privileged, restartPolicy Always,
    a startup probe testing /done. It gets the device volume as the raw block device /dev/csi0:
    a StatefulSet's volume claim template, an ephemeral volume or a persistentVolumeClaim
    volume, with volumeMode Block (a claim that is not among the input files cannot be
    checked: a warning). It mounts the mount volume, an emptyDir, at /state with Bidirectional
    propagation; the containers that mount it get mountPropagation HostToContainer (None is
    refused). It opens the LUKS volume with the workload secret, so it cannot be combined with
    skip-initializer; the sidecar of an earlier run is removed when the annotation is gone.
  contrast.edgeless.systems/servicemesh-ingress, contrast.edgeless.systems/servicemesh-egress
  and contrast.edgeless.systems/servicemesh-admin-interface-port: any of them injects the
    service-mesh sidecar contrast-service-mesh (--service-mesh-image, the contrast-mesh binary)
    after the initializer and the secure-pv sidecar: restartPolicy Always, privileged with
    NET_ADMIN, contrast-secrets at /contrast (the initializer's mesh certificates), a startup
    probe testing /ready. Each annotation present is copied verbatim into its environment
    variable: ingress CONTRAST_INGRESS_PROXY_CONFIG (<name>#<port>#<disableTLS> entries
    separated by ##; empty: every inbound TCP port requires mutual TLS; DISABLED: no ingress
    redirection), egress CONTRAST_EGRESS_PROXY_CONFIG (<name>#<127.x.y.z>:<port>#<remote
    host>:<port> entries separated by ##; empty is refused), admin-interface-port
    CONTRAST_ADMIN_PORT (also the sidecar's container port contrast-admin). Without the
    ingress annotation the variable is absent and the sidecar's default applies: every inbound
    TCP port requires mutual TLS. The values are parsed as the sidecar parses them: a
    malformed or conflicting entry is refused, naming the entry, as is an admin port an
    ingress entry or the proxy (15006, 15007) uses. The sidecar needs the initializer, so it
    cannot be combined with skip-initializer or the Coordinator's pod; the sidecar of an
    earlier run is removed when all three annotations are gone.
  contrast.edgeless.systems/image-store-size (but \"0\") is refused: contrast-rs has no image
    store yet, and the pod would run without it.
Warnings (on stderr, and in --json's \"warnings\"): a runtimeClassName close to contrast-cc but
not it (contrast-c, Contrast-cc, upstream's contrast-cc-<platform>-<hash>, ...), which generate
leaves alone; a workload with an initializer in another namespace than this run's Coordinator
(the initializer connects to the Service coordinator-ready of its own namespace); a secure-pv
claim generate could not check, or a secure-pv mount volume that no container mounts.
Other resources and documents are left alone; files without such a resource are not rewritten.
Comments inside a rewritten document are not kept (those above it are). With --coordinator,
the Coordinator's file is rewritten from the flags each time: change the flags, not the file.

The policy comes from, in this order: --policy FILE; --insecure-allow-all-policy;
<workspace>/rules.rego; Kata's genpolicy on PATH, run once per workload as
  genpolicy --yaml-file <the resource, injected, in a temporary file> --raw-out
            --runtime-class-names contrast-cc
            [--json-settings-path <workspace>/settings.json]   (when that file exists)
            --layers-cache-file-path <workspace>/layers-cache.json
with its standard output taken as the policy. A policy file is the same for every pod, so
generate starts each workload's copy with a comment naming the workload: each workload gets its
own identity, but the policy does not bind that identity to the pod spec (genpolicy's do); the
workload's copy also names the digest of its initializer's Coordinator identity.

manifest.json (or -m FILE) is created or updated: the Policies entries of the processed
workloads are replaced (matched by digest, or by WorkloadSecretID and name), others are kept; the
reference values of the chosen platform are replaced, those of other platforms kept; owner keys
are added, never removed (except -d). Running generate again on the same input rewrites nothing.

With --reference-values Simulated-SNP, generate then prints the commands that run this
deployment on this machine (--json: \"commands\", each with argv, env and the shell line): start
the Coordinator (coordinator --tee simulated --sim-dir DIR --sim-host-data <its policy digest>
--state-dir <workspace>/coordinator-state, on 127.0.0.1 with the standard ports), contrast set,
one initializer per workload with an initializer (--sim-host-data <its initdata digest>, the
Coordinator identity its pod was given in CONTRAST_COORDINATOR_IDENTITY, --root
<workspace>/workloads/<name>), contrast verify.";

/// Examples (`--help`).
pub const AFTER_LONG_HELP: &str = "\
Examples:
  # Simulated platform, development policy, with the Coordinator's resources:
  contrast generate --reference-values Simulated-SNP --sim-dir ./sim \\
      --insecure-allow-all-policy --coordinator deployment/

  #   ...then run the commands it prints: the Coordinator, set, the initializers, verify.

  # Real hardware: your own measured reference values and policy:
  contrast generate --reference-values Metal-QEMU-SNP --reference-values-file snp.json \\
      --policy policy.rego app.yml

  # Another person may update the manifest; nobody may (freezes the deployment):
  contrast generate ... -w alice.pem app.yml
  contrast generate ... -d app.yml

Exit codes:
  0  success
  1  error (the message says what went wrong and what to do)
  2  usage error (unknown flag, missing argument, flags that cannot be combined)";

/// Flags of `contrast generate`.
// The doc comments of these flags are their `--help` text, written for a terminal: `<workspace>`
// and `[:PORT]` are meant literally, not as HTML or intra-doc links.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Kubernetes YAML files, or directories whose .yml/.yaml files are read (recursively).
    #[arg(value_name = "PATH", required_unless_present = "coordinator")]
    pub paths: Vec<PathBuf>,
    /// Agent policy (Rego) for every workload [default: <workspace>/rules.rego if it exists].
    #[arg(short = 'p', long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Use a policy that allows everything (INSECURE, for development without genpolicy).
    #[arg(long, conflicts_with = "policy")]
    pub insecure_allow_all_policy: bool,
    /// The manifest to write or update [default: <workspace>/manifest.json].
    #[arg(short = 'm', long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Platform whose reference values go into the manifest.
    #[arg(long, value_name = "PLATFORM", value_parser = PLATFORMS)]
    pub reference_values: String,
    /// Simulated platform directory (for --reference-values Simulated-SNP).
    #[arg(long, value_name = "DIR")]
    pub sim_dir: Option<PathBuf>,
    /// JSON array of `snp` reference value entries in manifest form (for real platforms).
    #[arg(long, value_name = "FILE")]
    pub reference_values_file: Option<PathBuf>,
    /// Also allow the owner of this key to update the manifest (P-384 public or private PEM).
    #[arg(
        short = 'w',
        long,
        value_name = "FILE",
        conflicts_with = "disable_updates"
    )]
    pub add_workload_owner_key: Vec<PathBuf>,
    /// Also give this RSA key a seed share (public or private PEM).
    #[arg(long, value_name = "FILE")]
    pub add_seedshare_owner_key: Vec<PathBuf>,
    /// Allow no manifest updates: empties the workload owner key lists (and generates no
    /// workload-owner.pem). `contrast set` then needs --immutable to set the manifest.
    #[arg(short = 'd', long)]
    pub disable_updates: bool,
    /// Update the existing manifest although it has keys that name no manifest field (they are
    /// dropped: the manifest is rewritten with known fields only).
    #[arg(long)]
    pub allow_unknown_keys: bool,
    /// Do not inject the initializer init container and volume.
    #[arg(long)]
    pub skip_initializer: bool,
    /// Image of the injected initializer.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_INITIALIZER_IMAGE)]
    pub initializer_image: String,
    /// Image of the service-mesh sidecar, injected into pods with a service-mesh annotation.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_SERVICE_MESH_IMAGE)]
    pub service_mesh_image: String,
    /// Also write the Coordinator's resources and process them like the other inputs.
    #[arg(long)]
    pub coordinator: bool,
    /// Where to write the Coordinator's resources [default: <workspace>/coordinator.yml].
    #[arg(long, value_name = "FILE", requires = "coordinator")]
    pub coordinator_output: Option<PathBuf>,
    /// Replicas of the Coordinator StatefulSet.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub coordinator_replicas: i32,
    /// Image of the Coordinator.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_COORDINATOR_IMAGE)]
    pub coordinator_image: String,
    /// Memory request and limit of the Coordinator. The default holds the idle Coordinator and
    /// the two manifest updates of at most 4 MiB it reads at once.
    #[arg(long, value_name = "QUANTITY", default_value_t = format!("{DEFAULT_COORDINATOR_MEMORY_MIB}Mi"))]
    pub coordinator_memory: String,
    /// Serve the transit engine (Vault's transit API, for auto-unsealing Vault or OpenBao with a
    /// workload's mesh certificate) on port 8200 of the Coordinator.
    #[arg(long, requires = "coordinator")]
    pub coordinator_transit_engine: bool,
    /// Namespace of the Coordinator's resources.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub coordinator_namespace: String,
}

/// Where workload policies come from.
#[derive(Debug)]
enum PolicySource {
    /// One policy text for every workload.
    Static { origin: String, text: String },
    /// Kata's genpolicy, once per workload.
    Genpolicy { program: PathBuf },
}

/// One confidential workload after processing.
#[derive(Debug)]
struct GeneratedWorkload {
    file: PathBuf,
    workload: ConfidentialWorkload,
    digest_hex: String,
    entry: PolicyEntry,
    /// The Coordinator identity (JSON) given to the injected initializer; `None` when no
    /// initializer was injected.
    initializer_identity: Option<String>,
    /// What generate could not check or what looks unintended in this workload.
    warnings: Vec<String>,
}

/// What every workload of a run is processed with.
#[derive(Debug)]
struct WorkloadContext<'a> {
    args: &'a GenerateArgs,
    workspace: &'a Workspace,
    policy_source: &'a PolicySource,
    /// The PersistentVolumeClaims among the input files, for secure-pv's check.
    claims: &'a kube::InputClaims,
}

/// One input file after processing.
#[derive(Debug)]
struct ProcessedFile {
    path: PathBuf,
    original: Option<String>,
    rewritten: Option<String>,
}

/// Runs `contrast generate`.
pub fn run(global: &GlobalArgs, args: &GenerateArgs) -> anyhow::Result<Outcome> {
    let workspace = Workspace::new(&global.workspace_dir);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| workspace.path(workspace::MANIFEST_FILE));

    // Everything that can be refused is checked before anything is written.
    let reference_values = load_reference_values(args)?;
    let policy_source = resolve_policy_source(args, &workspace)?;
    let added_workload_owner_keys = args
        .add_workload_owner_key
        .iter()
        .map(|path| workspace::read_workload_owner_public_key(path).map(|key| key.to_hex()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let added_seedshare_owner_keys = args
        .add_seedshare_owner_key
        .iter()
        .map(|path| workspace::read_seedshare_owner_public_key(path).map(|key| key.to_hex()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let existing_manifest = read_existing_manifest(&manifest_path)?;
    let unknown_key_warnings = match &existing_manifest {
        Some(document) => crate::set::check_unknown_keys(
            document,
            &manifest_path,
            args.allow_unknown_keys,
            "generate",
        )?,
        None => Vec::new(),
    };

    let coordinator_output = args.coordinator.then(|| {
        args.coordinator_output
            .clone()
            .unwrap_or_else(|| workspace.path(workspace::COORDINATOR_FILE))
    });

    let mut inputs: Vec<(PathBuf, Option<String>)> = Vec::new();
    if let Some(output) = &coordinator_output {
        let resources = coordinator_resources::build(&CoordinatorOptions {
            namespace: args.coordinator_namespace.clone(),
            replicas: args.coordinator_replicas,
            image: args.coordinator_image.clone(),
            memory: args.coordinator_memory.clone(),
            transit_engine: args.coordinator_transit_engine,
        });
        inputs.push((output.clone(), Some(resources.to_yaml()?)));
    }
    for path in collect_input_files(&args.paths)? {
        let is_coordinator_output = coordinator_output
            .as_deref()
            .is_some_and(|output| same_file(output, &path));
        if !is_coordinator_output {
            inputs.push((path, None));
        }
    }

    let mut files = inputs
        .into_iter()
        .map(|(path, generated_text)| {
            InputFile::read(path.clone(), generated_text)
                .with_context(|| format!("in {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut warnings: Vec<String> = files.iter().flat_map(InputFile::near_misses).collect();
    let mut claims = kube::InputClaims::new();
    for file in &files {
        file.collect_claims(&mut claims);
    }
    let context = WorkloadContext {
        args,
        workspace: &workspace,
        policy_source: &policy_source,
        claims: &claims,
    };

    // The Coordinator's pods first: the initializer of every other pod is given the
    // Coordinator's identity, and that identity (its policy hash) comes from them.
    let mut workloads = Vec::new();
    for file in &mut files {
        process_file(file, Phase::Coordinators, &context, &mut workloads)
            .with_context(|| format!("in {}", file.path.display()))?;
    }
    let mut manifest = existing_manifest
        .as_ref()
        .map(|document| document.manifest().clone())
        .unwrap_or_default();
    manifest
        .reference_values
        .snp
        .retain(|entry| entry.platform != args.reference_values);
    manifest.reference_values.snp.extend(reference_values);
    update_policies(&mut manifest, &workloads);
    let identity = CoordinatorIdentity::from_manifest(&manifest);
    for file in &mut files {
        process_file(file, Phase::Workloads(&identity), &context, &mut workloads)
            .with_context(|| format!("in {}", file.path.display()))?;
    }
    check_unique_workloads(&workloads)?;
    let processed: Vec<ProcessedFile> = files.into_iter().map(InputFile::finish).collect();

    workspace.create_dir()?;
    let mut keys_generated = Vec::new();
    let own_workload_owner_key = if args.disable_updates {
        None
    } else {
        let path = workspace.path(workspace::WORKLOAD_OWNER_KEY_FILE);
        let (key, source) = workspace::load_or_generate_workload_owner_key(&path)?;
        if source == KeySource::Generated {
            keys_generated.push(path);
        }
        Some(key.public_key().to_hex())
    };
    let seedshare_path = workspace.path(workspace::SEEDSHARE_OWNER_KEY_FILE);
    let (seedshare_key, source) = workspace::load_or_generate_seedshare_owner_key(&seedshare_path)?;
    if source == KeySource::Generated {
        keys_generated.push(seedshare_path);
    }

    update_policies(&mut manifest, &workloads);
    manifest.workload_owner_pub_keys = if args.disable_updates {
        // The old-schema digests authorise updates too (owner::authorize_update_by_key).
        manifest.workload_owner_key_digests = None;
        None
    } else {
        Some(merge_keys(
            manifest.workload_owner_pub_keys.take(),
            own_workload_owner_key
                .into_iter()
                .chain(added_workload_owner_keys),
        ))
    };
    manifest.seedshare_owner_pub_keys = Some(merge_keys(
        manifest.seedshare_owner_pub_keys.take(),
        std::iter::once(seedshare_key.public_key().to_hex()).chain(added_seedshare_owner_keys),
    ));
    let manifest_bytes = manifest
        .to_go_json()
        .context("could not encode the manifest")?;

    let mut files_written = Vec::new();
    let mut files_unchanged = Vec::new();
    for file in &processed {
        match &file.rewritten {
            Some(text) => {
                if workspace::write_if_changed(&file.path, text.as_bytes())? {
                    files_written.push(file.path.clone());
                } else {
                    files_unchanged.push(file.path.clone());
                }
            }
            None => {
                if file.original.is_some() {
                    files_unchanged.push(file.path.clone());
                }
            }
        }
    }
    if workspace::write_if_changed(&manifest_path, &manifest_bytes)? {
        files_written.push(manifest_path.clone());
    } else {
        files_unchanged.push(manifest_path.clone());
    }

    warnings.extend(unknown_key_warnings);
    warnings.extend(
        workloads
            .iter()
            .flat_map(|workload| workload.warnings.iter().cloned()),
    );
    warnings.extend(namespace_warnings(&workloads));
    if let Err(errors) = manifest.validate() {
        warnings.extend(
            errors
                .violations()
                .iter()
                .map(|violation| format!("manifest: {violation}")),
        );
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if workloads.is_empty() {
        eprintln!(
            "warning: no resource with runtimeClassName {} was found in the given paths",
            kube::RUNTIME_CLASS
        );
    }

    let commands = match (&args.sim_dir, args.reference_values.as_str()) {
        (Some(sim_dir), SIMULATED_SNP_PLATFORM) => {
            local_commands(global, sim_dir, &workspace, &manifest, &workloads)
        }
        _ => Vec::new(),
    };

    Ok(summary(
        &workloads,
        &files_written,
        &files_unchanged,
        &keys_generated,
        &manifest_path,
        &warnings,
        &commands,
    ))
}

/// One command `generate` prints for running the deployment on this machine.
#[derive(Debug)]
struct LocalCommand {
    /// What it does, e.g. `start the Coordinator`.
    step: String,
    /// The workload it is for (`<namespace>/<kind>/<name>`), if one.
    workload: Option<String>,
    line: CommandLine,
}

/// The commands that run this deployment on the simulated platform in `sim_dir`, in order:
/// start the Coordinator (as the VM whose HOST_DATA is the Coordinator's policy digest), set
/// the manifest, run each injected initializer (as the VM of its workload's digest, with the
/// Coordinator identity its pod was given), verify. The Coordinator listens on loopback with
/// its standard ports.
fn local_commands(
    global: &GlobalArgs,
    sim_dir: &Path,
    workspace: &Workspace,
    manifest: &Manifest,
    workloads: &[GeneratedWorkload],
) -> Vec<LocalCommand> {
    let addrs = CoordinatorAddrs::default_loopback();
    // The Coordinator of this run, else the manifest's only one.
    let this_run: Vec<&str> = workloads
        .iter()
        .filter(|w| w.workload.is_coordinator())
        .map(|w| w.digest_hex.as_str())
        .collect();
    let coordinator_digest = match this_run.as_slice() {
        [digest] => Some(*digest),
        [] => {
            let known: Vec<&str> = manifest.coordinator_policy_hashes().collect();
            match known.as_slice() {
                [digest] => Some(*digest),
                _ => None,
            }
        }
        _ => None,
    };
    let mut commands = Vec::new();
    if let Some(digest) = coordinator_digest {
        commands.push(LocalCommand {
            step: "start the Coordinator (keep it running)".to_owned(),
            workload: None,
            line: command_line::coordinator(
                sim_dir,
                digest,
                &workspace.path(command_line::COORDINATOR_STATE_DIR),
                &addrs,
            ),
        });
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for workload in workloads {
        if !files.contains(&workload.file) {
            files.push(workload.file.clone());
        }
    }
    // Set needs the Coordinator's policy too: without --coordinator in this run, its resources
    // are where an earlier `generate --coordinator` writes them by default, if they are there.
    let default_coordinator_file = workspace.path(workspace::COORDINATOR_FILE);
    if this_run.is_empty() && default_coordinator_file.is_file() {
        files.insert(0, default_coordinator_file);
    }
    commands.push(LocalCommand {
        step: "set the manifest".to_owned(),
        workload: None,
        line: command_line::contrast(&global.workspace_dir, ["set", "-c", &addrs.user]).args(files),
    });
    for workload in workloads {
        let Some(identity) = &workload.initializer_identity else {
            continue;
        };
        commands.push(LocalCommand {
            step: format!("initializer of {}", workload.workload.qualified_name()),
            workload: Some(workload.workload.qualified_name()),
            line: command_line::initializer(
                sim_dir,
                &workload.digest_hex,
                identity,
                &addrs.mesh,
                &workspace
                    .path(command_line::WORKLOADS_DIR)
                    .join(&workload.workload.name),
            ),
        });
    }
    commands.push(LocalCommand {
        step: "verify as a data owner".to_owned(),
        workload: None,
        line: command_line::contrast(&global.workspace_dir, ["verify", "-c", &addrs.user]),
    });
    commands
}

/// Warnings for workloads whose initializer looks for the Coordinator in another namespace
/// than the one this run puts the Coordinator in: the initializer's `COORDINATOR_HOST` is the
/// Service `coordinator-ready`, which resolves in the pod's own namespace.
fn namespace_warnings(workloads: &[GeneratedWorkload]) -> Vec<String> {
    let coordinator_namespaces: BTreeSet<&str> = workloads
        .iter()
        .filter(|w| w.workload.is_coordinator())
        .map(|w| w.workload.namespace.as_str())
        .collect();
    if coordinator_namespaces.is_empty() {
        return Vec::new();
    }
    let coordinators = coordinator_namespaces
        .iter()
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    workloads
        .iter()
        .filter(|w| {
            w.initializer_identity.is_some()
                && !coordinator_namespaces.contains(w.workload.namespace.as_str())
        })
        .map(|w| {
            format!(
                "{} is in namespace {}, but the Coordinator is in namespace {coordinators}: its \
                 initializer connects to the Service {} of its own namespace and will not find \
                 the Coordinator; put them in one namespace (--coordinator-namespace {})",
                w.workload.qualified_name(),
                w.workload.namespace,
                contrast_core::kubernetes::COORDINATOR_READY_SERVICE,
                w.workload.namespace
            )
        })
        .collect()
}

fn summary(
    workloads: &[GeneratedWorkload],
    files_written: &[PathBuf],
    files_unchanged: &[PathBuf],
    keys_generated: &[PathBuf],
    manifest_path: &Path,
    warnings: &[String],
    commands: &[LocalCommand],
) -> Outcome {
    let paths = |list: &[PathBuf]| -> Vec<String> {
        list.iter().map(|p| p.display().to_string()).collect()
    };
    let policies: Vec<serde_json::Value> = workloads
        .iter()
        .map(|w| {
            json!({
                "workload": w.workload.qualified_name(),
                "file": w.file.display().to_string(),
                "digest": w.digest_hex,
                "sans": w.entry.sans,
                "workload_secret_id": w.entry.workload_secret_id,
                "role": w.entry.role.as_str(),
            })
        })
        .collect();
    let mut human = String::new();
    for w in workloads {
        let role = if w.entry.role.is_none() {
            String::new()
        } else {
            format!(" (role {})", w.entry.role.as_str())
        };
        human.push_str(&format!(
            "✔ {}{role}: initdata {}\n",
            w.workload.qualified_name(),
            w.digest_hex
        ));
    }
    for path in keys_generated {
        human.push_str(&format!("✔ generated {}\n", path.display()));
    }
    for path in files_written {
        human.push_str(&format!("✔ wrote {}\n", path.display()));
    }
    if files_written.is_empty() {
        human.push_str("✔ nothing changed\n");
    }
    if !commands.is_empty() {
        human.push_str(
            "\nTo run this deployment on this machine (simulated platform; the binaries on PATH, \
             the Coordinator in its own terminal):\n",
        );
        for command in commands {
            human.push_str(&format!(
                "  # {}\n  {}\n",
                command.step,
                command.line.to_shell()
            ));
        }
    }
    let commands: Vec<serde_json::Value> = commands
        .iter()
        .map(|command| {
            let mut value = command.line.to_json();
            if let serde_json::Value::Object(map) = &mut value {
                map.insert("step".to_owned(), json!(command.step));
                map.insert("workload".to_owned(), json!(command.workload));
            }
            value
        })
        .collect();
    Outcome {
        status: ExitStatus::Ok,
        human,
        json: json!({
            "command": "generate",
            "manifest": manifest_path.display().to_string(),
            "files_written": paths(files_written),
            "files_unchanged": paths(files_unchanged),
            "keys_generated": paths(keys_generated),
            "policies": policies,
            "warnings": warnings,
            "commands": commands,
        }),
    }
}

/// Reference values for the chosen platform.
fn load_reference_values(args: &GenerateArgs) -> anyhow::Result<Vec<SnpReferenceValues>> {
    let platform = args.reference_values.as_str();
    if platform == SIMULATED_SNP_PLATFORM {
        if args.reference_values_file.is_some() {
            return Err(UsageError(format!(
                "--reference-values-file is for real platforms; {SIMULATED_SNP_PLATFORM} takes its \
                 values from --sim-dir"
            ))
            .into());
        }
        let Some(dir) = &args.sim_dir else {
            return Err(UsageError(format!(
                "--reference-values {SIMULATED_SNP_PLATFORM} needs --sim-dir DIR, the simulated \
                 platform's directory"
            ))
            .into());
        };
        return simulated_reference_values(dir).map(|values| vec![values]);
    }
    if args.sim_dir.is_some() {
        return Err(UsageError(format!(
            "--sim-dir is only for --reference-values {SIMULATED_SNP_PLATFORM}"
        ))
        .into());
    }
    let Some(path) = &args.reference_values_file else {
        return Err(UsageError(format!(
            "contrast-rs ships no measured reference values for {platform}: measure your \
             platform and pass them with --reference-values-file FILE (a JSON array of `snp` \
             entries as in manifest.json)"
        ))
        .into());
    };
    read_reference_values_file(path, platform)
}

fn simulated_reference_values(dir: &Path) -> anyhow::Result<SnpReferenceValues> {
    let environment = contrast_tee::SimulatedEnvironment::load(dir).with_context(|| {
        format!(
            "could not load the simulated platform from {}; pass the --sim-dir the Coordinator \
             and initializers use",
            dir.display()
        )
    })?;
    Ok(environment.reference_values())
}

/// Reads a JSON array of `snp` entries with the manifest's own (Go-compatible) decoder.
fn read_reference_values_file(
    path: &Path,
    platform: &str,
) -> anyhow::Result<Vec<SnpReferenceValues>> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "could not read the reference values file {}",
            path.display()
        )
    })?;
    let array: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not JSON; it must be an array of `snp` reference value entries",
            path.display()
        )
    })?;
    if !array.is_array() {
        bail!(
            "{} must hold a JSON array of `snp` reference value entries, found {}",
            path.display(),
            json_type(&array)
        );
    }
    let wrapped = serde_json::to_vec(&json!({ "ReferenceValues": { "snp": array } }))?;
    let document = ManifestDocument::parse(wrapped).with_context(|| {
        format!(
            "{} does not hold valid `snp` reference value entries",
            path.display()
        )
    })?;
    let mut entries = document.manifest().reference_values.snp.clone();
    if entries.is_empty() {
        bail!(
            "{} holds no reference value entries; add at least one",
            path.display()
        );
    }
    for (index, entry) in entries.iter_mut().enumerate() {
        if entry.platform.is_empty() {
            platform.clone_into(&mut entry.platform);
        } else if entry.platform != platform {
            bail!(
                "{}: entry {index} is for platform {:?}, but --reference-values is {platform:?}",
                path.display(),
                entry.platform
            );
        }
    }
    Ok(entries)
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn resolve_policy_source(
    args: &GenerateArgs,
    workspace: &Workspace,
) -> anyhow::Result<PolicySource> {
    let read = |path: &Path| {
        fs::read_to_string(path)
            .with_context(|| format!("could not read the policy file {}", path.display()))
    };
    if let Some(path) = &args.policy {
        return Ok(PolicySource::Static {
            origin: path.display().to_string(),
            text: read(path)?,
        });
    }
    if args.insecure_allow_all_policy {
        eprintln!(
            "warning: --insecure-allow-all-policy: every workload gets a policy that allows \
             everything; do not use this in production"
        );
        return Ok(PolicySource::Static {
            origin: "--insecure-allow-all-policy".to_owned(),
            text: INSECURE_ALLOW_ALL_POLICY.to_owned(),
        });
    }
    let rules = workspace.path(workspace::RULES_FILE);
    if rules.is_file() {
        return Ok(PolicySource::Static {
            origin: rules.display().to_string(),
            text: read(&rules)?,
        });
    }
    if let Some(program) = find_on_path("genpolicy") {
        return Ok(PolicySource::Genpolicy { program });
    }
    bail!(
        "no policy for the workloads: pass --policy FILE, put the policy in {}, or install \
         Kata's genpolicy on PATH; for development only, --insecure-allow-all-policy uses a \
         policy that allows everything",
        rules.display()
    )
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

fn read_existing_manifest(path: &Path) -> anyhow::Result<Option<ManifestDocument>> {
    match fs::read(path) {
        Ok(bytes) => ManifestDocument::parse(bytes).map(Some).with_context(|| {
            format!(
                "the existing manifest {} could not be read; fix it or move it away to start a \
                 new one",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => {
            Err(error).with_context(|| format!("could not read the manifest {}", path.display()))
        }
    }
}

/// The files named by the paths: files as given, directories walked (sorted) for .yml/.yaml.
pub fn collect_input_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path)
            .with_context(|| format!("could not read {}; check the path", path.display()))?;
        if metadata.is_dir() {
            walk_yaml_dir(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk_yaml_dir(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("could not list the directory {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("could not list the directory {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk_yaml_dir(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml")
        {
            files.push(path);
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// One input file while it is processed.
#[derive(Debug)]
struct InputFile {
    path: PathBuf,
    /// The text read from disk (`None` for a file this run generates).
    original: Option<String>,
    /// The text this run generates, if it does.
    generated: Option<String>,
    /// The documents, when the file mentions the runtime class at all (upstream only touches
    /// YAML that does).
    documents: Option<Vec<kube::RawDocument>>,
    modified: bool,
}

impl InputFile {
    /// `generated_text` is the content of a file this run generates (the Coordinator's
    /// resources); other files are read from disk.
    fn read(path: PathBuf, generated_text: Option<String>) -> anyhow::Result<Self> {
        let (original, text) = match generated_text {
            Some(text) => (None, text),
            None => {
                let text =
                    fs::read_to_string(&path).context("could not read the file as UTF-8 text")?;
                (Some(text.clone()), text)
            }
        };
        let documents = text
            .contains(kube::RUNTIME_CLASS)
            .then(|| kube::split_documents(&text));
        let generated = original.is_none().then_some(text);
        Ok(Self {
            path,
            original,
            generated,
            documents,
            modified: false,
        })
    }

    /// Warnings for the resources of this file whose runtimeClassName is a near miss of
    /// [`kube::RUNTIME_CLASS`] (documents that do not parse are skipped: they are not
    /// Kubernetes YAML generate would touch anyway).
    fn near_misses(&self) -> Vec<String> {
        let Some(text) = self.original.as_deref().or(self.generated.as_deref()) else {
            return Vec::new();
        };
        kube::split_documents(text)
            .iter()
            .filter_map(|document| kube::parse_document(document).ok())
            .filter_map(|resource| kube::near_miss_runtime_class(&resource))
            .map(|miss| {
                format!(
                    "{}: {} has runtimeClassName {:?}, not {rc}, so generate leaves it alone \
                     (no initdata, no initializer, no manifest entry); did you mean {rc}? \
                     (contrast-rs takes exactly {rc}, not upstream's platform runtime classes)",
                    self.path.display(),
                    miss.resource,
                    miss.runtime_class,
                    rc = kube::RUNTIME_CLASS
                )
            })
            .collect()
    }

    /// Adds the PersistentVolumeClaims of this file to `claims` (documents that do not parse
    /// are skipped, as in [`Self::near_misses`]).
    fn collect_claims(&self, claims: &mut kube::InputClaims) {
        let Some(text) = self.original.as_deref().or(self.generated.as_deref()) else {
            return;
        };
        for document in kube::split_documents(text) {
            if let Ok(resource) = kube::parse_document(&document) {
                kube::collect_claim(&resource, claims);
            }
        }
    }

    fn finish(self) -> ProcessedFile {
        let rewritten = match self.documents {
            Some(documents) if self.modified || self.generated.is_some() => {
                Some(kube::join_documents(&documents))
            }
            Some(_) => None,
            None => self.generated,
        };
        ProcessedFile {
            path: self.path,
            original: self.original,
            rewritten,
        }
    }
}

/// Which workloads a pass over the files processes.
#[derive(Clone, Copy, Debug)]
enum Phase<'a> {
    /// The Coordinator's pods (no initializer; their policy needs nothing else).
    Coordinators,
    /// Every other confidential pod, whose initializer is given the Coordinator's identity
    /// (or the reason there is none).
    Workloads(&'a Result<CoordinatorIdentity, IdentityError>),
}

/// Processes the workloads of one file that `phase` selects.
fn process_file(
    file: &mut InputFile,
    phase: Phase<'_>,
    context: &WorkloadContext<'_>,
    workloads: &mut Vec<GeneratedWorkload>,
) -> anyhow::Result<()> {
    let Some(documents) = &mut file.documents else {
        return Ok(());
    };
    for (index, document) in documents.iter_mut().enumerate() {
        let position = index + 1;
        let mut value = kube::parse_document(document).with_context(|| {
            format!(
                "document {position} is not valid YAML; generate needs plain Kubernetes YAML \
                 (render templates first)"
            )
        })?;
        let Some(workload) =
            kube::confidential_workload(&value).with_context(|| format!("document {position}"))?
        else {
            continue;
        };
        let identity = match phase {
            Phase::Coordinators if workload.is_coordinator() => None,
            Phase::Workloads(identity) if !workload.is_coordinator() => Some(identity),
            _ => continue,
        };
        let generated = process_workload(&mut value, workload, identity, context, &file.path)
            .with_context(|| format!("document {position}"))?;
        *document = kube::render_document(&value, document)?;
        workloads.push(generated);
        file.modified = true;
    }
    Ok(())
}

/// Gives one workload its initializer (with `identity`, the Coordinator's identity or why there
/// is none; `None` for the Coordinator's own pods), its secure-pv and service-mesh sidecars if
/// annotated, and its initdata.
fn process_workload(
    resource: &mut serde_norway::Value,
    workload: ConfidentialWorkload,
    identity: Option<&Result<CoordinatorIdentity, IdentityError>>,
    context: &WorkloadContext<'_>,
    file: &Path,
) -> anyhow::Result<GeneratedWorkload> {
    let WorkloadContext {
        args,
        workspace,
        policy_source,
        claims,
    } = context;
    let annotations = kube::pod_annotations(resource, &workload)?;
    let is_coordinator = identity.is_none();
    let secure_pv = match &annotations.secure_pv {
        Some(secure_pv) => {
            check_has_initializer(
                &workload,
                args,
                &annotations,
                is_coordinator,
                &format!("the annotation {SECURE_PV_ANNOTATION}"),
                "the secure-pv sidecar opens the encrypted volume with the workload secret the \
                 initializer writes",
            )?;
            Some(kube::check_secure_pv(
                resource, &workload, secure_pv, claims,
            )?)
        }
        None => None,
    };
    if let Some(mesh) = &annotations.service_mesh {
        check_has_initializer(
            &workload,
            args,
            &annotations,
            is_coordinator,
            &mesh.annotations(),
            "the service-mesh sidecar serves the pod's traffic with the mesh certificates the \
             initializer writes",
        )?;
    }
    let template = kube::pod_template_mut(resource)
        .ok_or_else(|| anyhow!("the pod template is not a mapping"))?;
    if annotations.skip_initializer {
        // An earlier run may have injected it before the pod was annotated.
        kube::remove_initializer(template);
    }
    // An earlier run may have injected them while the pod was annotated.
    if secure_pv.is_none() {
        kube::remove_secure_pv(template);
    }
    if annotations.service_mesh.is_none() {
        kube::remove_service_mesh(template);
    }
    // The identity goes in before the policy is computed: genpolicy's policy pins the
    // container's environment, and a policy file gets the identity's digest (below).
    let injected_identity = match identity {
        Some(identity) if !args.skip_initializer && !annotations.skip_initializer => {
            let identity = identity.as_ref().map_err(|reason| {
                anyhow!(
                    "{} needs the initializer, and the initializer needs the Coordinator's \
                     identity to attest it, but {reason}; pass --coordinator (or the \
                     Coordinator's resources) so that generate computes the Coordinator's \
                     policy, or run generate with the manifest of a deployment that has one; \
                     --skip-initializer (or the pod annotation {SKIP_INITIALIZER_ANNOTATION}: \
                     \"true\") injects no initializer",
                    workload.qualified_name()
                )
            })?;
            let json = identity.to_json();
            kube::inject_initializer(
                template,
                &args.initializer_image,
                &json,
                annotations.service_mesh.is_some(),
            )?;
            if let Some(plan) = &secure_pv {
                kube::inject_secure_pv(template, &args.initializer_image, plan)?;
            }
            if let Some(mesh) = &annotations.service_mesh {
                kube::inject_service_mesh(template, &args.service_mesh_image, mesh)?;
            }
            Some(json)
        }
        _ => None,
    };
    // The policy must not depend on an earlier run's annotation.
    kube::remove_annotation(template, initdata::ANNOTATION_KEY);
    let policy = match policy_source {
        PolicySource::Static { origin, text } => {
            tracing::debug!(policy = %origin, workload = %workload.qualified_name(), "using policy file");
            // Only the workload's name goes in: the digest must not depend on where the
            // policy file was read from. A policy file does not pin the pod spec, so the
            // Coordinator identity the initializer is given goes into the digest here.
            let identity_line = injected_identity
                .as_deref()
                .map(|json| {
                    format!(
                        "# contrast coordinator identity (sha256 of {COORDINATOR_IDENTITY_ENV}): {}\n",
                        hex::encode(contrast_core::sha256(json.as_bytes()))
                    )
                })
                .unwrap_or_default();
            format!(
                "# contrast workload: {}\n{identity_line}{text}",
                workload.qualified_name()
            )
        }
        PolicySource::Genpolicy { program } => run_genpolicy(program, resource, workspace)?,
    };
    let initdata = Initdata::build(
        Algorithm::Sha256,
        BTreeMap::from([(POLICY_DATA_KEY.to_owned(), policy)]),
    )
    .context("could not build the initdata document")?;
    let digest_hex = hex::encode(initdata.policy_hash()?);
    let annotation = initdata.to_annotation()?;
    let template = kube::pod_template_mut(resource)
        .ok_or_else(|| anyhow!("the pod template is not a mapping"))?;
    kube::set_annotation(template, initdata::ANNOTATION_KEY, &annotation)?;
    let entry = PolicyEntry {
        sans: Some(vec![workload.name.clone(), "*".to_owned()]),
        workload_secret_id: workload.workload_secret_id(),
        role: workload
            .pod_role
            .as_deref()
            .map(Role::from_name)
            .unwrap_or_default(),
    };
    Ok(GeneratedWorkload {
        file: file.to_path_buf(),
        workload,
        digest_hex,
        entry,
        initializer_identity: injected_identity,
        warnings: secure_pv.map(|plan| plan.warnings).unwrap_or_default(),
    })
}

/// Refuses an annotated sidecar that needs the initializer on a pod that gets none:
/// `annotations` (`the annotation ...`) ask for the sidecar, `why` says what it needs the
/// initializer for.
fn check_has_initializer(
    workload: &ConfidentialWorkload,
    args: &GenerateArgs,
    pod_annotations: &kube::PodAnnotations,
    is_coordinator: bool,
    annotations: &str,
    why: &str,
) -> anyhow::Result<()> {
    let reason = if is_coordinator {
        "it is the Coordinator, which gets no initializer"
    } else if args.skip_initializer {
        "--skip-initializer is given"
    } else if pod_annotations.skip_initializer {
        &format!("it has the annotation {SKIP_INITIALIZER_ANNOTATION}: \"true\"")
    } else {
        return Ok(());
    };
    bail!(
        "{} has {annotations}, but {reason}: {why}; drop {annotations}, or let generate inject \
         the initializer",
        workload.qualified_name()
    )
}

/// Runs Kata's genpolicy on one resource and returns the policy it prints.
fn run_genpolicy(
    program: &Path,
    resource: &serde_norway::Value,
    workspace: &Workspace,
) -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!(
        "contrast-genpolicy-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    fs::create_dir_all(&dir)
        .with_context(|| format!("could not create the temporary directory {}", dir.display()))?;
    let result = (|| {
        let yaml = dir.join("resource.yml");
        fs::write(&yaml, serde_norway::to_string(resource)?)
            .with_context(|| format!("could not write {}", yaml.display()))?;
        let mut command = Command::new(program);
        command
            .arg("--yaml-file")
            .arg(&yaml)
            .arg("--raw-out")
            .arg(format!("--runtime-class-names={}", kube::RUNTIME_CLASS));
        let settings = workspace.path(workspace::GENPOLICY_SETTINGS_FILE);
        if settings.is_file() {
            command.arg("--json-settings-path").arg(settings);
        }
        command
            .arg("--layers-cache-file-path")
            .arg(workspace.path(workspace::LAYERS_CACHE_FILE));
        tracing::info!(?command, "running genpolicy");
        let output = command
            .output()
            .with_context(|| format!("could not run {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}; fix the resource or pass --policy FILE",
                program.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let policy = String::from_utf8(output.stdout)
            .map_err(|_| anyhow!("{} printed a policy that is not UTF-8", program.display()))?;
        if policy.trim().is_empty() {
            bail!(
                "{} printed no policy; check its version supports --raw-out",
                program.display()
            );
        }
        Ok(policy)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn check_unique_workloads(workloads: &[GeneratedWorkload]) -> anyhow::Result<()> {
    let mut seen: BTreeMap<String, &GeneratedWorkload> = BTreeMap::new();
    for workload in workloads {
        // A WorkloadSecretID may be shared on purpose (workloads that share their secret).
        for key in [
            format!("workload {}", workload.workload.qualified_name()),
            format!("initdata digest {}", workload.digest_hex),
        ] {
            if let Some(first) = seen.insert(key.clone(), workload) {
                bail!(
                    "{key} appears twice ({} in {}, {} in {}); each confidential workload needs \
                     its own identity: rename one or remove the duplicate",
                    first.workload.qualified_name(),
                    first.file.display(),
                    workload.workload.qualified_name(),
                    workload.file.display()
                );
            }
        }
    }
    Ok(())
}

/// Replaces the entries generate owns: those with the digest of a processed workload, or with
/// its WorkloadSecretID and its name as first SAN (an earlier version of the same workload).
/// Entries of other workloads (other files, added by hand) stay.
fn update_policies(manifest: &mut Manifest, workloads: &[GeneratedWorkload]) {
    manifest.policies.retain(|key, entry| {
        !workloads.iter().any(|w| {
            &w.digest_hex == key
                || (w.entry.workload_secret_id == entry.workload_secret_id
                    && entry.sans.as_ref().and_then(|sans| sans.first()) == Some(&w.workload.name))
        })
    });
    for workload in workloads {
        manifest
            .policies
            .insert(workload.digest_hex.clone(), workload.entry.clone());
    }
}

/// The union of existing and new hex keys, sorted as upstream writes them.
fn merge_keys(existing: Option<Vec<String>>, new: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = existing.into_iter().flatten().chain(new).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_sorts_and_deduplicates() {
        let merged = merge_keys(
            Some(vec!["bb".to_owned(), "aa".to_owned()]),
            ["cc".to_owned(), "aa".to_owned()],
        );
        assert_eq!(merged, ["aa", "bb", "cc"]);
    }

    #[test]
    fn help_names_every_annotation_it_decides_on() {
        for annotation in kube::UNSUPPORTED_ANNOTATIONS
            .iter()
            .map(|(annotation, _)| *annotation)
            .chain(kube::SERVICE_MESH_ANNOTATIONS)
            .chain([
                SKIP_INITIALIZER_ANNOTATION,
                SECURE_PV_ANNOTATION,
                contrast_core::kubernetes::POD_ROLE_ANNOTATION,
                contrast_core::kubernetes::WORKLOAD_SECRET_ID_ANNOTATION,
            ])
        {
            assert!(LONG_ABOUT.contains(annotation), "{annotation}");
        }
        for name in [
            kube::RUNTIME_CLASS,
            kube::SECURE_PV_CONTAINER,
            contrast_core::kubernetes::SECURE_PV_DEVICE_PATH,
            contrast_core::kubernetes::SECURE_PV_MOUNT_POINT,
            contrast_core::kubernetes::INITIALIZER_DONE_FILE,
            &contrast_core::kubernetes::cryptsetup_args(
                contrast_core::kubernetes::SECURE_PV_DEVICE_PATH,
                contrast_core::kubernetes::SECURE_PV_MOUNT_POINT,
            )
            .join(" "),
            kube::SERVICE_MESH_CONTAINER,
            kube::SERVICE_MESH_ADMIN_PORT_NAME,
            contrast_core::kubernetes::SERVICE_MESH_READY_FILE,
            contrast_mesh::config::INGRESS_ENV,
            contrast_mesh::config::EGRESS_ENV,
            contrast_mesh::config::ADMIN_PORT_ENV,
            contrast_mesh::config::INGRESS_DISABLED,
            &contrast_mesh::config::MTLS_INGRESS_PORT.to_string(),
            &contrast_mesh::config::TLS_INGRESS_PORT.to_string(),
            kube::SECRETS_VOLUME,
            contrast_core::kubernetes::SECRETS_MOUNT_PATH,
            COORDINATOR_IDENTITY_ENV,
            command_line::COORDINATOR_STATE_DIR,
            command_line::WORKLOADS_DIR,
            contrast_core::kubernetes::COORDINATOR_READY_SERVICE,
        ] {
            assert!(LONG_ABOUT.contains(name), "{name}");
        }
    }

    #[test]
    fn allow_all_policy_is_marked_insecure() {
        assert!(INSECURE_ALLOW_ALL_POLICY.starts_with("# INSECURE"));
        assert!(INSECURE_ALLOW_ALL_POLICY.contains("default CreateContainerRequest := true"));
    }
}
