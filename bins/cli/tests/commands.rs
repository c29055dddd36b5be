//! End-to-end tests of `contrast set`, `verify`, `recover` and `demo`: the built `contrast`
//! binary against a real `coordinator` process on loopback, with `initializer` processes as
//! the workloads. `coordinator` and `initializer` must be built first, with their `simulated`
//! feature (`cargo build -p coordinator -p initializer --features
//! coordinator/simulated,initializer/simulated`; the README's `cargo test --workspace` command
//! does it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;
use contrast_core::manifest::{ManifestDocument, Role};
use contrast_core::owner::SeedshareOwnerPrivateKey;
use contrast_core::seedshare::SeedShareDocument;
use contrast_testkit::atls_stub::AtlsStub;
use contrast_testkit::fixtures;
use contrast_testkit::process::{
    Addrs, CoordinatorProcess, Launch, LogFile, initializer_command, workspace_binary,
};

const CONTRAST: &str = env!("CARGO_BIN_EXE_contrast");

fn contrast(workspace: &Path, args: &[&str]) -> Output {
    Command::new(CONTRAST)
        .arg("--workspace-dir")
        .arg(workspace)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
}

/// A seed-share owner key as PKCS#8 PEM: RSA-2048, because RSA-4096 generation (what generate
/// does when the file is missing) is slow in debug builds.
fn write_seedshare_owner_key(workspace: &Path) {
    std::fs::write(
        workspace.join("seedshare-owner.pem"),
        fixtures::pkcs8_pem(&fixtures::rsa2048_pkcs8()),
    )
    .unwrap();
}

fn app_yaml(services: &[&str]) -> String {
    services
        .iter()
        .map(|name| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      runtimeClassName: contrast-cc\n      containers:\n        - name: {name}\n          image: example/{name}:1\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A generated workspace: simulated environment, app.yml (web, api), coordinator.yml, manifest.
struct Workspace {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl Workspace {
    fn generate() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        assert_exit(
            &contrast(
                &dir,
                &["simulate", "--dir", dir.join("sim").to_str().unwrap()],
            ),
            0,
        );
        write_seedshare_owner_key(&dir);
        std::fs::write(dir.join("app.yml"), app_yaml(&["web", "api"])).unwrap();
        let workspace = Self { _temp: temp, dir };
        let args = workspace.generate_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_exit(&contrast(&workspace.dir, &args), 0);
        workspace
    }

    /// The `contrast generate` arguments of this workspace.
    fn generate_args(&self) -> Vec<String> {
        [
            "generate",
            "--reference-values",
            "Simulated-SNP",
            "--sim-dir",
            self.path("sim").to_str().unwrap(),
            "--insecure-allow-all-policy",
            "--coordinator",
            "--coordinator-replicas",
            "1",
            self.path("app.yml").to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn manifest(&self) -> ManifestDocument {
        ManifestDocument::parse(std::fs::read(self.path("manifest.json")).unwrap()).unwrap()
    }

    /// The policy key of the coordinator and of a service.
    fn host_data(&self, service: &str) -> String {
        let manifest = self.manifest();
        manifest
            .manifest()
            .policies
            .iter()
            .find(|(_, entry)| {
                if service == "coordinator" {
                    entry.role == Role::Coordinator
                } else {
                    entry
                        .workload_secret_id
                        .ends_with(&format!("/Deployment/default/{service}"))
                }
            })
            .map(|(digest, _)| digest.clone())
            .unwrap()
    }

    /// The Coordinator identity generate gave `service`'s initializer (its environment in
    /// app.yml), as the pod would get it.
    fn identity(&self, service: &str) -> CoordinatorIdentity {
        use serde::Deserialize as _;
        let text = std::fs::read_to_string(self.path("app.yml")).unwrap();
        let deployment = serde_norway::Deserializer::from_str(&text)
            .map(|document| serde_norway::Value::deserialize(document).unwrap())
            .find(|d| d["metadata"]["name"].as_str() == Some(service))
            .unwrap();
        let json = deployment["spec"]["template"]["spec"]["initContainers"][0]["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(COORDINATOR_IDENTITY_ENV))
            .and_then(|e| e["value"].as_str())
            .unwrap()
            .to_owned();
        CoordinatorIdentity::from_json(&json).unwrap()
    }

    fn yamls(&self) -> [String; 2] {
        [
            self.path("app.yml").to_str().unwrap().to_owned(),
            self.path("coordinator.yml").to_str().unwrap().to_owned(),
        ]
    }

    /// The manifest with one more SAN on `service`'s policy, in Go JSON.
    fn manifest_with_san(&self, service: &str, san: &str) -> Vec<u8> {
        let digest = self.host_data(service);
        let mut manifest = self.manifest().manifest().clone();
        manifest
            .policies
            .get_mut(&digest)
            .unwrap()
            .sans
            .get_or_insert_with(Vec::new)
            .push(san.to_owned());
        manifest.to_go_json().unwrap()
    }
}

/// A `coordinator` process on loopback over the workspace's simulated environment, started by
/// `spawn` (killed on drop).
struct Coordinator {
    launch: Launch,
    process: Option<CoordinatorProcess>,
    user: String,
    mesh: String,
    state: PathBuf,
}

impl Coordinator {
    /// A Coordinator on fresh ports, not yet running.
    fn new(workspace: &Workspace) -> Self {
        let launch = Launch::new(
            workspace_binary("coordinator"),
            workspace.path("sim"),
            &workspace.host_data("coordinator"),
            workspace.path("state"),
            Addrs::free().unwrap(),
        );
        Self {
            user: launch.addrs.user.clone(),
            mesh: launch.addrs.mesh.clone(),
            state: launch.state_dir.clone(),
            launch,
            process: None,
        }
    }

    fn spawn(&mut self) {
        let process = CoordinatorProcess::spawn(self.launch.clone(), LogFile::Truncate).unwrap();
        process.wait_for("/probe/startup", 200, Duration::from_secs(30));
        self.process = Some(process);
    }

    fn kill9_and_restart(&mut self) {
        self.process.take().unwrap().kill9().unwrap();
        self.spawn();
    }

    fn initializer(
        &self,
        identity: &CoordinatorIdentity,
        service_host_data: &str,
        root: &Path,
    ) -> Output {
        initializer_command(
            &self.mesh,
            identity,
            &self.launch.sim_dir,
            service_host_data,
            root,
        )
        .args(["--max-attempts", "5"])
        .output()
        .unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn set_verify_update_restart_recover_against_a_real_coordinator() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    let c = coordinator.user.clone();
    let [app, coordinator_yml] = ws.yamls();

    // The policies must be exactly the manifest's: without the Coordinator's resources one
    // policy key is missing.
    let output = contrast(&ws.dir, &["set", "-c", &c, "--timeout", "5s", &app]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(&format!(
            "in the manifest but not given: [{}]",
            ws.host_data("coordinator")
        )),
        "{}",
        stderr(&output)
    );
    assert!(!ws.path("coordinator-root-ca.pem").exists());

    // A manifest whose reference measurement is another one does not attest this Coordinator.
    let mut other = ws.manifest().manifest().clone();
    other.reference_values.snp[0].trusted_measurement = "00".repeat(48);
    std::fs::write(
        ws.path("other-measurement.json"),
        other.to_go_json().unwrap(),
    )
    .unwrap();
    let other_manifest = ws.path("other-measurement.json");
    let other_manifest = other_manifest.to_str().unwrap();

    // First set, started before the Coordinator: it retries until the Coordinator answers.
    let mut set = Command::new(CONTRAST)
        .arg("--workspace-dir")
        .arg(&ws.dir)
        .args(["set", "-c", &c, "--timeout", "60s", &app, &coordinator_yml])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut set_stderr = std::io::BufReader::new(set.stderr.take().unwrap());
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut set_stderr, &mut first_line).unwrap();
    assert!(
        first_line
            .starts_with("asking the coordinator for its manifests: attempt 1 failed, retrying in 1s: not reachable yet"),
        "{first_line}"
    );
    coordinator.spawn();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut set_stderr, &mut rest).unwrap();
    let status = set.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{first_line}{rest}");
    let root_ca = read(&ws.path("coordinator-root-ca.pem"));
    assert!(String::from_utf8_lossy(&root_ca).starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(ws.path("mesh-ca.pem").exists());
    let shares_json = read(&ws.path("seed-shares.json"));
    let shares = SeedShareDocument::from_json(&shares_json).unwrap();
    let owner = SeedshareOwnerPrivateKey::from_pem(
        &std::fs::read_to_string(ws.path("seedshare-owner.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        shares
            .share_for(&owner.public_key())
            .unwrap()
            .decrypt(&owner)
            .unwrap()
            .len(),
        64
    );

    // A workload gets its certificate.
    let web = ws.host_data("web");
    let before = ws.path("web-before");
    let output = coordinator.initializer(&ws.identity("web"), &web, &before);
    assert!(output.status.success(), "{}", stderr(&output));

    // verify: files, modes, the head.
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 0);
    // What was attested, in full, as the manifest spells it.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let measurement = ws.manifest().manifest().reference_values.snp[0]
        .trusted_measurement
        .to_lowercase();
    assert!(
        stdout.contains(&format!("measurement  {measurement}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("policy hash  {}", ws.host_data("coordinator"))),
        "{stdout}"
    );
    assert!(
        stdout.contains("attested: Simulated-SNP on Milan"),
        "{stdout}"
    );
    let verify = ws.path("verify");
    assert_eq!(mode(&verify), 0o755);
    assert_eq!(
        read(&verify.join("manifest.0.json")),
        read(&ws.path("manifest.json"))
    );
    assert_eq!(mode(&verify.join("manifest.0.json")), 0o644);
    assert!(!verify.join("manifest.1.json").exists());
    for service in ["web", "api", "coordinator"] {
        let initdata = verify.join(format!("initdata.{}.toml", ws.host_data(service)));
        assert_eq!(mode(&initdata), 0o644, "{}", initdata.display());
    }
    assert_eq!(read(&verify.join("coordinator-root-ca.pem")), root_ca);
    let first_head = String::from_utf8(read(&verify.join("latest-transition"))).unwrap();
    assert_eq!(first_head.len(), 64);
    assert!(first_head.chars().all(|c| c.is_ascii_hexdigit()));

    // Another measurement: attestation refused (exit 5) by verify and set, naming the check.
    let output = contrast(&ws.dir, &["verify", "-c", &c, "-m", other_manifest]);
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("failed attestation"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).to_lowercase().contains("measurement"),
        "{}",
        stderr(&output)
    );
    let output = contrast(
        &ws.dir,
        &[
            "set",
            "-c",
            &c,
            "-m",
            other_manifest,
            &app,
            &coordinator_yml,
        ],
    );
    assert_exit(&output, 5);

    // Update: a new SAN for web. The seed shares are not rewritten.
    std::fs::write(
        ws.path("manifest.json"),
        ws.manifest_with_san("web", "web.example"),
    )
    .unwrap();
    let output = contrast(
        &ws.dir,
        &["set", "-c", &c, "--timeout", "30s", &app, &coordinator_yml],
    );
    assert_exit(&output, 0);
    assert_eq!(read(&ws.path("seed-shares.json")), shares_json);
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 0);
    assert_eq!(
        read(&verify.join("manifest.1.json")),
        read(&ws.path("manifest.json"))
    );
    let second_head = String::from_utf8(read(&verify.join("latest-transition"))).unwrap();
    assert_ne!(second_head, first_head);

    // A local manifest the Coordinator does not run: exit 3.
    let set_manifest = read(&ws.path("manifest.json"));
    std::fs::write(
        ws.path("manifest.json"),
        ws.manifest_with_san("api", "api.example"),
    )
    .unwrap();
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 3);
    assert!(
        stderr(&output).contains("does not match the expected manifest"),
        "{}",
        stderr(&output)
    );
    std::fs::write(ws.path("manifest.json"), &set_manifest).unwrap();

    // A head that is not in the history (rolled back or forked): exit 4, head kept.
    let foreign_head = "ab".repeat(32);
    std::fs::write(verify.join("latest-transition"), &foreign_head).unwrap();
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 4);
    assert!(
        stderr(&output).contains("rolled back or forked"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains(&foreign_head),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        read(&verify.join("latest-transition")),
        foreign_head.as_bytes()
    );
    // The first head is in the history: accepted, and replaced by the current one.
    std::fs::write(verify.join("latest-transition"), &first_head).unwrap();
    assert_exit(
        &contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]),
        0,
    );
    assert_eq!(
        read(&verify.join("latest-transition")),
        second_head.as_bytes()
    );

    // The same in --json.
    let output = contrast(&ws.dir, &["--json", "verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["attested"]["host_data"], ws.host_data("coordinator"));
    assert_eq!(json["attested"]["measurement"], measurement);
    assert_eq!(json["attested"]["chip_id"].as_str().unwrap().len(), 128);

    // Restart: the Coordinator needs recovery; recover with the seed share.
    let mesh_ca_before = read(&ws.path("mesh-ca.pem"));
    coordinator.kill9_and_restart();
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "0s"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("needs_recovery"),
        "{}",
        stderr(&output)
    );
    let output = contrast(&ws.dir, &["recover", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("policy hash  {}", ws.host_data("coordinator"))),
        "{stdout}"
    );
    // The recovery made a new mesh CA: the workspace's copy is replaced, not left stale.
    let mesh_ca_after = read(&ws.path("mesh-ca.pem"));
    assert_ne!(mesh_ca_after, mesh_ca_before);
    assert!(stdout.contains("mesh-ca.pem"), "{stdout}");
    let output = contrast(&ws.dir, &["recover", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("already_recovered"),
        "{}",
        stderr(&output)
    );

    // After recovery: same history, and a new certificate from the same root key.
    let output = contrast(&ws.dir, &["verify", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 0);
    assert_eq!(read(&verify.join("mesh-ca.pem")), mesh_ca_after);
    assert_eq!(
        read(&verify.join("latest-transition")),
        second_head.as_bytes()
    );
    let after = ws.path("web-after");
    let output = coordinator.initializer(&ws.identity("web"), &web, &after);
    assert!(output.status.success(), "{}", stderr(&output));
    let spki = |pem: &[u8]| {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let cert = CertificateDer::from_pem_slice(pem).unwrap();
        let anchor = webpki::anchor_from_trusted_cert(&cert).unwrap();
        anchor.subject_public_key_info.as_ref().to_vec()
    };
    // The root certificate is re-issued (fresh serial); its key derives from the seed.
    assert_eq!(
        spki(&read(&after.join("tls-config/coordinator-root-ca.pem"))),
        spki(&root_ca)
    );
    assert_ne!(
        read(&after.join("tls-config/certChain.pem")),
        read(&before.join("tls-config/certChain.pem"))
    );
}

/// Mistakes that retrying cannot fix are answered at once (no "retrying" line), with what to
/// do; only what can change (a Coordinator starting or recovering) is waited for.
#[test]
fn permanent_connection_errors_are_answered_at_once() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    coordinator.spawn();
    let addrs = coordinator.launch.addrs.clone();
    let no_retry = |output: &Output| {
        assert!(
            !stderr(output).contains("attempt 1 failed"),
            "retried: {}",
            stderr(output)
        );
    };

    // Not initialised: verify has nothing to verify.
    let output = contrast(
        &ws.dir,
        &[
            "--log-level",
            "debug",
            "verify",
            "-c",
            &addrs.user,
            "--timeout",
            "120s",
        ],
    );
    assert_exit(&output, 1);
    no_retry(&output);
    // Logs on a pipe carry no colour codes.
    assert!(stderr(&output).contains("DEBUG"), "{}", stderr(&output));
    assert!(!stderr(&output).contains('\x1b'), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no manifest is set yet: run `contrast set` first"),
        "{}",
        stderr(&output)
    );

    // A URL is not an address: usage error with the form that works.
    let url = format!("http://{}/", addrs.user);
    let output = contrast(&ws.dir, &["verify", "-c", &url]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("without a scheme"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains(&format!("use {}", addrs.user)),
        "{}",
        stderr(&output)
    );

    // A name that does not resolve.
    let output = contrast(
        &ws.dir,
        &[
            "verify",
            "-c",
            "coordinator.invalid:1313",
            "--timeout",
            "120s",
        ],
    );
    assert_exit(&output, 1);
    no_retry(&output);
    assert!(
        stderr(&output).contains("cannot resolve the coordinator address coordinator.invalid:1313"),
        "{}",
        stderr(&output)
    );

    // The Coordinator's other ports: plain HTTP ones do not speak TLS; the mesh API does not
    // serve the user API.
    for plain in [&addrs.ops, &addrs.evidence] {
        let output = contrast(&ws.dir, &["verify", "-c", plain, "--timeout", "120s"]);
        assert_exit(&output, 1);
        no_retry(&output);
        assert!(
            stderr(&output).contains("does not speak TLS")
                && stderr(&output).contains("the user API is port 1313"),
            "{}",
            stderr(&output)
        );
    }
    let output = contrast(&ws.dir, &["verify", "-c", &addrs.mesh, "--timeout", "120s"]);
    assert_exit(&output, 1);
    no_retry(&output);
    assert!(
        stderr(&output).contains("does not serve the Coordinator's user API"),
        "{}",
        stderr(&output)
    );

    // Without a port, the user API's: the message names the address tried.
    let output = contrast(&ws.dir, &["verify", "-c", "127.0.0.1", "--timeout", "0s"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("127.0.0.1:1313"),
        "{}",
        stderr(&output)
    );
    // A cause is said once.
    let text = stderr(&output);
    let first_line = text
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap();
    assert_eq!(
        first_line.matches("Connection refused").count(),
        1,
        "{text}"
    );
}

#[test]
fn version_names_the_commit_and_the_platforms() {
    let output = Command::new(CONTRAST).arg("--version").output().unwrap();
    assert_exit(&output, 0);
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("contrast 0.1.0 (commit "), "{text}");
    assert!(!first.contains("(commit )"), "{text}");
    assert!(
        text.contains("verifies: SEV-SNP on Milan, Genoa and Turin"),
        "{text}"
    );
    for binary in ["coordinator", "initializer"] {
        let output = Command::new(workspace_binary(binary))
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("(commit "), "{binary}: {text}");
        assert!(
            text.contains("TEE: SEV-SNP guest reports"),
            "{binary}: {text}"
        );
    }
}

#[test]
fn set_without_policies_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = contrast(dir.path(), &["set", "-c", "127.0.0.1:1"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("no policies to send"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn set_refuses_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), b"{}").unwrap();
    std::fs::write(dir.path().join("policy.toml"), b"policy").unwrap();
    let output = contrast(
        dir.path(),
        &[
            "set",
            "-c",
            "127.0.0.1:1",
            "--policy-file",
            dir.path().join("policy.toml").to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("is not valid"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn demo_completes_and_prints_its_summary() {
    workspace_binary("coordinator");
    workspace_binary("initializer");
    // Not under `cargo run`: the demo builds nothing (a nested cargo would wait for the lock
    // this test run holds); the test run built the binaries.
    let output = Command::new(CONTRAST)
        .arg("demo")
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" ok ")).count(),
        15,
        "{stdout}"
    );
    assert!(
        stdout.contains("old and new certificates chain to the same root"),
        "{stdout}"
    );
    assert!(stdout.contains("demo complete: 15 steps"), "{stdout}");
    // Command lines only with --show-commands.
    assert!(!stdout.contains("    $ "), "{stdout}");
}

#[test]
fn demo_show_commands_prints_each_steps_command_lines() {
    workspace_binary("coordinator");
    workspace_binary("initializer");
    let output = Command::new(CONTRAST)
        .args(["demo", "--show-commands"])
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shown: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("    $ "))
        .collect();
    // Every step's commands come before its result line, in order.
    let starts = |prefix: &str| shown.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(starts("contrast --workspace-dir "), 8, "{stdout}");
    assert_eq!(starts("coordinator --tee simulated "), 2, "{stdout}");
    assert_eq!(
        starts("CONTRAST_COORDINATOR_IDENTITY='{\"PolicyHashes\""),
        4,
        "{stdout}"
    );
    assert_eq!(starts("kill -9 "), 1, "{stdout}");
    assert_eq!(starts("openssl verify -CAfile "), 2, "{stdout}");
    for needle in [
        " simulate --dir ",
        " generate --reference-values Simulated-SNP ",
        " set -c 127.0.0.1:",
        " verify -c 127.0.0.1:",
        " recover -c 127.0.0.1:",
    ] {
        assert!(
            shown.iter().any(|l| l.contains(needle)),
            "{needle}: {stdout}"
        );
    }
    let lines: Vec<&str> = stdout.lines().collect();
    let simulate = lines
        .iter()
        .position(|l| l.contains(" simulate --dir "))
        .unwrap();
    let first_step = lines.iter().position(|l| l.starts_with("[ 1]")).unwrap();
    assert!(simulate < first_step, "{stdout}");
    // The coordinator's printed HOST_DATA is the manifest's coordinator policy.
    let coordinator = shown
        .iter()
        .find(|l| l.starts_with("coordinator "))
        .unwrap();
    let host_data = coordinator
        .split(" --sim-host-data ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(host_data.len(), 64, "{coordinator}");
    assert!(stdout.contains("demo complete: 15 steps"), "{stdout}");
}

/// `generate --reference-values Simulated-SNP` prints the commands of a local run; the
/// Coordinator they start runs as the manifest's coordinator policy, and the printed initializer
/// command, pointed at this test's Coordinator, gets its workload's certificate.
#[test]
fn the_commands_generate_prints_run_the_deployment() {
    let ws = Workspace::generate();
    let mut args = vec!["--json".to_owned()];
    args.extend(ws.generate_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = contrast(&ws.dir, &args);
    assert_exit(&output, 0);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let commands = summary["commands"].as_array().unwrap().clone();
    let argv = fixtures::printed_argv;
    let flag = fixtures::flag_value;
    let printed_coordinator = argv(&commands[0]);
    assert_eq!(printed_coordinator[0], "coordinator");
    assert_eq!(
        flag(&printed_coordinator, "--sim-host-data"),
        ws.host_data("coordinator")
    );

    // The printed Coordinator command, on this test's free ports and state directory.
    let addrs = Addrs::free().unwrap();
    let state = ws.path("printed-state");
    let mut args = printed_coordinator[1..].to_vec();
    fixtures::replace_flag_values(
        &mut args,
        &[
            ("--user-addr", addrs.user.clone()),
            ("--mesh-addr", addrs.mesh.clone()),
            ("--evidence-addr", addrs.evidence.clone()),
            ("--ops-addr", addrs.ops.clone()),
            ("--state-dir", state.display().to_string()),
        ],
    );
    let mut coordinator = Command::new(workspace_binary("coordinator"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let [app, coordinator_yml] = ws.yamls();
    let set = contrast(
        &ws.dir,
        &[
            "set",
            "-c",
            &addrs.user,
            "--timeout",
            "60s",
            &app,
            &coordinator_yml,
        ],
    );
    let mut initializers = 0;
    let mut result = Ok(());
    if set.status.success() {
        for command in commands.iter().filter(|c| argv(c)[0] == "initializer") {
            let mut args = argv(command)[1..].to_vec();
            let root = ws.path(&format!("printed-{initializers}"));
            fixtures::replace_flag_values(
                &mut args,
                &[
                    ("--coordinator", addrs.mesh.clone()),
                    ("--root", root.display().to_string()),
                    ("--done-file", root.join("done").display().to_string()),
                ],
            );
            let mut initializer = Command::new(workspace_binary("initializer"));
            initializer.args(&args).args(["--max-attempts", "20"]);
            for (name, value) in command["env"].as_object().unwrap() {
                initializer.env(name, value.as_str().unwrap());
            }
            let output = initializer.output().unwrap();
            if !output.status.success() {
                result = Err(stderr(&output));
                break;
            }
            assert!(root.join("tls-config/certChain.pem").exists());
            initializers += 1;
        }
    }
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    assert_exit(&set, 0);
    result.unwrap();
    assert_eq!(initializers, 2);
}

/// The Coordinator's history as its user API serves it, fetched with the library client.
fn fetch_history(ws: &Workspace, addr: &str) -> contrast_core::api::GetManifestsResponse {
    let validator = contrast_sdk::coordinator_validator(ws.manifest().manifest()).unwrap();
    let client =
        contrast_sdk::CoordinatorClient::new(addr, contrast_attest::AtlsClient::new(validator));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.get_manifests())
        .unwrap()
        .value
}

/// A Coordinator stand-in that passes attestation (the simulated platform signs its reports
/// for the Coordinator's HOST_DATA, as the real one's) and answers every request with `body`:
/// what a data owner would see from a Coordinator whose history was tampered with.
fn serve_history(ws: &Workspace, history: contrast_core::api::GetManifestsResponse) -> AtlsStub {
    let env = contrast_tee::SimulatedEnvironment::load(&ws.path("sim")).unwrap();
    let host_data: [u8; 32] = hex::decode(ws.host_data("coordinator"))
        .unwrap()
        .try_into()
        .unwrap();
    let issuer = env.issuer(env.guest([0x5a; 64], host_data).unwrap());
    let history = contrast_grpc::userapi::GetManifestsResponse::from(history);
    AtlsStub::start(
        "127.0.0.1:0".parse().unwrap(),
        contrast_attest::AtlsServer::new(Some(issuer)),
        Arc::new(move |_method, _slot| {
            contrast_testkit::atls_stub::Answer::Manifests(history.clone())
        }),
    )
    .unwrap()
}

#[test]
fn verify_refuses_a_rolled_back_and_a_truncated_history() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    coordinator.spawn();
    let c = coordinator.user.clone();
    let [app, coordinator_yml] = ws.yamls();
    let set = |ws: &Workspace| {
        contrast(
            &ws.dir,
            &["set", "-c", &c, "--timeout", "30s", &app, &coordinator_yml],
        )
    };
    let verify = |ws: &Workspace, c: &str| contrast(&ws.dir, &["verify", "-c", c]);

    assert_exit(&set(&ws), 0);
    assert_exit(&verify(&ws, &c), 0);
    let head_file = coordinator.state.join("transitions/latest");
    let first_signed_head = read(&head_file);
    std::fs::write(
        ws.path("manifest.json"),
        ws.manifest_with_san("web", "web.example"),
    )
    .unwrap();
    assert_exit(&set(&ws), 0);
    assert_exit(&verify(&ws, &c), 0);
    let seen = read(&ws.path("verify/latest-transition"));

    // Truncated: the oldest manifest is left out. The chain rebuilt from the rest does not
    // end in the signed head: exit 6, and verify/ is not touched.
    let mut truncated = fetch_history(&ws, &c);
    assert_eq!(truncated.manifests.len(), 2);
    truncated.manifests.remove(0);
    let impostor = serve_history(&ws, truncated.clone());
    let output = verify(&ws, &impostor.addr().to_string());
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("inconsistent history")
            && stderr(&output).contains("does not match its head"),
        "{}",
        stderr(&output)
    );
    assert_eq!(read(&ws.path("verify/latest-transition")), seen);

    // Rolled back: the store's head is replaced by the older head, which is validly signed.
    // The seed-share owner's recover checks the head its verify saw: the Coordinator refuses
    // to recover the shorter history (exit 4) and stays in recovery mode.
    std::fs::write(&head_file, &first_signed_head).unwrap();
    coordinator.kill9_and_restart();
    let output = contrast(&ws.dir, &["recover", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 4);
    assert!(
        stderr(&output).contains("rolled back")
            && stderr(&output).contains("was not recovered")
            && stderr(&output).contains("--accept-rollback"),
        "{}",
        stderr(&output)
    );
    // Accepted knowingly, it recovers the older history, and says which.
    let output = contrast(
        &ws.dir,
        &["recover", "-c", &c, "--timeout", "30s", "--accept-rollback"],
    );
    assert_exit(&output, 0);
    // The stored head is the transition hash followed by its signature.
    let first_head_hex = hex::encode(&first_signed_head[..32]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&first_head_hex)
            && String::from_utf8_lossy(&output.stdout).contains("1 manifest(s)"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // A data owner's verify still refuses the rolled-back history.
    assert_eq!(fetch_history(&ws, &c).manifests.len(), 1);
    let output = verify(&ws, &c);
    assert_exit(&output, 4);
    assert!(
        stderr(&output).contains("rolled back or forked")
            && stderr(&output).contains(std::str::from_utf8(&seen).unwrap()),
        "{}",
        stderr(&output)
    );
    assert_eq!(read(&ws.path("verify/latest-transition")), seen);
}

/// Issue 19, item 5 (reproduced first): wiping the store and setting the same manifest bytes
/// gives the same head, so the head pin alone let `verify` pass while the root CA key, every
/// workload secret and recoverability changed. The root key is pinned too: exit 7, nothing
/// written, until a deliberate reset is accepted.
#[test]
fn verify_refuses_a_reinitialised_coordinator_unless_the_reset_is_accepted() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    coordinator.spawn();
    let c = coordinator.user.clone();
    let [app, coordinator_yml] = ws.yamls();
    let set = || {
        contrast(
            &ws.dir,
            &["set", "-c", &c, "--timeout", "30s", &app, &coordinator_yml],
        )
    };
    assert_exit(&set(), 0);
    assert_exit(&contrast(&ws.dir, &["verify", "-c", &c]), 0);
    let head = read(&ws.path("verify/latest-transition"));
    let root = read(&ws.path("verify/coordinator-root-ca.pem"));

    // Wiped and set again with the same manifest: the same head, a new seed.
    coordinator.process.take().unwrap().kill9().unwrap();
    std::fs::remove_dir_all(&coordinator.state).unwrap();
    coordinator.spawn();
    assert_exit(&set(), 0);
    let output = contrast(&ws.dir, &["verify", "-c", &c]);
    assert_exit(&output, 7);
    assert!(
        stderr(&output).contains("re-initialised") && stderr(&output).contains("--accept-reset"),
        "{}",
        stderr(&output)
    );
    assert_eq!(read(&ws.path("verify/latest-transition")), head);
    assert_eq!(read(&ws.path("verify/coordinator-root-ca.pem")), root);

    // A deliberate reset is accepted once, then pinned.
    assert_exit(
        &contrast(&ws.dir, &["verify", "-c", &c, "--accept-reset"]),
        0,
    );
    assert_ne!(read(&ws.path("verify/coordinator-root-ca.pem")), root);
    assert_exit(&contrast(&ws.dir, &["verify", "-c", &c]), 0);
}

/// Issue 19, item 4 (reproduced first): the answer to the first set is lost, the CLI sends it
/// again, and the Coordinator (which did set it) refuses the retry as a conflict because the
/// first set declares "no previous transition". The CLI fails loudly, says the seed shares
/// were lost and what to do, and writes no seed-shares.json; before, the retry became an update
/// and the CLI exited 0 without seed shares.
#[test]
fn a_first_set_whose_answer_was_lost_fails_loudly() {
    use contrast_grpc::method;
    use tonic::Status;
    let ws = Workspace::generate();
    let env = contrast_tee::SimulatedEnvironment::load(&ws.path("sim")).unwrap();
    let host_data: [u8; 32] = hex::decode(ws.host_data("coordinator"))
        .unwrap()
        .try_into()
        .unwrap();
    let issuer = env.issuer(env.guest([0x5b; 64], host_data).unwrap());
    let sets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&sets);
    let stub = AtlsStub::start(
        "127.0.0.1:0".parse().unwrap(),
        contrast_attest::AtlsServer::new(Some(issuer)),
        Arc::new(move |called, _slot| {
            use contrast_testkit::atls_stub::Answer;
            let refuse = |code: &contrast_core::api::ErrorCode, message: &str| {
                Answer::Refuse(contrast_grpc::status(code, message))
            };
            if called == method::GET_MANIFESTS {
                return refuse(
                    &contrast_core::api::ErrorCode::NoManifest,
                    "no manifest configured",
                );
            }
            assert_eq!(called, method::SET_MANIFEST);
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                // The set landed, but its answer is lost on the way.
                Answer::Refuse(Status::unavailable("connection reset"))
            } else {
                refuse(
                    &contrast_core::api::ErrorCode::ManifestConflict,
                    "updating Coordinator state: the expected previous transition is not the head",
                )
            }
        }),
    )
    .unwrap();
    let [app, coordinator_yml] = ws.yamls();
    let addr = stub.addr().to_string();
    let output = contrast(
        &ws.dir,
        &[
            "set",
            "-c",
            &addr,
            "--timeout",
            "30s",
            &app,
            &coordinator_yml,
        ],
    );
    assert_exit(&output, 1);
    assert_eq!(sets.load(std::sync::atomic::Ordering::SeqCst), 2);
    let message = stderr(&output);
    assert!(
        message.contains("sent 2 times")
            && message.contains("seed shares were in the lost answer")
            && message.contains("reset the coordinator"),
        "{message}"
    );
    assert!(!ws.path("seed-shares.json").exists());
}

/// Issue 19, item 10: a seed of another deployment, sent with the right seed-share owner key,
/// is refused, and the CLI no longer says only that the Coordinator "refused our key".
#[test]
fn recover_with_another_deployments_seed_names_the_seed() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    coordinator.spawn();
    let c = coordinator.user.clone();
    let [app, coordinator_yml] = ws.yamls();
    assert_exit(
        &contrast(
            &ws.dir,
            &["set", "-c", &c, "--timeout", "30s", &app, &coordinator_yml],
        ),
        0,
    );
    coordinator.kill9_and_restart();
    // A share for the same owner key, of another seed.
    let owners = ws
        .manifest()
        .manifest()
        .seedshare_owner_pub_keys
        .clone()
        .unwrap();
    let other =
        contrast_core::seedshare::encrypt_seed_shares(&[0x42; 64], &[0x24; 32], &owners).unwrap();
    std::fs::write(ws.path("seed-shares.json"), other.to_json().unwrap()).unwrap();
    let output = contrast(&ws.dir, &["recover", "-c", &c, "--timeout", "30s"]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("is not this deployment's")
            && message.contains("seed-shares.json")
            && message.contains("do not match this Coordinator's history"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Guards against locking a deployment (issue 20, item 1)

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn assert_stderr_contains(output: &Output, needle: &str) {
    assert!(
        stderr(output).contains(needle),
        "expected {needle:?} in stderr:\n{}",
        stderr(output)
    );
}

impl Workspace {
    /// Writes `name` with the manifest changed by `edit` (in Go JSON), and returns its path.
    fn write_manifest(
        &self,
        name: &str,
        edit: impl FnOnce(&mut contrast_core::manifest::Manifest),
    ) -> String {
        let mut manifest = self.manifest().manifest().clone();
        edit(&mut manifest);
        let path = self.path(name);
        std::fs::write(&path, manifest.to_go_json().unwrap()).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `set` of `manifest` with the workspace's YAML files, plus `extra` flags.
    fn set(&self, c: &str, manifest: &str, extra: &[&str]) -> Output {
        let [app, coordinator_yml] = self.yamls();
        let mut args = vec!["set", "-c", c, "--timeout", "30s", "-m", manifest];
        args.extend_from_slice(extra);
        args.extend([app.as_str(), coordinator_yml.as_str()]);
        contrast(&self.dir, &args)
    }

    /// The manifest with `WorkloadOwnerPubKeys` misspelt as `WorkloadOwnerPubKey` (the issue's
    /// typo): the owners are silently gone for Go.
    fn manifest_with_owner_typo(&self) -> Vec<u8> {
        let text = String::from_utf8(read(&self.path("manifest.json"))).unwrap();
        assert!(text.contains("\"WorkloadOwnerPubKeys\""));
        text.replace("\"WorkloadOwnerPubKeys\"", "\"WorkloadOwnerPubKey\"")
            .into_bytes()
    }
}

const OWNER_TYPO_LINE: &str = "WorkloadOwnerPubKey: unknown key \"WorkloadOwnerPubKey\" (did you mean \"WorkloadOwnerPubKeys\"?)";

#[test]
fn generate_refuses_a_manifest_with_an_unknown_key_unless_allowed() {
    let ws = Workspace::generate();
    std::fs::write(ws.path("manifest.json"), ws.manifest_with_owner_typo()).unwrap();
    let before = read(&ws.path("manifest.json"));
    let args = |extra: &'static [&'static str]| {
        let mut args = vec![
            "generate".to_owned(),
            "--reference-values".to_owned(),
            "Simulated-SNP".to_owned(),
            "--sim-dir".to_owned(),
            ws.path("sim").to_str().unwrap().to_owned(),
            "--insecure-allow-all-policy".to_owned(),
            "--coordinator".to_owned(),
            "--coordinator-replicas".to_owned(),
            "1".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push(ws.path("app.yml").to_str().unwrap().to_owned());
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        contrast(&ws.dir, &args)
    };

    let output = run(args(&[]));
    assert_exit(&output, 1);
    assert_stderr_contains(&output, OWNER_TYPO_LINE);
    assert_stderr_contains(&output, "--allow-unknown-keys");
    assert_eq!(
        read(&ws.path("manifest.json")),
        before,
        "nothing is written"
    );

    let output = run(args(&["--allow-unknown-keys"]));
    assert_exit(&output, 0);
    assert_stderr_contains(&output, OWNER_TYPO_LINE);
    // Rewritten with known fields only, and generate's own key is an owner again.
    let rewritten = ws.manifest();
    assert!(rewritten.unknown_keys().is_empty());
    assert_eq!(
        rewritten
            .manifest()
            .workload_owner_pub_keys
            .as_ref()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn set_refuses_what_would_lock_or_break_the_deployment() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    let c = coordinator.user.clone();
    // Everything below up to the spawn is refused before the Coordinator is contacted.

    // A --workload-owner-key that does not exist is an error, not "no key".
    let manifest = ws.path("manifest.json").to_str().unwrap().to_owned();
    let missing = ws.path("no-such-key.pem");
    let output = ws.set(
        &c,
        &manifest,
        &["--workload-owner-key", missing.to_str().unwrap()],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(
        &output,
        &format!(
            "the workload owner key {} (--workload-owner-key) does not exist",
            missing.display()
        ),
    );

    // An empty SAN and a policy without a DNS SAN fail validation, with the SAN's path.
    let web = ws.host_data("web");
    let api = ws.host_data("api");
    let bad_sans = ws.write_manifest("bad-sans.json", |m| {
        m.policies.get_mut(&web).unwrap().sans = Some(vec!["web".into(), String::new()]);
        m.policies.get_mut(&api).unwrap().sans =
            Some(vec!["10.0.0.1".into(), "spiffe://api".into()]);
    });
    let output = ws.set(&c, &bad_sans, &[]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "is not valid");
    assert_stderr_contains(
        &output,
        &format!(
            "Policies[\"{web}\"].SANs[1]: invalid subject alternative name: expected a DNS name, \
             IP address or URI, found an empty string"
        ),
    );
    assert_stderr_contains(
        &output,
        &format!("Policies[\"{api}\"].SANs: expected at least one DNS name"),
    );

    // The typo: refused with the nearest key named.
    std::fs::write(ws.path("typo.json"), ws.manifest_with_owner_typo()).unwrap();
    let typo = ws.path("typo.json").to_str().unwrap().to_owned();
    let output = ws.set(&c, &typo, &[]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, OWNER_TYPO_LINE);
    assert_stderr_contains(&output, "--allow-unknown-keys");
    // Allowed, it is a manifest without owners: refused unless immutable on purpose.
    let output = ws.set(&c, &typo, &["--allow-unknown-keys"]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "names no workload owner keys");
    assert_stderr_contains(&output, "run set again with --immutable");
    // --immutable for a manifest with owners is refused too.
    let output = ws.set(&c, &manifest, &["--immutable"]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "--immutable was given, but the manifest");
    assert!(!ws.path("coordinator-root-ca.pem").exists());

    // With both flags the immutable manifest is set ...
    coordinator.spawn();
    let output = ws.set(
        &c,
        &typo,
        &["--allow-unknown-keys", "--immutable", "--json"],
    );
    assert_exit(&output, 0);
    assert_stderr_contains(&output, "it has no effect (--allow-unknown-keys)");
    let summary: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["first_set"], true);
    assert!(
        summary["warnings"][0]
            .as_str()
            .unwrap()
            .contains(OWNER_TYPO_LINE),
        "{summary}"
    );
    // ... and nobody can update it, not even with the key that generated it.
    let output = ws.set(&c, &manifest, &[]);
    assert_exit(&output, 1);
}

#[test]
fn set_warns_when_the_callers_key_is_not_an_owner() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    let c = coordinator.user.clone();
    coordinator.spawn();
    let stranger = fixtures::stranger_key().public_key().to_hex();
    let others = ws.write_manifest("others.json", |m| {
        m.workload_owner_pub_keys = Some(vec![stranger]);
    });
    let output = ws.set(&c, &others, &["--json"]);
    assert_exit(&output, 0);
    let warning = format!(
        "the workload owner key {} (public key SHA-256 ",
        ws.path("workload-owner.pem").display()
    );
    assert_stderr_contains(&output, &warning);
    assert_stderr_contains(&output, "is not an owner of the manifest");
    let summary: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(
        summary["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with(&warning),
        "{summary}"
    );
    // It was right: the key cannot update the deployment now.
    let manifest = ws.path("manifest.json").to_str().unwrap().to_owned();
    let output = ws.set(&c, &manifest, &[]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "refused our key");
    // The caller's key among the owners: no warning.
    let ws2 = Workspace::generate();
    let mut coordinator2 = Coordinator::new(&ws2);
    let c2 = coordinator2.user.clone();
    coordinator2.spawn();
    let manifest2 = ws2.path("manifest.json").to_str().unwrap().to_owned();
    let output = ws2.set(&c2, &manifest2, &[]);
    assert_exit(&output, 0);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

// ---------------------------------------------------------------------------------------------
// Signed and atomic updates (issue 20, item 2)

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[test]
fn signed_and_atomic_updates_against_a_real_coordinator() {
    let ws = Workspace::generate();
    let mut coordinator = Coordinator::new(&ws);
    let c = coordinator.user.clone();
    coordinator.spawn();
    let first = ws.path("manifest.json").to_str().unwrap().to_owned();
    assert_exit(&ws.set(&c, &first, &[]), 0);
    // --atomic before any verify: there is no head the update could be based on.
    let output = ws.set(&c, &first, &["--atomic"]);
    assert_exit(&output, 1);
    assert_stderr_contains(
        &output,
        "--atomic needs the latest transition this update is based on, and there is none: run \
         `contrast verify",
    );
    assert_exit(&contrast(&ws.dir, &["verify", "-c", &c, "-m", &first]), 0);
    let head = |ws: &Workspace| read(&ws.path("verify/latest-transition"));
    let san = |san: &'static str| {
        let web = ws.host_data("web");
        move |m: &mut contrast_core::manifest::Manifest| {
            m.policies
                .get_mut(&web)
                .unwrap()
                .sans
                .as_mut()
                .unwrap()
                .push(san.into());
        }
    };
    // A key that is no owner's, so an accepted update below is the signature's doing.
    let stranger = ws.path("stranger.pem");
    let output = openssl(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-noout",
        "-out",
        stranger.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stranger = stranger.to_str().unwrap().to_owned();

    // sign --prepare writes the hex of SHA-256(SHA-256(manifest) || latest transition).
    let b = ws.write_manifest("b.json", san("b.example"));
    let output = contrast(&ws.dir, &["sign", "--prepare", "-m", &b]);
    assert_exit(&output, 0);
    let blob = read(&ws.path("next-transition"));
    let latest = hex::decode(head(&ws)).unwrap();
    let expected = contrast_core::sha256(
        &[contrast_core::sha256(&read(Path::new(&b))).to_vec(), latest].concat(),
    );
    assert_eq!(
        blob,
        hex::encode(expected).into_bytes(),
        "lowercase hex, no newline"
    );

    // A signature by openssl over that file is accepted by the Coordinator (the client key is
    // a stranger's).
    let b_sig = ws.path("b.sig");
    let output = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        ws.path("workload-owner.pem").to_str().unwrap(),
        "-out",
        b_sig.to_str().unwrap(),
        ws.path("next-transition").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A signature by another key is refused, naming the signature and what to do.
    let wrong_sig = ws.path("wrong.sig");
    let output = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        &stranger,
        "-out",
        wrong_sig.to_str().unwrap(),
        ws.path("next-transition").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = ws.set(
        &c,
        &b,
        &[
            "--workload-owner-key",
            &stranger,
            "--signature",
            wrong_sig.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(
        &output,
        &format!("refused the signature {}", wrong_sig.display()),
    );
    assert_stderr_contains(&output, "does not verify");
    assert_stderr_contains(&output, "then `contrast sign`");
    let output = ws.set(
        &c,
        &b,
        &[
            "--workload-owner-key",
            &stranger,
            "--signature",
            b_sig.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&output, 0);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["signed"], true);
    assert_exit(&contrast(&ws.dir, &["verify", "-c", &c, "-m", &b]), 0);

    // Our signature verifies with openssl.
    let c_manifest = ws.write_manifest("c.json", san("c.example"));
    let output = contrast(&ws.dir, &["sign", "-m", &c_manifest]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("next-transition.sig"),
        "{}",
        stdout(&output)
    );
    let c_blob = ws.path("c.blob");
    assert_exit(
        &contrast(
            &ws.dir,
            &[
                "sign",
                "--prepare",
                "-m",
                &c_manifest,
                "--out",
                c_blob.to_str().unwrap(),
            ],
        ),
        0,
    );
    let public = ws.path("owner-pub.pem");
    let output = openssl(&[
        "ec",
        "-in",
        ws.path("workload-owner.pem").to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        public.to_str().unwrap(),
        "-signature",
        ws.path("next-transition.sig").to_str().unwrap(),
        c_blob.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "Verified OK");

    // Someone else updates meanwhile (the owner key, not atomic) ...
    let d = ws.write_manifest("d.json", san("d.example"));
    assert_exit(&ws.set(&c, &d, &[]), 0);
    // ... so the atomic update based on the head verify saw is refused, signed or not, and
    // the message says what to do.
    let based_on = String::from_utf8(head(&ws)).unwrap();
    let signature = ws.path("next-transition.sig");
    let output = ws.set(
        &c,
        &c_manifest,
        &["--atomic", "--signature", signature.to_str().unwrap()],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(
        &output,
        &format!("refused the atomic update: its latest transition is no longer {based_on}"),
    );
    assert_stderr_contains(&output, "Run `contrast verify");
    let output = ws.set(
        &c,
        &c_manifest,
        &["--atomic", "--latest-transition", &based_on],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "refused the atomic update");
    // The signature over the old head does not authorise a non-atomic update either.
    let output = ws.set(
        &c,
        &c_manifest,
        &[
            "--workload-owner-key",
            &stranger,
            "--signature",
            signature.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "refused the signature");

    // After verify has seen the new head, the atomic update goes through; the head file may
    // be given by path as well.
    assert_exit(&contrast(&ws.dir, &["verify", "-c", &c, "-m", &d]), 0);
    let head_file = ws.path("verify/latest-transition");
    let output = ws.set(
        &c,
        &c_manifest,
        &[
            "--atomic",
            "--latest-transition",
            head_file.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 0);
    assert_exit(
        &contrast(&ws.dir, &["verify", "-c", &c, "-m", &c_manifest]),
        0,
    );
}

#[test]
fn latest_transition_and_sign_key_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // --latest-transition only means something with --atomic: a usage error.
    let output = contrast(
        dir.path(),
        &[
            "set",
            "-c",
            "127.0.0.1:1",
            "--latest-transition",
            &"ab".repeat(32),
            "x.yml",
        ],
    );
    assert_exit(&output, 2);
    // A --latest-transition that is neither a hash nor a file.
    let ws = Workspace::generate();
    let manifest = ws.path("manifest.json").to_str().unwrap().to_owned();
    let output = ws.set(
        "127.0.0.1:1",
        &manifest,
        &["--atomic", "--latest-transition", "nope"],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(
        &output,
        "--latest-transition nope is neither 64 hex digits nor an existing file",
    );
    // sign without a key says how to sign elsewhere.
    let output = contrast(
        &ws.dir,
        &[
            "sign",
            "--workload-owner-key",
            ws.path("none.pem").to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "does not exist");
}
