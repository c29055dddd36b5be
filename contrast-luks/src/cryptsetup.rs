//! The `cryptsetup` command lines of secure persistence: what the initializer runs, spelled once,
//! so that the format it writes and the [`ExpectedLayout`](crate::ExpectedLayout) it requires
//! cannot drift apart (a test formats with [`format_args`](fn@format_args) and checks with the layout), and the
//! mapping name stays upstream Contrast's (a device opened by either initializer has the same
//! `/dev/mapper` name).
//!
//! Pure: paths in, argument vectors out; the caller runs the `cryptsetup` program.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The program the argument vectors are for.
pub const PROGRAM: &str = "cryptsetup";

/// `luksFormat`'s options (upstream Contrast's): LUKS2, AES-XTS, argon2id with 10 MiB, HMAC-SHA256
/// integrity without wiping the device first, 4096-byte sectors, no questions.
pub const FORMAT_OPTIONS: [&str; 8] = [
    "--type=luks2",
    "--cipher=aes-xts-plain64",
    "--pbkdf=argon2id",
    "--pbkdf-memory=10240",
    "--integrity=hmac-sha256",
    "--integrity-no-wipe",
    "--sector-size=4096",
    "--batch-mode",
];

/// The exit status of `cryptsetup isLuks` for a device that is not LUKS (0 means it is; any
/// other status is an error, e.g. a device that cannot be read).
pub const IS_LUKS_NO: i32 = 1;

/// The exit status of `cryptsetup open` when no keyslot opens with the key (a wrong key).
pub const WRONG_KEY: i32 = 2;

/// The device-mapper name of the volume on `device_path` mounted on `mount_point`: the first 8
/// bytes of SHA-256 of the two paths concatenated, as 16 lowercase hex digits (upstream's).
#[must_use]
pub fn mapping_name(device_path: &Path, mount_point: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let digest = Sha256::new()
        .chain_update(device_path.as_os_str().as_bytes())
        .chain_update(mount_point.as_os_str().as_bytes())
        .finalize();
    digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `cryptsetup isLuks DEVICE`: exit 0 if the device has a LUKS header, [`IS_LUKS_NO`] if not.
#[must_use]
pub fn is_luks_args(device: &Path) -> Vec<OsString> {
    args(["isLuks".as_ref(), device.as_os_str()])
}

/// `cryptsetup luksFormat` with [`FORMAT_OPTIONS`], keyed by the contents of `key_file`.
#[must_use]
pub fn format_args(device: &Path, key_file: &Path) -> Vec<OsString> {
    let mut out = args(["luksFormat".as_ref()]);
    out.extend(FORMAT_OPTIONS.iter().map(OsString::from));
    out.extend(key_file_option(key_file));
    out.push(device.into());
    out
}

/// `cryptsetup luksHeaderBackup`: copies the device's header (both binary headers, the JSON
/// areas and the keyslot areas) to `backup_file`, which must not exist.
#[must_use]
pub fn header_backup_args(device: &Path, backup_file: &Path) -> Vec<OsString> {
    args([
        "luksHeaderBackup".as_ref(),
        device.as_os_str(),
        "--header-backup-file".as_ref(),
        backup_file.as_os_str(),
    ])
}

/// `cryptsetup open` of `device` as `mapping`, taking the header (metadata and keyslots) from
/// `header_file`, the checked backup, and never from the device, which the host may have
/// rewritten since the check.
#[must_use]
pub fn open_args(
    device: &Path,
    header_file: &Path,
    key_file: &Path,
    mapping: &str,
) -> Vec<OsString> {
    let mut out = args([
        "open".as_ref(),
        "--type=luks2".as_ref(),
        "--header".as_ref(),
        header_file.as_os_str(),
    ]);
    out.extend(key_file_option(key_file));
    out.push(device.into());
    out.push(mapping.into());
    out
}

/// `cryptsetup close MAPPING`.
#[must_use]
pub fn close_args(mapping: &str) -> Vec<OsString> {
    args(["close".as_ref(), OsStr::new(mapping)])
}

/// The path of the opened volume: `/dev/mapper/MAPPING`.
#[must_use]
pub fn mapped_device(mapping: &str) -> std::path::PathBuf {
    Path::new("/dev/mapper").join(mapping)
}

fn key_file_option(key_file: &Path) -> [OsString; 2] {
    ["--key-file".into(), key_file.into()]
}

fn args<'a>(parts: impl IntoIterator<Item = &'a OsStr>) -> Vec<OsString> {
    parts.into_iter().map(OsStr::to_os_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_name_is_sha256_of_both_paths_truncated() {
        // printf '%s' '/dev/csi0/state' | sha256sum | cut -c1-16
        assert_eq!(
            mapping_name(Path::new("/dev/csi0"), Path::new("/state")),
            "7bfcd783e98dd63a"
        );
        assert_eq!(mapping_name(Path::new("a"), Path::new("b")).len(), 16);
    }

    #[test]
    fn open_takes_the_header_from_the_backup() {
        let argv = open_args(
            Path::new("/dev/vda"),
            Path::new("/dev/shm/h"),
            Path::new("/k"),
            "m",
        );
        assert_eq!(
            argv,
            [
                "open",
                "--type=luks2",
                "--header",
                "/dev/shm/h",
                "--key-file",
                "/k",
                "/dev/vda",
                "m"
            ]
        );
    }

    #[test]
    fn format_has_upstreams_options_then_key_and_device() {
        let argv = format_args(Path::new("/dev/vda"), Path::new("/k"));
        assert_eq!(
            argv.first().map(OsString::as_os_str),
            Some("luksFormat".as_ref())
        );
        assert!(argv.iter().any(|a| a == "--integrity=hmac-sha256"));
        assert_eq!(
            argv.last().map(OsString::as_os_str),
            Some("/dev/vda".as_ref())
        );
    }
}
