//! Shared helpers for the integration tests: the real AMD-signed vectors (copied unchanged from
//! virtee/sev, google/go-sev-guest and confidential-containers/trustee; see vectors/README.md).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use contrast_attest::chain::LeafKind;
use contrast_attest::{Product, UnixTime};

/// SHA-256 of `bytes` (an ARK fingerprint, as the reference values pin it).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    contrast_core::sha256(bytes)
}

/// AMD's ARK of `product`: the file contrast-attest compiles in as its pinned root.
pub fn amd_ark(product: Product) -> &'static [u8] {
    match product {
        Product::Milan => include_bytes!("../../roots/milan/ark.der"),
        Product::Genoa => include_bytes!("../../roots/genoa/ark.der"),
        Product::Turin => include_bytes!("../../roots/turin/ark.der"),
    }
}

/// AMD's ASK-Milan: the file contrast-attest compiles in.
pub const AMD_ASK_MILAN: &[u8] = include_bytes!("../../roots/milan/ask.der");

pub const T_2025_01_01: UnixTime = UnixTime::from_secs(1_735_689_600);
pub const T_2025_06_01: UnixTime = UnixTime::from_secs(1_748_736_000);
pub const T_2026_01_01: UnixTime = UnixTime::from_secs(1_767_225_600);

pub fn report_milan() -> Vec<u8> {
    hex::decode(include_str!("../vectors/report_milan.hex").trim()).unwrap()
}

/// One real report with its leaf, product and a time inside the leaf's validity.
pub struct Vector {
    pub name: &'static str,
    pub report: Vec<u8>,
    pub leaf: &'static [u8],
    pub kind: LeafKind,
    pub product: Product,
    pub time: UnixTime,
    pub version: u32,
}

pub fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "virtee report_milan.hex",
            report: report_milan(),
            leaf: include_bytes!("../vectors/vcek_milan.der"),
            kind: LeafKind::Vcek,
            product: Product::Milan,
            time: T_2025_01_01,
            version: 2,
        },
        Vector {
            name: "go-sev-guest attestation.bin",
            report: include_bytes!("../vectors/gosevguest_attestation.bin").to_vec(),
            leaf: include_bytes!("../vectors/gosevguest_vcek.der"),
            kind: LeafKind::Vcek,
            product: Product::Milan,
            time: T_2025_01_01,
            version: 2,
        },
        Vector {
            name: "trustee test-report.bin",
            report: include_bytes!("../vectors/test-report.bin").to_vec(),
            leaf: include_bytes!("../vectors/test-vcek.der"),
            kind: LeafKind::Vcek,
            product: Product::Milan,
            time: T_2025_01_01,
            version: 2,
        },
        Vector {
            name: "trustee test-vlek-report.bin",
            report: include_bytes!("../vectors/test-vlek-report.bin").to_vec(),
            leaf: include_bytes!("../vectors/test-vlek.der"),
            kind: LeafKind::Vlek,
            product: Product::Milan,
            time: T_2025_06_01,
            version: 3,
        },
        Vector {
            name: "trustee evidence.json (Genoa v3, rebuilt)",
            report: include_bytes!("../vectors/genoa_v3_report.bin").to_vec(),
            leaf: include_bytes!("../vectors/genoa_vcek.der"),
            kind: LeafKind::Vcek,
            product: Product::Genoa,
            time: T_2026_01_01,
            version: 3,
        },
    ]
}
