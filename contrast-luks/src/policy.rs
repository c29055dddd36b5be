//! The strict comparison of a parsed header with the layout Contrast formats.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::header::Luks2Header;
use crate::metadata::{Digest, Integrity, Keyslot, Segment, Unknown};

/// The layout a device must have: one keyslot, one segment, one digest, no token, with these
/// parameters. [`ExpectedLayout::upstream`] (also the [`Default`]) is what upstream Contrast's
/// initializer formats with `cryptsetup luksFormat --type=luks2 --cipher=aes-xts-plain64
/// --pbkdf=argon2id --pbkdf-memory=10240 --integrity=hmac-sha256 --integrity-no-wipe
/// --sector-size=4096` and what it requires before opening a device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpectedLayout {
    /// Keyslot 0's `key_size`: the volume key in bytes (96 = 64 for XTS + 32 for the HMAC).
    pub keyslot_key_size: u64,
    /// Keyslot 0's `area.encryption`.
    pub area_encryption: String,
    /// Keyslot 0's `area.key_size`.
    pub area_key_size: u64,
    /// Keyslot 0's `af.stripes` (the `af.type` is `luks1`).
    pub af_stripes: u64,
    /// Keyslot 0's `af.hash`.
    pub af_hash: String,
    /// Keyslot 0's `kdf.type` (and a salt is required).
    pub kdf: String,
    /// Segment 0's `encryption`.
    pub segment_encryption: String,
    /// Segment 0's `sector_size`.
    pub sector_size: u64,
    /// Segment 0's `integrity`, or `None` for a segment that must have none.
    pub integrity: Option<ExpectedIntegrity>,
    /// Digest 0's `hash` (the type is `pbkdf2`).
    pub digest_hash: String,
}

/// The expected integrity object of segment 0.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpectedIntegrity {
    /// `type`, e.g. `hmac(sha256)`.
    pub kind: String,
    /// `journal_encryption`.
    pub journal_encryption: String,
    /// `journal_integrity`.
    pub journal_integrity: String,
}

impl ExpectedLayout {
    /// Upstream Contrast's layout (`internal/cryptsetup`): AES-XTS with a 512-bit key,
    /// HMAC-SHA256 integrity without journal encryption or integrity, 4096-byte sectors,
    /// argon2id, AF luks1 with 4000 stripes of SHA-256, a PBKDF2-SHA256 digest.
    #[must_use]
    pub fn upstream() -> Self {
        Self {
            keyslot_key_size: 96,
            area_encryption: "aes-xts-plain64".to_owned(),
            area_key_size: 64,
            af_stripes: 4000,
            af_hash: "sha256".to_owned(),
            kdf: "argon2id".to_owned(),
            segment_encryption: "aes-xts-plain64".to_owned(),
            sector_size: 4096,
            integrity: Some(ExpectedIntegrity {
                kind: "hmac(sha256)".to_owned(),
                journal_encryption: "none".to_owned(),
                journal_integrity: "none".to_owned(),
            }),
            digest_hash: "sha256".to_owned(),
        }
    }
}

impl Default for ExpectedLayout {
    fn default() -> Self {
        Self::upstream()
    }
}

/// One way a header differs from the [`ExpectedLayout`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expected {expected}, found {found}")]
#[non_exhaustive]
pub struct Deviation {
    /// The JSON path, e.g. `segments.0.integrity.type`.
    pub path: String,
    /// What the layout requires, e.g. `"hmac(sha256)"` or `exactly 1`.
    pub expected: String,
    /// What the header holds, e.g. `none` or `2`.
    pub found: String,
}

/// Compares `header` with `expected`; every difference is returned, none is skipped.
///
/// Refused besides a wrong value: a missing field, any field the LUKS2 format does not define
/// for these objects, a second keyslot, segment or digest, any token, segment flags, a keyslot
/// priority, `config.flags` or `config.requirements`.
///
/// # Errors
///
/// The deviations, in the order keyslots, segments, digests, tokens, config, other.
pub fn check(header: &Luks2Header, expected: &ExpectedLayout) -> Result<(), Vec<Deviation>> {
    let mut out = Findings::default();
    let meta = &header.metadata;

    only_entry_zero(
        &mut out,
        "keyslots",
        "a keyslot",
        &meta.keyslots,
        |out, slot| {
            keyslot(out, slot, expected);
        },
    );
    only_entry_zero(
        &mut out,
        "segments",
        "a segment",
        &meta.segments,
        |out, seg| {
            segment(out, seg, expected);
        },
    );
    only_entry_zero(
        &mut out,
        "digests",
        "a digest",
        &meta.digests,
        |out, dig| {
            digest(out, dig, expected);
        },
    );

    if !meta.tokens.is_empty() {
        out.push("tokens", "none", meta.tokens.len().to_string());
    }

    let config = &meta.config;
    out.absent("config.flags", config.flags.as_ref());
    out.absent("config.requirements", config.requirements.as_ref());
    out.unknown("config", &config.unknown);
    out.unknown("", &meta.unknown);

    if out.0.is_empty() { Ok(()) } else { Err(out.0) }
}

/// Exactly one entry of `kind`, with id `0`, checked by `check_zero` where it stands in id
/// order; every other id and a missing `0` are deviations (`a_noun` names one entry).
fn only_entry_zero<T>(
    out: &mut Findings,
    kind: &str,
    a_noun: &str,
    entries: &BTreeMap<String, T>,
    mut check_zero: impl FnMut(&mut Findings, &T),
) {
    out.count(kind, entries.len(), 1);
    for (id, entry) in entries {
        if id == "0" {
            check_zero(out, entry);
        } else {
            out.push(format!("{kind}.{id}"), "none", a_noun);
        }
    }
    if !entries.contains_key("0") {
        out.push(format!("{kind}.0"), a_noun, "none");
    }
}

fn keyslot(out: &mut Findings, slot: &Keyslot, expected: &ExpectedLayout) {
    out.str("keyslots.0.type", slot.kind.as_deref(), "luks2");
    out.num(
        "keyslots.0.key_size",
        slot.key_size,
        expected.keyslot_key_size,
    );
    out.absent("keyslots.0.priority", slot.priority.as_ref());
    out.unknown("keyslots.0", &slot.unknown);
    match &slot.area {
        None => out.push("keyslots.0.area", "an object", "none"),
        Some(area) => {
            out.str("keyslots.0.area.type", area.kind.as_deref(), "raw");
            out.str(
                "keyslots.0.area.encryption",
                area.encryption.as_deref(),
                &expected.area_encryption,
            );
            out.num(
                "keyslots.0.area.key_size",
                area.key_size,
                expected.area_key_size,
            );
            out.present("keyslots.0.area.offset", area.offset.is_some());
            out.present("keyslots.0.area.size", area.size.is_some());
            out.unknown("keyslots.0.area", &area.unknown);
        }
    }
    match &slot.af {
        None => out.push("keyslots.0.af", "an object", "none"),
        Some(af) => {
            out.str("keyslots.0.af.type", af.kind.as_deref(), "luks1");
            out.num("keyslots.0.af.stripes", af.stripes, expected.af_stripes);
            out.str("keyslots.0.af.hash", af.hash.as_deref(), &expected.af_hash);
            out.unknown("keyslots.0.af", &af.unknown);
        }
    }
    match &slot.kdf {
        None => out.push("keyslots.0.kdf", "an object", "none"),
        Some(kdf) => {
            out.str("keyslots.0.kdf.type", kdf.kind.as_deref(), &expected.kdf);
            match kdf.salt.as_deref() {
                Some(salt) if !salt.is_empty() => {}
                found => out.push("keyslots.0.kdf.salt", "a salt", show_str(found)),
            }
            if expected.kdf.starts_with("argon2") {
                out.present("keyslots.0.kdf.time", kdf.time.is_some());
                out.present("keyslots.0.kdf.memory", kdf.memory.is_some());
                out.present("keyslots.0.kdf.cpus", kdf.cpus.is_some());
                out.absent_str("keyslots.0.kdf.hash", kdf.hash.as_deref());
                out.absent_num("keyslots.0.kdf.iterations", kdf.iterations);
            } else {
                out.present("keyslots.0.kdf.hash", kdf.hash.is_some());
                out.present("keyslots.0.kdf.iterations", kdf.iterations.is_some());
                out.absent_num("keyslots.0.kdf.time", kdf.time);
                out.absent_num("keyslots.0.kdf.memory", kdf.memory);
                out.absent_num("keyslots.0.kdf.cpus", kdf.cpus);
            }
            out.unknown("keyslots.0.kdf", &kdf.unknown);
        }
    }
}

fn segment(out: &mut Findings, seg: &Segment, expected: &ExpectedLayout) {
    out.str("segments.0.type", seg.kind.as_deref(), "crypt");
    out.str("segments.0.iv_tweak", seg.iv_tweak.as_deref(), "0");
    out.str(
        "segments.0.encryption",
        seg.encryption.as_deref(),
        &expected.segment_encryption,
    );
    out.num(
        "segments.0.sector_size",
        seg.sector_size,
        expected.sector_size,
    );
    out.str("segments.0.size", seg.size.as_deref(), "dynamic");
    out.present("segments.0.offset", seg.offset.is_some());
    match &seg.flags {
        None => {}
        Some(Value::Array(flags)) if flags.is_empty() => {}
        Some(flags) => out.push("segments.0.flags", "none", flags.to_string()),
    }
    integrity(out, seg.integrity.as_ref(), expected);
    out.unknown("segments.0", &seg.unknown);
}

fn integrity(out: &mut Findings, found: Option<&Integrity>, expected: &ExpectedLayout) {
    match (found, &expected.integrity) {
        (None, None) => {}
        (Some(found), None) => out.push(
            "segments.0.integrity.type",
            "none",
            show_str(found.kind.as_deref()),
        ),
        (None, Some(want)) => out.push("segments.0.integrity.type", quote(&want.kind), "none"),
        (Some(found), Some(want)) => {
            out.str(
                "segments.0.integrity.type",
                found.kind.as_deref(),
                &want.kind,
            );
            out.str(
                "segments.0.integrity.journal_encryption",
                found.journal_encryption.as_deref(),
                &want.journal_encryption,
            );
            out.str(
                "segments.0.integrity.journal_integrity",
                found.journal_integrity.as_deref(),
                &want.journal_integrity,
            );
            out.unknown("segments.0.integrity", &found.unknown);
        }
    }
}

fn digest(out: &mut Findings, dig: &Digest, expected: &ExpectedLayout) {
    out.str("digests.0.type", dig.kind.as_deref(), "pbkdf2");
    out.str("digests.0.hash", dig.hash.as_deref(), &expected.digest_hash);
    out.list("digests.0.keyslots", dig.keyslots.as_deref(), "0");
    out.list("digests.0.segments", dig.segments.as_deref(), "0");
    out.present("digests.0.iterations", dig.iterations.is_some());
    out.present("digests.0.salt", dig.salt.is_some());
    out.present("digests.0.digest", dig.digest.is_some());
    out.unknown("digests.0", &dig.unknown);
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn show_str(found: Option<&str>) -> String {
    found.map_or_else(|| "none".to_owned(), quote)
}

/// A found value is shown up to this many characters (a hostile header can hold megabytes).
const MAX_SHOWN: usize = 200;

fn clip(mut found: String) -> String {
    if let Some((at, _)) = found.char_indices().nth(MAX_SHOWN) {
        found.truncate(at);
        found.push_str("...");
    }
    found
}

#[derive(Default)]
struct Findings(Vec<Deviation>);

impl Findings {
    fn push(
        &mut self,
        path: impl fmt::Display,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) {
        self.0.push(Deviation {
            path: path.to_string(),
            expected: expected.into(),
            found: clip(found.into()),
        });
    }

    fn count(&mut self, path: &str, found: usize, expected: usize) {
        if found != expected {
            self.push(path, format!("exactly {expected}"), found.to_string());
        }
    }

    fn str(&mut self, path: &str, found: Option<&str>, expected: &str) {
        if found != Some(expected) {
            self.push(path, quote(expected), show_str(found));
        }
    }

    fn num(&mut self, path: &str, found: Option<u64>, expected: u64) {
        if found != Some(expected) {
            self.push(
                path,
                expected.to_string(),
                found.map_or_else(|| "none".to_owned(), |n| n.to_string()),
            );
        }
    }

    fn list(&mut self, path: &str, found: Option<&[String]>, only: &str) {
        if found != Some(&[only.to_owned()][..]) {
            self.push(
                path,
                format!("[{}]", quote(only)),
                found.map_or_else(|| "none".to_owned(), |ids| format!("{ids:?}")),
            );
        }
    }

    fn present(&mut self, path: &str, present: bool) {
        if !present {
            self.push(path, "a value", "none");
        }
    }

    fn absent(&mut self, path: &str, found: Option<&Value>) {
        if let Some(value) = found {
            self.push(path, "none", value.to_string());
        }
    }

    fn absent_str(&mut self, path: &str, found: Option<&str>) {
        if let Some(value) = found {
            self.push(path, "none", quote(value));
        }
    }

    fn absent_num(&mut self, path: &str, found: Option<u64>) {
        if let Some(value) = found {
            self.push(path, "none", value.to_string());
        }
    }

    fn unknown(&mut self, parent: &str, fields: &Unknown) {
        for (name, value) in fields {
            let path = if parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}.{name}")
            };
            self.push(path, "none", value.to_string());
        }
    }
}
