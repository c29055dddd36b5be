//! Manifest: the upstream example, Go-compatible output, Go decoding rules, validation, and
//! round trips.

// Fixture helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use contrast_core::manifest::{
    GuestPolicy, MAX_MANIFEST_SIZE, MAX_NESTING_DEPTH, Manifest, ManifestDocument, ManifestError,
    MinimumTcb, PlatformInfo, PlatformKind, PolicyEntry, Product, ReferenceValues, Role,
    SnpReferenceValues, TdxReferenceValues, Violation, ViolationKind,
};
use contrast_core::sha256;
use p384::pkcs8::EncodePublicKey;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Golden vector M-seedshare-key: a valid PKCS#1 RSA-4096 public key.
const SEEDSHARE_KEY: &str = "3082020a0282020100bc51b1c9cb50002ae95a7ad98569506aadceabd0bb9ee576ad29ab3baecd60a604eee8882323fa8a7b6f4b21cea80bd4d794bf31fd7a5d6dfeb4afa6de30a834b87aa7f90e5ee11683b2f903b393174c436107f7b22467d0f5cee09c43eab28bcbec0137e165d8d34da66f9fc8294d60ebafbf38bf3e0e4dfcf7da84b24d6eaf1b8c4a579d2ec6ab1c280a7ec50854f2269ef8e31e1e2f1a1d24dd3ca8eaa5728c4f59fdf840899dc44bac0749b3d294a3c7446e2859db55cb93e6bf8ac8995665137f74e9898dad7a9f52d8527b16308e422685ed6ba221b6a266728a7cc11403d37a2f1be923685637eabafa4b0bf6095edc6908adf1b623450555ead19f9431d9a72730228379d5711475434e4696eb650469ad981cc0ced54c84909c36dc7e38d1ffda3aad63d2b6841bb2cee07c85116cd8139e528a3ca78a0d301f2deed86f0b7bbc6bcd863594e3ba67d86178db9f661d0aa25965ad05c608b8c7eadb5853284aadf2474b8a3dbbc23ac2992c11b283808108ffd59cf08687ac9a0ef20eb8ca3ec090a3a532ad305203b877a20c0da401386070dc97d2820b97d67eedc21c6a938bb368a7d1b4e9433abc3304d2f928df22d5d3b3bc0d593b1dcc84671809538b5da667a5f2ce89714c39d9c6aed34de3605fe79e9018de14b262ab1c63bb7d24c3ec51dac00b72be7266e6e1e221da1e50e9ea21aba44550c48bcdeb0203010001";

fn policy_key() -> String {
    "b".repeat(64)
}

fn owner_pub_key_hex() -> String {
    let secret = p384::SecretKey::from_slice(&[1u8; 48]).unwrap();
    hex::encode(secret.public_key().to_public_key_der().unwrap().as_bytes())
}

fn contrast_guest_policy() -> GuestPolicy {
    GuestPolicy {
        smt: true,
        ..GuestPolicy::default()
    }
}

fn valid_snp() -> SnpReferenceValues {
    SnpReferenceValues {
        platform: "Metal-QEMU-SNP".into(),
        product_name: "Milan".into(),
        trusted_measurement: "d".repeat(96),
        minimum_tcb: MinimumTcb {
            bootloader_version: Some(3),
            tee_version: Some(0),
            snp_version: Some(23),
            microcode_version: Some(213),
        },
        guest_policy: contrast_guest_policy(),
        platform_info: PlatformInfo {
            smt_enabled: true,
            ..PlatformInfo::default()
        },
        minimum_mitigation_vector: 0,
        allowed_chip_ids: Some(vec!["9".repeat(128)]),
        apeip: Some("0000ffff".into()),
        simulated_ark_fingerprint: None,
    }
}

fn valid_tdx() -> TdxReferenceValues {
    TdxReferenceValues {
        platform: "Metal-QEMU-TDX".into(),
        min_tcb_evaluation_data_number: 17,
        mr_td: "c".repeat(96),
        mr_seam: "f".repeat(96),
        rtmrs: [
            "5".repeat(96),
            "6".repeat(96),
            "7".repeat(96),
            "8".repeat(96),
        ],
        xfam: "4".repeat(16),
        allowed_piids: Some(vec!["1".repeat(32)]),
        memory_integrity: true,
        smt_disabled: false,
        static_platform: true,
    }
}

fn valid_manifest() -> Manifest {
    let mut policies = BTreeMap::new();
    policies.insert(
        policy_key(),
        PolicyEntry {
            sans: Some(vec!["coordinator".into(), "*".into()]),
            workload_secret_id: "apps/v1/StatefulSet/default/coordinator".into(),
            role: Role::Coordinator,
        },
    );
    Manifest {
        policies,
        reference_values: ReferenceValues {
            snp: vec![valid_snp()],
            tdx: vec![valid_tdx()],
        },
        workload_owner_key_digests: Some(vec!["a".repeat(64)]),
        workload_owner_pub_keys: Some(vec![owner_pub_key_hex()]),
        seedshare_owner_pub_keys: Some(vec![SEEDSHARE_KEY.into()]),
        minimum_api_version: Some("v1".into()),
    }
}

fn simulated_snp() -> SnpReferenceValues {
    SnpReferenceValues {
        platform: "Simulated-SNP".into(),
        simulated_ark_fingerprint: Some("e".repeat(64)),
        ..valid_snp()
    }
}

fn violations(m: &Manifest) -> Vec<Violation> {
    m.validate()
        .expect_err("manifest should be invalid")
        .into_violations()
}

/// Asserts that the manifest has exactly one violation, at `path`, of `kind`.
#[track_caller]
fn assert_single_violation(m: &Manifest, path: &str, kind: ViolationKind) {
    let found = violations(m);
    assert_eq!(
        found,
        vec![Violation {
            path: path.into(),
            kind
        }],
        "{found:#?}"
    );
}

fn parse(json: &str) -> Result<Manifest, ManifestError> {
    ManifestDocument::parse(json.as_bytes().to_vec()).map(|d| d.manifest().clone())
}

// ---------------------------------------------------------------------------------------------
// The upstream example (contrast-formats.md §1.7)

const UPSTREAM_EXAMPLE: &str = r#"{
  "Policies": {
    "ef27c1c91a0ce044c67f0ec10d7c66ea9f178453dc96a233e97f0675578042f2": {
      "SANs": ["coordinator"],
      "WorkloadSecretID": "apps/v1/StatefulSet/default/coordinator",
      "Role": "coordinator"
    }
  },
  "ReferenceValues": {
    "snp": [{
      "MinimumTCB": {"BootloaderVersion": 3, "TEEVersion": 0, "SNPVersion": 23, "MicrocodeVersion": 213},
      "ProductName": "Milan",
      "TrustedMeasurement": "05c504736ca974b9ac0c84b5099f957907507c09e4844bd0672d0b647205f35837bd479ae35567b22b69ce636666c286",
      "GuestPolicy": {"ABIMinor": 0, "ABIMajor": 0, "SMT": true, "MigrateMA": false, "Debug": false,
        "SingleSocket": false, "CXLAllowed": false, "MemAES256XTS": false, "RAPLDis": false,
        "CipherTextHidingDRAM": false, "PageSwapDisable": false},
      "PlatformInfo": {"SMTEnabled": true, "TSMEEnabled": false, "ECCEnabled": false, "RAPLDisabled": false,
        "CiphertextHidingDRAMEnabled": false, "AliasCheckComplete": false, "TIOEnabled": false}
    }]
  }
}
"#;

/// What Go's `json.MarshalIndent(m, "", "  ")` + "\n" writes for the decoded example with the
/// newest struct: Go field order (Platform first, MinimumTCB after TrustedMeasurement), zero
/// values for absent fields (`"Platform": ""`, `"MinimumMitigationVector": 0`), `null` for nil
/// slices without omitempty, and no `APEIP`/`SimulatedARKFingerprint`/`tdx`/`MinimumAPIVersion`.
const UPSTREAM_EXAMPLE_GO_OUTPUT: &str = r#"{
  "Policies": {
    "ef27c1c91a0ce044c67f0ec10d7c66ea9f178453dc96a233e97f0675578042f2": {
      "SANs": [
        "coordinator"
      ],
      "WorkloadSecretID": "apps/v1/StatefulSet/default/coordinator",
      "Role": "coordinator"
    }
  },
  "ReferenceValues": {
    "snp": [
      {
        "Platform": "",
        "ProductName": "Milan",
        "TrustedMeasurement": "05c504736ca974b9ac0c84b5099f957907507c09e4844bd0672d0b647205f35837bd479ae35567b22b69ce636666c286",
        "MinimumTCB": {
          "BootloaderVersion": 3,
          "TEEVersion": 0,
          "SNPVersion": 23,
          "MicrocodeVersion": 213
        },
        "GuestPolicy": {
          "ABIMinor": 0,
          "ABIMajor": 0,
          "SMT": true,
          "MigrateMA": false,
          "Debug": false,
          "SingleSocket": false,
          "CXLAllowed": false,
          "MemAES256XTS": false,
          "RAPLDis": false,
          "CipherTextHidingDRAM": false,
          "PageSwapDisable": false
        },
        "PlatformInfo": {
          "SMTEnabled": true,
          "TSMEEnabled": false,
          "ECCEnabled": false,
          "RAPLDisabled": false,
          "CiphertextHidingDRAMEnabled": false,
          "AliasCheckComplete": false,
          "TIOEnabled": false
        },
        "MinimumMitigationVector": 0,
        "AllowedChipIDs": null
      }
    ]
  },
  "WorkloadOwnerPubKeys": null,
  "SeedshareOwnerPubKeys": null
}
"#;

#[test]
fn upstream_example_parses_hashes_raw_bytes_and_validates() {
    let doc = ManifestDocument::parse(UPSTREAM_EXAMPLE.as_bytes().to_vec()).unwrap();
    assert_eq!(doc.raw(), UPSTREAM_EXAMPLE.as_bytes());
    assert_eq!(doc.hash(), sha256(UPSTREAM_EXAMPLE.as_bytes()));
    let m = doc.manifest();
    let key = "ef27c1c91a0ce044c67f0ec10d7c66ea9f178453dc96a233e97f0675578042f2";
    let entry = &m.policies[key];
    assert_eq!(entry.sans, Some(vec!["coordinator".to_owned()]));
    assert_eq!(entry.role, Role::Coordinator);
    let snp = &m.reference_values.snp[0];
    assert_eq!(snp.product().unwrap(), Product::Milan);
    assert_eq!(snp.platform_kind(), PlatformKind::Hardware);
    assert_eq!(snp.minimum_tcb.complete(), Some([3, 0, 23, 213]));
    assert_eq!(snp.trusted_measurement().unwrap()[..2], [0x05, 0xc5]);
    assert_eq!(snp.allowed_chip_ids().unwrap(), Vec::<[u8; 64]>::new());
    assert_eq!(snp.simulated_ark_fingerprint().unwrap(), None);
    assert_eq!(m.workload_owner_pub_keys, None);
    assert_eq!(m.seedshare_owner_pub_keys, None);
    m.validate().unwrap();

    let host_data: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
    assert_eq!(m.policy_for_host_data(&host_data), Some(entry));
    assert_eq!(m.policy_for_host_data(&[0; 32]), None);
    assert_eq!(m.coordinator_policy_hashes().collect::<Vec<_>>(), vec![key]);

    let raw = doc.into_raw();
    assert_eq!(raw, UPSTREAM_EXAMPLE.as_bytes());
}

#[test]
fn upstream_example_regenerates_as_go_would() {
    let m = parse(UPSTREAM_EXAMPLE).unwrap();
    assert_eq!(
        String::from_utf8(m.to_go_json().unwrap()).unwrap(),
        UPSTREAM_EXAMPLE_GO_OUTPUT
    );
    let again = parse(UPSTREAM_EXAMPLE_GO_OUTPUT).unwrap();
    assert_eq!(again, m);
    assert_eq!(
        again.to_go_json().unwrap(),
        UPSTREAM_EXAMPLE_GO_OUTPUT.as_bytes()
    );
}

#[test]
fn go_output_of_a_full_manifest() {
    let mut m = valid_manifest();
    m.reference_values.snp[0].simulated_ark_fingerprint = None;
    m.workload_owner_pub_keys = Some(vec!["01".into()]);
    m.seedshare_owner_pub_keys = Some(vec![]);
    m.policies.insert(
        "a<b>&".into(),
        PolicyEntry {
            sans: None,
            workload_secret_id: String::new(),
            role: Role::None,
        },
    );
    let json = String::from_utf8(m.to_go_json().unwrap()).unwrap();
    let expected = format!(
        r#"{{
  "Policies": {{
    "a\u003cb\u003e\u0026": {{
      "SANs": null
    }},
    "{b}": {{
      "SANs": [
        "coordinator",
        "*"
      ],
      "WorkloadSecretID": "apps/v1/StatefulSet/default/coordinator",
      "Role": "coordinator"
    }}
  }},
  "ReferenceValues": {{
    "snp": [
      {{
        "Platform": "Metal-QEMU-SNP",
        "ProductName": "Milan",
        "TrustedMeasurement": "{d}",
        "MinimumTCB": {{
          "BootloaderVersion": 3,
          "TEEVersion": 0,
          "SNPVersion": 23,
          "MicrocodeVersion": 213
        }},
        "GuestPolicy": {{
          "ABIMinor": 0,
          "ABIMajor": 0,
          "SMT": true,
          "MigrateMA": false,
          "Debug": false,
          "SingleSocket": false,
          "CXLAllowed": false,
          "MemAES256XTS": false,
          "RAPLDis": false,
          "CipherTextHidingDRAM": false,
          "PageSwapDisable": false
        }},
        "PlatformInfo": {{
          "SMTEnabled": true,
          "TSMEEnabled": false,
          "ECCEnabled": false,
          "RAPLDisabled": false,
          "CiphertextHidingDRAMEnabled": false,
          "AliasCheckComplete": false,
          "TIOEnabled": false
        }},
        "MinimumMitigationVector": 0,
        "AllowedChipIDs": [
          "{chip}"
        ],
        "APEIP": "0000ffff"
      }}
    ],
    "tdx": [
      {{
        "Platform": "Metal-QEMU-TDX",
        "MinTCBEvaluationDataNumber": 17,
        "MrTd": "{c}",
        "MrSeam": "{f}",
        "Rtmrs": [
          "{r5}",
          "{r6}",
          "{r7}",
          "{r8}"
        ],
        "Xfam": "4444444444444444",
        "AllowedPIIDs": [
          "11111111111111111111111111111111"
        ],
        "MemoryIntegrity": true,
        "SMTDisabled": false,
        "StaticPlatform": true
      }}
    ]
  }},
  "WorkloadOwnerKeyDigests": [
    "{a}"
  ],
  "WorkloadOwnerPubKeys": [
    "01"
  ],
  "SeedshareOwnerPubKeys": [],
  "MinimumAPIVersion": "v1"
}}
"#,
        b = "b".repeat(64),
        d = "d".repeat(96),
        chip = "9".repeat(128),
        c = "c".repeat(96),
        f = "f".repeat(96),
        r5 = "5".repeat(96),
        r6 = "6".repeat(96),
        r7 = "7".repeat(96),
        r8 = "8".repeat(96),
        a = "a".repeat(64),
    );
    assert_eq!(json, expected);
    assert_eq!(parse(&json).unwrap(), m);
}

#[test]
fn simulated_fingerprint_is_written_last_and_only_when_present() {
    let m = Manifest {
        reference_values: ReferenceValues {
            snp: vec![simulated_snp()],
            tdx: vec![],
        },
        ..Manifest::default()
    };
    let json = String::from_utf8(m.to_go_json().unwrap()).unwrap();
    let tail = format!(
        "        \"APEIP\": \"0000ffff\",\n        \"SimulatedARKFingerprint\": \"{}\"\n      }}\n",
        "e".repeat(64)
    );
    assert!(json.contains(&tail), "{json}");
    assert!(json.starts_with("{\n  \"Policies\": {},\n  \"ReferenceValues\": {\n    \"snp\": ["));
    assert_eq!(
        m.reference_values.snp[0]
            .simulated_ark_fingerprint()
            .unwrap(),
        Some([0xee; 32])
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn valid_manifests_pass() {
    valid_manifest().validate().unwrap();

    let mut m = valid_manifest();
    m.reference_values.snp[0].product_name = "Turin".into();
    m.reference_values.snp[0].guest_policy.abi_minor = 31;
    m.reference_values.snp[0].guest_policy.page_swap_disable = true;
    m.reference_values.snp[0].apeip = None;
    m.reference_values.snp[0].allowed_chip_ids = None;
    m.reference_values.tdx[0].allowed_piids = Some(vec![]);
    m.workload_owner_key_digests = None;
    m.seedshare_owner_pub_keys = None;
    m.minimum_api_version = Some("v12".into());
    m.validate().unwrap();

    // Genoa, P-256 owner key, hex in upper case for non-key fields.
    let mut m = valid_manifest();
    m.reference_values.snp[0].product_name = "Genoa".into();
    m.reference_values.snp[0].trusted_measurement = "D".repeat(96);
    let p256_key = p256::SecretKey::from_slice(&[2u8; 32])
        .unwrap()
        .public_key();
    m.workload_owner_pub_keys = Some(vec![hex::encode(
        p256_key.to_public_key_der().unwrap().as_bytes(),
    )]);
    m.validate().unwrap();

    // A fully simulated manifest.
    let mut m = valid_manifest();
    m.reference_values = ReferenceValues {
        snp: vec![simulated_snp()],
        tdx: vec![],
    };
    m.validate().unwrap();
}

#[test]
fn policy_key_invalid_hex() {
    let mut m = valid_manifest();
    let entry = m.policies.remove(&policy_key()).unwrap();
    m.policies.insert("invalid".into(), entry);
    let found = violations(&m);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "Policies[\"invalid\"]");
    assert!(matches!(found[0].kind, ViolationKind::InvalidHex(_)));
}

#[test]
fn policy_key_empty() {
    let mut m = valid_manifest();
    let entry = m.policies.remove(&policy_key()).unwrap();
    m.policies.insert(String::new(), entry);
    assert_single_violation(
        &m,
        "Policies[\"\"]",
        ViolationKind::WrongLength {
            expected: 32,
            found: 0,
        },
    );
}

#[test]
fn policy_key_uppercase_rejected() {
    let mut m = valid_manifest();
    let entry = m.policies.remove(&policy_key()).unwrap();
    let upper = "B".repeat(64);
    m.policies.insert(upper.clone(), entry);
    assert_single_violation(
        &m,
        &format!("Policies[\"{upper}\"]"),
        ViolationKind::UppercaseHex,
    );
    assert!(violations(&m)[0].to_string().contains("lowercase"));
}

#[test]
fn policy_role_invalid() {
    let mut m = valid_manifest();
    let key = "c".repeat(64);
    m.policies.insert(
        key.clone(),
        PolicyEntry {
            sans: Some(vec!["web".into()]),
            role: Role::from_name("x"),
            ..Default::default()
        },
    );
    assert_single_violation(
        &m,
        &format!("Policies[\"{key}\"].Role"),
        ViolationKind::UnknownRole { role: "x".into() },
    );
    assert_eq!(
        violations(&m)[0].to_string(),
        format!("Policies[\"{key}\"].Role: unknown role \"x\"")
    );

    // Upstream defines this role but does not accept it either.
    m.policies.get_mut(&key).unwrap().role = Role::from_name("contrast-node-installer");
    assert!(matches!(
        violations(&m)[0].kind,
        ViolationKind::UnknownRole { .. }
    ));
}

#[test]
fn zero_coordinators() {
    let mut m = valid_manifest();
    m.policies.get_mut(&policy_key()).unwrap().role = Role::None;
    assert_single_violation(&m, "Policies", ViolationKind::NoCoordinator);

    m.policies.clear();
    assert_single_violation(&m, "Policies", ViolationKind::NoCoordinator);
}

#[test]
fn two_coordinators_are_fine() {
    let mut m = valid_manifest();
    let entry = m.policies[&policy_key()].clone();
    m.policies.insert("c".repeat(64), entry);
    m.validate().unwrap();
    assert_eq!(m.coordinator_policy_hashes().count(), 2);
}

#[test]
fn trusted_measurement_empty_or_short() {
    let mut m = valid_manifest();
    m.reference_values.snp[0].trusted_measurement = String::new();
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].TrustedMeasurement",
        ViolationKind::WrongLength {
            expected: 48,
            found: 0,
        },
    );
    m.reference_values.snp[0].trusted_measurement = "d".repeat(94);
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].TrustedMeasurement",
        ViolationKind::WrongLength {
            expected: 48,
            found: 47,
        },
    );
    m.reference_values.snp[0].trusted_measurement = "x".repeat(96);
    assert!(matches!(
        violations(&m)[0].kind,
        ViolationKind::InvalidHex(_)
    ));
}

#[test]
fn owner_key_digest_invalid() {
    let mut m = valid_manifest();
    m.workload_owner_key_digests = Some(vec!["invalid".into()]);
    let found = violations(&m);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "WorkloadOwnerKeyDigests[0]");
    assert!(matches!(found[0].kind, ViolationKind::InvalidHex(_)));

    m.workload_owner_key_digests = Some(vec!["a".repeat(64), "aaaa".into()]);
    assert_single_violation(
        &m,
        "WorkloadOwnerKeyDigests[1]",
        ViolationKind::WrongLength {
            expected: 32,
            found: 2,
        },
    );
}

#[test]
fn seedshare_key_invalid() {
    let mut m = valid_manifest();
    m.seedshare_owner_pub_keys = Some(vec!["invalid".into()]);
    let found = violations(&m);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "SeedshareOwnerPubKeys[0]");
    assert!(matches!(found[0].kind, ViolationKind::InvalidHex(_)));

    // Valid hex, but not an RSA key (a PKIX EC key).
    m.seedshare_owner_pub_keys = Some(vec![SEEDSHARE_KEY.into(), owner_pub_key_hex()]);
    let found = violations(&m);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "SeedshareOwnerPubKeys[1]");
    assert!(matches!(
        found[0].kind,
        ViolationKind::InvalidSeedshareOwnerKey { .. }
    ));
}

#[test]
fn workload_owner_pub_key_invalid() {
    let mut m = valid_manifest();
    m.workload_owner_pub_keys = Some(vec!["zz".into()]);
    assert!(matches!(
        violations(&m)[0].kind,
        ViolationKind::InvalidHex(_)
    ));
    // Valid hex, but an RSA PKCS#1 key rather than a PKIX ECDSA key.
    m.workload_owner_pub_keys = Some(vec![SEEDSHARE_KEY.into()]);
    let found = violations(&m);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, "WorkloadOwnerPubKeys[0]");
    assert!(matches!(
        found[0].kind,
        ViolationKind::InvalidWorkloadOwnerKey { .. }
    ));
}

#[test]
fn null_tcb_parts_are_missing_values() {
    for part in [
        "BootloaderVersion",
        "TEEVersion",
        "SNPVersion",
        "MicrocodeVersion",
    ] {
        let mut m = valid_manifest();
        let tcb = &mut m.reference_values.snp[0].minimum_tcb;
        match part {
            "BootloaderVersion" => tcb.bootloader_version = None,
            "TEEVersion" => tcb.tee_version = None,
            "SNPVersion" => tcb.snp_version = None,
            _ => tcb.microcode_version = None,
        }
        let path = format!("ReferenceValues.snp[0].MinimumTCB.{part}");
        assert_single_violation(&m, &path, ViolationKind::Missing);
        let err = m.validate().unwrap_err();
        assert!(err.violations()[0].is_missing_value());
        assert!(err.only_missing_values());
        assert_eq!(err.to_string(), format!("{path}: missing"));
    }
}

#[test]
fn product_name_unknown() {
    let mut m = valid_manifest();
    m.reference_values.snp[0].product_name = "unknown".into();
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].ProductName",
        ViolationKind::UnknownProduct {
            found: "unknown".into(),
        },
    );
    assert!(!violations(&m)[0].is_missing_value());
    assert!(m.reference_values.snp[0].product().is_err());
    // Case matters, as upstream compares exact strings.
    m.reference_values.snp[0].product_name = "milan".into();
    assert_eq!(violations(&m).len(), 1);
}

#[test]
fn guest_policy_must_be_contrasts() {
    let base = contrast_guest_policy();
    let cases: Vec<(&str, GuestPolicy, &str, &str)> = vec![
        ("SMT", GuestPolicy { smt: false, ..base }, "true", "false"),
        (
            "ABIMajor",
            GuestPolicy {
                abi_major: 1,
                ..base
            },
            "0",
            "1",
        ),
        (
            "ABIMinor",
            GuestPolicy {
                abi_minor: 1,
                ..base
            },
            "0 or 31",
            "1",
        ),
        (
            "MigrateMA",
            GuestPolicy {
                migrate_ma: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "Debug",
            GuestPolicy {
                debug: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "SingleSocket",
            GuestPolicy {
                single_socket: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "CXLAllowed",
            GuestPolicy {
                cxl_allowed: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "MemAES256XTS",
            GuestPolicy {
                mem_aes_256_xts: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "RAPLDis",
            GuestPolicy {
                rapl_dis: true,
                ..base
            },
            "false",
            "true",
        ),
        (
            "CipherTextHidingDRAM",
            GuestPolicy {
                ciphertext_hiding_dram: true,
                ..base
            },
            "false",
            "true",
        ),
    ];
    for (field, policy, expected, found) in cases {
        let mut m = valid_manifest();
        m.reference_values.snp[0].guest_policy = policy;
        assert_single_violation(
            &m,
            &format!("ReferenceValues.snp[0].GuestPolicy.{field}"),
            ViolationKind::UnexpectedGuestPolicy {
                expected,
                found: found.into(),
            },
        );
    }
}

#[test]
fn empty_reference_values() {
    let mut m = valid_manifest();
    m.reference_values = ReferenceValues::default();
    assert_single_violation(&m, "ReferenceValues", ViolationKind::NoReferenceValues);
}

#[test]
fn snp_chip_id_and_apeip_lengths() {
    let mut m = valid_manifest();
    m.reference_values.snp[0].allowed_chip_ids = Some(vec!["9".repeat(128), "99".into()]);
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].AllowedChipIDs[1]",
        ViolationKind::WrongLength {
            expected: 64,
            found: 1,
        },
    );
    let mut m = valid_manifest();
    m.reference_values.snp[0].apeip = Some("00".into());
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].APEIP",
        ViolationKind::WrongLength {
            expected: 4,
            found: 1,
        },
    );
    assert!(m.reference_values.snp[0].apeip().is_err());
}

#[test]
fn tdx_fields() {
    let wrong = |expected, found| ViolationKind::WrongLength { expected, found };
    type Mutation = Box<dyn Fn(&mut TdxReferenceValues)>;
    let cases: Vec<(&str, Mutation, ViolationKind)> = vec![
        ("MrTd", Box::new(|t| t.mr_td.clear()), wrong(48, 0)),
        (
            "MrTd",
            Box::new(|t| t.mr_td = "c".repeat(94)),
            wrong(48, 47),
        ),
        (
            "MrSeam",
            Box::new(|t| t.mr_seam.clear()),
            ViolationKind::Missing,
        ),
        (
            "MrSeam",
            Box::new(|t| t.mr_seam = "f".repeat(98)),
            wrong(48, 49),
        ),
        ("Rtmrs[0]", Box::new(|t| t.rtmrs[0].clear()), wrong(48, 0)),
        (
            "Rtmrs[3]",
            Box::new(|t| t.rtmrs[3] = "8".repeat(32)),
            wrong(48, 16),
        ),
        ("Xfam", Box::new(|t| t.xfam.clear()), wrong(8, 0)),
        (
            "AllowedPIIDs[0]",
            Box::new(|t| t.allowed_piids = Some(vec!["11".into()])),
            wrong(16, 1),
        ),
    ];
    for (field, mutate, kind) in cases {
        let mut m = valid_manifest();
        mutate(&mut m.reference_values.tdx[0]);
        assert_single_violation(&m, &format!("ReferenceValues.tdx[0].{field}"), kind);
    }
    let tdx = valid_tdx();
    assert_eq!(tdx.mr_td().unwrap(), [0xcc; 48]);
    assert_eq!(tdx.mr_seam().unwrap(), [0xff; 48]);
    assert_eq!(tdx.rtmrs().unwrap()[2], [0x77; 48]);
    assert_eq!(tdx.xfam().unwrap(), [0x44; 8]);
    assert_eq!(tdx.allowed_piids().unwrap(), vec![[0x11; 16]]);
}

#[test]
fn simulated_and_hardware_must_not_mix() {
    let mut m = valid_manifest();
    m.reference_values.snp.push(simulated_snp());
    assert_single_violation(&m, "ReferenceValues", ViolationKind::MixedPlatforms);

    // TDX entries are hardware too.
    let mut m = valid_manifest();
    m.reference_values.snp = vec![simulated_snp()];
    assert_single_violation(&m, "ReferenceValues", ViolationKind::MixedPlatforms);

    // Unset platforms count as hardware.
    let mut m = valid_manifest();
    m.reference_values.tdx.clear();
    m.reference_values.snp[0].platform.clear();
    m.reference_values.snp.push(simulated_snp());
    assert_single_violation(&m, "ReferenceValues", ViolationKind::MixedPlatforms);
}

#[test]
fn simulated_needs_fingerprint() {
    let mut m = valid_manifest();
    m.reference_values = ReferenceValues {
        snp: vec![SnpReferenceValues {
            simulated_ark_fingerprint: None,
            ..simulated_snp()
        }],
        tdx: vec![],
    };
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].SimulatedARKFingerprint",
        ViolationKind::MissingSimulatedArkFingerprint,
    );
    assert!(violations(&m)[0].is_missing_value());

    m.reference_values.snp[0].simulated_ark_fingerprint = Some("ee".into());
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].SimulatedARKFingerprint",
        ViolationKind::WrongLength {
            expected: 32,
            found: 1,
        },
    );
}

#[test]
fn hardware_must_not_carry_fingerprint() {
    let mut m = valid_manifest();
    m.reference_values.snp[0].simulated_ark_fingerprint = Some("e".repeat(64));
    assert_single_violation(
        &m,
        "ReferenceValues.snp[0].SimulatedARKFingerprint",
        ViolationKind::ArkFingerprintOnHardware {
            platform: "Metal-QEMU-SNP".into(),
        },
    );
}

#[test]
fn tdx_cannot_be_simulated() {
    let mut m = valid_manifest();
    m.reference_values.snp.clear();
    m.reference_values.tdx[0].platform = "Simulated-SNP".into();
    assert_single_violation(
        &m,
        "ReferenceValues.tdx[0].Platform",
        ViolationKind::SimulatedTdx,
    );
}

#[test]
fn minimum_api_version() {
    for bad in ["", "1", "v", "v0", "v01", "V1", "v1.2", "v-1"] {
        let mut m = valid_manifest();
        m.minimum_api_version = Some(bad.into());
        assert_single_violation(
            &m,
            "MinimumAPIVersion",
            ViolationKind::InvalidApiVersion { found: bad.into() },
        );
        assert!(m.minimum_api_version_number().is_err());
    }
    let mut m = valid_manifest();
    m.minimum_api_version = Some("v3".into());
    assert_eq!(m.minimum_api_version_number().unwrap(), Some(3));
    m.minimum_api_version = None;
    assert_eq!(m.minimum_api_version_number().unwrap(), None);
}

#[test]
fn all_violations_are_reported() {
    let mut m = valid_manifest();
    m.policies.get_mut(&policy_key()).unwrap().role = Role::from_name("x");
    m.reference_values.snp[0].minimum_tcb.snp_version = None;
    m.reference_values.snp[0].product_name = "Rome".into();
    m.reference_values.tdx[0].xfam = "44".into();
    m.seedshare_owner_pub_keys = Some(vec!["abcd".into()]);
    m.minimum_api_version = Some("v0".into());
    let err = m.validate().unwrap_err();
    let paths: Vec<&str> = err.violations().iter().map(|v| v.path.as_str()).collect();
    let key = policy_key();
    assert_eq!(
        paths,
        vec![
            format!("Policies[\"{key}\"].Role").as_str(),
            "Policies",
            "ReferenceValues.snp[0].MinimumTCB.SNPVersion",
            "ReferenceValues.snp[0].ProductName",
            "ReferenceValues.tdx[0].Xfam",
            "SeedshareOwnerPubKeys[0]",
            "MinimumAPIVersion",
        ]
    );
    assert!(!err.only_missing_values());
    let text = err.to_string();
    assert_eq!(text.lines().count(), 7);
    assert!(text.contains("ReferenceValues.snp[0].MinimumTCB.SNPVersion: missing\n"));
    assert!(text.contains(&format!("Policies[\"{key}\"].Role: unknown role \"x\"")));
}

#[test]
fn accessors_decode_hex() {
    let m = valid_manifest();
    assert_eq!(
        m.workload_owner_key_digests_bytes().unwrap(),
        vec![[0xaa; 32]]
    );
    assert_eq!(
        m.seedshare_owner_pub_keys_der().unwrap()[0],
        hex::decode(SEEDSHARE_KEY).unwrap()
    );
    assert_eq!(
        sha256(&m.seedshare_owner_pub_keys_der().unwrap()[0]),
        hex_literal::hex!("48d8635462d93512bdd0a990cf24a5fbebf94d01efed51f6a46c7185cc3d175d")
    );
    assert_eq!(
        m.workload_owner_pub_keys_der().unwrap()[0],
        hex::decode(owner_pub_key_hex()).unwrap()
    );
    let snp = &m.reference_values.snp[0];
    assert_eq!(snp.trusted_measurement().unwrap(), [0xdd; 48]);
    assert_eq!(snp.allowed_chip_ids().unwrap(), vec![[0x99; 64]]);
    assert_eq!(snp.apeip().unwrap(), Some([0, 0, 0xff, 0xff]));

    let mut bad = m.clone();
    bad.workload_owner_pub_keys = Some(vec!["0".into()]);
    assert!(bad.workload_owner_pub_keys_der().is_err());
}

// ---------------------------------------------------------------------------------------------
// Go decoding rules

#[test]
fn keys_match_case_insensitively() {
    let canonical = parse(UPSTREAM_EXAMPLE).unwrap();
    let odd = UPSTREAM_EXAMPLE
        .replace("\"Policies\"", "\"policies\"")
        .replace("\"ReferenceValues\"", "\"referencevalues\"")
        .replace("\"snp\"", "\"SNP\"")
        .replace("\"SANs\"", "\"sans\"")
        .replace("\"MinimumTCB\"", "\"MINIMUMTCB\"")
        .replace("\"TEEVersion\"", "\"teeVersion\"")
        .replace("\"SMT\"", "\"sMt\"");
    assert_eq!(parse(&odd).unwrap(), canonical);

    // Go's folding maps U+017F (long s) to S and U+212A (Kelvin) to K.
    let long_s = UPSTREAM_EXAMPLE.replace("\"snp\"", "\"\u{17f}np\"");
    assert_eq!(parse(&long_s).unwrap(), canonical);
}

#[test]
fn policy_keys_are_not_folded() {
    let json = r#"{"Policies": {"AB": {"Role": "coordinator"}, "ab": {}}}"#;
    let m = parse(json).unwrap();
    assert_eq!(m.policies.len(), 2);
    assert_eq!(m.policies["AB"].role, Role::Coordinator);
}

#[test]
fn unknown_keys_are_ignored() {
    let canonical = parse(UPSTREAM_EXAMPLE).unwrap();
    let extra = UPSTREAM_EXAMPLE
        .replacen(
            '{',
            r#"{"Unknown": {"deep": [1, 2, {"x": null}]}, "Version": 7,"#,
            1,
        )
        .replace("\"ProductName\"", "\"Extra\": [], \"ProductName\"");
    assert_eq!(parse(&extra).unwrap(), canonical);
}

#[test]
fn null_means_zero_value() {
    let json = r#"{
        "Policies": {"k": {"SANs": null, "WorkloadSecretID": null, "Role": null}, "n": null},
        "ReferenceValues": {"snp": [{"Platform": null, "MinimumTCB": {"SNPVersion": null},
            "GuestPolicy": null, "AllowedChipIDs": null, "APEIP": null, "MinimumMitigationVector": null}, null],
            "tdx": null},
        "WorkloadOwnerPubKeys": null,
        "SeedshareOwnerPubKeys": [],
        "MinimumAPIVersion": null
    }"#;
    let m = parse(json).unwrap();
    assert_eq!(m.policies["k"], PolicyEntry::default());
    assert_eq!(m.policies["n"], PolicyEntry::default());
    assert_eq!(
        m.reference_values.snp,
        vec![SnpReferenceValues::default(); 2]
    );
    assert!(m.reference_values.tdx.is_empty());
    assert_eq!(m.workload_owner_pub_keys, None);
    assert_eq!(m.seedshare_owner_pub_keys, Some(vec![]));
    assert_eq!(m.minimum_api_version, None);

    // A null list element is the element's zero value.
    let m = parse(r#"{"WorkloadOwnerPubKeys": [null, "ab"]}"#).unwrap();
    assert_eq!(
        m.workload_owner_pub_keys,
        Some(vec![String::new(), "ab".into()])
    );

    // A null document is the zero manifest, as in Go.
    assert_eq!(parse("null").unwrap(), Manifest::default());
    assert_eq!(parse("{}").unwrap(), Manifest::default());
}

fn with_snp_version(value: &str) -> String {
    UPSTREAM_EXAMPLE.replace("\"SNPVersion\": 23", &format!("\"SNPVersion\": {value}"))
}

#[test]
fn svn_numbers_follow_go() {
    let path = "ReferenceValues.snp[0].MinimumTCB.SNPVersion".to_owned();
    for (text, value) in [
        ("3.0", 3),
        ("2.55e2", 255),
        ("0", 0),
        ("-0.0", 0),
        ("255", 255),
    ] {
        let m = parse(&with_snp_version(text)).unwrap();
        assert_eq!(
            m.reference_values.snp[0].minimum_tcb.snp_version,
            Some(value),
            "{text}"
        );
    }
    assert_eq!(
        parse(&with_snp_version("3.5")),
        Err(ManifestError::SvnNotIntegral {
            path: path.clone(),
            found: "3.5".into()
        })
    );
    for (text, found) in [
        ("256", "256"),
        ("-1", "-1"),
        ("1e300", "1e300"),
        ("255.5", "255.5"),
    ] {
        assert_eq!(
            parse(&with_snp_version(text)),
            Err(ManifestError::SvnOutOfRange {
                path: path.clone(),
                found: found.into()
            }),
            "{text}"
        );
    }
    assert_eq!(
        parse(&with_snp_version("\"3\"")),
        Err(ManifestError::WrongType {
            path,
            expected: "number",
            found: "string"
        })
    );
}

#[test]
fn integers_follow_go() {
    // uint8 fields go through ParseUint: no fractions, no exponents, in range.
    let path = "ReferenceValues.snp[0].GuestPolicy.ABIMinor";
    for text in ["3.0", "1e1", "256", "-1"] {
        let json = UPSTREAM_EXAMPLE.replace("\"ABIMinor\": 0", &format!("\"ABIMinor\": {text}"));
        assert!(
            matches!(parse(&json), Err(ManifestError::InvalidInteger { path: p, expected_type: "uint8", .. }) if p == path),
            "{text}"
        );
    }
    let json = UPSTREAM_EXAMPLE.replace("\"ABIMinor\": 0", "\"ABIMinor\": 31");
    assert_eq!(
        parse(&json).unwrap().reference_values.snp[0]
            .guest_policy
            .abi_minor,
        31
    );

    let mmv = |text: &str| {
        parse(&format!(
            r#"{{"ReferenceValues": {{"snp": [{{"MinimumMitigationVector": {text}}}]}}}}"#
        ))
    };
    assert_eq!(
        mmv("18446744073709551615").unwrap().reference_values.snp[0].minimum_mitigation_vector,
        u64::MAX
    );
    assert!(matches!(
        mmv("18446744073709551616"),
        Err(ManifestError::InvalidInteger {
            expected_type: "uint64",
            ..
        })
    ));

    let tcb_eval = |text: &str| {
        parse(&format!(
            r#"{{"ReferenceValues": {{"tdx": [{{"MinTCBEvaluationDataNumber": {text}}}]}}}}"#
        ))
    };
    assert_eq!(
        tcb_eval("-5").unwrap().reference_values.tdx[0].min_tcb_evaluation_data_number,
        -5
    );
    assert!(matches!(
        tcb_eval("9223372036854775808"),
        Err(ManifestError::InvalidInteger {
            expected_type: "int",
            ..
        })
    ));
}

#[test]
fn duplicate_folded_keys_are_rejected() {
    assert_eq!(
        parse(r#"{"Policies": {}, "policies": {}}"#),
        Err(ManifestError::DuplicateField {
            path: String::new(),
            field: "Policies",
            first_key: "Policies".into(),
            second_key: "policies".into(),
        })
    );
    // An exact repeat, and a repeat whose first value is null, count too.
    assert!(matches!(
        parse(r#"{"MinimumAPIVersion": null, "MinimumAPIVersion": "v1"}"#),
        Err(ManifestError::DuplicateField {
            field: "MinimumAPIVersion",
            ..
        })
    ));
    assert_eq!(
        parse(
            r#"{"ReferenceValues": {"snp": [{"MinimumTCB": {"TEEVersion": 1, "teeversion": 2}}]}}"#
        ),
        Err(ManifestError::DuplicateField {
            path: "ReferenceValues.snp[0].MinimumTCB".into(),
            field: "TEEVersion",
            first_key: "TEEVersion".into(),
            second_key: "teeversion".into(),
        })
    );
    assert_eq!(
        parse(r#"{"Policies": {"ab": {}, "ab": {"Role": "coordinator"}}}"#),
        Err(ManifestError::DuplicatePolicyKey { key: "ab".into() })
    );
    // Unknown keys may repeat: Go ignores them and so do we.
    assert!(parse(r#"{"Other": 1, "Other": 2}"#).is_ok());
}

#[test]
fn rtmrs_are_a_fixed_array_of_four() {
    let m = parse(r#"{"ReferenceValues": {"tdx": [{"Rtmrs": ["55", null]}]}}"#).unwrap();
    assert_eq!(
        m.reference_values.tdx[0].rtmrs,
        ["55".to_owned(), String::new(), String::new(), String::new()]
    );
    let json = String::from_utf8(m.to_go_json().unwrap()).unwrap();
    assert!(json.contains("\"Rtmrs\": [\n          \"55\",\n          \"\",\n          \"\",\n          \"\"\n        ]"));
    assert_eq!(
        parse(r#"{"ReferenceValues": {"tdx": [{"Rtmrs": ["1", "2", "3", "4", "5"]}]}}"#),
        Err(ManifestError::TooManyElements {
            path: "ReferenceValues.tdx[0].Rtmrs".into(),
            max: 4,
            found: 5
        })
    );
}

#[test]
fn wrong_types_name_the_path() {
    let cases = [
        ("[]", "", "object", "array"),
        (r#"{"Policies": []}"#, "Policies", "object", "array"),
        (
            r#"{"Policies": {"k": []}}"#,
            "Policies[\"k\"]",
            "object",
            "array",
        ),
        (
            r#"{"Policies": {"k": {"SANs": "x"}}}"#,
            "Policies[\"k\"].SANs",
            "array",
            "string",
        ),
        (
            r#"{"Policies": {"k": {"SANs": [1]}}}"#,
            "Policies[\"k\"].SANs[0]",
            "string",
            "number",
        ),
        (
            r#"{"Policies": {"k": {"Role": true}}}"#,
            "Policies[\"k\"].Role",
            "string",
            "boolean",
        ),
        (
            r#"{"ReferenceValues": []}"#,
            "ReferenceValues",
            "object",
            "array",
        ),
        (
            r#"{"ReferenceValues": {"snp": {}}}"#,
            "ReferenceValues.snp",
            "array",
            "object",
        ),
        (
            r#"{"ReferenceValues": {"snp": [[]]}}"#,
            "ReferenceValues.snp[0]",
            "object",
            "array",
        ),
        (
            r#"{"ReferenceValues": {"snp": [{"GuestPolicy": {"SMT": 1}}]}}"#,
            "ReferenceValues.snp[0].GuestPolicy.SMT",
            "boolean",
            "number",
        ),
        (
            r#"{"ReferenceValues": {"tdx": [{"Rtmrs": "x"}]}}"#,
            "ReferenceValues.tdx[0].Rtmrs",
            "array",
            "string",
        ),
        (
            r#"{"MinimumAPIVersion": 1}"#,
            "MinimumAPIVersion",
            "string",
            "number",
        ),
        (
            r#"{"WorkloadOwnerPubKeys": {}}"#,
            "WorkloadOwnerPubKeys",
            "array",
            "object",
        ),
        ("\"manifest\"", "", "object", "string"),
    ];
    for (json, path, expected, found) in cases {
        assert_eq!(
            parse(json),
            Err(ManifestError::WrongType {
                path: path.into(),
                expected,
                found
            }),
            "{json}"
        );
    }
}

#[test]
fn malformed_input_gives_typed_errors() {
    // Truncated.
    let truncated = &UPSTREAM_EXAMPLE[..UPSTREAM_EXAMPLE.len() / 2];
    assert!(matches!(
        parse(truncated),
        Err(ManifestError::Syntax { .. })
    ));
    assert!(matches!(parse(""), Err(ManifestError::Syntax { .. })));
    assert!(matches!(parse("{} x"), Err(ManifestError::Syntax { .. })));
    assert!(matches!(
        parse("{\"a\": 1e400}"),
        Err(ManifestError::Syntax { .. })
    ));
    assert!(matches!(
        parse("{\"a\": \"\\ud800\"}"),
        Err(ManifestError::Syntax { .. })
    ));
    // Not UTF-8.
    let mut bytes = b"{\"Policies\": {\"".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b"\": {}}}");
    assert_eq!(
        ManifestDocument::parse(bytes),
        Err(ManifestError::NotUtf8 { offset: 15 })
    );
    // Too deep, even under an unknown key.
    let deep = format!(
        "{{\"Unknown\": {}{}}}",
        "[".repeat(MAX_NESTING_DEPTH),
        "]".repeat(MAX_NESTING_DEPTH)
    );
    assert_eq!(
        parse(&deep),
        Err(ManifestError::TooDeep {
            max: MAX_NESTING_DEPTH
        })
    );
    let very_deep = "[".repeat(100_000);
    assert_eq!(
        parse(&very_deep),
        Err(ManifestError::TooDeep {
            max: MAX_NESTING_DEPTH
        })
    );
    // Too large.
    let mut huge = b"{\"Unknown\": \"".to_vec();
    huge.resize(MAX_MANIFEST_SIZE + 1, b'a');
    assert_eq!(
        ManifestDocument::parse(huge),
        Err(ManifestError::TooLarge {
            size: MAX_MANIFEST_SIZE + 1,
            max: MAX_MANIFEST_SIZE
        })
    );
}

#[test]
fn error_messages_are_precise() {
    assert_eq!(
        parse(&with_snp_version("3.5")).unwrap_err().to_string(),
        "ReferenceValues.snp[0].MinimumTCB.SNPVersion: svn must be a whole number, found 3.5"
    );
    assert_eq!(
        parse("{\"Policies\": }").unwrap_err().to_string(),
        "manifest is not valid json at line 1, column 14: expected value"
    );
    assert_eq!(
        parse(r#"{"Policies": []}"#).unwrap_err().to_string(),
        "Policies: expected object, found array"
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9<>&\"\\\\/ \u{2028}\u{2029}\u{7f}\u{1}\n\té€😀]{0,10}",
        "(?s).{0,6}",
    ]
}

fn hexish() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9a-f]{0,16}", text()]
}

fn list_of<S: Strategy + 'static>(s: S) -> impl Strategy<Value = Option<Vec<S::Value>>>
where
    S::Value: std::fmt::Debug,
{
    proptest::option::of(proptest::collection::vec(s, 0..3))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::None),
        Just(Role::Coordinator),
        "[a-z-]{1,8}".prop_map(|s| Role::from_name(&s))
    ]
}

fn snp() -> impl Strategy<Value = SnpReferenceValues> {
    (
        prop_oneof![Just("Simulated-SNP".to_owned()), text()],
        prop_oneof![Just("Milan".to_owned()), text()],
        hexish(),
        proptest::array::uniform4(proptest::option::of(any::<u8>())),
        (
            any::<u8>(),
            any::<u8>(),
            proptest::array::uniform9(any::<bool>()),
        ),
        proptest::array::uniform7(any::<bool>()),
        any::<u64>(),
        list_of(hexish()),
        proptest::option::of(hexish()),
        proptest::option::of(hexish()),
    )
        .prop_map(
            |(platform, product_name, tm, tcb, (minor, major, gp), pi, mmv, chips, apeip, fp)| {
                SnpReferenceValues {
                    platform,
                    product_name,
                    trusted_measurement: tm,
                    minimum_tcb: MinimumTcb {
                        bootloader_version: tcb[0],
                        tee_version: tcb[1],
                        snp_version: tcb[2],
                        microcode_version: tcb[3],
                    },
                    guest_policy: GuestPolicy {
                        abi_minor: minor,
                        abi_major: major,
                        smt: gp[0],
                        migrate_ma: gp[1],
                        debug: gp[2],
                        single_socket: gp[3],
                        cxl_allowed: gp[4],
                        mem_aes_256_xts: gp[5],
                        rapl_dis: gp[6],
                        ciphertext_hiding_dram: gp[7],
                        page_swap_disable: gp[8],
                    },
                    platform_info: PlatformInfo {
                        smt_enabled: pi[0],
                        tsme_enabled: pi[1],
                        ecc_enabled: pi[2],
                        rapl_disabled: pi[3],
                        ciphertext_hiding_dram_enabled: pi[4],
                        alias_check_complete: pi[5],
                        tio_enabled: pi[6],
                    },
                    minimum_mitigation_vector: mmv,
                    allowed_chip_ids: chips,
                    apeip,
                    simulated_ark_fingerprint: fp,
                }
            },
        )
}

fn tdx() -> impl Strategy<Value = TdxReferenceValues> {
    (
        text(),
        any::<i64>(),
        hexish(),
        hexish(),
        proptest::array::uniform4(hexish()),
        hexish(),
        list_of(hexish()),
        proptest::array::uniform3(any::<bool>()),
    )
        .prop_map(
            |(platform, eval, mr_td, mr_seam, rtmrs, xfam, piids, flags)| TdxReferenceValues {
                platform,
                min_tcb_evaluation_data_number: eval,
                mr_td,
                mr_seam,
                rtmrs,
                xfam,
                allowed_piids: piids,
                memory_integrity: flags[0],
                smt_disabled: flags[1],
                static_platform: flags[2],
            },
        )
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let entry = (list_of(text()), text(), role()).prop_map(|(sans, workload_secret_id, role)| {
        PolicyEntry {
            sans,
            workload_secret_id,
            role,
        }
    });
    (
        proptest::collection::btree_map(hexish(), entry, 0..3),
        proptest::collection::vec(snp(), 0..3),
        proptest::collection::vec(tdx(), 0..2),
        list_of(hexish()),
        list_of(hexish()),
        list_of(hexish()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(policies, snp, tdx, digests, pub_keys, seedshare, api)| Manifest {
                policies,
                reference_values: ReferenceValues { snp, tdx },
                workload_owner_key_digests: digests,
                workload_owner_pub_keys: pub_keys,
                seedshare_owner_pub_keys: seedshare,
                minimum_api_version: api,
            },
        )
}

/// Upper-cases every struct key (not the `Policies` map keys, which are data).
fn upper_case_field_names(value: serde_json::Value, is_policies_map: bool) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let child_is_policies = !is_policies_map && k == "Policies";
                    let v = upper_case_field_names(v, child_is_policies);
                    (if is_policies_map { k } else { k.to_uppercase() }, v)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|v| upper_case_field_names(v, false))
                .collect(),
        ),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn go_json_round_trips(m in manifest()) {
        let json = m.to_go_json().unwrap();
        let doc = ManifestDocument::parse(json.clone()).unwrap();
        prop_assert_eq!(doc.manifest(), &m);
        prop_assert_eq!(doc.hash(), sha256(&json));
        prop_assert_eq!(doc.raw(), &json[..]);
        // Regeneration is byte-identical.
        prop_assert_eq!(doc.manifest().to_go_json().unwrap(), json.clone());
        // serde_json reads our output as the same JSON value (escaping is valid JSON).
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        // Field names in another case mean the same manifest.
        let upper = serde_json::to_vec(&upper_case_field_names(value, false)).unwrap();
        let upper_doc = ManifestDocument::parse(upper).unwrap();
        prop_assert_eq!(upper_doc.manifest(), &m);
    }

    #[test]
    fn go_json_output_has_no_raw_html_characters(m in manifest()) {
        let json = m.to_go_json().unwrap();
        let text = String::from_utf8(json).unwrap();
        let raw_html = text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']);
        prop_assert!(!raw_html, "unescaped html character in output");
        let ends_with_newline = text.ends_with("}\n");
        prop_assert!(ends_with_newline, "output does not end with a newline");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ManifestDocument::parse(bytes);
    }

    #[test]
    fn mutated_manifests_never_panic(m in manifest(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut json = m.to_go_json().unwrap();
        let at = cut.index(json.len());
        json[at] = byte;
        if let Ok(doc) = ManifestDocument::parse(json) {
            let _ = doc.manifest().validate();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SANs: what a workload certificate can carry

#[test]
fn usable_sans_are_classified() {
    use contrast_core::san::{San, check_san};
    for dns in [
        "web",
        "*",
        "*.web.default.svc",
        "web.default.svc.cluster.local",
        "my_svc-1",
        "a1.example.com",
    ] {
        assert_eq!(check_san(dns), Ok(San::Dns(dns.into())), "{dns}");
    }
    for ip in ["10.0.0.7", "fe80::1", "::ffff:10.0.0.1"] {
        assert_eq!(check_san(ip), Ok(San::Ip(ip.parse().unwrap())), "{ip}");
    }
    for uri in ["spiffe://a/b", "https://x/y?z=%41#f", "urn:uuid:1234"] {
        assert_eq!(check_san(uri), Ok(San::Uri(uri.into())), "{uri}");
    }
}

#[test]
fn unusable_sans_are_refused_with_the_reason() {
    use contrast_core::san::{SanError, check_san};
    assert_eq!(check_san(""), Err(SanError::Empty));
    assert_eq!(
        check_san("wéb"),
        Err(SanError::NotAscii {
            value: "wéb".into(),
            kind: "DNS"
        })
    );
    assert_eq!(
        check_san("spiffe://ä"),
        Err(SanError::NotAscii {
            value: "spiffe://ä".into(),
            kind: "URI"
        })
    );
    let long_label = "a".repeat(64);
    let long_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
    ]
    .join(".");
    for (value, reason) in [
        ("we b", "contains ' '"),
        ("web.", "empty label"),
        (".web", "empty label"),
        ("a..b", "empty label"),
        ("*web", "contains '*'"),
        (
            "a.*.b",
            "the wildcard * is allowed only as the whole first label",
        ),
        ("*.", "empty label"),
        ("-web", "starts or ends with -"),
        ("web-", "starts or ends with -"),
        (long_label.as_str(), "64 characters, at most 63"),
        (long_name.as_str(), "255 characters, at most 253"),
        ("10.0.0.256", "the last label is all digits"),
        ("1234", "the last label is all digits"),
    ] {
        match check_san(value) {
            Err(SanError::InvalidDnsName {
                value: found,
                reason: why,
            }) => {
                assert_eq!(found, value);
                assert!(why.contains(reason), "{value}: {why}");
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    for (value, reason) in [
        ("https://x y", "contains ' '"),
        (
            "https://x/%zz",
            "% at offset 10 is not followed by two hex digits",
        ),
        ("https://x/%4", "not followed by two hex digits"),
        ("mailto:", "nothing follows the scheme"),
        ("https://x\"", "contains '\"'"),
    ] {
        match check_san(value) {
            Err(SanError::InvalidUri {
                value: found,
                reason: why,
            }) => {
                assert_eq!(found, value);
                assert!(why.contains(reason), "{value}: {why}");
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    // The message names the value in full.
    assert_eq!(
        check_san("10.0.0.256").unwrap_err().to_string(),
        "\"10.0.0.256\" is not a valid DNS name: the last label is all digits: it is neither an \
         IP address nor a host name"
    );
}

fn with_sans(sans: Option<Vec<&str>>) -> Manifest {
    let mut m = valid_manifest();
    m.policies.get_mut(&policy_key()).unwrap().sans =
        sans.map(|sans| sans.into_iter().map(str::to_owned).collect());
    m
}

#[test]
fn validation_refuses_an_empty_or_invalid_san() {
    use contrast_core::san::SanError;
    let policy = format!("Policies[\"{}\"]", policy_key());
    assert_single_violation(
        &with_sans(Some(vec!["web", ""])),
        &format!("{policy}.SANs[1]"),
        ViolationKind::InvalidSan(SanError::Empty),
    );
    assert_single_violation(
        &with_sans(Some(vec!["web", "web..default"])),
        &format!("{policy}.SANs[1]"),
        ViolationKind::InvalidSan(SanError::InvalidDnsName {
            value: "web..default".into(),
            reason: "empty label (a leading, trailing or doubled dot)".into(),
        }),
    );
    let violation = &violations(&with_sans(Some(vec!["web", "https://a b"])))[0];
    assert_eq!(violation.path, format!("{policy}.SANs[1]"));
    assert_eq!(
        violation.to_string(),
        format!(
            "{policy}.SANs[1]: invalid subject alternative name: \"https://a b\" is not a valid \
             URI: contains ' ', which a URI may not hold unescaped"
        )
    );
}

#[test]
fn validation_refuses_a_policy_without_a_dns_san() {
    let policy = format!("Policies[\"{}\"]", policy_key());
    for (sans, found) in [
        (None, 0),
        (Some(vec![]), 0),
        (Some(vec!["10.0.0.1", "spiffe://a/b"]), 2),
    ] {
        assert_single_violation(
            &with_sans(sans),
            &format!("{policy}.SANs"),
            ViolationKind::NoDnsSan { found },
        );
    }
    // An invalid DNS name is reported as such, not also as a missing DNS name; an empty SAN is
    // no DNS name.
    assert_eq!(violations(&with_sans(Some(vec!["a..b"]))).len(), 1);
    let found = violations(&with_sans(Some(vec![""])));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[1].kind, ViolationKind::NoDnsSan { found: 1 });
    // A DNS name anywhere in the list will do.
    with_sans(Some(vec!["10.0.0.1", "web"])).validate().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: ignored as Go ignores them, but listed with the nearest field

fn unknown(json: &str) -> Vec<(String, Option<&'static str>)> {
    let doc = ManifestDocument::parse(json.as_bytes().to_vec()).unwrap();
    doc.unknown_keys()
        .iter()
        .map(|k| (k.path(), k.nearest))
        .collect()
}

#[test]
fn unknown_keys_are_listed_at_every_level_with_the_nearest_field() {
    let key = policy_key();
    let json = format!(
        r#"{{
  "Polices": {{}},
  "Policies": {{"{key}": {{"SAN": ["web"], "sans": ["web"], "Rol": "coordinator"}}}},
  "ReferenceValues": {{
    "snp": [{{"Platfrom": "x", "MinimumTCB": {{"SNPVerison": 1, "snpversion": 2}},
              "GuestPolicy": {{"Debugg": false}}, "PlatformInfo": {{"SMTEnable": true}}}}],
    "tdx": [{{"MrTD": "", "Rtmr": []}}],
    "sev": []
  }},
  "WorkloadOwnerPubKey": ["ab"],
  "Comment": "x",
  "a b": 1
}}"#
    );
    let policy = format!("Policies[\"{key}\"]");
    assert_eq!(
        unknown(&json),
        vec![
            ("Polices".to_owned(), Some("Policies")),
            (
                "WorkloadOwnerPubKey".to_owned(),
                Some("WorkloadOwnerPubKeys")
            ),
            ("Comment".to_owned(), None),
            ("[\"a b\"]".to_owned(), None),
            (format!("{policy}.SAN"), Some("SANs")),
            (format!("{policy}.Rol"), Some("Role")),
            ("ReferenceValues.sev".to_owned(), Some("snp")),
            (
                "ReferenceValues.snp[0].Platfrom".to_owned(),
                Some("Platform")
            ),
            (
                "ReferenceValues.snp[0].MinimumTCB.SNPVerison".to_owned(),
                Some("SNPVersion")
            ),
            (
                "ReferenceValues.snp[0].GuestPolicy.Debugg".to_owned(),
                Some("Debug")
            ),
            (
                "ReferenceValues.snp[0].PlatformInfo.SMTEnable".to_owned(),
                Some("SMTEnabled")
            ),
            ("ReferenceValues.tdx[0].Rtmr".to_owned(), Some("Rtmrs")),
        ]
    );
    // Decoding is unchanged: the misspelt owner list is simply absent, as in Go.
    let doc = ManifestDocument::parse(json.into_bytes()).unwrap();
    assert_eq!(doc.manifest().workload_owner_pub_keys, None);
    assert_eq!(
        doc.unknown_keys()[1].to_string(),
        "WorkloadOwnerPubKey: unknown key \"WorkloadOwnerPubKey\" (did you mean \"WorkloadOwnerPubKeys\"?)"
    );
    assert_eq!(
        doc.unknown_keys()[2].to_string(),
        "Comment: unknown key \"Comment\" (no field of this object has a similar name)"
    );
}

#[test]
fn known_keys_in_any_case_and_our_output_have_no_unknown_keys() {
    assert!(unknown(r#"{"policies": null, "REFERENCEVALUES": {"SNP": []}}"#).is_empty());
    let written = valid_manifest().to_go_json().unwrap();
    let doc = ManifestDocument::parse(written).unwrap();
    assert!(doc.unknown_keys().is_empty(), "{:?}", doc.unknown_keys());
    // Values under an unknown key are not walked.
    assert_eq!(
        unknown(r#"{"Extra": {"Policies": {"x": 1}}}"#),
        vec![("Extra".to_owned(), None)]
    );
}
