//! Filling a cache from files, for verifiers without network access: every file is verified
//! against the anchor before it is written, as fetched collateral is.

use std::path::PathBuf;

use contrast_attest::chain::{
    self, CertRole, ChainCertificates, LeafKind, TrustAnchor, VerifiedCrl,
};
use contrast_attest::collateral::parse_cert_chain_pem;
use contrast_attest::{TcbVersion, UnixTime};

use crate::cache::{CacheEntry, DiskCache};
use crate::error::Item;

/// Why an import was refused; nothing is written unless everything verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A file does not verify.
    #[error("the {item} does not verify: {error}")]
    Invalid {
        /// Which item.
        item: Item,
        /// The check that failed.
        error: contrast_attest::Error,
    },
    /// A VCEK lacks the chip ID or a TCB component that keys it in the cache.
    #[error("the VCEK lacks its {what} extension")]
    VcekIncomplete {
        /// The missing extension.
        what: &'static str,
    },
    /// Writing the cache failed.
    #[error(transparent)]
    Write(#[from] contrast_fs::WriteError),
}

/// What an import wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Imported {
    /// The files written, in order.
    pub written: Vec<PathBuf>,
    /// The imported CRL's validity and revocations, if one was given.
    pub crl: Option<VerifiedCrl>,
}

/// Verifies a KDS `cert_chain` (PEM), VCEKs and optionally a CRL against `anchor` at `now`, then
/// writes them into `cache` where a fetch would have put them (each VCEK keyed by the chip ID
/// and TCB its own extensions certify). All or nothing: nothing is written unless every piece
/// verified.
///
/// # Errors
/// [`ImportError`] naming the item that did not verify, or the write that failed.
pub fn import(
    cache: &DiskCache,
    anchor: &TrustAnchor,
    cert_chain_pem: &[u8],
    vceks: &[Vec<u8>],
    crl: Option<&[u8]>,
    now: UnixTime,
) -> Result<Imported, ImportError> {
    let product = anchor.product();
    let invalid = |item| move |error| ImportError::Invalid { item, error };
    let [ask, ark] =
        parse_cert_chain_pem(cert_chain_pem, CertRole::Ask).map_err(invalid(Item::CertChain))?;
    let issuers = chain::verify_issuers(anchor, LeafKind::Vcek, Some(&ark), Some(&ask), now)
        .map_err(invalid(Item::CertChain))?;
    let verified_crl = crl
        .map(|der| chain::verify_crl_with_issuers(der, &issuers, now))
        .transpose()
        .map_err(invalid(Item::Crl))?;
    let mut keyed = Vec::with_capacity(vceks.len());
    for vcek in vceks {
        let verified = chain::verify_chain(
            anchor,
            LeafKind::Vcek,
            &ChainCertificates {
                ark: Some(&ark),
                intermediate: Some(&ask),
                leaf: vcek,
            },
            now,
        )
        .map_err(invalid(Item::Vcek))?;
        let extensions = verified.extensions();
        let component = |value: Option<u8>, what| value.ok_or(ImportError::VcekIncomplete { what });
        let tcb = TcbVersion {
            fmc: match product {
                contrast_attest::Product::Turin => Some(component(extensions.fmc_spl, "fmcSPL")?),
                _ => None,
            },
            bootloader: component(extensions.bl_spl, "blSPL")?,
            tee: component(extensions.tee_spl, "teeSPL")?,
            snp: component(extensions.snp_spl, "snpSPL")?,
            microcode: component(extensions.ucode_spl, "ucodeSPL")?,
        };
        let hw_id = extensions
            .hw_id
            .as_deref()
            .ok_or(ImportError::VcekIncomplete { what: "hwID" })?;
        let mut chip_id = [0u8; 64];
        let len = hw_id.len().min(64);
        chip_id[..len].copy_from_slice(&hw_id[..len]);
        keyed.push((chip_id, tcb, vcek));
    }

    let mut written = Vec::new();
    let chain_entry = CacheEntry::CertChain {
        product,
        kind: LeafKind::Vcek,
    };
    cache.write(&chain_entry, cert_chain_pem)?;
    written.push(cache.path(&chain_entry));
    for (chip_id, tcb, vcek) in &keyed {
        let entry = CacheEntry::Vcek {
            product,
            chip_id,
            tcb: *tcb,
        };
        cache.write(&entry, vcek)?;
        written.push(cache.path(&entry));
    }
    if let Some(der) = crl {
        let entry = CacheEntry::Crl {
            product,
            kind: LeafKind::Vcek,
        };
        cache.write(&entry, der)?;
        written.push(cache.path(&entry));
    }
    Ok(Imported {
        written,
        crl: verified_crl,
    })
}
