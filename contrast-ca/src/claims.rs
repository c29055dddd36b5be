//! Attestation claims copied into workload certificates.
//!
//! Every SNP report field becomes one non-critical extension under `1.3.9901.2.1.N` whose value is
//! a DER INTEGER (unsigned), BOOLEAN or OCTET STRING. The emission order is upstream's
//! (`ClaimsToCertExtension`), which differs from the arc numbering:
//!
//! ```text
//! 1 version, 2 guestSVN,
//! 3 policy ABIMajor, 4 ABIMinor, 7 SMT, 6 MigrateMA, 5 Debug, 8 SingleSocket,
//! 9 familyID, 10 imageID, 11 VMPL,
//! 12 currentTCB bl, 14 tee, 13 snp, 15 ucode,
//! 16 platformInfo SMTEnabled, 17 TSMEEnabled,
//! 20 signerInfo signingKey, 18 authorKeyEn, 19 maskChipKey,
//! 21 reportData, 22 measurement, 23 hostData, 24 idKeyDigest, 25 authorKeyDigest,
//! 26 reportID, 27 reportIDMA,
//! 28 reportedTCB bl, 30 tee, 29 snp, 31 ucode,
//! 32 chipID,
//! 33 committedTCB bl, 35 tee, 34 snp, 36 ucode,
//! 37 currentBuild, 38 currentMinor, 39 currentMajor,
//! 40 committedBuild, 41 committedMinor, 42 committedMajor,
//! 43 launchTCB bl, 45 tee, 44 snp, 46 ucode
//! ```
//!
//! TCB values are split as go-sev-guest's `DecomposeTCBVersion` does, whatever the product:
//! bl = byte 0, tee = byte 1, snp = byte 6, ucode = byte 7 of the little-endian TCB_VERSION.
//!
//! After the claims, when the workload has a `WorkloadSecretID`, comes `1.3.9901.3.1` holding
//! the DER OCTET STRING of its UTF-8 bytes.

use const_oid::ObjectIdentifier;
use contrast_attest::Report;
use contrast_attest::report::Field;
use der::Encode;
use der::asn1::{OctetString, OctetStringRef, Uint};
use x509_cert::ext::Extension;

use crate::error::{CaError, encoding};

/// `1.3.9901.2.1`, the SNP report arc (never used itself as a claim OID).
pub const SNP_CLAIM_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.2.1");
/// `1.3.9901.3.1`, the workload secret ID extension.
pub const WORKLOAD_SECRET_ID_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.3.1");

/// `1.3.9901.2.1.arc`.
///
/// # Errors
/// Never for the arcs used here (1–46); [`CaError::Encoding`] for an arc the OID encoder refuses.
pub fn snp_claim_oid(arc: u32) -> Result<ObjectIdentifier, CaError> {
    SNP_CLAIM_ARC.push_arc(arc).map_err(|_| CaError::Encoding {
        structure: "claim OID",
        source: der::ErrorKind::OidMalformed.into(),
    })
}

fn claim(oid: ObjectIdentifier, value_der: Vec<u8>) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value_der).map_err(encoding("claim extension"))?,
    })
}

/// A non-critical extension whose value is the DER INTEGER of `value` (unsigned, minimal).
///
/// # Errors
/// [`CaError::Encoding`] if DER encoding fails.
pub fn integer_extension(oid: ObjectIdentifier, value: u64) -> Result<Extension, CaError> {
    let err = encoding("INTEGER claim");
    let der = Uint::new(&value.to_be_bytes())
        .and_then(|v| v.to_der())
        .map_err(err)?;
    claim(oid, der)
}

/// A non-critical extension whose value is a DER BOOLEAN.
///
/// # Errors
/// [`CaError::Encoding`] if DER encoding fails.
pub fn boolean_extension(oid: ObjectIdentifier, value: bool) -> Result<Extension, CaError> {
    claim(oid, value.to_der().map_err(encoding("BOOLEAN claim"))?)
}

/// A non-critical extension whose value is a DER OCTET STRING of `value`.
///
/// # Errors
/// [`CaError::Encoding`] if DER encoding fails.
pub fn octet_string_extension(oid: ObjectIdentifier, value: &[u8]) -> Result<Extension, CaError> {
    let der = OctetStringRef::new(value)
        .and_then(|v| v.to_der())
        .map_err(encoding("OCTET STRING claim"))?;
    claim(oid, der)
}

/// The workload secret ID extension, or `None` for an empty ID (upstream adds none then).
///
/// # Errors
/// [`CaError::Encoding`] if DER encoding fails.
pub fn workload_secret_id_extension(id: &str) -> Result<Option<Extension>, CaError> {
    if id.is_empty() {
        return Ok(None);
    }
    octet_string_extension(WORKLOAD_SECRET_ID_OID, id.as_bytes()).map(Some)
}

/// One claim's value before encoding.
enum Claim<'a> {
    Integer(u64),
    Boolean(bool),
    Bytes(&'a [u8]),
}

/// The eight raw TCB_VERSION bytes of `field` (the report layout is contrast-attest's).
fn raw_tcb(report: &Report<'_>, field: Field) -> [u8; 8] {
    report
        .as_bytes()
        .get(field.range())
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .unwrap_or_default()
}

/// `(arc, value)` for bl, tee, snp, ucode of a TCB, in upstream's emission order.
fn tcb_claims(first_arc: u32, raw: [u8; 8]) -> [(u32, Claim<'static>); 4] {
    let [bl, tee, _, _, _, _, snp, ucode] = raw;
    [
        (first_arc, Claim::Integer(bl.into())),
        (first_arc + 2, Claim::Integer(tee.into())),
        (first_arc + 1, Claim::Integer(snp.into())),
        (first_arc + 3, Claim::Integer(ucode.into())),
    ]
}

/// The claim extensions of a verified SNP report, in upstream's emission order (module docs).
///
/// # Errors
/// [`CaError::Encoding`] if DER encoding fails (it does not for report-sized values).
pub fn snp_claim_extensions(report: &Report<'_>) -> Result<Vec<Extension>, CaError> {
    let policy = report.policy();
    let platform = report.platform_info();
    let key_info = report.key_info();
    let mut claims: Vec<(u32, Claim<'_>)> = vec![
        (1, Claim::Integer(report.version().into())),
        (2, Claim::Integer(report.guest_svn().into())),
        (3, Claim::Integer(policy.abi_major().into())),
        (4, Claim::Integer(policy.abi_minor().into())),
        (7, Claim::Boolean(policy.smt_allowed())),
        (6, Claim::Boolean(policy.migrate_ma_allowed())),
        (5, Claim::Boolean(policy.debug_allowed())),
        (8, Claim::Boolean(policy.single_socket_required())),
        (9, Claim::Bytes(report.family_id())),
        (10, Claim::Bytes(report.image_id())),
        (11, Claim::Integer(report.vmpl().into())),
    ];
    claims.extend(tcb_claims(12, raw_tcb(report, Field::CurrentTcb)));
    claims.extend([
        (16, Claim::Boolean(platform.smt_enabled())),
        (17, Claim::Boolean(platform.tsme_enabled())),
        (20, Claim::Integer(key_info.signing_key_raw().into())),
        (18, Claim::Boolean(key_info.author_key_en())),
        (19, Claim::Boolean(key_info.mask_chip_key())),
        (21, Claim::Bytes(report.report_data())),
        (22, Claim::Bytes(report.measurement())),
        (23, Claim::Bytes(report.host_data())),
        (24, Claim::Bytes(report.id_key_digest())),
        (25, Claim::Bytes(report.author_key_digest())),
        (26, Claim::Bytes(report.report_id())),
        (27, Claim::Bytes(report.report_id_ma())),
    ]);
    claims.extend(tcb_claims(28, report.reported_tcb_raw()));
    claims.push((32, Claim::Bytes(report.chip_id())));
    claims.extend(tcb_claims(33, raw_tcb(report, Field::CommittedTcb)));
    claims.extend([
        (37, Claim::Integer(report.current_build().into())),
        (38, Claim::Integer(report.current_minor().into())),
        (39, Claim::Integer(report.current_major().into())),
        (40, Claim::Integer(report.committed_build().into())),
        (41, Claim::Integer(report.committed_minor().into())),
        (42, Claim::Integer(report.committed_major().into())),
    ]);
    claims.extend(tcb_claims(43, raw_tcb(report, Field::LaunchTcb)));

    claims
        .into_iter()
        .map(|(arc, value)| {
            let oid = snp_claim_oid(arc)?;
            match value {
                Claim::Integer(v) => integer_extension(oid, v),
                Claim::Boolean(v) => boolean_extension(oid, v),
                Claim::Bytes(v) => octet_string_extension(oid, v),
            }
        })
        .collect()
}

/// The claims of `report` followed by the workload secret ID extension (if `workload_secret_id`
/// is not empty): the `extensions` argument of [`crate::Ca::issue_mesh_cert`] for NewMeshCert.
///
/// # Errors
/// As [`snp_claim_extensions`].
pub fn mesh_cert_extensions(
    report: &Report<'_>,
    workload_secret_id: &str,
) -> Result<Vec<Extension>, CaError> {
    let mut extensions = snp_claim_extensions(report)?;
    extensions.extend(workload_secret_id_extension(workload_secret_id)?);
    Ok(extensions)
}
