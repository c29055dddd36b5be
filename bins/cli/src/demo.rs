//! `contrast demo`: the whole Contrast flow on this machine, in one process tree, with the
//! simulated platform and the Coordinator's file store in a fresh directory.
//!
//! The steps run the `contrast` binary itself (`std::env::current_exe()`) for the CLI commands,
//! and the `coordinator` and `initializer` binaries found next to it.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;
use contrast_core::manifest::{ManifestDocument, Role};

use crate::command_line::{self, CommandLine, CoordinatorAddrs};
use crate::{ExitStatus, GlobalArgs, Outcome, kube, workspace};

/// Shown by `contrast demo --help`.
pub const LONG_ABOUT: &str = "\
Run the whole Contrast flow on this machine, without SEV-SNP hardware or Kubernetes:

  1. create a simulated SEV-SNP environment (contrast simulate)
  2. write a three-service app (web, api, db) and generate its manifest (contrast generate)
  3. start a Coordinator (simulated platform, file store in the demo directory)
  4. set the manifest (contrast set)
  5. run one initializer per service: each gets its mesh certificate
  6. verify the Coordinator as a data owner (contrast verify)
  7. update the manifest (a new SAN for web) and set it
  8. kill -9 the Coordinator and restart it: it waits for recovery
  9. recover it with the seed share (contrast recover)
 10. run an initializer again and show that old and new certificates chain to the same root
 11. verify again

Each step is printed with its timing; the command exits non-zero if any step fails. With
--show-commands, each step is preceded by the command lines that do the same by hand (`$ ...`,
for the `contrast`, `coordinator` and `initializer` binaries on PATH): the README's \"Run it by
hand\" with this run's paths, ports and digests.

The `coordinator` and `initializer` binaries must be next to this one, built with their
`simulated` feature (cargo build -p coordinator -p initializer --features
coordinator/simulated,initializer/simulated, or --release for all three).";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  cargo build --release -p contrast -p coordinator -p initializer \\
      --features coordinator/simulated,initializer/simulated
  target/release/contrast demo
  target/release/contrast demo --dir ./demo --keep
  target/release/contrast demo --show-commands     # also print each step's commands

Exit codes:
  0  every step succeeded
  1  a step failed (the message names it and shows the failing command's output)
  2  usage error";

/// The services of the demo app.
pub const SERVICES: [&str; 3] = ["web", "api", "db"];

/// Flags of `contrast demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Run in this directory (must be empty or missing; kept) instead of a fresh temporary one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory.
    #[arg(long)]
    pub keep: bool,
    /// Print, as each step runs, the command lines that do the same by hand.
    #[arg(long)]
    pub show_commands: bool,
}

/// A child process that is killed when dropped (every exit path of the demo).
struct KilledOnDrop(Child);

impl KilledOnDrop {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running Coordinator of the demo.
struct Coordinator {
    process: KilledOnDrop,
    user: String,
    mesh: String,
    ops: String,
}

impl Coordinator {
    fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// What the demo needs to know across its steps.
struct Demo {
    dir: PathBuf,
    contrast: PathBuf,
    coordinator_binary: PathBuf,
    initializer_binary: PathBuf,
    sim_dir: PathBuf,
    ports: [u16; 4],
    json: bool,
    show_commands: bool,
    steps: Vec<serde_json::Value>,
    human: String,
}

/// Under `cargo run` (which sets `CARGO`), builds the `coordinator` and `initializer` binaries
/// next to this one, with their `simulated` feature, in the same profile, so that `cargo run
/// --release --bin contrast -- demo` works on a fresh clone and never runs binaries older than
/// the code (cargo does nothing when they are fresh). Outside cargo nothing is built.
fn build_siblings(contrast: &std::path::Path) -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let names = ["coordinator", "initializer"];
    let release = contrast
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|profile| profile == "release");
    if names
        .iter()
        .any(|name| !contrast_tee::binary_has_simulated_tee(&contrast.with_file_name(name)))
    {
        eprintln!(
            "building coordinator and initializer with the simulated platform ({} profile) for \
             the demo; this takes a few minutes the first time",
            if release { "release" } else { "dev" }
        );
    }
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet"]);
    if release {
        command.arg("--release");
    }
    for name in names {
        command.args(["-p", name, "--features", &format!("{name}/simulated")]);
    }
    let status = command
        .status()
        .context("running cargo to build the demo's binaries")?;
    if !status.success() {
        bail!("cargo build of coordinator and initializer failed ({status})");
    }
    Ok(())
}

/// Runs `contrast demo`.
pub fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<Outcome> {
    let contrast = std::env::current_exe().context("cannot find the contrast binary itself")?;
    build_siblings(&contrast)?;
    let sibling = |name: &str| -> anyhow::Result<PathBuf> {
        let path = contrast.with_file_name(name);
        if !path.is_file() {
            bail!(
                "the {name} binary is missing next to {} ({}); build it with cargo build \
                 --release -p coordinator -p initializer --features \
                 coordinator/simulated,initializer/simulated (without --release for a debug \
                 contrast)",
                contrast.display(),
                path.display()
            )
        }
        if !contrast_tee::binary_has_simulated_tee(&path) {
            bail!(
                "{} was built without its `simulated` feature, so it refuses --tee simulated; \
                 rebuild it with cargo build --release -p {name} --features {name}/simulated \
                 (without --release for a debug contrast)",
                path.display()
            )
        }
        Ok(path)
    };
    let coordinator_binary = sibling("coordinator")?;
    let initializer_binary = sibling("initializer")?;

    let (dir, temp) = match &args.dir {
        Some(dir) => {
            fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
            if fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty; give a new or empty directory to --dir",
                    dir.display()
                );
            }
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("contrast-demo-")
                .tempdir()
                .context("could not create a temporary directory")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let mut demo = Demo {
        sim_dir: dir.join("sim"),
        dir: dir.clone(),
        contrast,
        coordinator_binary,
        initializer_binary,
        ports: [free_port()?, free_port()?, free_port()?, free_port()?],
        json: global.json,
        show_commands: args.show_commands,
        steps: Vec::new(),
        human: String::new(),
    };
    let started = Instant::now();
    let result = demo.run_steps();
    let kept = match temp {
        Some(temp) if args.keep || result.is_err() => {
            // Keep the evidence of a failed run for inspection.
            Some(temp.keep())
        }
        Some(temp) => {
            drop(temp);
            None
        }
        None => Some(dir),
    };
    let total = started.elapsed();
    result.with_context(|| match &kept {
        Some(dir) => format!("the demo failed; its files are in {}", dir.display()),
        None => "the demo failed".to_owned(),
    })?;
    let _ = writeln!(
        demo.human,
        "\ndemo complete: {} steps in {} ms; the workloads' certificates before and after the \
         Coordinator's restart chain to the same root (same key){}",
        demo.steps.len(),
        total.as_millis(),
        kept.as_ref()
            .map(|dir| format!("\nfiles kept in {}", dir.display()))
            .unwrap_or_default()
    );
    Ok(Outcome {
        status: ExitStatus::Ok,
        human: demo.human,
        json: serde_json::json!({
            "ok": true,
            "steps": demo.steps,
            "total_ms": u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
            "dir": kept,
        }),
    })
}

impl Demo {
    fn run_steps(&mut self) -> anyhow::Result<()> {
        let sim_dir = self.sim_dir.clone();
        self.step("create the simulated SEV-SNP environment", |demo| {
            demo.contrast(&["simulate", "--dir"], &[&sim_dir])
                .map(|_| ())
        })?;

        let app = self.dir.join("app.yml");
        self.step("write the app and generate its manifest", |demo| {
            fs::write(&app, app_yaml()).context("could not write app.yml")?;
            demo.contrast(
                &[
                    "generate",
                    "--reference-values",
                    "Simulated-SNP",
                    "--insecure-allow-all-policy",
                    "--coordinator",
                    "--coordinator-replicas",
                    "1",
                    "--sim-dir",
                ],
                &[&sim_dir, &app],
            )
            .map(|_| ())
        })?;
        let host_data = self.host_data()?;

        let mut coordinator = self.step("start the coordinator", |demo| {
            demo.start_coordinator(&host_data.0, "1")
        })?;
        let user = coordinator.user.clone();
        let yamls = [app.clone(), self.dir.join(workspace::COORDINATOR_FILE)];
        self.step("set the manifest", |demo| demo.set(&user, &yamls))?;

        for (service, digest) in &host_data.1 {
            let root = self.dir.join(command_line::WORKLOADS_DIR).join(service);
            self.step(&format!("initializer of {service}"), |demo| {
                let identity = demo.coordinator_identity(&app, service)?;
                demo.initializer(&coordinator, &identity, digest, &root)
            })?;
        }
        self.step("verify as a data owner", |demo| demo.verify(&user))?;

        self.step(
            "update the manifest (web gets the SAN web.demo.example)",
            |demo| {
                demo.add_san("web", "web.demo.example")?;
                demo.set(&user, &yamls)
            },
        )?;
        self.step("verify the update", |demo| demo.verify(&user))?;

        coordinator = self.step("kill -9 and restart the coordinator", |demo| {
            demo.show(&format!("kill -9 {}", coordinator.pid()));
            coordinator.process.kill();
            demo.start_coordinator(&host_data.0, "2")
        })?;
        self.step("recover the coordinator with the seed share", |demo| {
            demo.contrast(&["recover", "-c", &user, "--timeout", "60s"], &[])
                .map(|_| ())
        })?;

        let (web, web_digest) = host_data
            .1
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("the manifest has no workload"))?;
        let after = self
            .dir
            .join(command_line::WORKLOADS_DIR)
            .join(format!("{web}-after-recovery"));
        self.step(&format!("initializer of {web} after recovery"), |demo| {
            let identity = demo.coordinator_identity(&app, &web)?;
            demo.initializer(&coordinator, &identity, &web_digest, &after)
        })?;
        let before = self.dir.join(command_line::WORKLOADS_DIR).join(&web);
        self.step("old and new certificates chain to the same root", |demo| {
            for workload in [&before, &after] {
                let tls = workload.join("tls-config");
                let chain = tls.join("certChain.pem");
                demo.show_line(
                    &CommandLine::new("openssl")
                        .args(["verify", "-CAfile"])
                        .arg(demo.dir.join("coordinator-root-ca.pem"))
                        .arg("-untrusted")
                        .arg(&chain)
                        .arg(&chain),
                );
            }
            demo.same_root(&before, &after)
        })?;
        self.step("verify after recovery", |demo| demo.verify(&user))?;
        drop(coordinator);
        Ok(())
    }

    /// Runs one step, printing it with its timing.
    fn step<T>(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let number = self.steps.len() + 1;
        let started = Instant::now();
        let result = body(self);
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let line = format!(
            "[{number:>2}] {name:<60} {} {elapsed:>6} ms",
            if result.is_ok() { "ok    " } else { "FAILED" }
        );
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        self.steps.push(serde_json::json!({
            "step": name,
            "ok": result.is_ok(),
            "ms": elapsed,
        }));
        result.with_context(|| format!("step {number} ({name}) failed"))
    }

    /// With `--show-commands`: prints `text` as a command line of the step that runs now.
    fn show(&self, text: &str) {
        if !self.show_commands {
            return;
        }
        if self.json {
            eprintln!("    $ {text}");
        } else {
            println!("    $ {text}");
        }
    }

    /// [`Self::show`] for a command line.
    fn show_line(&self, line: &CommandLine) {
        self.show(&line.to_shell());
    }

    /// Runs this binary with `--workspace-dir <demo dir>`.
    fn contrast(&self, args: &[&str], paths: &[&Path]) -> anyhow::Result<Output> {
        let line = command_line::contrast(&self.dir, args).args(paths);
        self.show_line(&line);
        run_checked(
            line.command(&self.contrast),
            &format!("contrast {}", args.first().unwrap_or(&"")),
        )
    }

    /// The coordinator's HOST_DATA and (service, HOST_DATA) of every service, from the manifest.
    fn host_data(&self) -> anyhow::Result<(String, Vec<(String, String)>)> {
        let manifest = self.manifest()?;
        let policies = &manifest.manifest().policies;
        let coordinator = policies
            .iter()
            .find(|(_, entry)| entry.role == Role::Coordinator)
            .map(|(digest, _)| digest.clone())
            .ok_or_else(|| anyhow!("the generated manifest has no coordinator policy"))?;
        let services = SERVICES
            .iter()
            .map(|service| {
                let suffix = format!("/Deployment/default/{service}");
                policies
                    .iter()
                    .find(|(_, entry)| entry.workload_secret_id.ends_with(&suffix))
                    .map(|(digest, _)| ((*service).to_owned(), digest.clone()))
                    .ok_or_else(|| anyhow!("the generated manifest has no policy for {service}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((coordinator, services))
    }

    fn manifest(&self) -> anyhow::Result<ManifestDocument> {
        let path = self.dir.join(workspace::MANIFEST_FILE);
        let bytes =
            fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
        ManifestDocument::parse(bytes).with_context(|| format!("{} does not parse", path.display()))
    }

    fn start_coordinator(&self, host_data: &str, run: &str) -> anyhow::Result<Coordinator> {
        let addrs = CoordinatorAddrs::loopback(self.ports);
        let log_path = self.dir.join(format!("coordinator-{run}.log"));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("could not create {}", log_path.display()))?;
        let line = command_line::coordinator(
            &self.sim_dir,
            host_data,
            &self.dir.join(command_line::COORDINATOR_STATE_DIR),
            &addrs,
        )
        .args(["--log-level", "info"]);
        self.show(&format!("{} 2>{} &", line.to_shell(), log_path.display()));
        let CoordinatorAddrs {
            user, mesh, ops, ..
        } = addrs;
        let child = line
            .command(&self.coordinator_binary)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("could not start {}", self.coordinator_binary.display()))?;
        let mut coordinator = Coordinator {
            process: KilledOnDrop(child),
            user,
            mesh,
            ops,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http_status(&coordinator.ops, "/probe/startup").ok() == Some(200) {
                return Ok(coordinator);
            }
            if let Ok(Some(status)) = coordinator.process.0.try_wait() {
                bail!(
                    "the coordinator exited with {status}; see {}",
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                coordinator.process.kill();
                bail!(
                    "the coordinator did not start within 60 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn set(&self, user: &str, yamls: &[PathBuf]) -> anyhow::Result<()> {
        let paths: Vec<&Path> = yamls.iter().map(PathBuf::as_path).collect();
        self.contrast(&["set", "-c", user, "--timeout", "60s"], &paths)
            .map(|_| ())
    }

    fn verify(&self, user: &str) -> anyhow::Result<()> {
        self.contrast(&["verify", "-c", user, "--timeout", "60s"], &[])
            .map(|_| ())
    }

    /// The Coordinator identity `contrast generate` gave the initializer of `service`'s pod (its
    /// environment in the generated YAML): the pod attests the Coordinator with it.
    fn coordinator_identity(&self, app: &Path, service: &str) -> anyhow::Result<String> {
        let text =
            fs::read_to_string(app).with_context(|| format!("could not read {}", app.display()))?;
        for document in kube::split_documents(&text) {
            let mut value = kube::parse_document(&document)?;
            let is_service = kube::confidential_workload(&value)?
                .is_some_and(|workload| workload.name == service);
            if !is_service {
                continue;
            }
            let identity = kube::pod_template_mut(&mut value)
                .and_then(|template| kube::initializer_env(template, COORDINATOR_IDENTITY_ENV));
            return identity.ok_or_else(|| {
                anyhow!(
                    "the generated {service} has no {COORDINATOR_IDENTITY_ENV} in its initializer"
                )
            });
        }
        bail!("the generated {} has no workload {service}", app.display())
    }

    fn initializer(
        &self,
        coordinator: &Coordinator,
        identity: &str,
        host_data: &str,
        root: &Path,
    ) -> anyhow::Result<()> {
        let line =
            command_line::initializer(&self.sim_dir, host_data, identity, &coordinator.mesh, root)
                .args([
                    "--retry-min",
                    "100ms",
                    "--retry-max",
                    "1s",
                    "--max-attempts",
                    "30",
                ]);
        self.show_line(&line);
        run_checked(line.command(&self.initializer_binary), "initializer").map(|_| ())
    }

    /// Adds `san` to the policy of `service` and writes the manifest.
    fn add_san(&self, service: &str, san: &str) -> anyhow::Result<()> {
        self.show(&format!(
            "# edit {}: add \"{san}\" to the SANs of {service}'s policy",
            self.dir.join(workspace::MANIFEST_FILE).display()
        ));
        let mut manifest = self.manifest()?.manifest().clone();
        let suffix = format!("/Deployment/default/{service}");
        let entry = manifest
            .policies
            .values_mut()
            .find(|entry| entry.workload_secret_id.ends_with(&suffix))
            .ok_or_else(|| anyhow!("the manifest has no policy for {service}"))?;
        entry.sans.get_or_insert_with(Vec::new).push(san.to_owned());
        let json = manifest
            .to_go_json()
            .context("could not encode the manifest")?;
        let path = self.dir.join(workspace::MANIFEST_FILE);
        fs::write(&path, json).with_context(|| format!("could not write {}", path.display()))
    }

    /// The root CA the workload got before the restart and the one it got after recovery have
    /// the same key and subject as the root CA of the first set (the root certificate is
    /// re-issued with a fresh serial, its key derives from the seed), and both workload
    /// certificates verify against the first set's root.
    fn same_root(&self, before: &Path, after: &Path) -> anyhow::Result<()> {
        let read = |path: PathBuf| {
            fs::read(&path).with_context(|| format!("could not read {}", path.display()))
        };
        let root = read(self.dir.join("coordinator-root-ca.pem"))?;
        let first_root = root_identity(&root)?;
        for workload in [before, after] {
            let tls = workload.join("tls-config");
            let workload_root = tls.join("coordinator-root-ca.pem");
            if root_identity(&read(workload_root.clone())?)? != first_root {
                bail!(
                    "{} has another key or subject than the root CA of the first set",
                    workload_root.display()
                );
            }
            verify_chain(&read(tls.join("certChain.pem"))?, &root).with_context(|| {
                format!(
                    "{} does not chain to the root CA of the first set",
                    tls.join("certChain.pem").display()
                )
            })?;
        }
        Ok(())
    }
}

/// The subject and public key of a PEM root certificate.
fn root_identity(root_pem: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    let root = CertificateDer::from_pem_slice(root_pem)
        .map_err(|e| anyhow!("the root CA is not PEM: {e}"))?;
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| anyhow!("the root CA is not a usable trust anchor: {e}"))?;
    Ok((
        anchor.subject.as_ref().to_vec(),
        anchor.subject_public_key_info.as_ref().to_vec(),
    ))
}

/// The demo app: three Deployments in the confidential runtime class.
fn app_yaml() -> String {
    SERVICES
        .iter()
        .map(|service| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {service}\nspec:\n  \
                 replicas: 1\n  selector:\n    matchLabels:\n      app: {service}\n  template:\n    \
                 metadata:\n      labels:\n        app: {service}\n    spec:\n      \
                 runtimeClassName: contrast-cc\n      containers:\n        - name: {service}\n          \
                 image: ghcr.io/example/{service}:1.0\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs `command`, failing with its output when it does not exit 0.
fn run_checked(mut command: Command, what: &str) -> anyhow::Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// A free loopback port (bound and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("could not find a free loopback port")?
        .port())
}

/// The status of `GET path` on a plain HTTP port.
fn http_status(addr: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status from {addr}"))
}

/// Verifies the leaf of `chain_pem` (the rest are intermediates) against `root_pem`.
fn verify_chain(chain_pem: &[u8], root_pem: &[u8]) -> anyhow::Result<()> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, UnixTime};

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("the certificate chain is not PEM: {e}"))?;
    let root = CertificateDer::from_pem_slice(root_pem)
        .map_err(|e| anyhow!("the root CA is not PEM: {e}"))?;
    let anchors = [webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| anyhow!("the root CA is not a usable trust anchor: {e}"))?
        .to_owned()];
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| anyhow!("the certificate chain is empty"))?;
    let leaf = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| anyhow!("the workload certificate does not parse: {e}"))?;
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}
