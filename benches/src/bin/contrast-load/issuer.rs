//! One simulated chip per initializer, with its VCEK key derived once.
//!
//! `contrast_attest::atls::SimulatedIssuer` re-derives the chip's VCEK key (HKDF, then a P-384
//! scalar multiplication and a key import) for every report, which is what a process that
//! attests once needs but not what a machine issuing reports all day does: the firmware keeps
//! its VCEK. [`ChipIssuer`] keeps the key and a report template, and for each attestation
//! writes the fresh REPORT_DATA into the template and signs it (ECDSA P-384/SHA-384, a new
//! signature every time), exactly as `SimulatedGuest::report` lays a report out. That keeps
//! the generator's own cost at what the issue's floor counts for the client (one report
//! signature), and every report still goes through the Coordinator's full verification.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use aws_lc_rs::agreement;
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use contrast_attest::LeafKind;
use contrast_attest::atls::{IssueError, Issuer, SIMULATED_SNP_DOCUMENT_OID, SnpDocument};
use contrast_tee::SimulatedEnvironment;
use x509_cert::der::Decode;
use zeroize::Zeroizing;

/// The platform's VCEK derivation (`contrast_attest::sim::SimulatedPlatform::vcek_key`):
/// HKDF-SHA384 salt.
const VCEK_HKDF_SALT: &[u8] = b"contrast-rs simulated SEV-SNP VCEK v1";
/// PEM label of the VCEK seed file.
const VCEK_SEED_LABEL: &str = "CONTRAST SIM VCEK SEED";
/// Counters tried before giving up (a scalar ≥ the group order is astronomically rare).
const VCEK_DERIVATION_ATTEMPTS: u8 = 8;

/// Report layout (SEV-SNP firmware ABI, `ATTESTATION_REPORT`).
const REPORT_DATA: std::ops::Range<usize> = 0x050..0x090;
const SIGNED_PART: usize = 0x2A0;
const SIGNATURE_R: usize = 0x2A0;
const SIGNATURE_S: usize = 0x2E8;
const COMPONENT: usize = 72;
const SCALAR: usize = 48;

/// The certificates every document of the environment carries.
#[derive(Debug)]
pub(crate) struct Collateral {
    ask_der: Vec<u8>,
    ark_der: Vec<u8>,
    vcek_seed: Zeroizing<Vec<u8>>,
}

impl Collateral {
    /// Reads the ASK, ARK and VCEK seed of `env`.
    pub(crate) fn load(env: &SimulatedEnvironment) -> Result<Arc<Self>> {
        let seed_path = env
            .dir()
            .join(contrast_tee::simulated::PLATFORM_DIR)
            .join(contrast_attest::sim::files::VCEK_SEED);
        let pem = std::fs::read(&seed_path)
            .with_context(|| format!("reading {}", seed_path.display()))?;
        let (label, seed) = der::pem::decode_vec(&pem)
            .map_err(|e| anyhow::anyhow!("{}: {e}", seed_path.display()))?;
        ensure!(
            label == VCEK_SEED_LABEL,
            "{}: PEM label {label:?}, expected {VCEK_SEED_LABEL:?}",
            seed_path.display()
        );
        Ok(Arc::new(Self {
            ask_der: env.platform().ask_der().to_vec(),
            ark_der: env.platform().ark_der().to_vec(),
            vcek_seed: Zeroizing::new(seed),
        }))
    }
}

/// A simulated chip: its report template, VCEK certificate and VCEK key.
pub(crate) struct ChipIssuer {
    collateral: Arc<Collateral>,
    template: Vec<u8>,
    vcek_der: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for ChipIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChipIssuer").finish_non_exhaustive()
    }
}

impl ChipIssuer {
    /// The issuer of a VM of `env` on chip `chip_id` whose HOST_DATA is `host_data`.
    pub(crate) fn new(
        env: &SimulatedEnvironment,
        collateral: &Arc<Collateral>,
        chip_id: [u8; 64],
        host_data: [u8; 32],
    ) -> Result<Self> {
        let guest = env
            .guest(chip_id, host_data)
            .context("laying out the simulated guest")?;
        let platform = env.platform();
        let template = guest
            .report(platform, &[0; 64])
            .context("making the report template")?;
        let vcek_der = guest
            .vcek_der(platform)
            .context("issuing the chip's VCEK")?;
        let tcb = guest.reported_tcb.to_bytes(guest.product);
        let key = derive_vcek_key(&collateral.vcek_seed, guest.product.name(), &chip_id, &tcb)?;
        // The derivation is a copy of the platform's: check it against the certificate.
        let expected = vcek_public_key(&vcek_der)?;
        ensure!(
            key.public_key().as_ref() == expected.as_slice(),
            "the derived VCEK key does not match the platform's VCEK certificate \
             (the simulated platform's derivation changed; update contrast-load's issuer)"
        );
        Ok(Self {
            collateral: Arc::clone(collateral),
            template,
            vcek_der,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// A signed report carrying `report_data` (fresh ECDSA signature).
    pub(crate) fn report(&self, report_data: &[u8; 64]) -> Result<Vec<u8>> {
        let mut report = self.template.clone();
        report[REPORT_DATA].copy_from_slice(report_data);
        let signature = self
            .key
            .sign(&self.rng, &report[..SIGNED_PART])
            .map_err(|_| anyhow::anyhow!("VCEK signing failed"))?;
        let (r, s) = signature.as_ref().split_at(SCALAR);
        if s.len() != SCALAR {
            bail!(
                "unexpected P-384 signature length {}",
                signature.as_ref().len()
            );
        }
        for (offset, component) in [(SIGNATURE_R, r), (SIGNATURE_S, s)] {
            let field = &mut report[offset..offset + COMPONENT];
            field.fill(0);
            for (dst, src) in field.iter_mut().zip(component.iter().rev()) {
                *dst = *src;
            }
        }
        Ok(report)
    }

    /// The chip's VCEK public key (uncompressed point), to verify its reports.
    pub(crate) fn vcek_public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

impl Issuer for ChipIssuer {
    fn oid(&self) -> const_oid::ObjectIdentifier {
        SIMULATED_SNP_DOCUMENT_OID
    }

    fn issue(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, IssueError> {
        let platform = |reason: String| IssueError::Platform { reason };
        let report = self
            .report(report_data)
            .map_err(|e| platform(format!("{e:#}")))?;
        SnpDocument {
            report: &report,
            leaf_kind: LeafKind::Vcek,
            leaf: &self.vcek_der,
            intermediate: Some(&self.collateral.ask_der),
            ark: Some(&self.collateral.ark_der),
            crl: None,
        }
        .encode()
        .map_err(|e| platform(e.to_string()))
    }
}

/// HKDF-SHA384(salt, IKM = seed, info = product ‖ chip ID ‖ TCB ‖ counter), the first counter
/// giving a valid P-384 scalar (as the simulated platform derives VCEK keys).
fn derive_vcek_key(
    seed: &[u8],
    product: &str,
    chip_id: &[u8; 64],
    tcb: &[u8; 8],
) -> Result<EcdsaKeyPair> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA384, VCEK_HKDF_SALT).extract(seed);
    let mut scalar = Zeroizing::new([0u8; SCALAR]);
    for counter in 0..VCEK_DERIVATION_ATTEMPTS {
        let info: [&[u8]; 4] = [product.as_bytes(), chip_id, tcb, &[counter]];
        prk.expand(&info, hkdf::HKDF_SHA384)
            .and_then(|okm| okm.fill(scalar.as_mut_slice()))
            .map_err(|_| anyhow::anyhow!("HKDF expansion failed"))?;
        let Ok(private) =
            agreement::PrivateKey::from_private_key(&agreement::ECDH_P384, scalar.as_slice())
        else {
            continue;
        };
        let public = private
            .compute_public_key()
            .map_err(|_| anyhow::anyhow!("computing the VCEK public key"))?;
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            scalar.as_slice(),
            public.as_ref(),
        )
        .map_err(|_| anyhow::anyhow!("importing the VCEK key"));
        return key;
    }
    bail!("no valid VCEK scalar after {VCEK_DERIVATION_ATTEMPTS} attempts")
}

/// The subject public key (uncompressed point) of a VCEK certificate.
fn vcek_public_key(vcek_der: &[u8]) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(vcek_der).context("parsing the VCEK")?;
    Ok(cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec())
}
