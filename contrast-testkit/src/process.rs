//! Real `coordinator` and `initializer` processes on loopback in simulated SEV-SNP mode.
//!
//! [`Launch`] says how a Coordinator is started (binary, simulated environment, its own
//! HOST_DATA, state directory, the four listen addresses, log, extra flags and environment);
//! [`CoordinatorProcess`] is the running process (killed on drop): wait for an ops probe, kill
//! it with SIGKILL, start it again from the same [`Launch`]. [`initializer_command`] is an
//! initializer against a Coordinator's mesh API.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;

use crate::net::{http_get, try_free_port};

/// Another binary of the workspace (`coordinator`, `initializer`, `contrast`), next to the
/// running test in the target directory (`target/<profile>/`). `cargo test --workspace` builds
/// every package's binaries before any test runs; with `-p <package>` alone, build the others
/// first. Panics, naming the command that builds it, when it is missing.
#[allow(clippy::panic)] // Test support: a missing binary is a failed test.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let dir = exe.parent()?;
            // Test and bench executables live in `deps/`, binaries one level up.
            let dir = if dir.ends_with("deps") {
                dir.parent()?
            } else {
                dir
            };
            Some(dir.join(name))
        })
        .unwrap_or_else(|| PathBuf::from(name));
    if !path.is_file() {
        panic!(
            "{} is missing: run `cargo build -p {name}` (or `cargo test --workspace`)",
            path.display()
        );
    }
    path
}

/// `target/tmp` of the running test (where cargo's `CARGO_TARGET_TMPDIR` points), or the
/// system's temporary directory when the test does not run from a target directory.
pub fn target_tmpdir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let profile = exe.parent()?.parent()?;
            let target = profile.parent()?;
            let tmp = target.join("tmp");
            std::fs::create_dir_all(&tmp).ok()?;
            Some(tmp)
        })
        .unwrap_or_else(std::env::temp_dir)
}

/// The four listen addresses of a Coordinator, `host:port` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addrs {
    /// User API (aTLS).
    pub user: String,
    /// Mesh API (mutual aTLS).
    pub mesh: String,
    /// Evidence API (plain HTTP).
    pub evidence: String,
    /// Probes and metrics (plain HTTP).
    pub ops: String,
}

impl Addrs {
    /// Four free loopback ports.
    pub fn free() -> std::io::Result<Self> {
        Ok(Self::loopback([
            try_free_port()?,
            try_free_port()?,
            try_free_port()?,
            try_free_port()?,
        ]))
    }

    /// `127.0.0.1` with the ports `[user, mesh, evidence, ops]`.
    pub fn loopback(ports: [u16; 4]) -> Self {
        let [user, mesh, evidence, ops] = ports.map(|port| format!("127.0.0.1:{port}"));
        Self {
            user,
            mesh,
            evidence,
            ops,
        }
    }
}

/// How a Coordinator process is started (kept for a restart).
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `coordinator` binary.
    pub binary: PathBuf,
    /// The simulated environment (`--sim-dir`).
    pub sim_dir: PathBuf,
    /// The VM's HOST_DATA, hex (`--sim-host-data`).
    pub host_data: String,
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// The listen addresses.
    pub addrs: Addrs,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// `--log-level`, when not the binary's default.
    pub log_level: Option<String>,
    /// More flags, after the ones above.
    pub args: Vec<String>,
    /// Environment variables set for the process.
    pub env: Vec<(String, String)>,
    /// `--transit-addr` (the transit engine), off when `None`.
    pub transit: Option<String>,
    /// How often an ops probe is polled while waiting (the resolution of measured times).
    pub probe_poll: Duration,
}

impl Launch {
    /// A Coordinator of `binary` over `state_dir` on `addrs`, with the simulated TEE of
    /// `sim_dir` and `host_data` (hex) as its HOST_DATA; the log next to the state directory
    /// (`<state_dir>.log`), probes polled every 50 ms.
    pub fn new(
        binary: impl Into<PathBuf>,
        sim_dir: impl Into<PathBuf>,
        host_data: &str,
        state_dir: impl Into<PathBuf>,
        addrs: Addrs,
    ) -> Self {
        let state_dir = state_dir.into();
        Self {
            binary: binary.into(),
            sim_dir: sim_dir.into(),
            host_data: host_data.to_owned(),
            log: state_dir.with_extension("log"),
            state_dir,
            addrs,
            log_level: None,
            args: Vec::new(),
            env: Vec::new(),
            transit: None,
            probe_poll: Duration::from_millis(50),
        }
    }

    /// The command line (stdout discarded; stderr is set by [`CoordinatorProcess::spawn`]).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(["--tee", "simulated", "--sim-dir"])
            .arg(&self.sim_dir)
            .args(["--sim-host-data", &self.host_data])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--user-addr", &self.addrs.user])
            .args(["--mesh-addr", &self.addrs.mesh])
            .args(["--evidence-addr", &self.addrs.evidence])
            .args(["--ops-addr", &self.addrs.ops]);
        if let Some(level) = &self.log_level {
            command.args(["--log-level", level]);
        }
        if let Some(transit) = &self.transit {
            command.args(["--transit-addr", transit]);
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null());
        command
    }
}

/// Whether a (re)started process's log replaces the old one or continues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFile {
    /// Start the log afresh.
    Truncate,
    /// Append to the log of the previous process.
    Append,
}

/// Why waiting for a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The process ended first.
    #[error("the coordinator exited ({status}) before {path} answered {expected}; log {}:\n{log}", log_path.display())]
    Exited {
        /// The probe path.
        path: String,
        /// The awaited status.
        expected: u16,
        /// How the process ended.
        status: ExitStatus,
        /// Its log file.
        log_path: PathBuf,
        /// Its log.
        log: String,
    },
    /// The probe did not answer in time.
    #[error("{path} did not answer {expected} within {timeout:?}; log {}:\n{log}", log_path.display())]
    Timeout {
        /// The probe path.
        path: String,
        /// The awaited status.
        expected: u16,
        /// How long it was given.
        timeout: Duration,
        /// Its log file.
        log_path: PathBuf,
        /// Its log.
        log: String,
    },
    /// The process could not be asked whether it still runs.
    #[error("checking on the coordinator: {0}")]
    Io(#[from] std::io::Error),
}

/// A running `coordinator` process (killed on drop).
#[derive(Debug)]
pub struct CoordinatorProcess {
    /// The process.
    pub child: Child,
    /// How it was started.
    pub launch: Launch,
    /// `launch.state_dir`.
    pub state_dir: PathBuf,
    /// User API address.
    pub user: String,
    /// Mesh API address.
    pub mesh: String,
    /// Evidence API address.
    pub evidence: String,
    /// Ops address.
    pub ops: String,
    /// Transit engine address, when enabled (`launch.transit`).
    pub transit: Option<String>,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// Just before the current process was spawned.
    pub spawned: Instant,
}

impl CoordinatorProcess {
    /// Spawns the process of `launch` without waiting for it.
    pub fn spawn(launch: Launch, log: LogFile) -> std::io::Result<Self> {
        let (child, spawned) = spawn(&launch, log)?;
        Ok(Self {
            child,
            state_dir: launch.state_dir.clone(),
            user: launch.addrs.user.clone(),
            mesh: launch.addrs.mesh.clone(),
            evidence: launch.addrs.evidence.clone(),
            ops: launch.addrs.ops.clone(),
            transit: launch.transit.clone(),
            log: launch.log.clone(),
            launch,
            spawned,
        })
    }

    /// SIGKILL (no shutdown of any kind) and reap.
    pub fn kill9(&mut self) -> std::io::Result<()> {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Spawns the process again from `self.launch` (changed or not), after
    /// [`kill9`](Self::kill9); does not wait.
    pub fn respawn(&mut self, log: LogFile) -> std::io::Result<()> {
        let (child, spawned) = spawn(&self.launch, log)?;
        self.child = child;
        self.spawned = spawned;
        self.state_dir.clone_from(&self.launch.state_dir);
        self.user.clone_from(&self.launch.addrs.user);
        self.mesh.clone_from(&self.launch.addrs.mesh);
        self.evidence.clone_from(&self.launch.addrs.evidence);
        self.ops.clone_from(&self.launch.addrs.ops);
        self.transit.clone_from(&self.launch.transit);
        self.log.clone_from(&self.launch.log);
        Ok(())
    }

    /// Polls `path` on the ops port until it answers `status`, failing when the process exits
    /// first or `timeout` passes; the instant it answered.
    pub fn wait_until(
        &mut self,
        path: &str,
        status: u16,
        timeout: Duration,
    ) -> Result<Instant, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_get(&self.ops, path).is_ok_and(|(found, _)| found == status) {
                return Ok(Instant::now());
            }
            if let Some(exit) = self.child.try_wait()? {
                return Err(WaitError::Exited {
                    path: path.to_owned(),
                    expected: status,
                    status: exit,
                    log_path: self.log.clone(),
                    log: self.log_text(),
                });
            }
            if Instant::now() > deadline {
                return Err(self.timeout(path, status, timeout));
            }
            std::thread::sleep(self.launch.probe_poll);
        }
    }

    /// Polls `path` on the ops port until it answers `status`; panics with the log after
    /// `timeout`.
    #[allow(clippy::panic)] // Test support: a probe that never answers is a failed test.
    pub fn wait_for(&self, path: &str, status: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((found, _)) = http_get(&self.ops, path)
                && found == status
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!("{}", self.timeout(path, status, timeout));
            }
            std::thread::sleep(self.launch.probe_poll);
        }
    }

    fn timeout(&self, path: &str, status: u16, timeout: Duration) -> WaitError {
        WaitError::Timeout {
            path: path.to_owned(),
            expected: status,
            timeout,
            log_path: self.log.clone(),
            log: self.log_text(),
        }
    }

    /// The status of `/probe/readiness`; panics when the port does not answer.
    #[allow(clippy::expect_used)] // Test support: a dead ops port is a failed test.
    pub fn readiness(&self) -> u16 {
        http_get(&self.ops, "/probe/readiness")
            .expect("the ops port answers")
            .0
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(launch: &Launch, log: LogFile) -> std::io::Result<(Child, Instant)> {
    let file = match log {
        LogFile::Truncate => File::create(&launch.log)?,
        LogFile::Append => File::options()
            .append(true)
            .create(true)
            .open(&launch.log)?,
    };
    let mut command = launch.command();
    command.stderr(file);
    let spawned = Instant::now();
    let child = command.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("starting {}: {e}", launch.binary.display()),
        )
    })?;
    Ok((child, spawned))
}

/// An `initializer` (the workspace's, see [`workspace_binary`]) against the mesh API at `mesh`,
/// expecting the Coordinator `identity` (in its environment, as `contrast generate` gives it),
/// in the simulated environment `sim_dir` as a VM with `host_data` (hex), writing under `root`
/// with its done marker at `root/done`, retrying every 100–200 ms. Add flags and run it.
pub fn initializer_command(
    mesh: &str,
    identity: &CoordinatorIdentity,
    sim_dir: &Path,
    host_data: &str,
    root: &Path,
) -> Command {
    let mut command = Command::new(workspace_binary("initializer"));
    command
        .env(COORDINATOR_IDENTITY_ENV, identity.to_json())
        .args(["--coordinator", mesh])
        .arg("--root")
        .arg(root)
        .arg("--done-file")
        .arg(root.join("done"))
        .args(["--tee", "simulated", "--sim-dir"])
        .arg(sim_dir)
        .args(["--sim-host-data", host_data])
        .args(["--retry-min", "100ms", "--retry-max", "200ms"]);
    command
}
