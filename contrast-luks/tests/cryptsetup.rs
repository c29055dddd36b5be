#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Headers written by the `cryptsetup` on this machine at test time (SKIPPED, with a message,
//! when there is none; the committed fixtures of header_check.rs do not need it). Integrity
//! needs device-mapper, so these are plain files without it.

use std::path::Path;
use std::process::Command;

use contrast_luks::cryptsetup::FORMAT_OPTIONS;
use contrast_luks::{ExpectedLayout, Luks2Header, check};

fn have_cryptsetup() -> bool {
    let found = Command::new("cryptsetup")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        println!("SKIPPED: no cryptsetup on PATH (apt-get install cryptsetup-bin)");
    }
    found
}

/// Formats a fresh sparse file with upstream's parameters minus integrity, plus `extra`, and
/// returns the deviations from upstream's layout.
fn format_and_check(dir: &Path, name: &str, extra: &[&str]) -> Vec<String> {
    let key = dir.join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let disk = dir.join(name);
    let file = std::fs::File::create(&disk).unwrap();
    file.set_len(32 << 20).unwrap();
    drop(file);
    // The initializer's options (contrast_luks::cryptsetup) minus integrity, which needs
    // device-mapper; a fixed argon2 cost instead of cryptsetup's benchmark keeps it fast.
    let mut args = vec!["luksFormat"];
    args.extend(
        FORMAT_OPTIONS
            .iter()
            .filter(|option| !option.starts_with("--integrity")),
    );
    args.push("--pbkdf-force-iterations=4");
    args.extend_from_slice(extra);
    let out = Command::new("cryptsetup")
        .args(&args)
        .arg("--key-file")
        .arg(&key)
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cryptsetup {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&disk).unwrap();
    let header = Luks2Header::parse(&bytes).unwrap();
    assert!(header.secondary.is_some());
    match check(&header, &ExpectedLayout::upstream()) {
        Ok(()) => Vec::new(),
        Err(deviations) => deviations.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn fresh_headers_from_cryptsetup() {
    if !have_cryptsetup() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Upstream's parameters (cryptsetup's default metadata size) without integrity: only
    // integrity is missing.
    let integrity = [
        "keyslots.0.key_size: expected 96, found 64",
        "segments.0.integrity.type: expected \"hmac(sha256)\", found none",
    ];
    assert_eq!(format_and_check(dir.path(), "upstream", &[]), integrity);
    // Larger metadata (64 KiB copies).
    assert_eq!(
        format_and_check(dir.path(), "big", &["--luks2-metadata-size=64k"]),
        integrity
    );
    // A weaker cipher, a 512-byte sector, PBKDF2: each named.
    let cbc = format_and_check(
        dir.path(),
        "cbc",
        &["--cipher=aes-cbc-essiv:sha256", "--key-size=256"],
    );
    assert!(
        cbc.contains(
            &"segments.0.encryption: expected \"aes-xts-plain64\", found \"aes-cbc-essiv:sha256\""
                .to_owned()
        ),
        "{cbc:#?}"
    );
    let sector = format_and_check(dir.path(), "sector", &["--sector-size=512"]);
    assert!(
        sector.contains(&"segments.0.sector_size: expected 4096, found 512".to_owned()),
        "{sector:#?}"
    );
    let pbkdf2 = format_and_check(
        dir.path(),
        "pbkdf2",
        &["--pbkdf=pbkdf2", "--pbkdf-force-iterations=1000"],
    );
    assert!(
        pbkdf2.contains(&"keyslots.0.kdf.type: expected \"argon2id\", found \"pbkdf2\"".to_owned()),
        "{pbkdf2:#?}"
    );
}
