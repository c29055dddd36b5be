//! The CA: root, intermediate and mesh CA certificates, and workload leaf issuance.

use contrast_attest::UnixTime;
use der::Decode;
use p384::ecdsa::SigningKey;
use rand_core::CryptoRngCore;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::cert::{
    CertSigner, CertificateTemplate, authority_key_id, basic_constraints, ca_key_usage,
    common_name, extension, key_usage, p384_spki, random_serial, sign, subject_key_id,
    subject_key_identifier, to_pem, validity,
};
use crate::error::CaError;
use crate::key::MeshCaKey;
use crate::san::ClassifiedSans;

/// Common name of the root CA certificate.
pub const ROOT_CN: &str = "system:coordinator:root";
/// Common name of the intermediate and the mesh CA certificates.
pub const INTERMEDIATE_CN: &str = "system:coordinator:intermediate";
/// CA certificates are valid for this many years after `now`.
pub const CA_VALIDITY_YEARS: u16 = 10;
/// Workload certificates are valid for this many years after `now`.
pub const LEAF_VALIDITY_YEARS: u16 = 1;

/// One CA certificate, DER and PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    /// DER encoding.
    pub der: Vec<u8>,
    /// PEM `CERTIFICATE`, LF line endings.
    pub pem: String,
}

impl CaCertificate {
    fn new(der: Vec<u8>) -> Result<Self, CaError> {
        let pem = to_pem(&der)?;
        Ok(Self { der, pem })
    }
}

/// A workload certificate and the files the initializer writes next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafCertificate {
    /// The leaf's DER.
    pub der: Vec<u8>,
    /// The leaf's PEM.
    pub pem: String,
    /// `tls-config/certChain.pem`: leaf PEM followed by the intermediate PEM.
    pub cert_chain_pem: String,
    /// `tls-config/mesh-ca.pem`.
    pub mesh_ca_pem: String,
    /// `tls-config/coordinator-root-ca.pem`.
    pub root_ca_pem: String,
}

/// The Coordinator's CA for one state: a root certificate for the seed-derived root key, and an
/// intermediate (signed by the root) and a self-signed mesh CA certificate, both for the mesh CA
/// key. Leaves are signed by the mesh key with the mesh CA as issuer, so they chain to the mesh
/// CA directly and to the root through the intermediate.
///
/// Built anew on every state change: the root certificate's key, subject and key identifier stay
/// the same, its serial and validity do not.
pub struct Ca {
    mesh_key: MeshCaKey,
    mesh_signer: CertSigner,
    mesh_name: Name,
    mesh_skid: [u8; 20],
    root_skid: [u8; 20],
    root: CaCertificate,
    intermediate: CaCertificate,
    mesh_ca: CaCertificate,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("root_skid", &hex::encode(self.root_skid))
            .field("mesh_skid", &hex::encode(self.mesh_skid))
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Issues the root, intermediate and mesh CA certificates, valid from `now` − 1 h to `now` +
    /// 10 years, each with a random 128-bit serial.
    ///
    /// # Errors
    /// [`CaError::TimeOutOfRange`] for an unrepresentable `now`; encoding or signing errors.
    pub fn new(
        root_key: &SigningKey,
        mesh_key: MeshCaKey,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, CaError> {
        let validity = validity(now.secs(), CA_VALIDITY_YEARS)?;
        let root_signer = CertSigner::new(root_key, "root")?;
        let mesh_signer = CertSigner::new(mesh_key.signing_key(), "mesh CA")?;
        let root_name = common_name(ROOT_CN)?;
        let mesh_name = common_name(INTERMEDIATE_CN)?;
        let root_skid = subject_key_identifier(root_key);
        let mesh_skid = mesh_key.subject_key_identifier();
        let root_spki = p384_spki(root_key)?;
        let mesh_spki = p384_spki(mesh_key.signing_key())?;

        // Go's order for CA certificates: KeyUsage, BasicConstraints, SKID, then AKID when the
        // issuer is not the subject.
        let ca_extensions = |name: &Name, skid: &[u8; 20], issuer_skid: Option<&[u8; 20]>| {
            let mut exts = vec![
                key_usage(ca_key_usage(), name)?,
                basic_constraints(true, name)?,
                subject_key_id(skid, name)?,
            ];
            if let Some(issuer_skid) = issuer_skid {
                exts.push(authority_key_id(issuer_skid, name)?);
            }
            Ok::<_, CaError>(exts)
        };

        let root = sign(
            CertificateTemplate {
                serial_number: random_serial(rng)?,
                issuer: root_name.clone(),
                validity,
                subject: root_name.clone(),
                subject_public_key_info: root_spki,
                extensions: ca_extensions(&root_name, &root_skid, None)?,
            },
            &root_signer,
            "root",
        )?;
        let intermediate = sign(
            CertificateTemplate {
                serial_number: random_serial(rng)?,
                issuer: root_name,
                validity,
                subject: mesh_name.clone(),
                subject_public_key_info: mesh_spki.clone(),
                extensions: ca_extensions(&mesh_name, &mesh_skid, Some(&root_skid))?,
            },
            &root_signer,
            "intermediate",
        )?;
        let mesh_ca = sign(
            CertificateTemplate {
                serial_number: random_serial(rng)?,
                issuer: mesh_name.clone(),
                validity,
                subject: mesh_name.clone(),
                subject_public_key_info: mesh_spki,
                extensions: ca_extensions(&mesh_name, &mesh_skid, None)?,
            },
            &mesh_signer,
            "mesh CA",
        )?;
        Ok(Self {
            mesh_key,
            mesh_signer,
            mesh_name,
            mesh_skid,
            root_skid,
            root: CaCertificate::new(root)?,
            intermediate: CaCertificate::new(intermediate)?,
            mesh_ca: CaCertificate::new(mesh_ca)?,
        })
    }

    /// The root CA certificate (`coordinator-root-ca.pem`).
    #[must_use]
    pub fn root(&self) -> &CaCertificate {
        &self.root
    }

    /// The intermediate certificate (mesh key, signed by the root).
    #[must_use]
    pub fn intermediate(&self) -> &CaCertificate {
        &self.intermediate
    }

    /// The self-signed mesh CA certificate (`mesh-ca.pem`).
    #[must_use]
    pub fn mesh_ca(&self) -> &CaCertificate {
        &self.mesh_ca
    }

    /// The mesh CA key (for `RecoverResponse.MeshCAKey`).
    #[must_use]
    pub fn mesh_key(&self) -> &MeshCaKey {
        &self.mesh_key
    }

    /// The root's subject key identifier (stable for a seed).
    #[must_use]
    pub fn root_key_identifier(&self) -> [u8; 20] {
        self.root_skid
    }

    /// The intermediate's and mesh CA's shared subject key identifier.
    #[must_use]
    pub fn mesh_key_identifier(&self) -> [u8; 20] {
        self.mesh_skid
    }

    /// Issues a workload certificate for `workload_public_key_spki_der` (the initializer's key
    /// from its TLS handshake): SANs classified as [`crate::san`] describes, CN = first DNS SAN,
    /// KeyUsage DigitalSignature, EKU clientAuth + serverAuth, BasicConstraints CA:false, valid
    /// from `now` − 1 h to `now` + 1 year, then `extensions` (claims, workload secret ID) as given.
    ///
    /// # Errors
    /// [`CaError::NoDnsSan`], [`CaError::NonAsciiSan`], [`CaError::InvalidPublicKey`],
    /// [`CaError::DuplicateExtension`], [`CaError::TimeOutOfRange`]; encoding or signing errors.
    pub fn issue_mesh_cert(
        &self,
        workload_public_key_spki_der: &[u8],
        sans: &[String],
        extensions: &[Extension],
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<LeafCertificate, CaError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(workload_public_key_spki_der)
            .map_err(|source| CaError::InvalidPublicKey { source })?;
        let classified = ClassifiedSans::classify(sans);
        let subject = common_name(classified.common_name()?)?;
        let san = classified.to_extension_value()?;

        // Go's order for a leaf: KeyUsage, EKU, BasicConstraints, AKID, SAN, then the extra
        // extensions. Go writes no SKID for non-CA certificates.
        let mut exts = vec![
            key_usage(KeyUsage(KeyUsages::DigitalSignature.into()), &subject)?,
            extension(
                &ExtendedKeyUsage(vec![
                    const_oid::db::rfc5280::ID_KP_CLIENT_AUTH,
                    const_oid::db::rfc5280::ID_KP_SERVER_AUTH,
                ]),
                false,
                &subject,
                "extended key usage",
            )?,
            basic_constraints(false, &subject)?,
            authority_key_id(&self.mesh_skid, &subject)?,
            extension(&san, false, &subject, "subject alternative name")?,
        ];
        exts.extend_from_slice(extensions);

        let der = sign(
            CertificateTemplate {
                serial_number: random_serial(rng)?,
                issuer: self.mesh_name.clone(),
                validity: validity(now.secs(), LEAF_VALIDITY_YEARS)?,
                subject,
                subject_public_key_info: spki,
                extensions: exts,
            },
            &self.mesh_signer,
            "leaf",
        )?;
        let pem = to_pem(&der)?;
        Ok(LeafCertificate {
            cert_chain_pem: format!("{pem}{}", self.intermediate.pem),
            der,
            pem,
            mesh_ca_pem: self.mesh_ca.pem.clone(),
            root_ca_pem: self.root.pem.clone(),
        })
    }
}
