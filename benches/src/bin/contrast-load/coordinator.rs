//! The Coordinator under test: a real `coordinator` process in simulated mode on loopback,
//! and what `/proc` says about it (memory, CPU time).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running `coordinator` (killed on drop).
#[derive(Debug)]
pub(crate) struct CoordinatorProcess {
    child: Child,
    launch: Launch,
    /// User API (aTLS), `127.0.0.1:port`.
    pub(crate) user: String,
    /// Mesh API (mutual aTLS).
    pub(crate) mesh: String,
    /// Ops port (probes, metrics).
    pub(crate) ops: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
    /// Just before the current process was spawned.
    pub(crate) started: Instant,
    /// Process start (just before the spawn) to the first 200 of `/probe/startup`.
    pub(crate) startup: Duration,
}

/// How the process is started (kept for a restart).
#[derive(Debug)]
struct Launch {
    binary: PathBuf,
    sim_dir: PathBuf,
    host_data: String,
    state_dir: PathBuf,
    log_level: String,
}

/// How often the probes are polled while waiting (the resolution of the measured times).
const PROBE_POLL: Duration = Duration::from_millis(2);

impl CoordinatorProcess {
    /// Starts `binary` over `state_dir` on free loopback ports with the simulated TEE of
    /// `sim_dir` and `host_data` as its own HOST_DATA, and waits for its startup probe.
    pub(crate) fn start(
        binary: &Path,
        sim_dir: &Path,
        host_data: &str,
        state_dir: &Path,
        log_level: &str,
    ) -> Result<Self> {
        let launch = Launch {
            binary: binary.to_path_buf(),
            sim_dir: sim_dir.to_path_buf(),
            host_data: host_data.to_owned(),
            state_dir: state_dir.to_path_buf(),
            log_level: log_level.to_owned(),
        };
        let log = state_dir.with_extension("log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let (child, started, ports) = launch.spawn(log_file)?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let mut process = Self {
            child,
            launch,
            user: addr(ports[0]),
            mesh: addr(ports[1]),
            ops: addr(ports[3]),
            log,
            started,
            startup: Duration::ZERO,
        };
        process.startup = process.wait_for_startup(started, Duration::from_secs(60))?;
        Ok(process)
    }

    /// Kills the process with SIGKILL (no shutdown of any kind), starts it again over the
    /// same state directory on new ports (its log appended to the same file), and waits for
    /// the startup probe; `startup` is then the new process's.
    pub(crate) fn kill9_and_restart(&mut self) -> Result<()> {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill().context("killing the coordinator")?;
        self.child.wait().context("reaping the coordinator")?;
        let log_file = std::fs::File::options()
            .append(true)
            .create(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let (child, started, ports) = self.launch.spawn(log_file)?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        self.child = child;
        self.started = started;
        self.user = addr(ports[0]);
        self.mesh = addr(ports[1]);
        self.ops = addr(ports[3]);
        self.startup = self.wait_for_startup(started, Duration::from_secs(600))?;
        Ok(())
    }

    /// The process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_for_startup(&mut self, started: Instant, timeout: Duration) -> Result<Duration> {
        self.wait_for("/probe/startup", started, timeout)
    }

    /// Polls `path` on the ops port every 2 ms until it answers 200; the time from `since`
    /// to that answer.
    pub(crate) fn wait_for(
        &mut self,
        path: &str,
        since: Instant,
        timeout: Duration,
    ) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_status(&self.ops, path).is_ok_and(|status| status == 200) {
                return Ok(since.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the coordinator exited ({status}) before {path} answered 200; log {}:\n{}",
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{path} did not answer 200 within {timeout:?}; log {}",
                    self.log.display()
                );
            }
            std::thread::sleep(PROBE_POLL);
        }
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launch {
    /// Spawns the process on four free loopback ports (user, mesh, evidence, ops), stderr to
    /// `log`; the instant just before the spawn.
    fn spawn(&self, log: std::fs::File) -> Result<(Child, Instant, [u16; 4])> {
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
        let mut command = Command::new(&self.binary);
        command
            .args(["--tee", "simulated", "--sim-dir"])
            .arg(&self.sim_dir)
            .args(["--sim-host-data", &self.host_data])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--user-addr", &addr(ports[0])])
            .args(["--mesh-addr", &addr(ports[1])])
            .args(["--evidence-addr", &addr(ports[2])])
            .args(["--ops-addr", &addr(ports[3])])
            .args(["--log-level", &self.log_level])
            .stdout(Stdio::null())
            .stderr(log);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        Ok((child, started, ports))
    }
}

/// A free loopback port (bound and released).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` over plain HTTP/1.1: the status.
fn http_status(addr: &str, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// User + system CPU time of a process (`/proc/<pid>/stat` fields 14 and 15), assuming the
/// usual 100 clock ticks per second.
pub(crate) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Samples `VmRSS` of `pid` every `interval` until told to stop; returns the largest sample.
pub(crate) fn spawn_rss_sampler(
    pid: u32,
    interval: Duration,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u64>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(async move {
        let mut peak = 0;
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Some(rss) = status_bytes(pid, "VmRSS") {
                        peak = peak.max(rss);
                    }
                }
                _ = stopped.changed() => break,
            }
        }
        peak
    });
    (stop, handle)
}
