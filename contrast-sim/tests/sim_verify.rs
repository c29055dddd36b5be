//! End to end: reports from the simulated platform pass the production verifier with a pinned
//! simulated ARK, and fail where they must.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use contrast_attest::chain::{CertRole, TrustAnchor};
use contrast_attest::collateral::CollateralMap;
use contrast_attest::{CrlPolicy, Error, LeafKind, Product, TcbVersion, UnixTime, verify_report};
use contrast_sim::{SimulatedGuest, SimulatedPlatform};

const NOT_BEFORE: u64 = 1_704_067_200; // 2024-01-01

fn platform(product: Product) -> &'static SimulatedPlatform {
    static P: [OnceLock<SimulatedPlatform>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match product {
        Product::Milan => 0,
        Product::Genoa => 1,
        Product::Turin => 2,
    };
    P[i].get_or_init(|| {
        SimulatedPlatform::generate(
            product,
            UNIX_EPOCH + Duration::from_secs(NOT_BEFORE),
            &mut rand_core::OsRng,
        )
        .unwrap()
    })
}

fn tcb(product: Product) -> TcbVersion {
    TcbVersion {
        fmc: (product == Product::Turin).then_some(1),
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 209,
    }
}

fn chip(product: Product) -> [u8; 64] {
    let mut c = [0u8; 64];
    let n = if product == Product::Turin { 8 } else { 64 };
    for (i, b) in c.iter_mut().take(n).enumerate() {
        *b = i as u8 + 1;
    }
    c
}

fn collateral(p: &SimulatedPlatform, g: &SimulatedGuest) -> CollateralMap {
    let product = p.product();
    let mut m = CollateralMap::new();
    let n = if product == Product::Turin { 8 } else { 64 };
    m.insert_vcek(
        product,
        &g.chip_id[..n],
        &g.reported_tcb,
        g.vcek_der(p).unwrap(),
    );
    m.insert_ca(product, CertRole::Ask, p.ask_der().to_vec());
    m.insert_ca(product, CertRole::Ark, p.ark_der().to_vec());
    m
}

fn anchor(p: &SimulatedPlatform) -> TrustAnchor {
    TrustAnchor::Pinned {
        ark_der_sha256: p.ark_fingerprint(),
        product: p.product(),
    }
}

const NOW: UnixTime = UnixTime::from_secs(NOT_BEFORE + 86_400);

#[test]
fn simulated_reports_verify() {
    for product in [Product::Milan, Product::Genoa, Product::Turin] {
        for version in [2, 3, 5] {
            if version == 2 && product == Product::Turin {
                continue;
            }
            let p = platform(product);
            let mut g = SimulatedGuest::new(product, chip(product), tcb(product));
            g.version = version;
            g.current_tcb.microcode += 1;
            g.measurement = [7; 48];
            let report = g.report(p, &[9; 64]).unwrap();
            let v = verify_report(
                &report,
                &collateral(p, &g),
                &anchor(p),
                NOW,
                CrlPolicy::BestEffort,
                None,
            )
            .unwrap_or_else(|e| panic!("{product:?} v{version}: {e}"));
            assert_eq!(v.leaf_kind, LeafKind::Vcek);
        }
    }
}

#[test]
fn wrong_pin_and_tampering_fail() {
    let p = platform(Product::Milan);
    let g = SimulatedGuest::new(Product::Milan, chip(Product::Milan), tcb(Product::Milan));
    let report = g.report(p, &[9; 64]).unwrap();
    let c = collateral(p, &g);
    let wrong = TrustAnchor::Pinned {
        ark_der_sha256: [0; 32],
        product: Product::Milan,
    };
    let e = verify_report(&report, &c, &wrong, NOW, CrlPolicy::BestEffort, None).unwrap_err();
    println!("wrong pin: {e:?}");
    let e = verify_report(
        &report,
        &c,
        &TrustAnchor::Amd(Product::Milan),
        NOW,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    println!("amd anchor: {e:?}");
    let mut t = report.clone();
    t[0x90] ^= 1;
    let e = verify_report(&t, &c, &anchor(p), NOW, CrlPolicy::BestEffort, None).unwrap_err();
    println!("tampered: {e:?}");
    // A VCEK for another TCB: binding must fail.
    let mut other = g.clone();
    other.reported_tcb.snp = 1;
    let mut c2 = CollateralMap::new();
    c2.insert_vcek(
        Product::Milan,
        &g.chip_id,
        &g.reported_tcb,
        other.vcek_der(p).unwrap(),
    );
    c2.insert_ca(Product::Milan, CertRole::Ask, p.ask_der().to_vec());
    c2.insert_ca(Product::Milan, CertRole::Ark, p.ark_der().to_vec());
    let e = verify_report(&report, &c2, &anchor(p), NOW, CrlPolicy::BestEffort, None).unwrap_err();
    println!("vcek for other tcb: {e:?}");
    let _: &Error = &e;
}

/// The evidence brings its own CRL, so an attester whose VCEK was revoked could present an older
/// CRL that is still before its nextUpdate. A verifier with a cache remembers the newest CRL it
/// has seen and checks that one too: the older CRL does not undo the revocation.
#[test]
fn an_older_crl_does_not_undo_a_revocation_the_verifier_has_seen() {
    use contrast_attest::VcekCache;
    use contrast_sim::{CrlContents, Revocation};
    let p = platform(Product::Milan);
    let g = SimulatedGuest::new(Product::Milan, chip(Product::Milan), tcb(Product::Milan));
    let report = g.report(p, &[9; 64]).unwrap();
    let at = |days: u64| UNIX_EPOCH + Duration::from_secs(NOT_BEFORE + days * 86_400);
    let crl = |issued: u64, revoked: Vec<Revocation>| {
        p.crl(&CrlContents {
            revoked,
            this_update: at(issued),
            next_update: at(issued + 30),
            number: issued,
        })
        .unwrap()
    };
    let serial = p.vcek_serial(&g.chip_id, g.reported_tcb);
    let old_clean = crl(0, Vec::new());
    let new_revoking = crl(
        1,
        vec![Revocation {
            serial: serial.clone(),
            revoked_at: at(1),
        }],
    );
    let now = UnixTime::from_secs(NOT_BEFORE + 2 * 86_400);
    let verify = |crl_der: &[u8], cache: &VcekCache| {
        let mut m = collateral(p, &g);
        m.insert_crl(Product::Milan, LeafKind::Vcek, crl_der.to_vec());
        verify_report(
            &report,
            &m,
            &anchor(p),
            now,
            CrlPolicy::Required,
            Some(cache),
        )
        .map(|_| ())
    };
    let revoked = Error::Revoked {
        role: CertRole::Vcek,
        serial,
    };

    // Without having seen the newer CRL, the old one is accepted (it is genuine and fresh).
    let cache = VcekCache::new(8);
    assert_eq!(verify(&old_clean, &cache), Ok(()));
    // Once the verifier has seen the newer one, the old one no longer helps.
    assert_eq!(verify(&new_revoking, &cache), Err(revoked.clone()));
    assert_eq!(verify(&old_clean, &cache), Err(revoked));
}
