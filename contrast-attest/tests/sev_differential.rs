//! Differential test against the `sev` crate (virtee/sev, built without OpenSSL): both parsers
//! agree on every field of every real report vector.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use contrast_attest::report::{LeafKey, UnverifiedReport};
use contrast_attest::{Product, TcbVersion};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;

fn tcb(t: &sev::firmware::host::TcbVersion) -> TcbVersion {
    TcbVersion {
        fmc: t.fmc,
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
    }
}

#[test]
fn our_parser_and_sev_agree_on_every_field() {
    for v in vectors() {
        let theirs =
            AttestationReport::from_bytes(&v.report).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let key = LeafKey::from_untrusted_certificate(v.leaf, v.kind, v.product).unwrap();
        let ours = UnverifiedReport::from_bytes(&v.report)
            .unwrap()
            .verify(&key)
            .unwrap();
        let n = v.name;
        assert_eq!(ours.version(), theirs.version, "{n}");
        assert_eq!(ours.guest_svn(), theirs.guest_svn, "{n}");
        assert_eq!(ours.policy().bits(), u64::from(theirs.policy), "{n}");
        assert_eq!(
            ours.policy().abi_major(),
            u8::try_from(theirs.policy.abi_major()).unwrap(),
            "{n}"
        );
        assert_eq!(
            ours.policy().abi_minor(),
            u8::try_from(theirs.policy.abi_minor()).unwrap(),
            "{n}"
        );
        assert_eq!(
            ours.policy().smt_allowed(),
            theirs.policy.smt_allowed(),
            "{n}"
        );
        assert_eq!(
            ours.policy().debug_allowed(),
            theirs.policy.debug_allowed(),
            "{n}"
        );
        assert_eq!(
            ours.policy().migrate_ma_allowed(),
            theirs.policy.migrate_ma_allowed(),
            "{n}"
        );
        assert_eq!(
            ours.policy().single_socket_required(),
            theirs.policy.single_socket_required(),
            "{n}"
        );
        assert_eq!(ours.family_id(), &theirs.family_id, "{n}");
        assert_eq!(ours.image_id(), &theirs.image_id, "{n}");
        assert_eq!(ours.vmpl(), theirs.vmpl, "{n}");
        assert_eq!(ours.signature_algo(), theirs.sig_algo, "{n}");
        assert_eq!(ours.current_tcb(), tcb(&theirs.current_tcb), "{n}");
        assert_eq!(
            ours.platform_info().bits(),
            u64::from(theirs.plat_info),
            "{n}"
        );
        assert_eq!(
            ours.platform_info().smt_enabled(),
            theirs.plat_info.smt_enabled(),
            "{n}"
        );
        assert_eq!(
            ours.platform_info().tsme_enabled(),
            theirs.plat_info.tsme_enabled(),
            "{n}"
        );
        assert_eq!(ours.key_info().bits(), u32::from(theirs.key_info), "{n}");
        assert_eq!(ours.author_key_en(), theirs.key_info.author_key_en(), "{n}");
        assert_eq!(ours.mask_chip_key(), theirs.key_info.mask_chip_key(), "{n}");
        assert_eq!(
            u32::from(ours.key_info().signing_key_raw()),
            theirs.key_info.signing_key(),
            "{n}"
        );
        assert_eq!(ours.report_data(), &theirs.report_data, "{n}");
        assert_eq!(ours.measurement(), &theirs.measurement, "{n}");
        assert_eq!(ours.host_data(), &theirs.host_data, "{n}");
        assert_eq!(ours.id_key_digest(), &theirs.id_key_digest, "{n}");
        assert_eq!(ours.author_key_digest(), &theirs.author_key_digest, "{n}");
        assert_eq!(ours.report_id(), &theirs.report_id, "{n}");
        assert_eq!(ours.report_id_ma(), &theirs.report_id_ma, "{n}");
        assert_eq!(ours.reported_tcb(), tcb(&theirs.reported_tcb), "{n}");
        assert_eq!(ours.cpuid_fam_id(), theirs.cpuid_fam_id, "{n}");
        assert_eq!(ours.cpuid_mod_id(), theirs.cpuid_mod_id, "{n}");
        assert_eq!(ours.cpuid_step(), theirs.cpuid_step, "{n}");
        assert_eq!(ours.chip_id(), &theirs.chip_id, "{n}");
        assert_eq!(ours.committed_tcb(), tcb(&theirs.committed_tcb), "{n}");
        let (c, t) = (ours.current_version(), theirs.current);
        assert_eq!(
            (c.major, c.minor, c.build),
            (t.major, t.minor, t.build),
            "{n}"
        );
        let (c, t) = (ours.committed_version(), theirs.committed);
        assert_eq!(
            (c.major, c.minor, c.build),
            (t.major, t.minor, t.build),
            "{n}"
        );
        assert_eq!(ours.launch_tcb(), tcb(&theirs.launch_tcb), "{n}");
        assert_eq!(ours.launch_mit_vector(), theirs.launch_mit_vector, "{n}");
        assert_eq!(ours.current_mit_vector(), theirs.current_mit_vector, "{n}");
        assert_eq!(ours.signature_r(), theirs.signature.r(), "{n}");
        assert_eq!(ours.signature_s(), theirs.signature.s(), "{n}");
        // sev re-encodes; the re-encoding must be byte-identical to what we verified.
        assert_eq!(
            theirs.to_bytes().unwrap().as_slice(),
            ours.as_bytes(),
            "{n}"
        );
        assert!(matches!(ours.product(), Product::Milan | Product::Genoa));
    }
}
