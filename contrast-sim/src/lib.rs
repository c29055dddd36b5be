//! A simulated AMD SEV-SNP platform: runs contrast-rs end to end without SEV-SNP hardware.
//!
//! **For development and tests only.** No production binary depends on this crate by default:
//! the `coordinator` and `initializer` accept `--tee simulated` only when built with their
//! `simulated` feature (which turns on `contrast-tee/simulated`, the only user of this crate in
//! the binaries).
//!
//! The simulation produces artefacts in exactly AMD's formats, so that the production verifier
//! (report parsing, ARK → ASK → VCEK chain, report-to-VCEK binding, appraisal) runs unchanged;
//! only the trust anchor differs. A simulated ARK is trusted only where a manifest pins its
//! fingerprint ([`SimulatedPlatform::ark_fingerprint`], the manifest's
//! `SimulatedARKFingerprint`) under the platform name `Simulated-SNP`.
//!
//! # The hierarchy ([`SimulatedPlatform`])
//!
//! One hierarchy per product (Milan, Genoa, Turin), mirroring AMD's certificates field by field:
//!
//! | cert | key | signed by | serial | validity | extensions (in AMD's order) |
//! |---|---|---|---|---|---|
//! | ARK | RSA-4096, e = 65537 | itself | 0x10000 / 0x20000 / 0x30000 | 25 years | KeyUsage keyCertSign+cRLSign (critical), SKI, BasicConstraints CA (critical), CRL DP |
//! | ASK | RSA-4096 | ARK | 0x10001 / 0x20002 / 0x30001 | 25 years | SKI, AKI, BasicConstraints CA pathlen 0 (critical), KeyUsage keyCertSign (critical), CRL DP |
//! | VCEK | EC P-384 | ASK | per chip and TCB (AMD's: 0) | 7 years | the AMD extensions under 1.3.6.1.4.1.3704.1 only |
//!
//! Every signature is RSASSA-PSS with SHA-384, MGF1-SHA-384, salt length 48, and the
//! AlgorithmIdentifier parameters are encoded as AMD encodes them: the CA certificates carry an
//! explicit `trailerField 1`; VCEKs omit it, as AMD's KDS has since late 2024 for every product
//! (VCEKs issued until 2023 carried it).
//!
//! Names are AMD's (`OU=Engineering, C=US, L=Santa Clara, ST=CA, O=…, CN=…`, UTF8String except
//! the PrintableString country) with `O=contrast-rs simulated platform` and the CA common names
//! `SIM-ARK-{product}` / `SIM-SEV-{product}`, so a simulated certificate can never be mistaken
//! for AMD's. The leaf keeps AMD's `CN=SEV-VCEK`, which is how verifiers tell a VCEK from a VLEK.
//! The CRL distribution point names a host under `.invalid` (RFC 2606); the CRL itself comes from
//! [`SimulatedPlatform::crl`].
//!
//! One deliberate difference: AMD's VCEKs all carry serial 0 (AMD revokes ASKs, not single
//! VCEKs), a simulated VCEK has a serial derived from product, chip and TCB
//! ([`SimulatedPlatform::vcek_serial`]), so one chip's VCEK can be revoked alone.
//!
//! # The CRL ([`SimulatedPlatform::crl`])
//!
//! As AMD's `/vcek/v1/{product}/crl`: version 2, signed by the ARK with RSASSA-PSS SHA-384
//! (parameters without the trailer field), the ARK's name as issuer, UTCTime thisUpdate and
//! nextUpdate, revoked entries (serial, date) without extensions, and the CRL extensions AKI
//! (the ARK's key identifier) then CRL number. The caller chooses the dates, the number and
//! what is revoked ([`CrlContents`]): the ASK ([`SimulatedPlatform::ask_serial`], as AMD
//! revokes) or one VCEK.
//!
//! VCEK extensions, each non-critical, values DER-encoded as AMD does (INTEGER `02 01 xx`, or
//! `02 02 00 xx` from 0x80; IA5String; hwID as the raw bytes with no inner TLV):
//!
//! | product | order |
//! |---|---|
//! | Milan, Genoa | structVersion 0, productName (`Milan-B0` / `Genoa`), blSPL, teeSPL, spl_4..spl_7 = 0, snpSPL, ucodeSPL, hwID (64 bytes) |
//! | Turin | structVersion 1, productName `Turin`, fmcSPL, blSPL, teeSPL, snpSPL, spl_5..spl_7 = 0, ucodeSPL, hwID (8 bytes) |
//!
//! The VCEK private key is derived, like the real one, from the chip and the TCB: HKDF-SHA384
//! over a per-platform secret seed, with the product, the 64-byte chip ID and the 8-byte TCB in
//! the info, so the same chip at the same TCB always has the same key. The certificate's
//! to-be-signed part is deterministic too; its RSASSA-PSS signature is not (the salt is random),
//! so a platform issues each (chip, TCB) VCEK once and hands out the same bytes afterwards.
//!
//! # Reports ([`SimulatedGuest`])
//!
//! A 1184-byte `ATTESTATION_REPORT` with every field at its offset (little endian), all reserved
//! bytes zero, SIGNATURE_ALGO 1, signed over bytes 0x000–0x29F with ECDSA P-384/SHA-384 by the
//! VCEK key; R and S are stored as 72-byte little-endian integers at 0x2A0 and 0x2E8.
//!
//! # Randomness and time
//!
//! Time is a parameter (the hierarchy's `not_before`). The VCEK seed comes from the caller's
//! [`rand_core::CryptoRngCore`]. The RSA-4096 keys, the RSASSA-PSS salts and the ECDSA nonces
//! come from aws-lc-rs's own DRBG, which takes no caller RNG.
//!
//! # Persistence
//!
//! [`SimulatedPlatform::save`] returns [`SimulatedPlatformFiles`], named in-memory blobs (this
//! crate does no I/O; the binaries write them to a directory), and
//! [`SimulatedPlatform::load`] reads them back, so a hierarchy is created once and reused.
//!
//! # Attested TLS
//!
//! [`SimulatedIssuer`] implements `contrast_attest::atls::Issuer`: a guest's report with the VCEK,
//! ASK and ARK as go-sev-guest's `sevsnp.Attestation` under upstream's SEV-SNP OID
//! `1.3.9901.2.1` (`contrast_attest::atls::SNP_ATTESTATION_OID`), the same format as real
//! hardware; only a reference value pinning the simulated ARK makes a verifier trust it.

#![forbid(unsafe_code)]

mod certs;
mod crl;
mod error;
mod guest;
mod issuer;
mod platform;
mod pss;

pub use crl::{CrlContents, Revocation};
pub use error::SimError;
pub use guest::{Cpuid, FirmwareVersion, SimulatedEvidence, SimulatedGuest, default_cpuid};
pub use issuer::{CrlProvider, SimulatedIssuer};
pub use platform::{SimulatedPlatform, SimulatedPlatformFiles};

/// Organization (O) of every simulated certificate.
pub const SIMULATED_ORGANIZATION: &str = "contrast-rs simulated platform";

/// File names used by [`SimulatedPlatform::save`] and [`SimulatedPlatform::load`].
pub mod files {
    /// The ARK certificate (PEM `CERTIFICATE`).
    pub const ARK_CERT: &str = "ark.pem";
    /// The ARK private key (PEM `PRIVATE KEY`, PKCS#8).
    pub const ARK_KEY: &str = "ark-key.pem";
    /// The ASK certificate (PEM `CERTIFICATE`).
    pub const ASK_CERT: &str = "ask.pem";
    /// The ASK private key (PEM `PRIVATE KEY`, PKCS#8).
    pub const ASK_KEY: &str = "ask-key.pem";
    /// The secret seed from which VCEK keys are derived (PEM `CONTRAST SIM VCEK SEED`).
    pub const VCEK_SEED: &str = "vcek-seed.pem";
    /// Every file name, in the order `save` lists them.
    pub const ALL: [&str; 5] = [ARK_CERT, ARK_KEY, ASK_CERT, ASK_KEY, VCEK_SEED];
}
