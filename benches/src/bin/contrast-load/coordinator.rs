//! The Coordinator under test: a real `coordinator` process in simulated mode on loopback,
//! and what `/proc` says about it (memory, CPU time).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use contrast_testkit::process::{self, Addrs, Launch, LogFile};

/// A running `coordinator` (killed on drop): the testkit's process harness, with the times
/// the load generator reports.
#[derive(Debug)]
pub(crate) struct CoordinatorProcess {
    process: process::CoordinatorProcess,
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
        let mut launch = Launch::new(
            binary,
            sim_dir,
            host_data,
            state_dir,
            Addrs::free().context("finding free ports")?,
        );
        launch.log_level = Some(log_level.to_owned());
        // Above every scenario's concurrency: with the default cap (256) the connections of 256
        // initializers plus those still closing are refused at accept, which is not load.
        launch.args = vec!["--max-connections".to_owned(), "4096".to_owned()];
        launch.probe_poll = PROBE_POLL;
        let log = launch.log.clone();
        let process = process::CoordinatorProcess::spawn(launch, LogFile::Truncate)
            .with_context(|| format!("starting the coordinator (log {})", log.display()))?;
        let mut process = Self {
            started: process.spawned,
            user: process.user.clone(),
            mesh: process.mesh.clone(),
            ops: process.ops.clone(),
            log,
            process,
            startup: Duration::ZERO,
        };
        process.startup =
            process.wait_for("/probe/startup", process.started, Duration::from_secs(60))?;
        Ok(process)
    }

    /// Kills the process with SIGKILL (no shutdown of any kind), starts it again over the
    /// same state directory on new ports (its log appended to the same file), and waits for
    /// the startup probe; `startup` is then the new process's.
    pub(crate) fn kill9_and_restart(&mut self) -> Result<()> {
        self.process.kill9().context("killing the coordinator")?;
        self.process.launch.addrs = Addrs::free().context("finding free ports")?;
        self.process
            .respawn(LogFile::Append)
            .context("restarting the coordinator")?;
        self.started = self.process.spawned;
        self.user.clone_from(&self.process.user);
        self.mesh.clone_from(&self.process.mesh);
        self.ops.clone_from(&self.process.ops);
        self.startup = self.wait_for("/probe/startup", self.started, Duration::from_secs(600))?;
        Ok(())
    }

    /// The process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Polls `path` on the ops port every 2 ms until it answers 200; the time from `since`
    /// to that answer.
    pub(crate) fn wait_for(
        &mut self,
        path: &str,
        since: Instant,
        timeout: Duration,
    ) -> Result<Duration> {
        let answered = self.process.wait_until(path, 200, timeout)?;
        Ok(answered.saturating_duration_since(since))
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
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
