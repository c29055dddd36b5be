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

/// The block size of the file system on a new volume: the volume's sector size, so that a block
/// is one integrity unit.
pub const EXT4_BLOCK_SIZE: u64 = 4096;

/// `mkfs.ext4` for the opened volume, with `dry_run` (`-n`) only printing what it would do.
/// `-F`: the device is new (formatted in this run), no question asked.
#[must_use]
pub fn mkfs_args(device: &Path, dry_run: bool) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![if dry_run { "-n" } else { "-q" }.into()];
    out.extend(["-F".into(), "-b".into(), EXT4_BLOCK_SIZE.to_string().into()]);
    out.push(device.into());
    out
}

/// The blocks `mkfs.ext4` reads before it writes them, from its dry run's output: block 0 and
/// the backup superblocks (`Superblock backups stored on blocks:` and the numbers on the lines
/// after it, up to an empty line). With `--integrity-no-wipe` none of a new volume's blocks has
/// a valid integrity tag until written, so reading one fails with EIO: these must be written
/// (with zeros) before mkfs runs.
///
/// # Errors
///
/// A list item that is not a block number, with the item.
pub fn blocks_mkfs_reads(dry_run_output: &str) -> Result<Vec<u64>, String> {
    let mut blocks = vec![0];
    let Some((_, after)) = dry_run_output.split_once("Superblock backups stored on blocks:") else {
        return Ok(blocks);
    };
    for line in after.lines().skip_while(|line| line.trim().is_empty()) {
        if line.trim().is_empty() {
            break;
        }
        for item in line
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            blocks.push(
                item.parse()
                    .map_err(|_| format!("{item:?} is not a block number"))?,
            );
        }
    }
    Ok(blocks)
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
    fn the_blocks_mkfs_reads_come_from_its_dry_run() {
        // mke2fs 1.47.0, `-n -F -b 4096` on 600 MiB.
        let output = "mke2fs 1.47.0 (5-Feb-2023)\nCreating filesystem with 153600 4k blocks \
                      and 38400 inodes\nFilesystem UUID: 78bf0fe5-1fe0-48c8-9d5e-2a01e1670210\n\
                      Superblock backups stored on blocks: \n\t32768, 98304\n\n";
        assert_eq!(blocks_mkfs_reads(output), Ok(vec![0, 32768, 98304]));
        let long = "Superblock backups stored on blocks: \n\t32768, 98304, 163840,\n\t229376\n\nAllocating group tables: 12";
        assert_eq!(
            blocks_mkfs_reads(long),
            Ok(vec![0, 32768, 98304, 163840, 229376])
        );
        // A small volume has no backups.
        assert_eq!(
            blocks_mkfs_reads("Creating filesystem with 8192 4k blocks and 8192 inodes\n\n"),
            Ok(vec![0])
        );
        assert!(blocks_mkfs_reads("Superblock backups stored on blocks: \n\tmany\n").is_err());
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
