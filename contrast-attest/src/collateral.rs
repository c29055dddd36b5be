//! Where the certificates come from, the cache of verified VCEKs, the AMD KDS URLs, and the
//! top-level [`verify_report`].
//!
//! Collateral is host-supplied and untrusted until [`crate::chain::verify_chain`] ties it to the
//! anchor. Sources ([`CollateralSource`]):
//!
//! - [`CertTable`]: the GUID-tagged certificate table of an extended report (`SNP_GET_EXT_REPORT`,
//!   configfs-tsm `auxblob`): entries of 16-byte GUID, u32 LE offset, u32 LE length (offsets from
//!   the start of the table), terminated by an all-zero entry.
//! - [`CollateralMap`]: certificates and CRLs the caller already loaded (from a directory, a
//!   cache, a manifest).
//! - [`FetchCollateral`]: a caller-supplied closure (e.g. an HTTP client against the AMD KDS,
//!   [`CollateralRequest::kds_url`]).
//! - [`Layered`]: several sources, first answer wins.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::Product;
use crate::cert_table::guid;
pub use crate::cert_table::{CertTable, CertTableEntry, CertTableError};
use crate::chain::{
    self, AnchorKind, CertRole, ChainCertificates, ChipBinding, CrlPolicy, LeafKind,
    RevocationStatus, TrustAnchor, VerifiedChain, VerifiedCrl,
};
use crate::error::Error;
use crate::report::{Report, UnverifiedReport};
use crate::tcb::TcbVersion;
use crate::time::UnixTime;

/// What a verification needs collateral for.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CollateralRequest<'a> {
    /// The product (from the anchor, confirmed by the report's CPUID for v3+).
    pub product: Product,
    /// VCEK or VLEK (from the report's SIGNING_KEY).
    pub leaf_kind: LeafKind,
    /// The report's CHIP_ID (untrusted hint).
    pub chip_id: &'a [u8; 64],
    /// The report's REPORTED_TCB (untrusted hint).
    pub reported_tcb: TcbVersion,
}

/// The public AMD Key Distribution Service, a `base` for [`CollateralRequest::kds_url`].
pub const KDS_BASE_URL: &str = "https://kdsintf.amd.com";

impl<'a> CollateralRequest<'a> {
    /// A request for the collateral of a `leaf_kind` leaf of `product`, for the chip and TCB a
    /// report names (e.g. to fetch it ahead of verification).
    #[must_use]
    pub fn new(
        product: Product,
        leaf_kind: LeafKind,
        chip_id: &'a [u8; 64],
        reported_tcb: TcbVersion,
    ) -> Self {
        Self {
            product,
            leaf_kind,
            chip_id,
            reported_tcb,
        }
    }

    /// Where the AMD KDS at `base` (e.g. [`KDS_BASE_URL`]) serves `item` for this request, for a
    /// [`FetchCollateral`] closure:
    ///
    /// - [`CollateralItem::Leaf`]: the VCEK for the chip and TCB,
    ///   `{base}/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`; on Turin
    ///   `fmcSPL` comes first and hwid is CHIP_ID[0..8] (16 hex characters), otherwise all 64
    ///   bytes (128 hex characters); SPLs are unpadded decimals (as go-sev-guest writes them).
    ///   `None` for a VLEK, which the KDS hands only to cloud providers.
    /// - [`CollateralItem::Intermediate`] and [`CollateralItem::Ark`]: the CA chain,
    ///   `{base}/{vcek|vlek}/v1/{product}/cert_chain` (PEM: ASK or ASVK, then ARK; split it with
    ///   [`parse_cert_chain_pem`]).
    /// - [`CollateralItem::Crl`]: the ARK-signed CRL, `{base}/{vcek|vlek}/v1/{product}/crl` (DER).
    #[must_use]
    pub fn kds_url(&self, base: &str, item: CollateralItem) -> Option<String> {
        match (item, self.leaf_kind) {
            (CollateralItem::Leaf, LeafKind::Vcek) => Some(kds::vcek_url(
                base,
                self.product,
                self.chip_id,
                &self.reported_tcb,
            )),
            (CollateralItem::Leaf, LeafKind::Vlek) => None,
            (CollateralItem::Intermediate | CollateralItem::Ark, kind) => {
                Some(kds::cert_chain_url(base, self.product, kind))
            }
            (CollateralItem::Crl, kind) => Some(kds::crl_url(base, self.product, kind)),
        }
    }
}

/// A provider of certificates and CRLs (DER). Implementations do no verification.
pub trait CollateralSource {
    /// The VCEK or VLEK for the request.
    fn leaf(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>>;
    /// The ASK (VCEK) or ASVK (VLEK). `None` lets an AMD anchor use its compiled-in copy.
    fn intermediate(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        None
    }
    /// The ARK as presented (never trusted by itself). `None` lets an AMD anchor use its
    /// compiled-in copy.
    fn ark(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        None
    }
    /// The ARK-signed CRL (DER).
    fn crl(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        None
    }
}

impl CollateralSource for CertTable<'_> {
    fn leaf(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        let guid = match request.leaf_kind {
            LeafKind::Vcek => &guid::VCEK,
            LeafKind::Vlek => &guid::VLEK,
        };
        self.get(guid).map(Cow::Borrowed)
    }
    fn intermediate(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.get(&guid::ASK).map(Cow::Borrowed)
    }
    fn ark(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.get(&guid::ARK).map(Cow::Borrowed)
    }
    fn crl(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.get(&guid::CRL).map(Cow::Borrowed)
    }
}

/// Certificates and CRLs already loaded by the caller (e.g. read from a directory).
#[derive(Clone, Debug, Default)]
pub struct CollateralMap {
    vceks: HashMap<(Product, Vec<u8>, [u8; 8]), Vec<u8>>,
    vleks: HashMap<(Product, [u8; 8]), Vec<u8>>,
    cas: HashMap<(Product, CertRole), Vec<u8>>,
    crls: HashMap<(Product, LeafKind), Vec<u8>>,
}

impl CollateralMap {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a VCEK for `hw_id` (64 bytes; 8 on Turin) and `tcb`.
    pub fn insert_vcek(&mut self, product: Product, hw_id: &[u8], tcb: &TcbVersion, der: Vec<u8>) {
        self.vceks
            .insert((product, hw_id.to_vec(), tcb.to_bytes(product)), der);
    }

    /// Adds a VLEK for `tcb`.
    pub fn insert_vlek(&mut self, product: Product, tcb: &TcbVersion, der: Vec<u8>) {
        self.vleks.insert((product, tcb.to_bytes(product)), der);
    }

    /// Adds a CA certificate (ARK, ASK or ASVK).
    pub fn insert_ca(&mut self, product: Product, role: CertRole, der: Vec<u8>) {
        self.cas.insert((product, role), der);
    }

    /// Adds the CRL for the VCEK or VLEK chain of `product`.
    pub fn insert_crl(&mut self, product: Product, leaf_kind: LeafKind, der: Vec<u8>) {
        self.crls.insert((product, leaf_kind), der);
    }

    /// Adds a KDS `cert_chain` answer (PEM: ASK or ASVK, then ARK).
    ///
    /// # Errors
    /// [`Error::CertificateParse`] if the PEM is not exactly two certificates.
    pub fn insert_cert_chain_pem(
        &mut self,
        product: Product,
        leaf_kind: LeafKind,
        pem: &[u8],
    ) -> Result<(), Error> {
        let [intermediate, ark] = parse_cert_chain_pem(pem, leaf_kind.issuer_role())?;
        self.insert_ca(product, leaf_kind.issuer_role(), intermediate);
        self.insert_ca(product, CertRole::Ark, ark);
        Ok(())
    }
}

/// Splits a KDS `cert_chain` PEM (intermediate then ARK) into two DER certificates.
///
/// # Errors
/// [`Error::CertificateParse`].
pub fn parse_cert_chain_pem(
    pem: &[u8],
    intermediate_role: CertRole,
) -> Result<[Vec<u8>; 2], Error> {
    use der::Encode;
    // x509-cert 0.2.5's `load_pem_chain` computes `len - 1` of the input with trailing line
    // breaks stripped: empty input underflows (a panic with overflow checks). Refuse it first.
    if pem.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return Err(Error::CertificateParse {
            role: intermediate_role,
            reason: "expected 2 certificates (intermediate, ARK), found an empty document"
                .to_owned(),
        });
    }
    let certs =
        x509_cert::Certificate::load_pem_chain(pem).map_err(|e| Error::CertificateParse {
            role: intermediate_role,
            reason: e.to_string(),
        })?;
    let ders = certs
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::CertificateParse {
            role: intermediate_role,
            reason: e.to_string(),
        })?;
    <[Vec<u8>; 2]>::try_from(ders).map_err(|v| Error::CertificateParse {
        role: intermediate_role,
        reason: format!(
            "expected 2 certificates (intermediate, ARK), found {}",
            v.len()
        ),
    })
}

impl CollateralSource for CollateralMap {
    fn leaf(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        let tcb = r.reported_tcb.to_bytes(r.product);
        let found = match r.leaf_kind {
            LeafKind::Vcek => {
                let hw_id = kds::hw_id(r.product, r.chip_id).to_vec();
                self.vceks.get(&(r.product, hw_id, tcb))
            }
            LeafKind::Vlek => self.vleks.get(&(r.product, tcb)),
        };
        found.map(|v| Cow::Borrowed(v.as_slice()))
    }
    fn intermediate(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.cas
            .get(&(r.product, r.leaf_kind.issuer_role()))
            .map(|v| Cow::Borrowed(v.as_slice()))
    }
    fn ark(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.cas
            .get(&(r.product, CertRole::Ark))
            .map(|v| Cow::Borrowed(v.as_slice()))
    }
    fn crl(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.crls
            .get(&(r.product, r.leaf_kind))
            .map(|v| Cow::Borrowed(v.as_slice()))
    }
}

/// Which item a [`FetchCollateral`] closure is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollateralItem {
    /// The VCEK or VLEK.
    Leaf,
    /// The ASK or ASVK.
    Intermediate,
    /// The ARK.
    Ark,
    /// The CRL.
    Crl,
}

/// A caller-supplied fetcher: `f(item, request)` returns the DER bytes or `None`.
pub struct FetchCollateral<F>(pub F);

impl<F> CollateralSource for FetchCollateral<F>
where
    F: Fn(CollateralItem, &CollateralRequest<'_>) -> Option<Vec<u8>>,
{
    fn leaf(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        (self.0)(CollateralItem::Leaf, r).map(Cow::Owned)
    }
    fn intermediate(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        (self.0)(CollateralItem::Intermediate, r).map(Cow::Owned)
    }
    fn ark(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        (self.0)(CollateralItem::Ark, r).map(Cow::Owned)
    }
    fn crl(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        (self.0)(CollateralItem::Crl, r).map(Cow::Owned)
    }
}

/// Several sources; for each item the first that has it answers.
pub struct Layered<'s>(pub &'s [&'s dyn CollateralSource]);

impl CollateralSource for Layered<'_> {
    fn leaf(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.0.iter().find_map(|s| s.leaf(r))
    }
    fn intermediate(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.0.iter().find_map(|s| s.intermediate(r))
    }
    fn ark(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.0.iter().find_map(|s| s.ark(r))
    }
    fn crl(&self, r: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.0.iter().find_map(|s| s.crl(r))
    }
}

/// AMD Key Distribution Service paths and URLs (also through [`CollateralRequest::kds_url`]).
pub mod kds {
    use std::fmt::Write as _;

    use crate::Product;
    use crate::chain::LeafKind;
    use crate::tcb::TcbVersion;

    /// The KDS path segment of a leaf kind: `vcek` or `vlek`.
    #[must_use]
    pub const fn path(kind: LeafKind) -> &'static str {
        match kind {
            LeafKind::Vcek => "vcek",
            LeafKind::Vlek => "vlek",
        }
    }

    /// The bytes of CHIP_ID that name the chip in KDS paths and VCEK hwIDs: the first 8 on
    /// Turin, all 64 otherwise.
    #[must_use]
    pub fn hw_id(product: Product, chip_id: &[u8; 64]) -> &[u8] {
        match product {
            Product::Turin => chip_id.get(..8).unwrap_or_default(),
            Product::Milan | Product::Genoa => chip_id.as_slice(),
        }
    }

    /// The VCEK for a chip and TCB: `{base}/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`;
    /// on Turin `fmcSPL` comes first and hwid is CHIP_ID[0..8] (16 hex characters), otherwise
    /// all 64 bytes (128 hex characters). SPLs are unpadded decimals (as go-sev-guest writes them).
    #[must_use]
    pub fn vcek_url(base: &str, product: Product, chip_id: &[u8; 64], tcb: &TcbVersion) -> String {
        let mut url = format!(
            "{base}/vcek/v1/{}/{}?",
            product.name(),
            hex::encode(hw_id(product, chip_id))
        );
        if product == Product::Turin {
            let _ = write!(url, "fmcSPL={}&", tcb.fmc.unwrap_or(0));
        }
        let _ = write!(
            url,
            "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
        );
        url
    }

    /// The CA chain: `{base}/{vcek|vlek}/v1/{product}/cert_chain` (PEM: ASK or ASVK, then ARK).
    #[must_use]
    pub fn cert_chain_url(base: &str, product: Product, kind: LeafKind) -> String {
        format!("{base}/{}/v1/{}/cert_chain", path(kind), product.name())
    }

    /// The ARK-signed CRL: `{base}/{vcek|vlek}/v1/{product}/crl` (DER).
    #[must_use]
    pub fn crl_url(base: &str, product: Product, kind: LeafKind) -> String {
        format!("{base}/{}/v1/{}/crl", path(kind), product.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum CacheKey {
    Chip {
        anchor: TrustAnchor,
        kind: LeafKind,
        chip_id: [u8; 64],
        tcb: [u8; 8],
    },
    Leaf {
        anchor: TrustAnchor,
        kind: LeafKind,
        der_sha256: [u8; 32],
    },
}

#[derive(Default)]
struct CacheInner {
    chains: HashMap<CacheKey, Arc<VerifiedChain>>,
    order: VecDeque<CacheKey>,
    crls: Vec<(TrustAnchor, [u8; 32], VerifiedCrl)>,
    /// ID key digests by the reference values they derive from, oldest first.
    id_keys: VecDeque<(IdKeyInputs, [u8; 48])>,
}

/// What an ID key digest is derived from: the trusted measurement and the encoded guest policy.
type IdKeyInputs = ([u8; 48], u64);

/// A bounded cache of verified chains (leaf key, extensions, CRL data), keyed by anchor,
/// product, hwID and TCB (or by the leaf's SHA-256 for VLEKs and masked chip ids), so another
/// report from the same chip costs one ECDSA verification. Validity dates are re-checked at
/// every use. Oldest entries are evicted first. Verified CRLs are memoized by their SHA-256, and
/// the ID key digests derived from reference values (a pure function of measurement and policy)
/// by their inputs, at most `capacity` of them.
pub struct VcekCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

impl std::fmt::Debug for VcekCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcekCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl VcekCache {
    /// A cache holding at most `capacity` chains (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// Number of cached chains.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().chains.len()
    }

    /// True if nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<VerifiedChain>> {
        self.lock().chains.get(key).cloned()
    }

    fn insert(&self, key: CacheKey, chain: Arc<VerifiedChain>) {
        let mut inner = self.lock();
        if inner.chains.insert(key.clone(), chain).is_none() {
            inner.order.push_back(key);
        }
        while inner.chains.len() > self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.chains.remove(&old);
                }
                None => break,
            }
        }
    }

    fn crl(&self, anchor: &TrustAnchor, sha: &[u8; 32]) -> Option<VerifiedCrl> {
        self.lock()
            .crls
            .iter()
            .find(|(a, s, _)| a == anchor && s == sha)
            .map(|(_, _, c)| c.clone())
    }

    /// The ID key digest for (measurement, policy), derived once and then served from memory.
    pub(crate) fn id_key_digest(
        &self,
        measurement: &[u8; 48],
        policy: &contrast_core::manifest::GuestPolicy,
    ) -> Result<[u8; 48], Error> {
        let key = (*measurement, crate::idblock::policy_to_bytes(policy));
        if let Some((_, digest)) = self.lock().id_keys.iter().find(|(k, _)| *k == key) {
            return Ok(*digest);
        }
        // Derived outside the lock: it is the slow part, and equal inputs give equal outputs.
        let digest = crate::idblock::id_key_digest(measurement, policy)?;
        let mut inner = self.lock();
        if !inner.id_keys.iter().any(|(k, _)| *k == key) {
            if inner.id_keys.len() >= self.capacity {
                inner.id_keys.pop_front();
            }
            inner.id_keys.push_back((key, digest));
        }
        Ok(digest)
    }

    /// Remembers a verified CRL for `anchor`, keeping the newest (by thisUpdate) that is fresh
    /// at `now`; returns the newest fresh one kept.
    fn insert_crl(
        &self,
        anchor: TrustAnchor,
        sha: [u8; 32],
        crl: VerifiedCrl,
        now: UnixTime,
    ) -> Option<VerifiedCrl> {
        let mut inner = self.lock();
        let kept_is_newer = inner.crls.iter().any(|(a, _, kept)| {
            *a == anchor && kept.this_update > crl.this_update && kept.next_update >= now
        });
        if !kept_is_newer {
            inner.crls.retain(|(a, _, _)| *a != anchor);
            inner.crls.push((anchor, sha, crl));
        }
        inner
            .crls
            .iter()
            .find(|(a, _, kept)| *a == anchor && kept.next_update >= now)
            .map(|(_, _, kept)| kept.clone())
    }
}

/// A report that verified end to end, with what was checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedEvidence<'r> {
    /// The verified report.
    pub report: Report<'r>,
    /// VCEK or VLEK.
    pub leaf_kind: LeafKind,
    /// AMD root or caller-pinned (simulated) root.
    pub anchor: AnchorKind,
    /// How CHIP_ID was bound to the leaf.
    pub chip_binding: ChipBinding,
    /// Whether and how revocation was checked.
    pub revocation: RevocationStatus,
    /// True if the chain came from the [`VcekCache`].
    pub chain_from_cache: bool,
    /// The verified chain (leaf extensions, validity).
    pub chain: Arc<VerifiedChain>,
}

/// Verifies a report end to end: framing; product (anchor product, confirmed by CPUID for v3+);
/// the chain from `collateral` to `anchor` at `now` (or a cached chain, dates re-checked); the
/// report signature, then its structure; the binding of REPORTED_TCB, CHIP_ID and SIGNING_KEY to
/// the leaf; and revocation per `crl_policy`.
///
/// # Errors
/// The specific [`Error`] of the first failing check; [`Error::MissingCertificate`] if no leaf
/// certificate is available.
pub fn verify_report<'r>(
    bytes: &'r [u8],
    collateral: &dyn CollateralSource,
    anchor: &TrustAnchor,
    now: UnixTime,
    crl_policy: CrlPolicy,
    cache: Option<&VcekCache>,
) -> Result<VerifiedEvidence<'r>, Error> {
    let unverified = UnverifiedReport::from_bytes(bytes)?;
    let product = unverified.product(anchor.product())?;
    let signing_key = unverified.signing_key()?;
    let leaf_kind = LeafKind::from_signing_key(signing_key).ok_or(Error::ReportNotSigned {
        reason: "KEY_INFO.SIGNING_KEY is 7 (none)",
    })?;
    let chip_id = unverified.chip_id();
    let request = CollateralRequest {
        product,
        leaf_kind,
        chip_id,
        reported_tcb: unverified.reported_tcb(product),
    };

    let chip_key =
        (leaf_kind == LeafKind::Vcek && chip_id.iter().any(|&b| b != 0)).then(|| CacheKey::Chip {
            anchor: *anchor,
            kind: leaf_kind,
            chip_id: *chip_id,
            tcb: unverified.reported_tcb_raw(),
        });
    let mut cached = match (&chip_key, cache) {
        (Some(key), Some(cache)) => cache.get(key),
        _ => None,
    };
    let mut leaf_der = None;
    if cached.is_none() {
        let der = collateral.leaf(&request).ok_or(Error::MissingCertificate {
            role: leaf_kind.role(),
            product,
        })?;
        if let (None, Some(cache)) = (&chip_key, cache) {
            cached = cache.get(&CacheKey::Leaf {
                anchor: *anchor,
                kind: leaf_kind,
                der_sha256: contrast_core::sha256(&der),
            });
        }
        leaf_der = Some(der);
    }
    let chain_from_cache = cached.is_some();
    let chain = match (cached, leaf_der) {
        (Some(chain), _) => {
            chain.check_time(now)?;
            chain
        }
        (None, Some(leaf)) => {
            let intermediate = collateral.intermediate(&request);
            let ark = collateral.ark(&request);
            let certs = ChainCertificates {
                ark: ark.as_deref(),
                intermediate: intermediate.as_deref(),
                leaf: &leaf,
            };
            let chain = Arc::new(chain::verify_chain(anchor, leaf_kind, &certs, now)?);
            if let Some(cache) = cache {
                let key = chip_key.clone().unwrap_or(CacheKey::Leaf {
                    anchor: *anchor,
                    kind: leaf_kind,
                    der_sha256: contrast_core::sha256(&leaf),
                });
                cache.insert(key, Arc::clone(&chain));
            }
            chain
        }
        (None, None) => {
            return Err(Error::MissingCertificate {
                role: leaf_kind.role(),
                product,
            });
        }
    };

    let report = unverified.verify(chain.leaf_key())?;
    let chip_binding = chain::check_binding(
        leaf_kind,
        chain.extensions(),
        product,
        report.signing_key(),
        &report.reported_tcb_raw(),
        report.chip_id(),
    )?;

    let crl = collateral.crl(&request);
    let revocation = match (crl.as_deref(), cache) {
        (Some(der), Some(cache)) => {
            let sha = contrast_core::sha256(der);
            match cache.crl(anchor, &sha) {
                // The cache keeps one CRL per anchor, the newest: this is it.
                Some(memo) if memo.next_update >= now && memo.this_update <= now => {
                    chain::revocation_of(&memo, &chain)?
                }
                _ => match chain::verify_crl(der, &chain, now) {
                    Ok(verified) => {
                        // The evidence brings its own CRL, so an attester could present an
                        // older one that is still fresh: the newest fresh CRL seen for this
                        // anchor is checked as well.
                        let newest = cache.insert_crl(*anchor, sha, verified.clone(), now);
                        let status = chain::revocation_of(&verified, &chain)?;
                        if let Some(newest) = newest.filter(|newest| *newest != verified) {
                            chain::revocation_of(&newest, &chain)?;
                        }
                        status
                    }
                    Err(_) => chain::check_revocation(Some(der), crl_policy, &chain, now)?,
                },
            }
        }
        (crl, _) => chain::check_revocation(crl, crl_policy, &chain, now)?,
    };

    Ok(VerifiedEvidence {
        report,
        leaf_kind,
        anchor: chain.anchor_kind(),
        chip_binding,
        revocation,
        chain_from_cache,
        chain,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report_milan() -> Vec<u8> {
        hex::decode(include_str!("../tests/vectors/report_milan.hex").trim()).unwrap()
    }

    #[test]
    fn kds_urls() {
        let report = report_milan();
        let u = UnverifiedReport::from_bytes(&report).unwrap();
        let url = kds::vcek_url(
            KDS_BASE_URL,
            Product::Milan,
            u.chip_id(),
            &u.reported_tcb(Product::Milan),
        );
        assert_eq!(
            url,
            "https://kdsintf.amd.com/vcek/v1/Milan/d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
        );
        let mut chip = [0u8; 64];
        chip[..8].copy_from_slice(&hex::decode("1e550a8ee5cf9f4d").unwrap());
        let tcb = TcbVersion {
            fmc: Some(1),
            bootloader: 2,
            tee: 3,
            snp: 4,
            microcode: 9,
        };
        assert_eq!(
            kds::vcek_url(KDS_BASE_URL, Product::Turin, &chip, &tcb),
            "https://kdsintf.amd.com/vcek/v1/Turin/1e550a8ee5cf9f4d?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=9"
        );
        assert_eq!(
            kds::cert_chain_url(KDS_BASE_URL, Product::Genoa, LeafKind::Vcek),
            "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain"
        );
        assert_eq!(
            kds::cert_chain_url(KDS_BASE_URL, Product::Milan, LeafKind::Vlek),
            "https://kdsintf.amd.com/vlek/v1/Milan/cert_chain"
        );
        assert_eq!(
            kds::crl_url(KDS_BASE_URL, Product::Turin, LeafKind::Vcek),
            "https://kdsintf.amd.com/vcek/v1/Turin/crl"
        );
    }

    #[test]
    fn kds_url_of_each_item() {
        let mut chip = [0u8; 64];
        chip[..8].copy_from_slice(&hex::decode("1e550a8ee5cf9f4d").unwrap());
        let request = |leaf_kind| CollateralRequest {
            product: Product::Turin,
            leaf_kind,
            chip_id: &chip,
            reported_tcb: TcbVersion {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 9,
            },
        };
        let vcek = request(LeafKind::Vcek);
        assert_eq!(
            vcek.kds_url(KDS_BASE_URL, CollateralItem::Leaf).unwrap(),
            "https://kdsintf.amd.com/vcek/v1/Turin/1e550a8ee5cf9f4d?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=9"
        );
        for item in [CollateralItem::Intermediate, CollateralItem::Ark] {
            assert_eq!(
                vcek.kds_url(KDS_BASE_URL, item).unwrap(),
                "https://kdsintf.amd.com/vcek/v1/Turin/cert_chain"
            );
        }
        assert_eq!(
            vcek.kds_url(KDS_BASE_URL, CollateralItem::Crl).unwrap(),
            "https://kdsintf.amd.com/vcek/v1/Turin/crl"
        );
        let vlek = request(LeafKind::Vlek);
        assert_eq!(vlek.kds_url(KDS_BASE_URL, CollateralItem::Leaf), None);
        assert_eq!(
            vlek.kds_url(KDS_BASE_URL, CollateralItem::Ark).unwrap(),
            "https://kdsintf.amd.com/vlek/v1/Turin/cert_chain"
        );
        assert_eq!(
            vlek.kds_url(KDS_BASE_URL, CollateralItem::Crl).unwrap(),
            "https://kdsintf.amd.com/vlek/v1/Turin/crl"
        );
    }
}
