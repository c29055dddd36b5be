//! The simulated AMD key hierarchy of one product: ARK, ASK and per-chip VCEKs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hkdf;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use der::pem::LineEnding;
use der::{Decode, Encode};
use rand_core::CryptoRngCore;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use zeroize::{Zeroize, Zeroizing};

use super::SimError;
use super::certs::{self, VcekSubject};
use super::crl::CrlContents;
use super::files;
use super::pss::RsaKey;
use contrast_attest::{Product, TcbVersion};

/// VCEKs a platform has issued, by (chip ID, raw TCB).
type IssuedVceks = HashMap<([u8; 64], [u8; 8]), Vec<u8>>;
/// VCEK signing keys a platform has derived, by (chip ID, raw TCB).
type VcekKeys = HashMap<([u8; 64], [u8; 8]), Arc<EcdsaKeyPair>>;

/// Length of the secret seed VCEK keys are derived from.
const VCEK_SEED_LEN: usize = 48;
/// PEM label of the VCEK seed file.
const VCEK_SEED_LABEL: &str = "CONTRAST SIM VCEK SEED";
/// HKDF salt of the VCEK key derivation (domain separation).
const VCEK_HKDF_SALT: &[u8] = b"contrast-rs simulated SEV-SNP VCEK v1";
/// A 48-byte HKDF output is a valid P-384 scalar with probability 1 - 2^-190; a few counters
/// make a failure practically impossible while keeping the loop bounded.
const VCEK_DERIVATION_ATTEMPTS: u8 = 8;

/// A simulated AMD SEV-SNP key hierarchy (ARK → ASK → VCEKs) for one product.
///
/// Created once with [`SimulatedPlatform::generate`], persisted with
/// [`SimulatedPlatform::save`] and reloaded with [`SimulatedPlatform::load`]. The ARK/ASK
/// certificates are kept as created (their fingerprints stay stable); VCEKs are derived on
/// demand from the chip ID and TCB.
pub struct SimulatedPlatform {
    product: Product,
    ark: RsaKey,
    ask: RsaKey,
    ark_der: Vec<u8>,
    ask_der: Vec<u8>,
    vcek_seed: Zeroizing<[u8; VCEK_SEED_LEN]>,
    not_before_unix: u64,
    /// Issued VCEKs by (chip ID, raw TCB), so repeated requests get the same bytes (the PSS
    /// salt would otherwise make every signature differ) and skip an RSA-4096 signature.
    issued_vceks: Mutex<IssuedVceks>,
    /// Derived VCEK keys, so a report costs one ECDSA signature, not a key derivation and a
    /// point multiplication as well (as a real chip holds its VCEK).
    vcek_keys: Mutex<VcekKeys>,
}

impl fmt::Debug for SimulatedPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedPlatform")
            .field("product", &self.product)
            .field("ark_fingerprint", &hex::encode(self.ark_fingerprint()))
            .field("not_before_unix", &self.not_before_unix)
            .finish_non_exhaustive()
    }
}

impl SimulatedPlatform {
    /// Generates a new hierarchy for `product`: two RSA-4096 keys (ARK, ASK), a VCEK seed, and
    /// the ARK and ASK certificates, valid for 25 years from `not_before`. VCEKs issued later
    /// are valid for 7 years from the same `not_before` (backdate it to tolerate clock skew).
    ///
    /// `rng` supplies the VCEK seed. The RSA keys come from aws-lc-rs's own DRBG, which takes no
    /// caller RNG. RSA-4096 generation takes seconds in debug builds: create a platform once and
    /// reuse it.
    ///
    /// # Errors
    /// [`SimError::Time`] if `not_before` is before 1970 or too late for X.509,
    /// [`SimError::Key`] if key generation fails, [`SimError::Certificate`] or
    /// [`SimError::Encoding`] if building a certificate fails.
    pub fn generate(
        product: Product,
        not_before: SystemTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, SimError> {
        let not_before_unix = not_before
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SimError::Time {
                what: "the platform not_before",
            })?
            .as_secs();
        let generate = |key: &'static str| -> Result<RsaKey, SimError> {
            let pair = RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| SimError::Key {
                key,
                action: "generate",
            })?;
            RsaKey::new(pair, key)
        };
        let ark = generate("ARK")?;
        let ask = generate("ASK")?;
        let mut vcek_seed = Zeroizing::new([0u8; VCEK_SEED_LEN]);
        rng.fill_bytes(vcek_seed.as_mut_slice());
        let ark_der = certs::build_ark(product, &ark, not_before_unix)?;
        let ask_der = certs::build_ask(product, &ark, &ask, not_before_unix)?;
        Ok(Self {
            product,
            ark,
            ask,
            ark_der,
            ask_der,
            vcek_seed,
            not_before_unix,
            issued_vceks: Mutex::default(),
            vcek_keys: Mutex::default(),
        })
    }

    /// The product whose hierarchy this is.
    #[must_use]
    pub fn product(&self) -> Product {
        self.product
    }

    /// The ARK certificate (DER).
    #[must_use]
    pub fn ark_der(&self) -> &[u8] {
        &self.ark_der
    }

    /// SHA-256 of the ARK certificate DER: what a manifest's `SimulatedARKFingerprint` pins.
    #[must_use]
    pub fn ark_fingerprint(&self) -> [u8; 32] {
        contrast_core::sha256(&self.ark_der)
    }

    /// Manifest reference values (`ReferenceValues.snp` entry) that accept this platform's
    /// guests launched with `measurement` and `policy` (see [`SimulatedGuest::launched`]) at a TCB
    /// of at least `minimum`: platform `Simulated-SNP`, this ARK's fingerprint pinned, and SMT
    /// allowed in the platform info, as the simulated guests report it.
    ///
    /// [`SimulatedGuest::launched`]: super::SimulatedGuest::launched
    #[must_use]
    pub fn reference_values(
        &self,
        measurement: &[u8; 48],
        policy: &contrast_core::manifest::GuestPolicy,
        minimum: TcbVersion,
    ) -> contrast_core::manifest::SnpReferenceValues {
        use contrast_core::hexstring;
        use contrast_core::manifest::{MinimumTcb, PlatformInfo, SnpReferenceValues};
        SnpReferenceValues {
            platform: contrast_core::manifest::SIMULATED_SNP_PLATFORM.into(),
            product_name: self.product.name().into(),
            trusted_measurement: hexstring::encode(measurement),
            minimum_tcb: MinimumTcb {
                bootloader_version: Some(minimum.bootloader),
                tee_version: Some(minimum.tee),
                snp_version: Some(minimum.snp),
                microcode_version: Some(minimum.microcode),
            },
            guest_policy: *policy,
            platform_info: PlatformInfo {
                smt_enabled: true,
                ..PlatformInfo::default()
            },
            simulated_ark_fingerprint: Some(hexstring::encode(self.ark_fingerprint())),
            ..SnpReferenceValues::default()
        }
    }

    /// The ASK certificate (DER).
    #[must_use]
    pub fn ask_der(&self) -> &[u8] {
        &self.ask_der
    }

    /// The ASK's serial number, big-endian (AMD's: 0x10001 / 0x20002 / 0x30001), to revoke it
    /// in a [`crl`](Self::crl) as AMD would.
    #[must_use]
    pub fn ask_serial(&self) -> Vec<u8> {
        let (_, serial) = certs::serials(self.product);
        serial
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect()
    }

    /// The serial number of the VCEK of chip `chip_id` at `tcb` (what [`vcek_for`](Self::vcek_for)
    /// issues), big-endian, to revoke that one VCEK in a [`crl`](Self::crl). Unlike AMD's
    /// VCEKs (all serial 0), each simulated chip and TCB has its own.
    #[must_use]
    pub fn vcek_serial(&self, chip_id: &[u8; 64], tcb: TcbVersion) -> Vec<u8> {
        crate::crl::vcek_serial(self.product, chip_id, &tcb.to_bytes(self.product))
    }

    /// The CRL of this platform's ARK, in AMD's layout (`crate::crl`), signed now: the KDS's
    /// `/vcek/v1/{product}/crl` of the simulation. Its RSASSA-PSS salt is random, so every
    /// call returns different bytes.
    ///
    /// # Errors
    /// [`SimError::CrlDates`] if `next_update` is not after `this_update`, [`SimError::Time`]
    /// for a date X.509 cannot hold, [`SimError::CrlSigning`] or [`SimError::Encoding`].
    pub fn crl(&self, contents: &CrlContents) -> Result<Vec<u8>, SimError> {
        crate::crl::build_crl(self.product, &self.ark, contents)
    }

    /// The CA chain in AMD KDS `cert_chain` form: PEM of the ASK, then the ARK.
    ///
    /// # Errors
    /// [`SimError::Encoding`] (not expected for certificates this platform built).
    pub fn cert_chain_pem(&self) -> Result<String, SimError> {
        let pem = |what: &'static str, der: &[u8]| {
            der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).map_err(|e| {
                SimError::Encoding {
                    what,
                    source: e.into(),
                }
            })
        };
        Ok(
            pem("the ask certificate", &self.ask_der)?
                + &pem("the ark certificate", &self.ark_der)?,
        )
    }

    /// Start of the validity of the ARK, the ASK and every VCEK (unix seconds).
    #[must_use]
    pub fn not_before_unix(&self) -> u64 {
        self.not_before_unix
    }

    /// The VCEK certificate (DER) of chip `chip_id` at `tcb`, signed by the ASK.
    ///
    /// The key, and so everything but the RSASSA-PSS signature bytes, is the same for the same
    /// platform secrets, chip and TCB; within one `SimulatedPlatform` the certificate is issued
    /// once and the same bytes are returned on every call. On Turin only the first 8 bytes of `chip_id` are
    /// significant (the rest must be zero) and `tcb.fmc` must be `Some`; on Milan and Genoa
    /// `tcb.fmc` must be `None`.
    ///
    /// # Errors
    /// [`SimError::TcbLayout`], [`SimError::TurinChipIdTail`], or a key/certificate error.
    pub fn vcek_for(&self, chip_id: &[u8; 64], tcb: TcbVersion) -> Result<Vec<u8>, SimError> {
        let cache_key = (*chip_id, tcb.to_bytes(self.product));
        if let Some(der) = self.issued().get(&cache_key) {
            return Ok(der.clone());
        }
        let der = self.issue_vcek(chip_id, tcb)?;
        Ok(self.issued().entry(cache_key).or_insert(der).clone())
    }

    fn issued(&self) -> MutexGuard<'_, IssuedVceks> {
        // The map holds only finished certificates, so a panic elsewhere cannot leave it torn.
        self.issued_vceks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn issue_vcek(&self, chip_id: &[u8; 64], tcb: TcbVersion) -> Result<Vec<u8>, SimError> {
        let key = self.vcek_key(chip_id, tcb)?;
        let spki = SubjectPublicKeyInfoOwned::from_der(
            key.public_key()
                .as_der()
                .map_err(|_| SimError::Key {
                    key: "VCEK",
                    action: "export the public part of",
                })?
                .as_ref(),
        )
        .map_err(|source| SimError::Encoding {
            what: "the vcek subject public key info",
            source,
        })?;
        certs::build_vcek(
            &self.ask,
            &VcekSubject {
                product: self.product,
                chip_id,
                tcb,
                spki,
                not_before_unix: self.not_before_unix,
            },
        )
    }

    /// The VCEK signing key of chip `chip_id` at `tcb`: HKDF-SHA384(salt = fixed label,
    /// IKM = the platform's VCEK seed, info = product name ‖ chip ID (64) ‖ TCB (8, the
    /// product's layout) ‖ counter), the first counter whose output is a valid P-384 scalar.
    /// Derived once per (chip, TCB), then kept.
    pub(crate) fn vcek_key(
        &self,
        chip_id: &[u8; 64],
        tcb: TcbVersion,
    ) -> Result<Arc<EcdsaKeyPair>, SimError> {
        let cache_key = (*chip_id, tcb.to_bytes(self.product));
        let keys = || {
            self.vcek_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(key) = keys().get(&cache_key) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(self.derive_vcek_key(chip_id, tcb)?);
        Ok(Arc::clone(keys().entry(cache_key).or_insert(key)))
    }

    fn derive_vcek_key(
        &self,
        chip_id: &[u8; 64],
        tcb: TcbVersion,
    ) -> Result<EcdsaKeyPair, SimError> {
        check_tcb_layout(self.product, "vcek tcb", tcb)?;
        if self.product == Product::Turin {
            check_turin_chip_id(chip_id)?;
        }
        let tcb_bytes = tcb.to_bytes(self.product);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA384, VCEK_HKDF_SALT).extract(&*self.vcek_seed);
        let mut scalar = Zeroizing::new([0u8; 48]);
        for counter in 0..VCEK_DERIVATION_ATTEMPTS {
            // Fixed-length fields (product names are all 5 bytes), so the info is unambiguous.
            let info: [&[u8]; 4] = [
                self.product.name().as_bytes(),
                chip_id,
                &tcb_bytes,
                &[counter],
            ];
            prk.expand(&info, hkdf::HKDF_SHA384)
                .and_then(|okm| okm.fill(scalar.as_mut_slice()))
                .map_err(|_| SimError::Key {
                    key: "VCEK",
                    action: "derive",
                })?;
            // Rejects zero and scalars >= the group order; computes the public point.
            let Ok(private) =
                agreement::PrivateKey::from_private_key(&agreement::ECDH_P384, scalar.as_slice())
            else {
                continue;
            };
            let public = private.compute_public_key().map_err(|_| SimError::Key {
                key: "VCEK",
                action: "derive",
            })?;
            return EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                scalar.as_slice(),
                public.as_ref(),
            )
            .map_err(|_| SimError::Key {
                key: "VCEK",
                action: "import",
            });
        }
        Err(SimError::VcekDerivation {
            attempts: VCEK_DERIVATION_ATTEMPTS,
        })
    }

    /// The hierarchy as named files ([`files::ALL`]): ARK and ASK certificates (PEM),
    /// their private keys (PKCS#8 PEM) and the VCEK seed (PEM). Contains secrets.
    ///
    /// # Errors
    /// [`SimError::Key`] or [`SimError::Encoding`] if a key cannot be exported.
    pub fn save(&self) -> Result<SimulatedPlatformFiles, SimError> {
        let pem = |label: &'static str, what: &'static str, der: &[u8]| {
            der::pem::encode_string(label, LineEnding::LF, der)
                .map(String::into_bytes)
                .map_err(|e| SimError::Encoding {
                    what,
                    source: e.into(),
                })
        };
        let ark_key = Zeroizing::new(self.ark.pkcs8_der("ARK")?);
        let ask_key = Zeroizing::new(self.ask.pkcs8_der("ASK")?);
        let mut out = SimulatedPlatformFiles::new();
        out.insert(
            files::ARK_CERT,
            pem("CERTIFICATE", "the ark certificate", &self.ark_der)?,
        );
        out.insert(
            files::ARK_KEY,
            pem("PRIVATE KEY", "the ark private key", &ark_key)?,
        );
        out.insert(
            files::ASK_CERT,
            pem("CERTIFICATE", "the ask certificate", &self.ask_der)?,
        );
        out.insert(
            files::ASK_KEY,
            pem("PRIVATE KEY", "the ask private key", &ask_key)?,
        );
        out.insert(
            files::VCEK_SEED,
            pem(VCEK_SEED_LABEL, "the vcek seed", self.vcek_seed.as_slice())?,
        );
        Ok(out)
    }

    /// Loads a hierarchy saved with [`SimulatedPlatform::save`]. The product and `not_before`
    /// are read from the ARK certificate; each private key must match its certificate, the ASK
    /// must be issued by the ARK, and the names must be the simulated ones.
    ///
    /// # Errors
    /// [`SimError::MissingFile`] or [`SimError::InvalidFile`] naming the offending file.
    pub fn load(files_in: &SimulatedPlatformFiles) -> Result<Self, SimError> {
        let (ark_cert, ark_der) = read_certificate(files_in, files::ARK_CERT)?;
        let (ask_cert, ask_der) = read_certificate(files_in, files::ASK_CERT)?;
        let ark = read_rsa_key(files_in, files::ARK_KEY, "ARK")?;
        let ask = read_rsa_key(files_in, files::ASK_KEY, "ASK")?;

        let ark_subject = &ark_cert.tbs_certificate.subject;
        let product = [Product::Milan, Product::Genoa, Product::Turin]
            .into_iter()
            .find(|p| {
                certs::amd_style_name(&certs::ark_common_name(*p))
                    .ok()
                    .as_ref()
                    == Some(ark_subject)
            })
            .ok_or_else(|| invalid(files::ARK_CERT, "the subject is not a simulated ark name"))?;
        if ark_cert.tbs_certificate.issuer != *ark_subject {
            return Err(invalid(files::ARK_CERT, "the ark is not self-issued"));
        }
        let expected_ask =
            certs::amd_style_name(&certs::ask_common_name(product)).map_err(|source| {
                SimError::Encoding {
                    what: "the ask name",
                    source,
                }
            })?;
        if ask_cert.tbs_certificate.subject != expected_ask {
            return Err(invalid(
                files::ASK_CERT,
                format!(
                    "the subject is not the simulated ask name of {}",
                    product.name()
                ),
            ));
        }
        if ask_cert.tbs_certificate.issuer != *ark_subject {
            return Err(invalid(files::ASK_CERT, "the issuer is not the ark"));
        }
        check_key_matches(&ark_cert, &ark, files::ARK_KEY)?;
        check_key_matches(&ask_cert, &ask, files::ASK_KEY)?;

        let (label, seed) = read_pem(files_in, files::VCEK_SEED)?;
        let seed = Zeroizing::new(seed);
        if label != VCEK_SEED_LABEL {
            return Err(invalid(
                files::VCEK_SEED,
                format!("pem label is {label:?}, expected {VCEK_SEED_LABEL:?}"),
            ));
        }
        let mut vcek_seed = Zeroizing::new([0u8; VCEK_SEED_LEN]);
        if seed.len() != VCEK_SEED_LEN {
            return Err(invalid(
                files::VCEK_SEED,
                format!("seed is {} bytes, expected {VCEK_SEED_LEN}", seed.len()),
            ));
        }
        vcek_seed.copy_from_slice(&seed);

        let not_before_unix = ark_cert
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration()
            .as_secs();
        Ok(Self {
            product,
            ark,
            ask,
            ark_der,
            ask_der,
            vcek_seed,
            not_before_unix,
            issued_vceks: Mutex::default(),
            vcek_keys: Mutex::default(),
        })
    }
}

/// Requires `fmc` exactly on Turin.
pub(crate) fn check_tcb_layout(
    product: Product,
    field: &'static str,
    tcb: TcbVersion,
) -> Result<(), SimError> {
    let fits = match product {
        Product::Milan | Product::Genoa => tcb.fmc.is_none(),
        Product::Turin => tcb.fmc.is_some(),
    };
    if fits {
        Ok(())
    } else {
        Err(SimError::TcbLayout {
            field,
            product,
            tcb,
        })
    }
}

/// Requires bytes 8..64 of a Turin chip ID to be zero.
pub(crate) fn check_turin_chip_id(chip_id: &[u8; 64]) -> Result<(), SimError> {
    match chip_id.iter().skip(8).position(|b| *b != 0) {
        Some(i) => Err(SimError::TurinChipIdTail { offset: i + 8 }),
        None => Ok(()),
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> SimError {
    SimError::InvalidFile {
        name,
        reason: reason.into(),
    }
}

fn read_pem(
    files_in: &SimulatedPlatformFiles,
    name: &'static str,
) -> Result<(String, Vec<u8>), SimError> {
    let bytes = files_in.get(name).ok_or(SimError::MissingFile { name })?;
    let (label, der) =
        der::pem::decode_vec(bytes).map_err(|e| invalid(name, format!("not pem: {e}")))?;
    Ok((label.to_owned(), der))
}

fn read_certificate(
    files_in: &SimulatedPlatformFiles,
    name: &'static str,
) -> Result<(Certificate, Vec<u8>), SimError> {
    let (label, der) = read_pem(files_in, name)?;
    if label != "CERTIFICATE" {
        return Err(invalid(
            name,
            format!("pem label is {label:?}, expected \"CERTIFICATE\""),
        ));
    }
    let cert = Certificate::from_der(&der)
        .map_err(|e| invalid(name, format!("not an x.509 certificate: {e}")))?;
    Ok((cert, der))
}

fn read_rsa_key(
    files_in: &SimulatedPlatformFiles,
    name: &'static str,
    key: &'static str,
) -> Result<RsaKey, SimError> {
    let (label, der) = read_pem(files_in, name)?;
    let der = Zeroizing::new(der);
    if label != "PRIVATE KEY" {
        return Err(invalid(
            name,
            format!("pem label is {label:?}, expected \"PRIVATE KEY\""),
        ));
    }
    let pair = RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| invalid(name, format!("not a pkcs#8 rsa private key: {e}")))?;
    if pair.public_modulus_len() != 512 {
        return Err(invalid(
            name,
            format!(
                "rsa modulus is {} bits, expected 4096",
                pair.public_modulus_len() * 8
            ),
        ));
    }
    RsaKey::new(pair, key)
}

fn check_key_matches(cert: &Certificate, key: &RsaKey, name: &'static str) -> Result<(), SimError> {
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|source| SimError::Encoding {
            what: "a certificate public key",
            source,
        })?;
    if cert_spki == key.spki_der() {
        Ok(())
    } else {
        Err(invalid(
            name,
            "the private key does not match its certificate",
        ))
    }
}

/// Named in-memory files of a saved [`SimulatedPlatform`] (see [`files`]). The binaries write
/// them to a directory. The contents include private keys: they are zeroized on drop and not
/// shown by `Debug`.
#[derive(Default, Clone)]
pub struct SimulatedPlatformFiles {
    entries: Vec<(String, Vec<u8>)>,
}

impl SimulatedPlatformFiles {
    /// No files.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, contents: Vec<u8>) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => {
                old.zeroize();
                *old = contents;
            }
            None => self.entries.push((name, contents)),
        }
    }

    /// The contents of file `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_slice())
    }

    /// Every file as (name, contents), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, c)| (n.as_str(), c.as_slice()))
    }
}

impl FromIterator<(String, Vec<u8>)> for SimulatedPlatformFiles {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (name, contents) in iter {
            out.insert(name, contents);
        }
        out
    }
}

impl Drop for SimulatedPlatformFiles {
    fn drop(&mut self) {
        for (_, contents) in &mut self.entries {
            contents.zeroize();
        }
    }
}

impl fmt::Debug for SimulatedPlatformFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(n, c)| (n, format!("<{} bytes>", c.len()))),
            )
            .finish()
    }
}
