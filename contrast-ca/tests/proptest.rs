//! Arbitrary SAN lists never panic, and issued leaves always parse back.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use contrast_ca::CaError;
use proptest::prelude::*;
use rand_core::OsRng;

fn san_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9*.-]{0,20}",
        "[a-z][a-z0-9+.-]{0,6}:[ -~]{0,12}",
        any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|ip| ip.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_sans_never_panic(list in proptest::collection::vec(san_strategy(), 0..6)) {
        let (_, ca) = new_ca(NOW);
        match ca.issue_mesh_cert(&workload_spki(), &list, &[], NOW, &mut OsRng) {
            Ok(leaf) => {
                let cert = parse(&leaf.der);
                // Re-encoding what x509-cert parsed gives the same bytes.
                prop_assert_eq!(der::Encode::to_der(&cert).unwrap(), leaf.der);
                prop_assert!(cert.tbs_certificate.extensions.is_some());
            }
            Err(CaError::NoDnsSan { .. } | CaError::NonAsciiSan { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}
