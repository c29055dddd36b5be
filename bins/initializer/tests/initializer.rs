//! The built `initializer` in simulated mode against an in-test mesh API (gRPC over mutual
//! aTLS on 127.0.0.1, appraising the initializer with the environment's reference values).
//! The stand-in attests as a simulated VM with the Coordinator's HOST_DATA, and the initializer
//! is given the matching Coordinator identity (as `contrast generate` gives it, in
//! `CONTRAST_COORDINATOR_IDENTITY`), unless a test says otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contrast_attest::atls::{AtlsServer, AtlsValidator, PeerSlot};
use contrast_attest::{AppraisalPolicy, CrlPolicy, Verifier};
use contrast_core::api::{ErrorCode, MeshCertResponse};
use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;
use contrast_testkit::atls_stub::{Answer, AtlsStub};
use contrast_testkit::fixtures::{coordinator_workload, environment};
use contrast_testkit::net::free_port;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

const MESH_CA: &str = "-----BEGIN CERTIFICATE-----\nbWVzaCBjYQ==\n-----END CERTIFICATE-----\n";
const CERT_CHAIN: &str = "-----BEGIN CERTIFICATE-----\nbGVhZg==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\naW50ZXJtZWRpYXRl\n-----END CERTIFICATE-----\n";
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\ncm9vdA==\n-----END CERTIFICATE-----\n";

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

type Handler = Arc<dyn Fn(&PeerSlot) -> Answer + Send + Sync>;

/// The fake mesh API: per connection a fresh aTLS config requiring the initializer's
/// attestation; records each connection's peer slot.
struct MeshServer {
    addr: SocketAddr,
    stub: AtlsStub,
}

/// The identity of the stand-in Coordinator: the environment's reference values and the
/// Coordinator's HOST_DATA.
fn coordinator_identity() -> CoordinatorIdentity {
    let (_, env) = environment();
    CoordinatorIdentity::new(
        vec![coordinator_workload().host_data()],
        vec![env.reference_values()],
    )
    .unwrap()
}

impl MeshServer {
    fn start(handler: Handler) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler)
    }

    /// A stand-in attesting as a simulated VM with the Coordinator's HOST_DATA.
    fn start_on(addr: SocketAddr, handler: Handler) -> Self {
        Self::start_as(addr, Some(coordinator_workload().host_data()), handler)
    }

    /// A stand-in attesting as a simulated VM with `host_data`, or, with `None`, a plain TLS
    /// server (a self-signed certificate without evidence): what anyone on the network can run.
    fn start_as(addr: SocketAddr, host_data: Option<[u8; 32]>, handler: Handler) -> Self {
        let (_, env) = environment();
        let server_issuer =
            host_data.map(|host_data| env.issuer(env.guest(random(), host_data).unwrap()));
        let atls = AtlsServer::new(server_issuer).with_client_validator(AtlsValidator::new(
            Verifier::new(
                &[env.reference_values()],
                // The simulated ARK signs no CRL.
                AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort),
            ),
        ));
        let stub = AtlsStub::start(
            addr,
            atls,
            Arc::new(move |method: &str, slot: &PeerSlot| {
                if method == contrast_grpc::method::NEW_MESH_CERT {
                    handler(slot)
                } else {
                    Answer::Refuse(tonic::Status::unimplemented(method.to_owned()))
                }
            }),
        )
        .unwrap();
        Self {
            addr: stub.addr(),
            stub,
        }
    }

    fn slots(&self) -> Vec<Arc<PeerSlot>> {
        self.stub.slots()
    }
}

fn certificate_response(secret: Vec<u8>) -> Handler {
    Arc::new(move |_: &PeerSlot| {
        let response = MeshCertResponse {
            mesh_ca_cert: MESH_CA.as_bytes().to_vec(),
            cert_chain: CERT_CHAIN.as_bytes().to_vec(),
            root_ca_cert: ROOT_CA.as_bytes().to_vec(),
            workload_secret: Zeroizing::new(secret.clone()),
        };
        Answer::MeshCert(response.into())
    })
}

/// A running initializer; killed on drop. Its stderr is collected by a thread.
struct Initializer {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Initializer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Initializer {
    /// An initializer given the stand-in's identity.
    fn spawn(coordinator: &str, pod: &Pod, extra: &[&str]) -> Self {
        Self::spawn_expecting(coordinator, pod, Some(&coordinator_identity()), extra)
    }

    /// An initializer given `identity` in its environment (none with `None`).
    fn spawn_expecting(
        coordinator: &str,
        pod: &Pod,
        identity: Option<&CoordinatorIdentity>,
        extra: &[&str],
    ) -> Self {
        let (_, env) = environment();
        let mut command = Command::new(env!("CARGO_BIN_EXE_initializer"));
        command.env_remove(COORDINATOR_IDENTITY_ENV);
        if let Some(identity) = identity {
            command.env(COORDINATOR_IDENTITY_ENV, identity.to_json());
        }
        let mut child = command
            .args(["--coordinator", coordinator])
            .arg("--root")
            .arg(&pod.root)
            .arg("--done-file")
            .arg(&pod.done)
            .args(["--retry-min", "20ms", "--retry-max", "100ms"])
            .args(["--tee", "simulated", "--sim-dir"])
            .arg(env.dir())
            .args(["--sim-host-data", &hex::encode(pod.host_data)])
            .args(extra)
            .env_remove("COORDINATOR_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        Self { child, stderr }
    }

    /// Waits for the exit (a hang guard, not a pass/fail timing) and the whole stderr.
    fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "initializer did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// A pod's shared volume, done marker and HOST_DATA.
struct Pod {
    _dir: tempfile::TempDir,
    root: PathBuf,
    done: PathBuf,
    host_data: [u8; 32],
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            root: dir.path().join("contrast"),
            done: dir.path().join("done"),
            host_data: random(),
            _dir: dir,
        }
    }

    fn tls(&self, name: &str) -> PathBuf {
        self.root.join("tls-config").join(name)
    }

    fn secret(&self) -> PathBuf {
        self.root.join("secrets").join("workload-secret-seed")
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn key_spki(pod: &Pod) -> Vec<u8> {
    let pem = fs::read_to_string(pod.tls("key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let key = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    key.public_key().to_public_key_der().unwrap().into_vec()
}

fn unused_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn writes_the_files_with_upstream_modes_and_replaces_them_on_rerun() {
    let secret: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa0).collect();
    let server = MeshServer::start(certificate_response(secret.clone()));
    let pod = Pod::new();

    let (status, stderr) = Initializer::spawn(&server.addr.to_string(), &pod, &[]).wait();
    assert_eq!(status.code(), Some(0), "{stderr}");

    // The Coordinator saw an attested VM with this pod's HOST_DATA.
    let slots = server.slots();
    assert_eq!(slots.len(), 1);
    let peer = slots[0].peer().unwrap();
    assert_eq!(peer.attestation.as_ref().unwrap().host_data, pod.host_data);

    assert_eq!(mode(&pod.root.join("tls-config")), 0o755);
    assert_eq!(mode(&pod.root.join("secrets")), 0o755);
    for (name, contents) in [
        ("mesh-ca.pem", MESH_CA),
        ("certChain.pem", CERT_CHAIN),
        ("coordinator-root-ca.pem", ROOT_CA),
    ] {
        assert_eq!(
            fs::read_to_string(pod.tls(name)).unwrap(),
            contents,
            "{name}"
        );
        assert_eq!(mode(&pod.tls(name)), 0o444, "{name}");
    }
    assert_eq!(mode(&pod.tls("key.pem")), 0o400);
    // key.pem holds the key of the TLS client certificate the Coordinator saw.
    assert_eq!(key_spki(&pod), peer.spki_der);
    assert_eq!(
        fs::read_to_string(pod.secret()).unwrap(),
        hex::encode(&secret)
    );
    assert_eq!(mode(&pod.secret()), 0o400);
    assert_eq!(fs::read(&pod.done).unwrap(), b"");
    assert_eq!(mode(&pod.done), 0o644);
    // Nothing but the files (no temp files left behind).
    let mut names: Vec<_> = fs::read_dir(pod.root.join("tls-config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "certChain.pem",
            "coordinator-root-ca.pem",
            "key.pem",
            "mesh-ca.pem"
        ]
    );
    // The secret is not logged.
    assert!(!stderr.contains(&hex::encode(&secret)), "{stderr}");

    // A rerun over the read-only files replaces them: a new key, the one the server saw now.
    let first_spki = key_spki(&pod);
    let (status, stderr) = Initializer::spawn(&server.addr.to_string(), &pod, &[]).wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let second_peer = server.slots()[1].peer().unwrap();
    assert_eq!(key_spki(&pod), second_peer.spki_der);
    assert_ne!(key_spki(&pod), first_spki);
    assert_eq!(mode(&pod.tls("key.pem")), 0o400);
}

#[test]
fn no_secret_file_without_a_workload_secret() {
    let server = MeshServer::start(certificate_response(Vec::new()));
    let pod = Pod::new();
    let (status, stderr) = Initializer::spawn(&server.addr.to_string(), &pod, &[]).wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(fs::read_to_string(pod.tls("mesh-ca.pem")).unwrap(), MESH_CA);
    assert!(!pod.secret().exists());
    assert!(pod.done.exists());
}

#[test]
fn retries_while_the_coordinator_is_down_and_succeeds_once_it_is_up() {
    let addr = unused_port();
    let pod = Pod::new();
    let mut initializer = Initializer::spawn(&addr.to_string(), &pod, &[]);
    initializer.wait_for_log("mesh certificate request failed; retrying");
    assert!(!pod.done.exists());
    let server = MeshServer::start_on(addr, certificate_response(vec![1; 64]));
    let (status, stderr) = initializer.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to the coordinator at {addr}")),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(pod.secret()).unwrap(), "01".repeat(64));
    assert!(pod.done.exists());
    assert_eq!(server.slots().len(), 1);
}

#[test]
fn refusal_reason_is_logged_and_max_attempts_ends_the_run() {
    let reason = "policy hash 1234 not found in manifest";
    let server = MeshServer::start(Arc::new(move |_: &PeerSlot| {
        Answer::Refuse(contrast_grpc::status(&ErrorCode::PermissionDenied, reason))
    }));
    let pod = Pod::new();
    let (status, stderr) = Initializer::spawn(
        &server.addr.to_string(),
        &pod,
        &["--max-attempts", "2", "--log-format", "json"],
    )
    .wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(server.slots().len(), 2);
    assert!(!pod.done.exists());
    assert!(!pod.root.join("tls-config").exists());

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let retry = lines
        .iter()
        .find(|l| l["fields"]["message"] == "mesh certificate request failed; retrying")
        .unwrap_or_else(|| panic!("no retry line in {stderr}"));
    let logged = retry["fields"]["error"].as_str().unwrap();
    assert!(
        logged.contains("PermissionDenied (permission_denied)"),
        "{logged}"
    );
    assert!(logged.contains(reason), "{logged}");
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    let final_error = last["fields"]["error"].as_str().unwrap();
    assert!(
        final_error.contains("no mesh certificate after 2 attempt(s)"),
        "{final_error}"
    );
    assert!(final_error.contains(reason), "{final_error}");
}

#[test]
fn sigterm_while_waiting_exits_with_143() {
    let addr = unused_port();
    let pod = Pod::new();
    let mut initializer = Initializer::spawn(&addr.to_string(), &pod, &[]);
    initializer.wait_for_log("mesh certificate request failed; retrying");
    let kill = Command::new("kill")
        .args(["-TERM", &initializer.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, stderr) = initializer.wait();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    assert!(!pod.done.exists());
}

#[test]
fn help_explains_the_flow_files_and_exit_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_initializer"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "tls-config/certChain.pem",
        "secrets/workload-secret-seed",
        "0400",
        "--max-attempts",
        "--sim-host-data",
        "143",
        "COORDINATOR_HOST",
        "--coordinator-identity",
        "CONTRAST_COORDINATOR_IDENTITY",
        "--insecure-trust-any-coordinator",
        "rogue server",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// What a rogue server hands out: its own CA and a secret it knows.
fn attacker_response() -> Handler {
    certificate_response(b"attacker-chosen workload secret".to_vec())
}

/// Asserts that the initializer wrote nothing a workload could use.
fn assert_nothing_written(pod: &Pod) {
    assert!(!pod.done.exists(), "the done marker was written");
    assert!(
        !pod.root.join("tls-config").exists(),
        "certificates were written"
    );
    assert!(!pod.secret().exists(), "a workload secret was written");
}

/// The attack: a plain TLS server (no evidence) answers the mesh certificate request with an
/// attacker's CA and secret. An initializer that knows its Coordinator refuses it every time
/// and never marks the pod done.
#[test]
fn refuses_a_plain_tls_server_that_answers_with_an_attackers_ca_and_secret() {
    let rogue = MeshServer::start_as(unused_port(), None, attacker_response());
    let pod = Pod::new();
    let (status, stderr) =
        Initializer::spawn(&rogue.addr.to_string(), &pod, &["--max-attempts", "2"]).wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_nothing_written(&pod);
    assert!(
        stderr.contains("mesh certificate request failed; retrying"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no mesh certificate after 2 attempt(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("attestation"), "{stderr}");
}

/// A genuine simulated VM, but not the Coordinator this pod was generated for (another
/// HOST_DATA: another policy, e.g. a workload pod or a modified Coordinator).
#[test]
fn refuses_a_coordinator_with_another_policy_hash() {
    let other = MeshServer::start_as(unused_port(), Some(random()), attacker_response());
    let pod = Pod::new();
    let (status, stderr) =
        Initializer::spawn(&other.addr.to_string(), &pod, &["--max-attempts", "2"]).wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_nothing_written(&pod);
    assert!(stderr.to_lowercase().contains("host_data"), "{stderr}");
}

/// The Coordinator's HOST_DATA, but reference values of another simulated platform (another
/// ARK): the evidence does not chain to the pinned root.
#[test]
fn refuses_a_coordinator_that_does_not_match_the_reference_values() {
    let server = MeshServer::start(attacker_response());
    let (_, env) = environment();
    let mut values = env.reference_values();
    values.simulated_ark_fingerprint = Some(hex::encode(random::<32>()));
    let identity =
        CoordinatorIdentity::new(vec![coordinator_workload().host_data()], vec![values]).unwrap();
    let pod = Pod::new();
    let (status, stderr) = Initializer::spawn_expecting(
        &server.addr.to_string(),
        &pod,
        Some(&identity),
        &["--max-attempts", "2"],
    )
    .wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_nothing_written(&pod);
    assert!(stderr.to_lowercase().contains("ark"), "{stderr}");
}

/// Without an identity the initializer does not start, and says how to give one.
#[test]
fn needs_the_coordinator_identity_or_the_explicit_opt_out() {
    let pod = Pod::new();
    let (status, stderr) =
        Initializer::spawn_expecting("127.0.0.1:1", &pod, None, &["--max-attempts", "1"]).wait();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(COORDINATOR_IDENTITY_ENV), "{stderr}");
    assert!(
        stderr.contains("--insecure-trust-any-coordinator"),
        "{stderr}"
    );
    assert_nothing_written(&pod);

    // A malformed identity is a usage error that names the problem.
    let (status, stderr) = Initializer::spawn_expecting(
        "127.0.0.1:1",
        &pod,
        None,
        &["--coordinator-identity", "{\"PolicyHashes\":[]}"],
    )
    .wait();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing field `SnpReferenceValues`"),
        "{stderr}"
    );
}

/// The explicit opt-out trusts any server (upstream's behaviour) and says so loudly.
#[test]
fn the_insecure_opt_out_trusts_any_server_and_warns() {
    let rogue = MeshServer::start_as(unused_port(), None, certificate_response(vec![5; 32]));
    let pod = Pod::new();
    let (status, stderr) = Initializer::spawn_expecting(
        &rogue.addr.to_string(),
        &pod,
        None,
        &["--insecure-trust-any-coordinator"],
    )
    .wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("NOT attested"), "{stderr}");
    assert!(pod.done.exists());
}
