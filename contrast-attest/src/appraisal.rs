//! Appraisal: does a verified report match one of the manifest's SEV-SNP reference values?
//!
//! [`Verifier::appraise`] first verifies the report end to end ([`crate::verify_report`]: chain, signature,
//! binding, revocation) against the trust anchor of a reference-value entry, then checks the
//! report's claims against that entry with go-sev-guest `validate` semantics as upstream Contrast
//! configures them. Any entry may match; if none does, [`Error::NoReferenceValuesMatched`] says
//! why for each.
//!
//! # Trust anchor per entry
//!
//! `Platform == "Simulated-SNP"` → [`TrustAnchor::Pinned`] with the entry's
//! `SimulatedARKFingerprint` (required); any other platform → [`TrustAnchor::Amd`] for the
//! entry's product. A simulated ARK is therefore never trusted without that pin, and a hardware
//! entry never accepts a pinned root (its fingerprint field, if any, is ignored).
//!
//! # The checks, in order (one check, one [`Error`] variant)
//!
//! | rule | source | error |
//! |---|---|---|
//! | MEASUREMENT == `TrustedMeasurement` | manifest | [`Error::MeasurementMismatch`] |
//! | REPORT_DATA == expected | caller | [`Error::ReportDataMismatch`] |
//! | HOST_DATA ∈ `expected_host_data` (when set) | policy | [`Error::HostDataMismatch`] |
//! | POLICY ABI ≥ `GuestPolicy` ABI | manifest | [`Error::GuestPolicyAbiTooLow`] |
//! | MIGRATE_MA only if allowed | manifest ∧ policy | [`Error::MigrationAgentNotAllowed`] |
//! | DEBUG only if allowed | manifest ∧ policy | [`Error::DebugNotAllowed`] |
//! | SMT only if allowed | manifest | [`Error::SmtNotAllowed`] |
//! | SINGLE_SOCKET if required | manifest | [`Error::SingleSocketRequired`] |
//! | CXL_ALLOW only if allowed | manifest | [`Error::CxlNotAllowed`] |
//! | MEM_AES_256_XTS if required | manifest | [`Error::MemAes256XtsRequired`] |
//! | RAPL_DIS if required | manifest | [`Error::RaplDisableRequired`] |
//! | CIPHERTEXT_HIDING if required | manifest | [`Error::CiphertextHidingRequired`] |
//! | PAGE_SWAP_DISABLE if required | manifest | [`Error::PageSwapDisableRequired`] |
//! | VMPL ∈ `allowed_vmpls` | policy | [`Error::VmplNotAllowed`] |
//! | COMMITTED_TCB ≤ CURRENT_TCB (or == without provisional firmware) | policy | [`Error::CommittedTcbAboveCurrent`], [`Error::ProvisionalFirmwareNotPermitted`] |
//! | LAUNCH_TCB ≥ `MinimumTCB` | manifest | [`Error::LaunchTcbBelowMinimum`] |
//! | certificate TCB ≤ CURRENT_TCB | — | [`Error::CertTcbAboveCurrent`] |
//! | REPORTED_TCB ≥ `MinimumTCB` | manifest | [`Error::ReportedTcbBelowMinimum`] |
//! | committed build and API version ≤ current | — | [`Error::CommittedFirmwareAboveCurrent`] |
//! | PLATFORM_INFO SMT_EN / TSME_EN / TIO_EN only if allowed | manifest | [`Error::PlatformSmtNotAllowed`], [`Error::PlatformTsmeNotAllowed`], [`Error::PlatformTioNotAllowed`] |
//! | PLATFORM_INFO ECC_EN / RAPL_DIS / CIPHERTEXT_HIDING_EN / ALIAS_CHECK_COMPLETE if required | manifest | [`Error::PlatformEccRequired`], [`Error::PlatformRaplDisabledRequired`], [`Error::PlatformCiphertextHidingRequired`], [`Error::PlatformAliasCheckRequired`] |
//! | LAUNCH_MIT_VECTOR, CURRENT_MIT_VECTOR ⊇ `MinimumMitigationVector` | manifest | [`Error::LaunchMitigationVectorMissingBits`], [`Error::CurrentMitigationVectorMissingBits`], [`Error::MitigationVectorsNotReported`] |
//! | CHIP_ID not masked | policy | [`Error::MaskedChipIdNotAllowed`] |
//! | CHIP_ID ∈ `AllowedChipIDs` (when non-empty) | manifest | [`Error::ChipIdNotAllowed`] |
//! | ID_KEY_DIGEST == SHA-384(ID key of (measurement, policy)) | manifest ∧ policy | [`Error::IdKeyDigestMismatch`] |
//!
//! REPORTED_TCB == the certificate's TCB, CHIP_ID == the VCEK's hwID, SIGNING_KEY == the leaf's
//! kind and revocation are part of verification ([`crate::verify_report`]).
//!
//! # Precedence
//!
//! Where the manifest speaks, it rules: its `GuestPolicy` and `PlatformInfo` are maxima (and the
//! required bits minima), its `MinimumTCB` is the minimum for REPORTED_TCB and LAUNCH_TCB. The
//! [`AppraisalPolicy`] covers what the manifest does not express, and can only make the appraisal
//! stricter than the manifest where both speak (debugging and migration agents need both to
//! allow them).
//!
//! # Decisions where upstream is silent or we differ
//!
//! - Mitigation vectors on reports older than version 5: go-sev-guest reads absent fields as
//!   zero, so any non-zero minimum fails; we fail the same cases, with the explicit
//!   [`Error::MitigationVectorsNotReported`]. A zero minimum passes.
//! - PLATFORM_INFO.TIO_EN is treated as a maximum like SMT_EN and TSME_EN (the manifest has the
//!   field; a platform with SEV-TIO enabled is accepted only if the entry allows it).
//! - A masked CHIP_ID is rejected by default (`allow_masked_chip_id: false`); upstream accepts it
//!   unless `AllowedChipIDs` is set.
//! - Entries with `APEIP` (upstream's iterative vCPU-count validator) are rejected with
//!   [`Error::ApEipUnsupported`] rather than compared as if the seed were a measurement.
//! - The minimum launch TCB has no FMC part; on Turin the FMC minimum is 0.

use std::fmt;
use std::sync::Arc;

use contrast_core::manifest::{GuestPolicy, PlatformInfo, PlatformKind, SnpReferenceValues};

use crate::chain::{ChipBinding, CrlPolicy, RevocationStatus, TrustAnchor};
use crate::collateral::{CollateralSource, VcekCache, VerifiedEvidence, verify_report};
use crate::error::Error;
use crate::idblock;
use crate::report::Report;
use crate::tcb::{TcbComponent, TcbVersion};
use crate::time::UnixTime;

/// A set of VMPLs (0 to 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmplSet(u8);

impl VmplSet {
    /// No level.
    pub const EMPTY: Self = Self(0);

    /// Only `vmpl` (levels above 3 give the empty set).
    #[must_use]
    pub const fn only(vmpl: u32) -> Self {
        Self::EMPTY.with(vmpl)
    }

    /// This set plus `vmpl` (levels above 3 are ignored).
    #[must_use]
    pub const fn with(self, vmpl: u32) -> Self {
        if vmpl <= 3 {
            Self(self.0 | 1 << vmpl)
        } else {
            self
        }
    }

    /// True if `vmpl` is in the set.
    #[must_use]
    pub const fn contains(self, vmpl: u32) -> bool {
        vmpl <= 3 && self.0 & (1 << vmpl) != 0
    }
}

impl fmt::Display for VmplSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let levels: Vec<String> = (0..4)
            .filter(|&v| self.contains(v))
            .map(|v| v.to_string())
            .collect();
        if levels.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&levels.join(", "))
        }
    }
}

/// Who refused a guest-policy capability that both the manifest and the policy must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeniedBy {
    /// The entry's `GuestPolicy` does not allow it.
    ReferenceValues,
    /// The manifest allows it, but the [`AppraisalPolicy`] does not.
    AppraisalPolicy,
}

impl fmt::Display for DeniedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReferenceValues => "the reference values' GuestPolicy",
            Self::AppraisalPolicy => "the appraisal policy",
        })
    }
}

/// The knobs the manifest does not express. [`AppraisalPolicy::default`] is strict: every
/// relaxation is an explicit opt-in, e.g.
/// `AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort)`. New knobs may be added
/// (`#[non_exhaustive]`): build it from the default with the `with_` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppraisalPolicy {
    /// Accept a guest whose POLICY allows debugging, if the manifest's `GuestPolicy` allows it
    /// too. Default `false`: a debuggable guest's memory is readable by the host, so nothing it
    /// attests to can be trusted.
    pub allow_debug: bool,
    /// Accept a guest whose POLICY allows a migration agent, if the manifest allows it too.
    /// Default `false`: a migration agent can export the guest's memory, and REPORT_ID_MA is not
    /// appraised here.
    pub allow_migration_agent: bool,
    /// The VMPLs a report may come from. Default only 0 (upstream's `VMPL = 0`): a report from a
    /// higher VMPL comes from less privileged code (e.g. an OS under an SVSM), which the
    /// measurement does not describe.
    pub allowed_vmpls: VmplSet,
    /// Accept COMMITTED_TCB and the committed firmware below the current ones (a provisional
    /// firmware update that can still be rolled back). Default `true`, as upstream: hosts run
    /// provisional firmware during updates, and the minimum TCB still applies to REPORTED_TCB.
    pub permit_provisional_firmware: bool,
    /// Require ID_KEY_DIGEST to be the digest of the ID key derived from (TrustedMeasurement,
    /// GuestPolicy) ([`crate::idblock`]). Default `true`, as upstream: the firmware checked the
    /// ID block at launch, so the digest proves the launch measurement *and* policy were
    /// the manifest's. Turn off only for reports from launchers that do not pass Contrast's ID
    /// block (e.g. public test vectors).
    pub require_id_block: bool,
    /// Whether the CRL must be supplied and usable. Default [`CrlPolicy::Required`] (fail
    /// closed; upstream sets `CheckRevocations`). A revoked certificate fails in both modes.
    pub crl: CrlPolicy,
    /// Accept a VCEK-signed report whose CHIP_ID is all zero (MASK_CHIP_ID). Default `false`:
    /// such a report cannot be tied to a chip allowlist or audited per chip.
    pub allow_masked_chip_id: bool,
    /// HOST_DATA must be one of these values. Default `None` (not checked here: for workloads
    /// the caller looks HOST_DATA up in the manifest's `Policies`). Set it to the coordinator
    /// policy hash(es) when appraising the Coordinator itself. `Some(vec![])` accepts nothing.
    pub expected_host_data: Option<Vec<[u8; 32]>>,
}

impl Default for AppraisalPolicy {
    fn default() -> Self {
        Self {
            allow_debug: false,
            allow_migration_agent: false,
            allowed_vmpls: VmplSet::only(0),
            permit_provisional_firmware: true,
            require_id_block: true,
            crl: CrlPolicy::Required,
            allow_masked_chip_id: false,
            expected_host_data: None,
        }
    }
}

impl AppraisalPolicy {
    /// Sets [`AppraisalPolicy::allow_debug`].
    #[must_use]
    pub fn with_allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Sets [`AppraisalPolicy::allow_migration_agent`].
    #[must_use]
    pub fn with_allow_migration_agent(mut self, allow: bool) -> Self {
        self.allow_migration_agent = allow;
        self
    }

    /// Sets [`AppraisalPolicy::allowed_vmpls`].
    #[must_use]
    pub fn with_allowed_vmpls(mut self, vmpls: VmplSet) -> Self {
        self.allowed_vmpls = vmpls;
        self
    }

    /// Sets [`AppraisalPolicy::permit_provisional_firmware`].
    #[must_use]
    pub fn with_permit_provisional_firmware(mut self, permit: bool) -> Self {
        self.permit_provisional_firmware = permit;
        self
    }

    /// Sets [`AppraisalPolicy::require_id_block`].
    #[must_use]
    pub fn with_require_id_block(mut self, require: bool) -> Self {
        self.require_id_block = require;
        self
    }

    /// Sets [`AppraisalPolicy::crl`].
    #[must_use]
    pub fn with_crl(mut self, crl: CrlPolicy) -> Self {
        self.crl = crl;
        self
    }

    /// Sets [`AppraisalPolicy::allow_masked_chip_id`].
    #[must_use]
    pub fn with_allow_masked_chip_id(mut self, allow: bool) -> Self {
        self.allow_masked_chip_id = allow;
        self
    }

    /// Sets [`AppraisalPolicy::expected_host_data`].
    #[must_use]
    pub fn with_expected_host_data(mut self, expected: Option<Vec<[u8; 32]>>) -> Self {
        self.expected_host_data = expected;
        self
    }
}

/// What the claims check established beyond the verification itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimChecks {
    /// ID_KEY_DIGEST was compared with the derived ID key digest.
    pub id_key_digest: bool,
    /// CHIP_ID was found in a non-empty `AllowedChipIDs`.
    pub chip_id_allowlisted: bool,
    /// The report's mitigation vectors were compared (a version 5+ report).
    pub mitigation_vectors: bool,
    /// HOST_DATA was compared with `expected_host_data`.
    pub host_data: bool,
    /// The platform runs provisional firmware (COMMITTED below CURRENT), which was permitted.
    pub provisional_firmware: bool,
}

/// A report that verified and matched a reference-value entry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Appraisal<'r> {
    /// The verification result: the report, leaf kind, anchor, chip binding, revocation status
    /// and chain.
    pub evidence: VerifiedEvidence<'r>,
    /// Index of the matching entry in `ReferenceValues.snp`.
    pub matched_index: usize,
    /// HOST_DATA, for the caller to look up in the manifest's `Policies`.
    pub host_data: [u8; 32],
    /// What the claims check established.
    pub checks: ClaimChecks,
}

impl<'r> Appraisal<'r> {
    /// The verified report.
    #[must_use]
    pub fn report(&self) -> &Report<'r> {
        &self.evidence.report
    }

    /// Whether and how revocation was checked.
    #[must_use]
    pub fn revocation(&self) -> &RevocationStatus {
        &self.evidence.revocation
    }
}

/// One entry of a manifest's SEV-SNP reference values, decoded once: the platform as a trust
/// anchor, the hex strings as bytes, the minimum TCB complete. The manifest's JSON type
/// ([`SnpReferenceValues`]) keeps its hex strings as written; this is what is appraised against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpReference {
    anchor: TrustAnchor,
    measurement: [u8; 48],
    minimum_tcb: TcbVersion,
    allowed_chip_ids: Vec<[u8; 64]>,
    guest_policy: GuestPolicy,
    platform_info: PlatformInfo,
    minimum_mitigation_vector: u64,
}

impl SnpReference {
    /// Decodes one entry.
    ///
    /// # Errors
    /// [`Error::InvalidReferenceValues`] (unknown product, bad hex),
    /// [`Error::SimulatedArkFingerprintMissing`], [`Error::MinimumTcbIncomplete`],
    /// [`Error::ApEipUnsupported`].
    pub fn decode(entry: &SnpReferenceValues) -> Result<Self, Error> {
        let invalid = |source| Error::InvalidReferenceValues { source };
        let anchor = trust_anchor(entry)?;
        let measurement = entry.trusted_measurement().map_err(invalid)?;
        let minimum_tcb = minimum_tcb(entry)?;
        let allowed_chip_ids = entry.allowed_chip_ids().map_err(invalid)?;
        if entry.apeip().map_err(invalid)?.is_some() {
            return Err(Error::ApEipUnsupported);
        }
        Ok(Self {
            anchor,
            measurement,
            minimum_tcb,
            allowed_chip_ids,
            guest_policy: entry.guest_policy,
            platform_info: entry.platform_info,
            minimum_mitigation_vector: entry.minimum_mitigation_vector,
        })
    }

    /// The root the report's chain must end in.
    #[must_use]
    pub fn anchor(&self) -> &TrustAnchor {
        &self.anchor
    }

    /// The trusted launch measurement.
    #[must_use]
    pub fn measurement(&self) -> &[u8; 48] {
        &self.measurement
    }
}

/// The appraiser, built once from the reference values (decoded once) and the
/// [`AppraisalPolicy`], then used for every report: the reference values stay apart from the
/// evidence (the report) and the endorsements (its certificates and CRL), as in Oak's
/// attestation verifier. Cheap to share (`Arc`) across threads and handshakes.
#[derive(Clone, Debug)]
pub struct Verifier {
    /// Each entry decoded, or why it does not decode (reported, per entry, when appraising).
    references: Vec<Result<SnpReference, Error>>,
    policy: AppraisalPolicy,
    cache: Option<Arc<VcekCache>>,
}

impl Verifier {
    /// A verifier for `reference_values` (a manifest's `ReferenceValues.snp`; any entry may
    /// match) under `policy`. Each entry is decoded here, once; an entry that does not decode
    /// never matches, and its error is listed when no entry matches.
    #[must_use]
    pub fn new(reference_values: &[SnpReferenceValues], policy: AppraisalPolicy) -> Self {
        Self {
            references: reference_values.iter().map(SnpReference::decode).collect(),
            policy,
            cache: None,
        }
    }

    /// Shares verified chains and derived ID keys across appraisals through `cache`.
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<VcekCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &AppraisalPolicy {
        &self.policy
    }

    /// The decoded entries, in the manifest's order.
    pub fn references(&self) -> impl Iterator<Item = &Result<SnpReference, Error>> {
        self.references.iter()
    }

    /// Verifies `report` (the evidence) with the certificates and CRL from `endorsements`, at
    /// `now`, and appraises it against each reference-value entry in order; returns the first
    /// match. The report must carry `expected_report_data` (the freshness binding).
    ///
    /// The chain is verified once per distinct trust anchor.
    ///
    /// # Errors
    /// [`Error::NoSnpReferenceValues`] if there are no entries, otherwise
    /// [`Error::NoReferenceValuesMatched`] with each entry's reason: a decoding error, a
    /// verification error (chain, signature, binding, CRL) or the first failed claim check.
    pub fn appraise<'r>(
        &self,
        now: UnixTime,
        report: &'r [u8],
        endorsements: &dyn CollateralSource,
        expected_report_data: &[u8; 64],
    ) -> Result<Appraisal<'r>, Error> {
        if self.references.is_empty() {
            return Err(Error::NoSnpReferenceValues);
        }
        let cache = self.cache.as_deref();
        let mut verified: Vec<(TrustAnchor, Result<VerifiedEvidence<'r>, Error>)> = Vec::new();
        let mut attempts = Vec::with_capacity(self.references.len());
        for (index, reference) in self.references.iter().enumerate() {
            let outcome = reference.clone().and_then(|reference| {
                let anchor = reference.anchor;
                let evidence = match verified.iter().find(|(a, _)| *a == anchor) {
                    Some((_, result)) => result.clone(),
                    None => {
                        let result = verify_report(
                            report,
                            endorsements,
                            &anchor,
                            now,
                            self.policy.crl,
                            cache,
                        );
                        verified.push((anchor, result.clone()));
                        result
                    }
                }?;
                let checks = check_claims_with(
                    &evidence,
                    &reference,
                    expected_report_data,
                    &self.policy,
                    cache,
                )?;
                Ok(Appraisal {
                    host_data: *evidence.report.host_data(),
                    evidence,
                    matched_index: index,
                    checks,
                })
            });
            match outcome {
                Ok(appraisal) => return Ok(appraisal),
                Err(error) => attempts.push((index, error)),
            }
        }
        Err(Error::NoReferenceValuesMatched { attempts })
    }
}

/// The trust anchor for an entry: pinned simulated root for `Simulated-SNP`, AMD otherwise.
///
/// # Errors
/// [`Error::InvalidReferenceValues`] (unknown product, bad fingerprint hex),
/// [`Error::SimulatedArkFingerprintMissing`].
pub fn trust_anchor(entry: &SnpReferenceValues) -> Result<TrustAnchor, Error> {
    let product = entry
        .product()
        .map_err(|source| Error::InvalidReferenceValues { source })?;
    match entry.platform_kind() {
        PlatformKind::Hardware => Ok(TrustAnchor::Amd(product)),
        PlatformKind::Simulated => {
            let fingerprint = entry
                .simulated_ark_fingerprint()
                .map_err(|source| Error::InvalidReferenceValues { source })?
                .ok_or(Error::SimulatedArkFingerprintMissing)?;
            Ok(TrustAnchor::Pinned {
                ark_der_sha256: fingerprint,
                product,
            })
        }
    }
}

/// The entry's minimum TCB (Turin: FMC minimum 0).
///
/// # Errors
/// [`Error::MinimumTcbIncomplete`] naming the first part that is `null`.
pub(crate) fn minimum_tcb(entry: &SnpReferenceValues) -> Result<TcbVersion, Error> {
    let m = &entry.minimum_tcb;
    let part = |value: Option<u8>, missing: &'static str| {
        value.ok_or(Error::MinimumTcbIncomplete { missing })
    };
    Ok(TcbVersion {
        fmc: None,
        bootloader: part(m.bootloader_version, "BootloaderVersion")?,
        tee: part(m.tee_version, "TEEVersion")?,
        snp: part(m.snp_version, "SNPVersion")?,
        microcode: part(m.microcode_version, "MicrocodeVersion")?,
    })
}

/// Checks the claims of verified evidence against one reference-value entry (everything after
/// [`crate::verify_report`]; see the module docs for the rules and their order).
///
/// # Errors
/// The entry's decoding errors ([`Error::InvalidReferenceValues`],
/// [`Error::MinimumTcbIncomplete`], [`Error::SimulatedArkFingerprintMissing`],
/// [`Error::ApEipUnsupported`]), [`Error::ReferenceAnchorMismatch`] if `evidence` was verified
/// against another anchor than the entry's, then the error of the first failed rule.
pub fn check_claims(
    evidence: &VerifiedEvidence<'_>,
    entry: &SnpReferenceValues,
    expected_report_data: &[u8; 64],
    policy: &AppraisalPolicy,
) -> Result<ClaimChecks, Error> {
    check_claims_with(
        evidence,
        &SnpReference::decode(entry)?,
        expected_report_data,
        policy,
        None,
    )
}

/// [`check_claims`], taking the entry's ID key digest from `cache` when it holds it (the
/// derivation is a public-key recovery, most of an uncached appraisal's cost).
fn check_claims_with(
    evidence: &VerifiedEvidence<'_>,
    entry: &SnpReference,
    expected_report_data: &[u8; 64],
    policy: &AppraisalPolicy,
    cache: Option<&VcekCache>,
) -> Result<ClaimChecks, Error> {
    let anchor = entry.anchor;
    let measurement = entry.measurement;
    let minimum = entry.minimum_tcb;
    let allowed_chip_ids = &entry.allowed_chip_ids;
    let found_anchor = evidence.chain.anchor();
    if found_anchor != anchor {
        return Err(Error::ReferenceAnchorMismatch {
            expected: anchor,
            found: found_anchor,
        });
    }
    let report = &evidence.report;

    if report.measurement() != &measurement {
        return Err(Error::MeasurementMismatch {
            expected: measurement.to_vec(),
            found: report.measurement().to_vec(),
        });
    }
    if report.report_data() != expected_report_data {
        return Err(Error::ReportDataMismatch {
            expected: expected_report_data.to_vec(),
            found: report.report_data().to_vec(),
        });
    }
    if let Some(expected) = &policy.expected_host_data
        && !expected.contains(report.host_data())
    {
        return Err(Error::HostDataMismatch {
            expected: expected.clone(),
            found: *report.host_data(),
        });
    }
    check_guest_policy(report, &entry.guest_policy, policy)?;
    if !policy.allowed_vmpls.contains(report.vmpl()) {
        return Err(Error::VmplNotAllowed {
            allowed: policy.allowed_vmpls,
            found: report.vmpl(),
        });
    }
    let provisional_firmware = check_tcb(report, &minimum, policy)?;
    check_platform_info(report, &entry.platform_info)?;
    let mitigation_vectors = check_mitigation_vectors(report, entry.minimum_mitigation_vector)?;

    if evidence.chip_binding == ChipBinding::Masked && !policy.allow_masked_chip_id {
        return Err(Error::MaskedChipIdNotAllowed);
    }
    let chip_id_allowlisted = !allowed_chip_ids.is_empty();
    if chip_id_allowlisted && !allowed_chip_ids.contains(report.chip_id()) {
        return Err(Error::ChipIdNotAllowed {
            found: report.chip_id().to_vec(),
            allowed: allowed_chip_ids.len(),
        });
    }
    if policy.require_id_block {
        let expected = match cache {
            Some(cache) => cache.id_key_digest(&measurement, &entry.guest_policy)?,
            None => idblock::id_key_digest(&measurement, &entry.guest_policy)?,
        };
        if report.id_key_digest() != &expected {
            return Err(Error::IdKeyDigestMismatch {
                expected: expected.to_vec(),
                found: report.id_key_digest().to_vec(),
            });
        }
    }
    Ok(ClaimChecks {
        id_key_digest: policy.require_id_block,
        chip_id_allowlisted,
        mitigation_vectors,
        host_data: policy.expected_host_data.is_some(),
        provisional_firmware,
    })
}

/// The report's POLICY against the entry's `GuestPolicy` (a maximum; required bits a minimum).
fn check_guest_policy(
    report: &Report<'_>,
    required: &GuestPolicy,
    policy: &AppraisalPolicy,
) -> Result<(), Error> {
    let found = report.policy();
    let bits = found.bits();
    let required_abi = (u16::from(required.abi_major) << 8) | u16::from(required.abi_minor);
    let found_abi = (u16::from(found.abi_major()) << 8) | u16::from(found.abi_minor());
    if required_abi > found_abi {
        return Err(Error::GuestPolicyAbiTooLow {
            required_major: required.abi_major,
            required_minor: required.abi_minor,
            found_major: found.abi_major(),
            found_minor: found.abi_minor(),
        });
    }
    let denied_by = |manifest_allows: bool| {
        if manifest_allows {
            DeniedBy::AppraisalPolicy
        } else {
            DeniedBy::ReferenceValues
        }
    };
    if found.migrate_ma_allowed() && !(required.migrate_ma && policy.allow_migration_agent) {
        return Err(Error::MigrationAgentNotAllowed {
            denied_by: denied_by(required.migrate_ma),
            found: bits,
        });
    }
    if found.debug_allowed() && !(required.debug && policy.allow_debug) {
        return Err(Error::DebugNotAllowed {
            denied_by: denied_by(required.debug),
            found: bits,
        });
    }
    if found.smt_allowed() && !required.smt {
        return Err(Error::SmtNotAllowed { found: bits });
    }
    if required.single_socket && !found.single_socket_required() {
        return Err(Error::SingleSocketRequired { found: bits });
    }
    if found.cxl_allowed() && !required.cxl_allowed {
        return Err(Error::CxlNotAllowed { found: bits });
    }
    if required.mem_aes_256_xts && !found.mem_aes_256_xts_required() {
        return Err(Error::MemAes256XtsRequired { found: bits });
    }
    if required.rapl_dis && !found.rapl_disable_required() {
        return Err(Error::RaplDisableRequired { found: bits });
    }
    if required.ciphertext_hiding_dram && !found.ciphertext_hiding_required() {
        return Err(Error::CiphertextHidingRequired { found: bits });
    }
    if required.page_swap_disable && !found.page_swap_disabled() {
        return Err(Error::PageSwapDisableRequired { found: bits });
    }
    Ok(())
}

/// The first component where `low` exceeds `high`, as (component, low value, high value).
fn first_component_above(low: &TcbVersion, high: &TcbVersion) -> Option<(TcbComponent, u8, u8)> {
    let (low, high) = (tcb_parts(low), tcb_parts(high));
    low.into_iter()
        .zip(high)
        .find(|((_, l), (_, h))| l > h)
        .map(|((component, l), (_, h))| (component, l, h))
}

/// The five components with a missing FMC as 0, in a fixed order.
fn tcb_parts(tcb: &TcbVersion) -> [(TcbComponent, u8); 5] {
    [
        (TcbComponent::Fmc, tcb.fmc.unwrap_or(0)),
        (TcbComponent::Bootloader, tcb.bootloader),
        (TcbComponent::Tee, tcb.tee),
        (TcbComponent::Snp, tcb.snp),
        (TcbComponent::Microcode, tcb.microcode),
    ]
}

/// The TCB and firmware-version rules; returns whether provisional firmware is running.
fn check_tcb(
    report: &Report<'_>,
    minimum: &TcbVersion,
    policy: &AppraisalPolicy,
) -> Result<bool, Error> {
    let current = report.current_tcb();
    let committed = report.committed_tcb();
    let (current_version, committed_version) =
        (report.current_version(), report.committed_version());
    let provisional = committed != current || committed_version != current_version;
    if provisional && !policy.permit_provisional_firmware {
        return Err(Error::ProvisionalFirmwareNotPermitted {
            committed_tcb: committed,
            current_tcb: current,
            committed: committed_version,
            current: current_version,
        });
    }
    if let Some((component, committed, current)) = first_component_above(&committed, &current) {
        return Err(Error::CommittedTcbAboveCurrent {
            component,
            committed,
            current,
        });
    }
    if let Some((component, minimum, found)) = first_component_above(minimum, &report.launch_tcb())
    {
        return Err(Error::LaunchTcbBelowMinimum {
            component,
            minimum,
            found,
        });
    }
    // verify_report bound REPORTED_TCB to the certificate's TCB, so it stands for the cert here.
    let reported = report.reported_tcb();
    if let Some((component, cert, current)) = first_component_above(&reported, &current) {
        return Err(Error::CertTcbAboveCurrent {
            component,
            cert,
            current,
        });
    }
    if let Some((component, minimum, found)) = first_component_above(minimum, &reported) {
        return Err(Error::ReportedTcbBelowMinimum {
            component,
            minimum,
            found,
        });
    }
    let api = |v: crate::report::FirmwareVersion| (u16::from(v.major) << 8) | u16::from(v.minor);
    if committed_version.build > current_version.build
        || api(committed_version) > api(current_version)
    {
        return Err(Error::CommittedFirmwareAboveCurrent {
            committed: committed_version,
            current: current_version,
        });
    }
    Ok(provisional)
}

/// PLATFORM_INFO against the entry's `PlatformInfo` (a maximum; required bits a minimum).
fn check_platform_info(report: &Report<'_>, required: &PlatformInfo) -> Result<(), Error> {
    let info = report.platform_info();
    let found = info.bits();
    if info.smt_enabled() && !required.smt_enabled {
        return Err(Error::PlatformSmtNotAllowed { found });
    }
    if info.tsme_enabled() && !required.tsme_enabled {
        return Err(Error::PlatformTsmeNotAllowed { found });
    }
    if required.ecc_enabled && !info.ecc_enabled() {
        return Err(Error::PlatformEccRequired { found });
    }
    if required.rapl_disabled && !info.rapl_disabled() {
        return Err(Error::PlatformRaplDisabledRequired { found });
    }
    if required.ciphertext_hiding_dram_enabled && !info.ciphertext_hiding_enabled() {
        return Err(Error::PlatformCiphertextHidingRequired { found });
    }
    if required.alias_check_complete && !info.alias_check_complete() {
        return Err(Error::PlatformAliasCheckRequired { found });
    }
    if info.tio_enabled() && !required.tio_enabled {
        return Err(Error::PlatformTioNotAllowed { found });
    }
    Ok(())
}

/// Both mitigation vectors must contain every bit of the minimum; returns whether they were
/// compared (version 5+).
fn check_mitigation_vectors(report: &Report<'_>, required: u64) -> Result<bool, Error> {
    match (report.launch_mit_vector(), report.current_mit_vector()) {
        (Some(launch), Some(current)) => {
            if launch & required != required {
                return Err(Error::LaunchMitigationVectorMissingBits {
                    required,
                    found: launch,
                });
            }
            if current & required != required {
                return Err(Error::CurrentMitigationVectorMissingBits {
                    required,
                    found: current,
                });
            }
            Ok(true)
        }
        _ if required != 0 => Err(Error::MitigationVectorsNotReported {
            required,
            version: report.version(),
        }),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmpl_set() {
        let only0 = VmplSet::only(0);
        assert!(only0.contains(0));
        assert!(!only0.contains(1));
        assert!(!only0.contains(7));
        assert_eq!(only0.to_string(), "0");
        assert_eq!(only0.with(2).to_string(), "0, 2");
        assert_eq!(VmplSet::only(4), VmplSet::EMPTY);
        assert_eq!(VmplSet::EMPTY.to_string(), "none");
    }

    #[test]
    fn defaults_are_strict() {
        let p = AppraisalPolicy::default();
        assert!(!p.allow_debug);
        assert!(!p.allow_migration_agent);
        assert_eq!(p.allowed_vmpls, VmplSet::only(0));
        assert!(p.permit_provisional_firmware);
        assert!(p.require_id_block);
        assert_eq!(p.crl, CrlPolicy::Required);
        assert!(!p.allow_masked_chip_id);
        assert_eq!(p.expected_host_data, None);
    }

    #[test]
    fn first_component_above_reports_the_first_offender() {
        let low = TcbVersion {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        };
        assert_eq!(first_component_above(&low, &low), None);
        let high = TcbVersion { snp: 9, ..low };
        assert_eq!(
            first_component_above(&high, &low),
            Some((TcbComponent::Snp, 9, 8))
        );
        let fmc = TcbVersion {
            fmc: Some(1),
            ..low
        };
        assert_eq!(
            first_component_above(&fmc, &low),
            Some((TcbComponent::Fmc, 1, 0))
        );
    }
}
