//! `initializer cryptsetup`: secure persistence. Opens a LUKS2 volume on an untrusted block
//! device, keyed by the workload secret the main run wrote, and keeps it mounted until
//! signalled (the sidecar of the `secure-pv` annotation).
//!
//! The host controls the device, so nothing on it is trusted: its header is copied to memory
//! (`luksHeaderBackup` into tmpfs), the copy is parsed and checked strictly
//! (`contrast_luks::check`), and the volume is opened from the copy, so the host cannot swap the
//! header between the check and the open. The command lines are `contrast_luks::cryptsetup`'s.

use std::ffi::OsString;
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use contrast_core::duration::parse_duration;
use contrast_core::kubernetes::{INITIALIZER_DONE_FILE, SECRETS_MOUNT_PATH};
use contrast_luks::cryptsetup::{self as luks_cli, IS_LUKS_NO, WRONG_KEY};
use contrast_luks::{ExpectedLayout, Luks2Header};
use rand_core::RngCore as _;
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::files::{self, SECRETS_DIR, WORKLOAD_SECRET_FILE};

/// The file system created on a freshly formatted volume.
const FILE_SYSTEM: &str = "ext4";
/// The program that creates it.
const MKFS: &str = "mkfs.ext4";
/// How often the secret file is looked for, and how often a wait is reported.
const SECRET_POLL: Duration = Duration::from_millis(200);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Attempts to unmount at shutdown (a container may still be closing its files).
const UNMOUNT_ATTEMPTS: u32 = 5;

pub(crate) const LONG_ABOUT: &str = "\
Opens an encrypted volume on an untrusted block device and keeps it mounted until signalled
(secure persistence: the sidecar that `contrast generate` injects for the
contrast.edgeless.systems/secure-pv annotation).

Flow:
  1. Wait for the workload secret (--secret-file), which the initializer's main run writes.
     Its lowercase hex text is the LUKS passphrase, as upstream Contrast keys the volume.
  2. If the device is not LUKS (`cryptsetup isLuks`), format it: LUKS2, aes-xts-plain64,
     argon2id (10 MiB), hmac-sha256 integrity (dm-integrity), 4096-byte sectors. This erases
     the device.
  3. Copy the device's header into --header-backup-dir (tmpfs, `cryptsetup luksHeaderBackup`)
     and check the copy strictly: exactly one argon2id keyslot, one aes-xts-plain64 segment
     with hmac(sha256) integrity and 4096-byte sectors, one PBKDF2-SHA256 digest, no token,
     nothing else. A header that differs (a weaker cipher, no integrity, an extra keyslot, a
     token, ...) is refused with every difference named, and the device is not opened.
  4. Open the device with the checked copy as its header (`cryptsetup open --header`): the host
     cannot change the header between the check and the open. Device-mapper name: the first 8
     bytes of SHA-256(device path + mount point), in hex (upstream's).
  5. After a format: create an ext4 file system. Mount it on --mount-point.
  6. Write --done-file (the startup probe's condition) and wait for SIGTERM or SIGINT; then
     unmount, close the volume, remove the done file and exit 0.
A failure after the open unmounts and closes the volume again, so a restart starts clean; a
volume left open by an earlier run of the same device and mount point is closed first.
The programs cryptsetup, mkfs.ext4, mount and umount are run from PATH.";

pub(crate) const AFTER_HELP: &str = "\
Exit codes:
  0    the volume was mounted, and unmounted and closed after SIGTERM/SIGINT
  1    failure: the secret is missing or malformed, the header was refused, the secret does
       not open the volume, a program failed (the log says which and what it printed)
  2    invalid command line
  130  interrupted by SIGINT before the volume was mounted (128 + 2)
  143  terminated by SIGTERM before the volume was mounted (128 + 15)

Example (what the secure-pv sidecar runs):
  initializer cryptsetup --device-path /dev/csi0 --mount-point /state";

/// `initializer cryptsetup`'s command line.
#[derive(Debug, Args)]
pub(crate) struct CryptsetupArgs {
    /// The untrusted block device (e.g. the volume claim's `devicePath`).
    #[arg(short = 'd', long, value_name = "DEVICE")]
    pub(crate) device_path: PathBuf,
    /// Where the opened volume is mounted (created if missing).
    #[arg(short = 'm', long, value_name = "DIR")]
    pub(crate) mount_point: PathBuf,
    /// The workload secret (lowercase hex), the volume's passphrase.
    #[arg(long, value_name = "PATH", default_value_os_t = default_secret_file())]
    pub(crate) secret_file: PathBuf,
    /// Give up if the secret has not appeared after this long (default: wait until stopped).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) secret_timeout: Option<Duration>,
    /// The empty marker written once the volume is mounted (the startup probe's condition).
    #[arg(long, value_name = "PATH", default_value = INITIALIZER_DONE_FILE)]
    pub(crate) done_file: PathBuf,
    /// Where the header copy is kept while it is checked and used to open the volume: memory
    /// (tmpfs), never the untrusted disk.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/dev/shm/contrast-cryptsetup"
    )]
    pub(crate) header_backup_dir: PathBuf,
}

/// `/contrast/secrets/workload-secret-seed`: where the main run writes the secret.
fn default_secret_file() -> PathBuf {
    Path::new(SECRETS_MOUNT_PATH)
        .join(SECRETS_DIR)
        .join(WORKLOAD_SECRET_FILE)
}

/// How the subcommand ended, short of an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Mounted, then unmounted and closed after this signal.
    Closed(u8),
    /// Stopped by this signal before the volume was mounted (nothing is left open).
    Interrupted(u8),
}

/// Runs the subcommand until a signal (or an error).
pub(crate) async fn run(args: CryptsetupArgs) -> Result<Ended> {
    let stop = watch_signals()?;
    let mapping = luks_cli::mapping_name(&args.device_path, &args.mount_point);
    remove_stale_done_file(&args.done_file)?;
    info!(
        device = %args.device_path.display(),
        mount_point = %args.mount_point.display(),
        mapping = %mapping,
        "secure persistence: setting up the encrypted volume"
    );
    if let Some(signal) = wait_for_secret(&args, stop.clone()).await? {
        return Ok(Ended::Interrupted(signal));
    }
    check_device(&args.device_path)?;
    close_stale_mapping(&mapping, &args.mount_point).await?;

    let formatted = if is_luks(&args.device_path).await? {
        info!(device = %args.device_path.display(), "the device is LUKS: checking its header");
        false
    } else {
        warn!(
            device = %args.device_path.display(),
            "the device is not LUKS: formatting it (this erases it; argon2id and dm-integrity \
             take a while)"
        );
        run_tool(
            luks_cli::PROGRAM,
            luks_cli::format_args(&args.device_path, &args.secret_file),
        )
        .await?
        .success("cannot format the device")?;
        info!(device = %args.device_path.display(), "formatted");
        true
    };
    if let Some(signal) = *stop.borrow() {
        return Ok(Ended::Interrupted(signal));
    }

    let backup = HeaderBackup::create(&args.header_backup_dir, &args.device_path).await?;
    check_header(&backup.path, &args.device_path)?;
    open(&args, &backup.path, &mapping).await?;
    drop(backup);
    let mut volume = OpenVolume {
        mapping,
        mount_point: args.mount_point.clone(),
        mounted: false,
    };
    if let Err(e) = mount(&args, &mut volume, formatted).await {
        volume.close().await;
        return Err(e);
    }
    if let Some(signal) = *stop.borrow() {
        volume.close().await;
        return Ok(Ended::Interrupted(signal));
    }
    if let Err(e) = files::write_done_marker(&args.done_file) {
        volume.close().await;
        return Err(e);
    }
    info!(
        mount_point = %args.mount_point.display(),
        done_file = %args.done_file.display(),
        "the encrypted volume is mounted; running until SIGTERM or SIGINT"
    );

    let signal = wait_for_stop(stop).await;
    info!(signal, "stopping: unmounting and closing the volume");
    let _ = fs::remove_file(&args.done_file);
    volume.shut_down().await?;
    info!("the volume is unmounted and closed");
    Ok(Ended::Closed(signal))
}

/// A watch that turns to the signal's number on the first SIGTERM (15) or SIGINT (2).
fn watch_signals() -> Result<watch::Receiver<Option<u8>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let (sender, receiver) = watch::channel(None);
    tokio::spawn(async move {
        let number = tokio::select! {
            _ = sigterm.recv() => 15,
            _ = sigint.recv() => 2,
        };
        let _ = sender.send(Some(number));
        // Keep the sender (and the handlers) alive: a second signal is not the default action.
        std::future::pending::<()>().await;
    });
    Ok(receiver)
}

async fn wait_for_stop(mut stop: watch::Receiver<Option<u8>>) -> u8 {
    loop {
        if let Some(signal) = *stop.borrow_and_update() {
            return signal;
        }
        if stop.changed().await.is_err() {
            // The watcher task ended: no signal can arrive any more.
            return std::future::pending().await;
        }
    }
}

/// A done file from an earlier run must not satisfy the probe before this run has mounted.
fn remove_stale_done_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            info!(done_file = %path.display(), "removed the done file of an earlier run");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove the old {}", path.display())),
    }
}

/// Waits until the secret file exists and checks it; `Some(signal)` if stopped first.
async fn wait_for_secret(
    args: &CryptsetupArgs,
    mut stop: watch::Receiver<Option<u8>>,
) -> Result<Option<u8>> {
    let path = &args.secret_file;
    let started = Instant::now();
    let mut reported = started;
    let mut announced = false;
    loop {
        match fs::read(path) {
            Ok(contents) => {
                let contents = zeroize::Zeroizing::new(contents);
                check_secret(path, &contents)?;
                if announced {
                    info!(secret_file = %path.display(), waited = ?started.elapsed(), "the workload secret is there");
                }
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the workload secret {}", path.display())
                });
            }
        }
        if !announced {
            info!(
                secret_file = %path.display(),
                "waiting for the workload secret (the initializer's main run writes it)"
            );
            announced = true;
        }
        if let Some(timeout) = args.secret_timeout
            && started.elapsed() >= timeout
        {
            bail!(
                "the workload secret {} did not appear within {timeout:?} (--secret-timeout): \
                 did the initializer's main run finish, and does the pod's policy have a \
                 WorkloadSecretID?",
                path.display()
            );
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            info!(
                secret_file = %path.display(),
                waited_s = started.elapsed().as_secs(),
                "still waiting for the workload secret"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(SECRET_POLL) => {}
            changed = stop.changed() => {
                if changed.is_ok()
                    && let Some(signal) = *stop.borrow()
                {
                    return Ok(Some(signal));
                }
            }
        }
    }
}

/// The secret file holds what the main run writes: lowercase hex, nothing else (a newline would
/// become part of the passphrase and the volume would not open elsewhere).
fn check_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let bad = contents
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match (contents.is_empty(), bad) {
        (true, _) => bail!(
            "the workload secret {} is empty: the initializer's main run writes it as lowercase \
             hex",
            path.display()
        ),
        (false, Some(offset)) => bail!(
            "the workload secret {} is not lowercase hex (byte {offset} of {} is not a hex \
             digit): the initializer's main run writes it without a newline",
            path.display(),
            contents.len()
        ),
        (false, None) => Ok(()),
    }
}

fn check_device(device: &Path) -> Result<()> {
    let metadata = fs::metadata(device).with_context(|| {
        format!(
            "the device {} is not there (is the volume claim in the pod's volumeDevices?)",
            device.display()
        )
    })?;
    if metadata.is_dir() {
        bail!(
            "{} is a directory, not a block device: secure-pv needs a volume claim with \
             volumeMode: Block",
            device.display()
        );
    }
    Ok(())
}

/// A volume of the same device and mount point left open by an earlier run (the sidecar was
/// restarted): unmounted and closed, so this run starts from the device.
async fn close_stale_mapping(mapping: &str, mount_point: &Path) -> Result<()> {
    if !luks_cli::mapped_device(mapping).exists() {
        return Ok(());
    }
    warn!(
        mapping,
        "the volume is still open from an earlier run: unmounting and closing it first"
    );
    let _ = run_tool("umount", [mount_point.as_os_str().to_owned()]).await;
    run_tool(luks_cli::PROGRAM, luks_cli::close_args(mapping))
        .await?
        .success("cannot close the volume an earlier run left open")
}

async fn is_luks(device: &Path) -> Result<bool> {
    let output = run_tool(luks_cli::PROGRAM, luks_cli::is_luks_args(device)).await?;
    match output.output.status.code() {
        Some(0) => Ok(true),
        Some(IS_LUKS_NO) => Ok(false),
        _ => Err(output.failure("cannot tell whether the device is LUKS")),
    }
}

/// The header copy in tmpfs, removed when dropped.
struct HeaderBackup {
    path: PathBuf,
}

impl HeaderBackup {
    async fn create(dir: &Path, device: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        fs::set_permissions(dir, Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set the mode of {} to 0700", dir.display()))?;
        let path = dir.join(format!("luks-header-{:08x}", rand_core::OsRng.next_u32()));
        let backup = Self { path };
        run_tool(
            luks_cli::PROGRAM,
            luks_cli::header_backup_args(device, &backup.path),
        )
        .await?
        .success("cannot copy the device's LUKS header")?;
        Ok(backup)
    }
}

impl Drop for HeaderBackup {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Parses the header copy and compares it with upstream's layout; every difference is logged
/// and named in the error.
fn check_header(backup: &Path, device: &Path) -> Result<()> {
    let bytes = fs::read(backup)
        .with_context(|| format!("cannot read the header copy {}", backup.display()))?;
    let header = Luks2Header::parse(&bytes).with_context(|| {
        format!(
            "the LUKS2 header of {} is refused: it does not parse",
            device.display()
        )
    })?;
    match contrast_luks::check(&header, &ExpectedLayout::upstream()) {
        Ok(()) => {
            info!(device = %device.display(), "the LUKS2 header is the expected layout");
            Ok(())
        }
        Err(deviations) => {
            for deviation in &deviations {
                error!(device = %device.display(), "LUKS2 header deviation: {deviation}");
            }
            let list: Vec<String> = deviations.iter().map(ToString::to_string).collect();
            Err(anyhow!(
                "the LUKS2 header of {} is refused, the device was not opened: {} deviation(s) \
                 from the layout Contrast formats: {} (the host may have replaced the header; \
                 if this device was formatted by something else, wipe it to start over)",
                device.display(),
                deviations.len(),
                list.join("; ")
            ))
        }
    }
}

async fn open(args: &CryptsetupArgs, header: &Path, mapping: &str) -> Result<()> {
    let output = run_tool(
        luks_cli::PROGRAM,
        luks_cli::open_args(&args.device_path, header, &args.secret_file, mapping),
    )
    .await?;
    match output.output.status.code() {
        Some(0) => {
            info!(mapping, "opened");
            Ok(())
        }
        Some(WRONG_KEY) => Err(output.failure(&format!(
            "the workload secret does not open {}: it was formatted with another secret \
             (another deployment or seed, or another workload-secret-id)",
            args.device_path.display()
        ))),
        _ => Err(output.failure("cannot open the volume")),
    }
}

/// The opened volume, to be unmounted and closed.
struct OpenVolume {
    mapping: String,
    mount_point: PathBuf,
    mounted: bool,
}

impl OpenVolume {
    /// Best effort, after a failure: the error that caused it is what gets reported.
    async fn close(self) {
        if let Err(e) = self.shut_down().await {
            error!(
                error = contrast_core::error_chain::describe(e.as_ref()),
                "could not close the volume after the failure"
            );
        }
    }

    async fn shut_down(self) -> Result<()> {
        if self.mounted {
            let mut attempt = 1;
            loop {
                let output = run_tool("umount", [self.mount_point.as_os_str().to_owned()]).await?;
                if output.output.status.success() {
                    break;
                }
                if attempt >= UNMOUNT_ATTEMPTS {
                    return Err(output.failure("cannot unmount the volume"));
                }
                warn!(attempt, "unmount failed; retrying in 1s");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        run_tool(luks_cli::PROGRAM, luks_cli::close_args(&self.mapping))
            .await?
            .success("cannot close the volume")
    }
}

async fn mount(args: &CryptsetupArgs, volume: &mut OpenVolume, formatted: bool) -> Result<()> {
    let device = luks_cli::mapped_device(&volume.mapping);
    if formatted {
        info!(device = %device.display(), "creating the ext4 file system");
        run_tool(MKFS, [OsString::from("-q"), device.clone().into()])
            .await?
            .success("cannot create the file system")?;
    }
    fs::create_dir_all(&args.mount_point).with_context(|| {
        format!(
            "cannot create the mount point {}",
            args.mount_point.display()
        )
    })?;
    let output = run_tool(
        "mount",
        [
            OsString::from("-t"),
            FILE_SYSTEM.into(),
            device.into(),
            args.mount_point.clone().into(),
        ],
    )
    .await?;
    if !output.output.status.success() {
        let hint = if formatted {
            "cannot mount the new file system"
        } else {
            "cannot mount the volume: if an earlier run was stopped between formatting and \
             creating the file system, the volume holds no file system; wipe the device to \
             start over (nothing is erased automatically)"
        };
        return Err(output.failure(hint));
    }
    volume.mounted = true;
    Ok(())
}

/// A finished program, with its command line for messages.
struct ToolOutput {
    command: String,
    output: Output,
}

impl ToolOutput {
    fn success(self, what: &str) -> Result<()> {
        if self.output.status.success() {
            Ok(())
        } else {
            Err(self.failure(what))
        }
    }

    fn failure(&self, what: &str) -> anyhow::Error {
        let status = self.output.status.code().map_or_else(
            || "killed by a signal".to_owned(),
            |code| format!("exit {code}"),
        );
        let stderr = String::from_utf8_lossy(&self.output.stderr);
        let stdout = String::from_utf8_lossy(&self.output.stdout);
        let printed = [stderr.trim(), stdout.trim()]
            .into_iter()
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        anyhow!("{what}: `{}` failed ({status}): {printed}", self.command)
    }
}

/// Runs `program args` to completion (never interrupted: a half-written header is worse than a
/// late stop), its output captured.
async fn run_tool(program: &str, args: impl IntoIterator<Item = OsString>) -> Result<ToolOutput> {
    let args: Vec<OsString> = args.into_iter().collect();
    let command = std::iter::once(program.to_owned())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    info!(command = %command, "running");
    let output = Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {program} (is it installed and on PATH?)"))?;
    Ok(ToolOutput { command, output })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_secret_must_be_lowercase_hex_only() {
        let path = Path::new("/s");
        assert!(check_secret(path, b"00ff").is_ok());
        let empty = check_secret(path, b"").unwrap_err().to_string();
        assert!(empty.contains("is empty"), "{empty}");
        let newline = check_secret(path, b"00ff\n").unwrap_err().to_string();
        assert!(newline.contains("byte 4 of 5"), "{newline}");
        let upper = check_secret(path, b"00FF").unwrap_err().to_string();
        assert!(upper.contains("byte 2 of 4"), "{upper}");
    }

    #[test]
    fn the_default_secret_file_is_where_the_main_run_writes_it() {
        assert_eq!(
            default_secret_file(),
            Path::new("/contrast/secrets/workload-secret-seed")
        );
    }
}
