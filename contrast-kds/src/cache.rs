//! The on-disk collateral cache.
//!
//! The layout mirrors the KDS's paths, so a cache can be filled by hand or with `curl` for an
//! air-gapped verifier:
//!
//! ```text
//! <root>/vcek/v1/<product>/<hwid hex>/<tcb hex>.der   a VCEK (hwid: 64 bytes, 8 on Turin;
//!                                                      tcb: the 8 TCB_VERSION bytes)
//! <root>/<vcek|vlek>/v1/<product>/cert_chain.pem      the CA chain, as the KDS serves it
//! <root>/<vcek|vlek>/v1/<product>/crl.der             the ARK-signed CRL
//! ```
//!
//! VCEKs are keyed by chip and TCB, so a firmware update adds an entry instead of invalidating
//! the others. The cache itself trusts nothing: the client writes only what verified and
//! verifies what it reads (a corrupt or foreign entry is ignored and replaced), and a verifier
//! reading it through [`CollateralSource`] checks everything against the pinned roots as it
//! does for evidence.

use std::borrow::Cow;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use contrast_attest::chain::LeafKind;
use contrast_attest::collateral::{CollateralRequest, CollateralSource, kds, parse_cert_chain_pem};
use contrast_attest::{Product, TcbVersion};

/// The largest file the cache reads: every piece of collateral is a few KiB.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// One entry of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEntry<'a> {
    /// The VCEK of a chip at a TCB.
    Vcek {
        /// The product.
        product: Product,
        /// The report's CHIP_ID (on Turin the first 8 bytes name the chip).
        chip_id: &'a [u8; 64],
        /// The TCB the VCEK certifies.
        tcb: TcbVersion,
    },
    /// The CA chain of a product (`cert_chain`).
    CertChain {
        /// The product.
        product: Product,
        /// VCEK (ASK) or VLEK (ASVK) chain.
        kind: LeafKind,
    },
    /// The CRL of a product.
    Crl {
        /// The product.
        product: Product,
        /// The VCEK or VLEK CRL.
        kind: LeafKind,
    },
}

impl CacheEntry<'_> {
    /// The entry's path under the cache root.
    #[must_use]
    pub fn relative_path(&self) -> PathBuf {
        match *self {
            Self::Vcek {
                product,
                chip_id,
                tcb,
            } => Path::new("vcek/v1")
                .join(product.name())
                .join(hex::encode(kds::hw_id(product, chip_id)))
                .join(format!("{}.der", hex::encode(tcb.to_bytes(product)))),
            Self::CertChain { product, kind } => Path::new(kds::path(kind))
                .join("v1")
                .join(product.name())
                .join("cert_chain.pem"),
            Self::Crl { product, kind } => Path::new(kds::path(kind))
                .join("v1")
                .join(product.name())
                .join("crl.der"),
        }
    }
}

/// A collateral cache in a directory ([module docs](self)).
#[derive(Clone, Debug)]
pub struct DiskCache {
    root: PathBuf,
}

impl DiskCache {
    /// The cache in `root` (created on the first write).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache's directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `entry` lives.
    #[must_use]
    pub fn path(&self, entry: &CacheEntry<'_>) -> PathBuf {
        self.root.join(entry.relative_path())
    }

    /// The entry's bytes; `None` if absent, unreadable or larger than [`MAX_ENTRY_BYTES`]
    /// (logged: a cache that cannot be read is a miss, never an error).
    #[must_use]
    pub fn read(&self, entry: &CacheEntry<'_>) -> Option<Vec<u8>> {
        let path = self.path(entry);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read a collateral cache entry; ignoring it");
                return None;
            }
        };
        let mut bytes = Vec::new();
        let limit = u64::try_from(MAX_ENTRY_BYTES).unwrap_or(u64::MAX) + 1;
        if let Err(error) = file.take(limit).read_to_end(&mut bytes) {
            tracing::warn!(path = %path.display(), %error, "cannot read a collateral cache entry; ignoring it");
            return None;
        }
        if bytes.len() > MAX_ENTRY_BYTES {
            tracing::warn!(path = %path.display(), limit = MAX_ENTRY_BYTES, "collateral cache entry is too large; ignoring it");
            return None;
        }
        Some(bytes)
    }

    /// Writes the entry atomically (temporary file, fsync, rename), creating directories.
    ///
    /// # Errors
    /// [`contrast_fs::WriteError`] naming the operation and path.
    pub fn write(
        &self,
        entry: &CacheEntry<'_>,
        bytes: &[u8],
    ) -> Result<(), contrast_fs::WriteError> {
        let path = self.path(entry);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| contrast_fs::WriteError::Io {
                operation: "create the directory",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        contrast_fs::write_atomic(&path, bytes, Some(0o644))
    }
}

/// A verifier may read the cache directly: everything it returns is checked against the
/// pinned roots like evidence is.
impl CollateralSource for DiskCache {
    fn leaf(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        match request.leaf_kind {
            LeafKind::Vcek => self
                .read(&CacheEntry::Vcek {
                    product: request.product,
                    chip_id: request.chip_id,
                    tcb: request.reported_tcb,
                })
                .map(Cow::Owned),
            // The KDS serves no VLEKs, so the cache holds none.
            LeafKind::Vlek => None,
        }
    }

    fn intermediate(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.cert_chain(request)
            .map(|(intermediate, _)| Cow::Owned(intermediate))
    }

    fn ark(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.cert_chain(request).map(|(_, ark)| Cow::Owned(ark))
    }

    fn crl(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.read(&CacheEntry::Crl {
            product: request.product,
            kind: request.leaf_kind,
        })
        .map(Cow::Owned)
    }
}

impl DiskCache {
    /// The cached CA chain of the request's product, split (intermediate, ARK).
    fn cert_chain(&self, request: &CollateralRequest<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
        let pem = self.read(&CacheEntry::CertChain {
            product: request.product,
            kind: request.leaf_kind,
        })?;
        let [intermediate, ark] =
            parse_cert_chain_pem(&pem, request.leaf_kind.issuer_role()).ok()?;
        Some((intermediate, ark))
    }
}
