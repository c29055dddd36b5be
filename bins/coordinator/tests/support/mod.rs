//! Shared harness of the end-to-end tests: a simulated SEV-SNP environment (created once per
//! test binary), real `coordinator` and `initializer` processes on loopback, manifests and
//! owner keys, and small raw clients for the plain-HTTP ports.

#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use contrast_attest::atls::AtlsKey;
use contrast_attest::{AtlsClient, AtlsValidator};
use contrast_core::manifest::{Manifest, PolicyEntry, Role};
use contrast_core::owner::{SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey};
use contrast_sdk::CoordinatorClient;
use contrast_tee::SimulatedEnvironment;
use rand_core::OsRng;

/// The simulated environment shared by every test of this binary.
pub fn environment() -> &'static (PathBuf, SimulatedEnvironment) {
    static ENV: OnceLock<(PathBuf, SimulatedEnvironment)> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("coordinator-e2e-sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
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

pub fn sim_dir() -> &'static Path {
    &environment().0
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A workload of the test deployment: its policy blob and the HOST_DATA derived from it.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub policy: Vec<u8>,
}

impl Workload {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: format!("# initdata of {name}\npolicy = \"allow\"\n").into_bytes(),
        }
    }

    pub fn host_data(&self) -> [u8; 32] {
        contrast_core::sha256(&self.policy)
    }

    pub fn host_data_hex(&self) -> String {
        hex::encode(self.host_data())
    }

    pub fn secret_id(&self) -> String {
        format!("default/{}", self.name)
    }
}

/// Keys of the test's owners (RSA generation is slow in debug builds: once per binary).
pub struct Owners {
    pub workload: WorkloadOwnerPrivateKey,
    pub seedshare: SeedshareOwnerPrivateKey,
    pub seedshare_pkcs8: Vec<u8>,
}

pub fn owners() -> &'static Owners {
    static OWNERS: OnceLock<Owners> = OnceLock::new();
    OWNERS.get_or_init(|| {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
            .unwrap()
            .as_ref()
            .to_vec();
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

/// A running `coordinator` process (killed on drop).
pub struct CoordinatorProcess {
    pub child: Child,
    pub state_dir: PathBuf,
    pub user: String,
    pub mesh: String,
    pub evidence: String,
    pub ops: String,
    pub log: PathBuf,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
    pub identity: Workload,
}

impl CoordinatorProcess {
    /// Starts a Coordinator on fresh ports over `state_dir`, waiting for its startup probe.
    pub fn start(state_dir: &Path, extra: &[&str]) -> Self {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        Self::start_on(state_dir, ports, extra)
    }

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
    /// environment variables.
    pub fn start_with(
        state_dir: &Path,
        addrs: [String; 4],
        identity: &Workload,
        extra: &[&str],
        env: &[(String, String)],
        wait: bool,
    ) -> Self {
        let [user, mesh, evidence, ops] = addrs;
        let log = state_dir.with_extension(format!("log-{}", user.replace([':', '.'], "-")));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["--tee", "simulated", "--sim-dir"])
            .arg(sim_dir())
            .args(["--sim-host-data", &identity.host_data_hex()])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--user-addr", &user])
            .args(["--mesh-addr", &mesh])
            .args(["--evidence-addr", &evidence])
            .args(["--ops-addr", &ops])
            .args(["--log-level", "info,coordinator=debug"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let process = Self {
            child,
            state_dir: state_dir.to_path_buf(),
            user,
            mesh,
            evidence,
            ops,
            log,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: env.to_vec(),
            identity: identity.clone(),
        };
        if wait {
            process.wait_for("/probe/startup", 200, Duration::from_secs(30));
        }
        process
    }

    /// SIGKILL, then a new process on the same addresses, flags and state directory.
    pub fn kill9_and_restart(mut self) -> Self {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let addrs = [&self.user, &self.mesh, &self.evidence, &self.ops].map(String::clone);
        let extra: Vec<String> = std::mem::take(&mut self.extra);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Self::start_with(
            &self.state_dir.clone(),
            addrs,
            &self.identity.clone(),
            &extra,
            &self.env.clone(),
            true,
        )
    }

    /// Polls an ops path until it answers `status`.
    pub fn wait_for(&self, path: &str, status: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((found, _)) = http_get(&self.ops, path)
                && found == status
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer {status} within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn readiness(&self) -> u16 {
        http_get(&self.ops, "/probe/readiness").unwrap().0
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A user-API client attesting this Coordinator against `manifest`'s reference values.
    pub fn user_client(&self, key: Option<AtlsKey>) -> CoordinatorClient {
        let mut atls = AtlsClient::new(coordinator_validator());
        if let Some(key) = key {
            atls = atls.with_key(Arc::new(key));
        }
        CoordinatorClient::new(self.user.clone(), atls)
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A validator for the simulated Coordinator: the environment's reference values and the
/// Coordinator's HOST_DATA.
pub fn coordinator_validator() -> AtlsValidator {
    let (_, env) = environment();
    AtlsValidator::new(contrast_attest::Verifier::new(
        &[env.reference_values()],
        contrast_attest::AppraisalPolicy::default()
            .with_expected_host_data(Some(vec![coordinator_workload().host_data()]))
            .with_crl(contrast_attest::CrlPolicy::BestEffort),
    ))
}

/// The workload owner's key as an aTLS client key.
pub fn owner_atls_key(key: &WorkloadOwnerPrivateKey) -> AtlsKey {
    let pem = key.to_sec1_pem().unwrap();
    AtlsKey::from_p384(&p384::ecdsa::SigningKey::from(
        p384::SecretKey::from_sec1_pem(&pem).unwrap(),
    ))
    .unwrap()
}

/// Runs an initializer for `workload` against `coordinator` writing under `root`.
pub fn run_initializer(
    coordinator: &CoordinatorProcess,
    workload: &Workload,
    root: &Path,
    extra: &[&str],
) -> Output {
    Command::new(sibling_binary("initializer"))
        .args(["--coordinator", &coordinator.mesh])
        .arg("--root")
        .arg(root)
        .arg("--done-file")
        .arg(root.join("done"))
        .args(["--tee", "simulated", "--sim-dir"])
        .arg(sim_dir())
        .args(["--sim-host-data", &workload.host_data_hex()])
        .args(["--retry-min", "100ms", "--retry-max", "200ms"])
        .args(extra)
        .output()
        .unwrap()
}

/// Another workspace binary, next to ours in the target directory. `cargo test --workspace`
/// builds every package's binaries before any test runs; with `-p coordinator` alone, build it
/// first.
pub fn sibling_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_coordinator")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p {name}` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// `GET path` over HTTP/1.1 on a plain port: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `POST path` with a content type and body: (status, body).
pub fn http_post(
    addr: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_http(addr, &request)
}

/// Sends raw bytes and parses the status line and body of the answer.
pub fn raw_http(addr: &str, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
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
