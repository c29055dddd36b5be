//! proptest: simulated reports with random fields round-trip through sign → verify → accessors.
//! The report is produced by the simulated platform and read back by the production verifier
//! (`verify_report` with the simulated ARK pinned), so every field the guest wrote must come back
//! unchanged through the typed accessors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use contrast_attest::chain::{CertRole, TrustAnchor};
use contrast_attest::collateral::CollateralMap;
use contrast_attest::{CrlPolicy, Product, TcbVersion, UnixTime, verify_report};
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use proptest::prelude::*;

const NOT_BEFORE: u64 = 1_704_067_200; // 2024-01-01
const NOW: UnixTime = UnixTime::from_secs(NOT_BEFORE + 86_400);

fn platform(product: Product) -> &'static SimulatedPlatform {
    static MILAN: OnceLock<SimulatedPlatform> = OnceLock::new();
    static TURIN: OnceLock<SimulatedPlatform> = OnceLock::new();
    let cell = if product == Product::Turin {
        &TURIN
    } else {
        &MILAN
    };
    cell.get_or_init(|| {
        let not_before = UNIX_EPOCH + Duration::from_secs(NOT_BEFORE);
        SimulatedPlatform::generate(product, not_before, &mut rand_core::OsRng).unwrap()
    })
}

/// A guest with every freely choosable field random.
#[derive(Debug, Clone)]
struct Fields {
    product: Product,
    version: u32,
    guest_svn: u32,
    policy_flags: u64,
    abi: (u8, u8),
    vmpl: u32,
    measurement: [u8; 48],
    host_data: [u8; 32],
    report_data: [u8; 64],
    family_id: [u8; 16],
    image_id: [u8; 16],
    id_key_digest: [u8; 48],
    author_key_digest: [u8; 48],
    report_id: [u8; 32],
    chip_id: [u8; 64],
    tcb: (u8, u8, u8, u8, u8),
    mit_vectors: (u64, u64),
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (
            prop_oneof![Just(Product::Milan), Just(Product::Turin)],
            prop_oneof![Just(2u32), Just(3), Just(5)],
        ),
        (any::<u32>(), any::<u64>(), any::<(u8, u8)>(), 0u32..=3),
        (
            any::<[u8; 48]>(),
            any::<[u8; 32]>(),
            prop::array::uniform32(any::<u8>()),
            prop::array::uniform32(any::<u8>()),
        ),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 48]>(),
            any::<[u8; 48]>(),
            any::<[u8; 32]>(),
        ),
        (
            prop::array::uniform32(1u8..),
            any::<(u8, u8, u8, u8, u8)>(),
            any::<(u64, u64)>(),
        ),
    )
        .prop_map(
            |(
                (product, version),
                (guest_svn, flags, abi, vmpl),
                (m, h, rd_lo, rd_hi),
                (f, i, idk, ak, rid),
                (chip_lo, tcb, mit),
            )| {
                let mut report_data = [0u8; 64];
                report_data[..32].copy_from_slice(&rd_lo);
                report_data[32..].copy_from_slice(&rd_hi);
                let mut chip_id = [0u8; 64];
                // Turin chip IDs are 8 bytes followed by zeros; the others use all 64.
                let used = if product == Product::Turin { 8 } else { 64 };
                for (index, byte) in chip_id.iter_mut().take(used).enumerate() {
                    *byte = chip_lo[index % 32];
                }
                Fields {
                    product,
                    version,
                    guest_svn,
                    // Flag bits 16 and 18–25; bit 17 is reserved-one and set below.
                    policy_flags: flags & 0x03fd_0000,
                    abi,
                    vmpl,
                    measurement: m,
                    host_data: h,
                    report_data,
                    family_id: f,
                    image_id: i,
                    id_key_digest: idk,
                    author_key_digest: ak,
                    report_id: rid,
                    chip_id,
                    tcb,
                    mit_vectors: mit,
                }
            },
        )
}

fn guest(f: &Fields) -> SimulatedGuest {
    let (fmc, bootloader, tee, snp, microcode) = f.tcb;
    let tcb = TcbVersion {
        fmc: (f.product == Product::Turin).then_some(fmc),
        bootloader,
        tee,
        snp,
        microcode,
    };
    let mut g = SimulatedGuest::new(f.product, f.chip_id, tcb);
    g.version = f.version;
    g.guest_svn = f.guest_svn;
    g.policy = f.policy_flags | (1 << 17) | (u64::from(f.abi.1) << 8) | u64::from(f.abi.0);
    g.vmpl = f.vmpl;
    g.measurement = f.measurement;
    g.host_data = f.host_data;
    g.family_id = f.family_id;
    g.image_id = f.image_id;
    g.id_key_digest = f.id_key_digest;
    g.author_key_digest = f.author_key_digest;
    g.report_id = f.report_id;
    if f.version >= 5 {
        g.launch_mit_vector = f.mit_vectors.0;
        g.current_mit_vector = f.mit_vectors.1;
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sign_verify_accessors_round_trip(f in fields()) {
        let platform = platform(f.product);
        let g = guest(&f);
        let bytes = g.report(platform, &f.report_data).unwrap();
        let mut collateral = CollateralMap::new();
        let chip_len = if f.product == Product::Turin { 8 } else { 64 };
        collateral.insert_vcek(f.product, &g.chip_id[..chip_len], &g.reported_tcb, g.vcek_der(platform).unwrap());
        collateral.insert_ca(f.product, CertRole::Ask, platform.ask_der().to_vec());
        collateral.insert_ca(f.product, CertRole::Ark, platform.ark_der().to_vec());
        let anchor = TrustAnchor::Pinned { ark_der_sha256: platform.ark_fingerprint(), product: f.product };

        let evidence = verify_report(&bytes, &collateral, &anchor, NOW, CrlPolicy::BestEffort, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = &evidence.report;
        prop_assert_eq!(r.version(), f.version);
        prop_assert_eq!(r.product(), f.product);
        prop_assert_eq!(r.guest_svn(), f.guest_svn);
        prop_assert_eq!(r.policy().bits(), g.policy);
        prop_assert_eq!(r.policy().abi_minor(), f.abi.0);
        prop_assert_eq!(r.policy().abi_major(), f.abi.1);
        prop_assert_eq!(r.vmpl(), f.vmpl);
        prop_assert_eq!(r.measurement(), &f.measurement);
        prop_assert_eq!(r.host_data(), &f.host_data);
        prop_assert_eq!(r.report_data(), &f.report_data);
        prop_assert_eq!(r.family_id(), &f.family_id);
        prop_assert_eq!(r.image_id(), &f.image_id);
        prop_assert_eq!(r.id_key_digest(), &f.id_key_digest);
        prop_assert_eq!(r.author_key_digest(), &f.author_key_digest);
        prop_assert_eq!(r.report_id(), &f.report_id);
        prop_assert_eq!(r.chip_id(), &f.chip_id);
        prop_assert_eq!(r.reported_tcb(), g.reported_tcb);
        prop_assert_eq!(r.current_tcb(), g.current_tcb);
        prop_assert_eq!(r.committed_tcb(), g.committed_tcb);
        prop_assert_eq!(r.launch_tcb(), g.launch_tcb);
        if f.version >= 5 {
            prop_assert_eq!(r.launch_mit_vector(), Some(f.mit_vectors.0));
            prop_assert_eq!(r.current_mit_vector(), Some(f.mit_vectors.1));
        } else {
            prop_assert_eq!(r.launch_mit_vector(), None);
        }
        if f.version >= 3 {
            prop_assert_eq!(r.cpuid().and_then(|c| c.product()), Some(f.product));
        }
    }
}
