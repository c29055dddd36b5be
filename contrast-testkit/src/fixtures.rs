//! Deployment fixtures on one simulated SEV-SNP environment per test binary: workloads and
//! their policies, owner keys, manifests, validators, and Coordinator processes started on that
//! environment (the end-to-end tests of the Coordinator, the CLI and the initializer).

// Test support: a fixture that cannot be built is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use contrast_attest::atls::AtlsKey;
use contrast_attest::{AtlsClient, AtlsValidator};
use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::manifest::{Manifest, PolicyEntry, Role};
use contrast_core::owner::{SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey};
use contrast_sdk::CoordinatorClient;
use contrast_tee::SimulatedEnvironment;
use rand_core::OsRng;

use crate::net::free_port;
use crate::process::{
    Addrs, CoordinatorProcess, Launch, LogFile, initializer_command, target_tmpdir,
    workspace_binary,
};

/// The simulated environment shared by every test of this binary (a Milan platform; RSA-4096
/// generation is slow in debug builds, so once), in a directory under `target/tmp`.
pub fn environment() -> &'static (PathBuf, SimulatedEnvironment) {
    static ENV: OnceLock<(PathBuf, SimulatedEnvironment)> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("contrast-testkit-sim-")
            .tempdir_in(target_tmpdir())
            .unwrap()
            .keep();
        let env = SimulatedEnvironment::create(
            &dir,
            contrast_attest::Product::Milan,
            std::time::SystemTime::now(),
            &mut OsRng,
        )
        .unwrap();
        (dir, env)
    })
}

/// The directory of [`environment`].
pub fn sim_dir() -> &'static Path {
    &environment().0
}

/// A workload of the test deployment: its policy blob and the HOST_DATA derived from it.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Its name (first SAN; secret ID `default/<name>`).
    pub name: String,
    /// Its policy document.
    pub policy: Vec<u8>,
}

impl Workload {
    /// A workload with a policy that names it.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: format!("# initdata of {name}\npolicy = \"allow\"\n").into_bytes(),
        }
    }

    /// SHA-256 of the policy.
    pub fn host_data(&self) -> [u8; 32] {
        contrast_core::sha256(&self.policy)
    }

    /// [`host_data`](Self::host_data) in hex, as manifests and flags write it.
    pub fn host_data_hex(&self) -> String {
        hex::encode(self.host_data())
    }

    /// Its workload secret ID.
    pub fn secret_id(&self) -> String {
        format!("default/{}", self.name)
    }
}

/// A fresh RSA-2048 key as PKCS#8 DER: a seed-share owner key that is quick to generate (what
/// `contrast generate` makes, RSA-4096, is slow in debug builds).
pub fn rsa2048_pkcs8() -> Vec<u8> {
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM document (64-character lines).
pub fn pkcs8_pem(der: &[u8]) -> String {
    pem("PRIVATE KEY", der)
}

/// `der` as a PEM document with `label` (64-character lines).
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh self-signed certificate (PEM), valid now: a stand-in for a CA certificate where only
/// its bytes matter (bound into report data, compared).
pub fn pem_certificate() -> Vec<u8> {
    let key = contrast_attest::atls::AtlsKey::generate_p256().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    let der = contrast_attest::atls::AtlsCertificate::build(&key, None, now, &mut OsRng).unwrap();
    pem("CERTIFICATE", &der).into_bytes()
}

/// Keys of the test's owners (RSA generation is slow in debug builds: once per binary).
pub struct Owners {
    /// The workload owner.
    pub workload: WorkloadOwnerPrivateKey,
    /// The seed-share owner.
    pub seedshare: SeedshareOwnerPrivateKey,
    /// The seed-share owner's key as PKCS#8 DER.
    pub seedshare_pkcs8: Vec<u8>,
}

/// The owners of this test binary.
pub fn owners() -> &'static Owners {
    static OWNERS: OnceLock<Owners> = OnceLock::new();
    OWNERS.get_or_init(|| {
        let pkcs8 = rsa2048_pkcs8();
        Owners {
            workload: WorkloadOwnerPrivateKey::generate(&mut OsRng).unwrap(),
            seedshare: SeedshareOwnerPrivateKey::from_pkcs8_der(&pkcs8).unwrap(),
            seedshare_pkcs8: pkcs8,
        }
    })
}

/// Another workload-owner key (not in any manifest).
pub fn stranger_key() -> WorkloadOwnerPrivateKey {
    WorkloadOwnerPrivateKey::generate(&mut OsRng).unwrap()
}

/// The Coordinator's own identity in the tests.
pub fn coordinator_workload() -> Workload {
    Workload::new("coordinator")
}

/// A manifest for `workloads` (plus the Coordinator), with the simulated reference values.
pub fn manifest(workloads: &[Workload], owner_keys: Option<Vec<String>>) -> Vec<u8> {
    let (_, env) = environment();
    let mut manifest = Manifest::default();
    let coordinator = coordinator_workload();
    manifest.policies.insert(
        coordinator.host_data_hex(),
        PolicyEntry {
            sans: Some(vec!["coordinator".into()]),
            workload_secret_id: String::new(),
            role: Role::Coordinator,
        },
    );
    for workload in workloads {
        manifest.policies.insert(
            workload.host_data_hex(),
            PolicyEntry {
                sans: Some(vec![workload.name.clone(), "*".into()]),
                workload_secret_id: workload.secret_id(),
                role: Role::None,
            },
        );
    }
    manifest.reference_values.snp = vec![env.reference_values()];
    manifest.workload_owner_pub_keys = owner_keys;
    manifest.seedshare_owner_pub_keys = Some(vec![owners().seedshare.public_key().to_hex()]);
    manifest.to_go_json().unwrap()
}

/// The default owner list: the test's workload owner.
pub fn default_owner_keys() -> Option<Vec<String>> {
    Some(vec![owners().workload.public_key().to_hex()])
}

/// Every policy blob of `workloads` plus the Coordinator's.
pub fn policies(workloads: &[Workload]) -> Vec<Vec<u8>> {
    std::iter::once(coordinator_workload())
        .chain(workloads.iter().cloned())
        .map(|w| w.policy)
        .collect()
}

/// Coordinators of the workspace's `coordinator` binary on [`environment`].
impl CoordinatorProcess {
    /// Starts a Coordinator on fresh ports over `state_dir`, waiting for its startup probe.
    pub fn start(state_dir: &Path, extra: &[&str]) -> Self {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        Self::start_on(state_dir, ports, extra)
    }

    /// Starts a Coordinator on the loopback `ports` `[user, mesh, evidence, ops]`, waiting for
    /// its startup probe.
    pub fn start_on(state_dir: &Path, ports: [u16; 4], extra: &[&str]) -> Self {
        Self::start_as(state_dir, ports, &coordinator_workload(), extra, true)
    }

    /// Starts a Coordinator whose VM has `identity`'s HOST_DATA; waits for its startup probe if
    /// `wait`.
    pub fn start_as(
        state_dir: &Path,
        ports: [u16; 4],
        identity: &Workload,
        extra: &[&str],
        wait: bool,
    ) -> Self {
        let addrs = ports.map(|port| format!("127.0.0.1:{port}"));
        Self::start_with(state_dir, addrs, identity, extra, &[], wait)
    }

    /// Starts a Coordinator on the addresses `[user, mesh, evidence, ops]` with extra flags and
    /// environment variables, logging at `info,coordinator=debug` to a file named after the
    /// state directory and the user address (replicas may share a state directory).
    pub fn start_with(
        state_dir: &Path,
        addrs: [String; 4],
        identity: &Workload,
        extra: &[&str],
        env: &[(String, String)],
        wait: bool,
    ) -> Self {
        Self::start_full(state_dir, addrs, None, identity, extra, env, wait)
    }

    /// Starts a Coordinator on fresh ports over `state_dir` with the transit engine on a fresh
    /// loopback port too (`--transit-addr`, in [`CoordinatorProcess::transit`]), waiting for
    /// its startup probe.
    pub fn start_with_transit(state_dir: &Path, extra: &[&str]) -> Self {
        let addrs = [free_port(), free_port(), free_port(), free_port()]
            .map(|port| format!("127.0.0.1:{port}"));
        let transit = format!("127.0.0.1:{}", free_port());
        Self::start_full(
            state_dir,
            addrs,
            Some(transit),
            &coordinator_workload(),
            extra,
            &[],
            true,
        )
    }

    /// [`start_with`](Self::start_with), with the transit engine on `transit` if given.
    pub fn start_full(
        state_dir: &Path,
        addrs: [String; 4],
        transit: Option<String>,
        identity: &Workload,
        extra: &[&str],
        env: &[(String, String)],
        wait: bool,
    ) -> Self {
        let [user, mesh, evidence, ops] = addrs;
        let mut launch = Launch::new(
            workspace_binary("coordinator"),
            sim_dir(),
            &identity.host_data_hex(),
            state_dir,
            Addrs {
                user,
                mesh,
                evidence,
                ops,
            },
        );
        launch.log = state_dir.with_extension(format!(
            "log-{}",
            launch.addrs.user.replace([':', '.'], "-")
        ));
        launch.log_level = Some("info,coordinator=debug".to_owned());
        launch.args = extra.iter().map(|s| (*s).to_owned()).collect();
        launch.env = env.to_vec();
        launch.transit = transit;
        let process = Self::spawn(launch, LogFile::Truncate).unwrap();
        if wait {
            process.wait_for("/probe/startup", 200, Duration::from_secs(30));
        }
        process
    }

    /// SIGKILL, then a new process on the same addresses, flags and state directory, waiting
    /// for its startup probe.
    pub fn kill9_and_restart(mut self) -> Self {
        self.kill9().unwrap();
        self.respawn(LogFile::Truncate).unwrap();
        self.wait_for("/probe/startup", 200, Duration::from_secs(30));
        self
    }

    /// A user-API client attesting this Coordinator with [`coordinator_validator`].
    pub fn user_client(&self, key: Option<AtlsKey>) -> CoordinatorClient {
        let mut atls = AtlsClient::new(coordinator_validator());
        if let Some(key) = key {
            atls = atls.with_key(Arc::new(key));
        }
        CoordinatorClient::new(self.user.clone(), atls)
    }
}

/// The simulated Coordinator's identity: the environment's reference values and the
/// Coordinator's HOST_DATA (what `contrast generate` gives the initializers of [`manifest`]).
pub fn coordinator_identity() -> CoordinatorIdentity {
    let (_, env) = environment();
    CoordinatorIdentity::new(
        vec![coordinator_workload().host_data()],
        vec![env.reference_values()],
    )
    .unwrap()
}

/// A validator for the simulated Coordinator: the SDK's validator of [`coordinator_identity`].
pub fn coordinator_validator() -> AtlsValidator {
    contrast_sdk::identity_validator(&coordinator_identity())
}

/// The workload owner's key as an aTLS client key.
pub fn owner_atls_key(key: &WorkloadOwnerPrivateKey) -> AtlsKey {
    let pem = key.to_sec1_pem().unwrap();
    AtlsKey::from_p384(&p384::ecdsa::SigningKey::from(
        p384::SecretKey::from_sec1_pem(&pem).unwrap(),
    ))
    .unwrap()
}

/// Runs an initializer for `workload` against `coordinator` writing under `root`, expecting
/// the Coordinator of [`coordinator_identity`].
pub fn run_initializer(
    coordinator: &CoordinatorProcess,
    workload: &Workload,
    root: &Path,
    extra: &[&str],
) -> Output {
    initializer_command(
        &coordinator.mesh,
        &coordinator_identity(),
        sim_dir(),
        &workload.host_data_hex(),
        root,
    )
    .args(extra)
    .output()
    .unwrap()
}

/// Copies a directory tree (a store snapshot for a second replica).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes (to show a refused request changed nothing).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|e| e != "lock") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Verifies a PEM leaf (first of `chain_pem`) against `anchor_pem`, with the rest of the
/// chain as intermediates, for client auth now.
pub fn verify_chain(chain_pem: &[u8], anchor_pem: &[u8]) -> Result<(), webpki::Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let anchor = CertificateDer::from_pem_slice(anchor_pem).unwrap();
    let anchors = [webpki::anchor_from_trusted_cert(&anchor)
        .unwrap()
        .to_owned()];
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

/// The argument vector of one command `contrast generate --json` printed (an element of its
/// `commands`, whose `argv` is a list of strings).
pub fn printed_argv(command: &serde_json::Value) -> Vec<String> {
    command["argv"]
        .as_array()
        .expect("a printed command has an argv list")
        .iter()
        .map(|arg| arg.as_str().expect("argv holds strings").to_owned())
        .collect()
}

/// The value after the flag `name` in `argv`.
pub fn flag_value(argv: &[String], name: &str) -> String {
    let at = argv
        .iter()
        .position(|arg| arg == name)
        .unwrap_or_else(|| panic!("{name} is not in {argv:?}"));
    argv[at + 1].clone()
}

/// Replaces the value after each flag of `values` in `argv` (e.g. ports and paths of a printed
/// command, for a test's own).
pub fn replace_flag_values(argv: &mut [String], values: &[(&str, String)]) {
    for (name, value) in values {
        let at = argv
            .iter()
            .position(|arg| arg == name)
            .unwrap_or_else(|| panic!("{name} is not in {argv:?}"));
        argv[at + 1].clone_from(value);
    }
}
