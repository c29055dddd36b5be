#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `initializer cryptsetup` on this host, with the real `cryptsetup` (cryptsetup-bin) and
//! devices that are plain files: everything up to the open, which needs device-mapper (this
//! host has none; the VM test `.ci/vm-cryptsetup` runs the open, format, mount and reopen).
//! Headers the host could swap in are refused before anything is opened, with the difference
//! named, and the device is left as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use contrast_luks::cryptsetup::FORMAT_OPTIONS;

const INITIALIZER: &str = env!("CARGO_BIN_EXE_initializer");

/// A directory with a secret, a device file and the subcommand's other paths.
struct Pod {
    dir: tempfile::TempDir,
}

impl Pod {
    fn new() -> Self {
        let pod = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::write(pod.secret(), hex(&[0x5a; 64])).unwrap();
        pod
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self) -> PathBuf {
        self.path("workload-secret-seed")
    }

    fn done(&self) -> PathBuf {
        self.path("done")
    }

    fn backups(&self) -> PathBuf {
        self.path("header-backups")
    }

    /// `initializer cryptsetup` on `device`, with every path inside the pod directory.
    fn command(&self, device: &Path) -> Command {
        let mut command = Command::new(INITIALIZER);
        command
            .args(["cryptsetup", "--device-path"])
            .arg(device)
            .arg("--mount-point")
            .arg(self.path("state"))
            .arg("--secret-file")
            .arg(self.secret())
            .arg("--done-file")
            .arg(self.done())
            .arg("--header-backup-dir")
            .arg(self.backups());
        command
    }

    fn run(&self, device: &Path) -> Output {
        self.command(device).output().unwrap()
    }

    /// A 32 MiB file formatted by the real cryptsetup with the initializer's options minus
    /// integrity (dm-integrity needs device-mapper) plus `extra`.
    fn format(&self, name: &str, extra: &[&str]) -> PathBuf {
        let device = self.path(name);
        fs::File::create(&device)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let mut args = vec!["luksFormat"];
        args.extend(
            FORMAT_OPTIONS
                .iter()
                .filter(|option| !option.starts_with("--integrity")),
        );
        args.push("--pbkdf-force-iterations=4");
        args.extend_from_slice(extra);
        run_cryptsetup(
            Command::new("cryptsetup")
                .args(&args)
                .arg("--key-file")
                .arg(self.secret())
                .arg(&device),
        );
        device
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_cryptsetup(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have_cryptsetup() -> bool {
    let found = Command::new("cryptsetup")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        contrast_testkit::skip("no cryptsetup on PATH (apt-get install cryptsetup-bin)");
    }
    found
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run was refused before opening: exit 1, the deviations named, no done file, no header
/// copy left behind, and the device unchanged.
fn assert_refused(pod: &Pod, device: &Path, needles: &[&str]) -> String {
    let before = fs::read(device).unwrap();
    let out = pod.run(device);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    for needle in ["is refused, the device was not opened"]
        .iter()
        .chain(needles)
    {
        assert!(
            message.contains(needle),
            "missing {needle:?} in:\n{message}"
        );
    }
    assert!(!message.contains("cryptsetup open"), "{message}");
    assert!(!pod.done().exists());
    assert_eq!(fs::read_dir(pod.backups()).unwrap().count(), 0);
    assert!(
        fs::read(device).unwrap() == before,
        "the device was changed"
    );
    message
}

#[test]
fn headers_the_host_could_swap_in_are_refused_before_opening() {
    if !have_cryptsetup() {
        return;
    }
    let pod = Pod::new();

    // Integrity removed (upstream's parameters without it).
    let plain = pod.format("no-integrity", &[]);
    // A stale done file of an earlier run must not survive a refused one.
    fs::write(pod.done(), "").unwrap();
    assert_refused(
        &pod,
        &plain,
        &[
            "segments.0.integrity.type: expected \"hmac(sha256)\", found none",
            "keyslots.0.key_size: expected 96, found 64",
        ],
    );

    // A weaker cipher.
    let cbc = pod.format("cbc", &["--cipher=aes-cbc-essiv:sha256", "--key-size=256"]);
    assert_refused(
        &pod,
        &cbc,
        &["segments.0.encryption: expected \"aes-xts-plain64\", found \"aes-cbc-essiv:sha256\""],
    );

    // An extra keyslot (a second passphrase the host knows) and a token.
    let extra = pod.format("extra-keyslot", &[]);
    let host_key = pod.path("host-key");
    fs::write(&host_key, "host").unwrap();
    run_cryptsetup(
        Command::new("cryptsetup")
            .args(["luksAddKey", "--batch-mode", "--pbkdf-force-iterations=4"])
            .arg("--key-file")
            .arg(pod.secret())
            .arg(&extra)
            .arg(&host_key),
    );
    let mut import = Command::new("cryptsetup")
        .args(["token", "import"])
        .arg(&extra)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        import.stdin.as_mut().unwrap(),
        br#"{"type":"host-token","keyslots":[]}"#,
    )
    .unwrap();
    assert!(import.wait().unwrap().success());
    let message = assert_refused(&pod, &extra, &["keyslots: expected exactly 1", "tokens"]);
    assert!(message.contains("keyslots.1"), "{message}");
}

#[test]
fn it_waits_for_the_secret_then_goes_on() {
    if !have_cryptsetup() {
        return;
    }
    let pod = Pod::new();
    let device = pod.format("no-integrity", &[]);
    fs::remove_file(pod.secret()).unwrap();
    let log = pod.path("stderr");
    let child = pod
        .command(&device)
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(Some(child));
    wait_for_line(&log, "waiting for the workload secret");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "it did not wait for the secret"
    );
    fs::write(pod.secret(), hex(&[7; 64])).unwrap();
    let out = child.wait_with_timeout(Duration::from_secs(20));
    let message = fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("the workload secret is there"),
        "{message}"
    );
    // It went on to the header, which it refused (integrity is missing).
    assert!(message.contains("segments.0.integrity.type"), "{message}");
}

#[test]
fn a_signal_while_waiting_stops_it_with_nothing_done() {
    let pod = Pod::new();
    fs::remove_file(pod.secret()).unwrap();
    let log = pod.path("stderr");
    let child = pod
        .command(&pod.path("absent-device"))
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(Some(child));
    // The handlers are in place before it says it waits.
    wait_for_line(&log, "waiting for the workload secret");
    let pid = child.0.as_ref().unwrap().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_timeout(Duration::from_secs(10));
    let log = fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(143), "{log}");
    assert!(
        log.contains("stopped by a signal before the volume was mounted"),
        "{log}"
    );
    assert!(!pod.done().exists());
}

#[test]
fn a_secret_that_never_comes_times_out_with_a_hint() {
    let pod = Pod::new();
    fs::remove_file(pod.secret()).unwrap();
    let out = pod
        .command(&pod.path("absent-device"))
        .args(["--secret-timeout", "300ms"])
        .output()
        .unwrap();
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    for needle in [
        "did not appear within",
        "--secret-timeout",
        "WorkloadSecretID",
    ] {
        assert!(
            message.contains(needle),
            "missing {needle:?} in:\n{message}"
        );
    }
}

#[test]
fn a_malformed_secret_or_a_missing_device_is_refused_by_name() {
    let pod = Pod::new();
    fs::write(pod.secret(), format!("{}\n", hex(&[1; 64]))).unwrap();
    let out = pod.run(&pod.path("absent-device"));
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("is not lowercase hex (byte 128 of 129"),
        "{message}"
    );

    fs::write(pod.secret(), "").unwrap();
    let message = stderr(&pod.run(&pod.path("absent-device")));
    assert!(message.contains("is empty"), "{message}");

    fs::write(pod.secret(), hex(&[1; 64])).unwrap();
    let out = pod.run(&pod.path("absent-device"));
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(message.contains("absent-device is not there"), "{message}");
    assert!(message.contains("volumeDevices"), "{message}");
}

#[test]
fn help_explains_the_flow_and_the_exit_codes() {
    let out = Command::new(INITIALIZER)
        .args(["cryptsetup", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--device-path",
        "--mount-point",
        "luksHeaderBackup",
        "hmac(sha256)",
        "Exit codes:",
        "143",
        "secure-pv",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
    let main_help = Command::new(INITIALIZER).arg("--help").output().unwrap();
    let main_help = String::from_utf8(main_help.stdout).unwrap();
    assert!(main_help.contains("cryptsetup"), "{main_help}");
}

/// Waits until the log file `log` holds `line` (fails after 20 s).
fn wait_for_line(log: &Path, line: &str) {
    let started = Instant::now();
    while !fs::read_to_string(log).unwrap_or_default().contains(line) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{line:?} never appeared in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child if a test fails before it ended.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn wait_with_timeout(&mut self, timeout: Duration) -> Output {
        let started = Instant::now();
        let mut child = self.0.take().unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > timeout {
                let _ = child.kill();
                panic!("the initializer did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
