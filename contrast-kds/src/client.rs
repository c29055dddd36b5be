//! The collateral client: cache, then collateral proxy, then KDS; everything verified before
//! it is used or cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use contrast_attest::chain::{
    self, ChainCertificates, LeafKind, TrustAnchor, VerifiedChain, VerifiedCrl, VerifiedIssuers,
};
use contrast_attest::collateral::{
    CollateralItem, CollateralRequest, KDS_BASE_URL, kds, parse_cert_chain_pem,
};
use contrast_attest::report::SigningKey;
use contrast_attest::{Product, UnixTime};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;

use crate::cache::{CacheEntry, DiskCache, MAX_ENTRY_BYTES};
use crate::error::{FailureKind, FetchFailure, Item, KdsError, Origin};
use crate::policy::{self, NextStep, ProxyCooldown, RetryPolicy};

/// Where the client fetches from, and how patiently.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The KDS (default [`KDS_BASE_URL`]). Plain `http` is allowed: every answer is verified
    /// against the pinned roots, so the transport protects availability, not integrity.
    pub kds_base: String,
    /// A collateral proxy (upstream's `--collateral-proxy`, usually plain `http` in the
    /// cluster): KDS URLs are rewritten to `<proxy><path>[?query]` ([`policy::proxied_url`]).
    pub proxy: Option<String>,
    /// Attempts at the proxy per item before going to the KDS directly (upstream: 5).
    pub proxy_attempts: u32,
    /// How long a failed proxy is skipped (upstream: two minutes).
    pub proxy_cooldown: Duration,
    /// The on-disk cache ([`DiskCache`]), if any.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Each HTTP request (connect, headers and body) must finish within this.
    pub timeout: Duration,
    /// Attempts and backoff per source.
    pub retry: RetryPolicy,
    /// Roots trusted for HTTPS besides the public web PKI's (Mozilla's, compiled in).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for ClientConfig {
    /// AMD's KDS, no proxy, no cache, 10 s per request, [`RetryPolicy::default`]; proxy
    /// attempts and cooldown as upstream's.
    fn default() -> Self {
        Self {
            kds_base: KDS_BASE_URL.to_owned(),
            proxy: None,
            proxy_attempts: 5,
            proxy_cooldown: ProxyCooldown::DEFAULT,
            cache_dir: None,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            extra_roots: Vec::new(),
        }
    }
}

/// Collateral for one chip at one TCB that verified at the time given: VCEK, CA chain and CRL,
/// ready to put into evidence or to verify a report with.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Collateral {
    /// The VCEK (DER).
    pub vcek: Vec<u8>,
    /// The ASK (DER).
    pub ask: Vec<u8>,
    /// The ARK (DER).
    pub ark: Vec<u8>,
    /// The ARK-signed CRL (DER).
    pub crl: Vec<u8>,
    /// The CRL's validity (thisUpdate, nextUpdate, revoked serials).
    pub crl_info: VerifiedCrl,
    /// Where each piece came from.
    pub origins: Origins,
}

/// Where each piece of a [`Collateral`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origins {
    /// The VCEK's.
    pub vcek: Origin,
    /// The CA chain's.
    pub cert_chain: Origin,
    /// The CRL's.
    pub crl: Origin,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Fetches, verifies and caches SEV-SNP collateral ([crate docs](crate)).
pub struct CollateralClient {
    config: ClientConfig,
    http: HttpClient,
    cache: Option<DiskCache>,
    proxy: Mutex<ProxyCooldown>,
    network_requests: AtomicU64,
}

impl std::fmt::Debug for CollateralClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollateralClient")
            .field("kds_base", &self.config.kds_base)
            .field("proxy", &self.config.proxy)
            .field("cache", &self.cache.as_ref().map(DiskCache::root))
            .finish_non_exhaustive()
    }
}

impl CollateralClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`KdsError::Config`] for a KDS or proxy URL that is not absolute `http(s)`,
    /// [`KdsError::Tls`] if the TLS configuration cannot be built (e.g. a bad extra root).
    pub fn new(config: ClientConfig) -> Result<Self, KdsError> {
        policy::parse_http_url("the KDS base URL", &config.kds_base)?;
        if let Some(proxy) = &config.proxy {
            // Checks the base the same way every request will use it.
            policy::proxied_url(proxy, &config.kds_base)?;
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in &config.extra_roots {
            roots
                .add(root.clone())
                .map_err(|e| KdsError::Tls(format!("an extra root is unusable: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| KdsError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            cache: config.cache_dir.clone().map(DiskCache::new),
            proxy: Mutex::new(ProxyCooldown::new(config.proxy_cooldown)),
            config,
            http,
            network_requests: AtomicU64::new(0),
        })
    }

    /// The KDS base URL without a trailing slash, as the KDS URL builders take it.
    fn kds_base(&self) -> &str {
        self.config.kds_base.trim_end_matches('/')
    }

    /// The on-disk cache, if configured.
    #[must_use]
    pub fn cache(&self) -> Option<&DiskCache> {
        self.cache.as_ref()
    }

    /// HTTP requests sent so far (to the proxy or the KDS), for metrics and tests.
    #[must_use]
    pub fn network_requests(&self) -> u64 {
        self.network_requests.load(Ordering::Relaxed)
    }

    /// VCEK, CA chain and CRL for the chip and TCB of `request`, each from the cache if a
    /// verified copy is there (a CRL only until its nextUpdate), otherwise fetched, verified
    /// against `anchor` at `now` and cached.
    ///
    /// # Errors
    /// [`KdsError::VlekNotFetchable`] for a VLEK request; [`KdsError::Unavailable`] with every
    /// attempt when an item could not be got from any source.
    pub async fn vcek_collateral(
        &self,
        request: &CollateralRequest<'_>,
        anchor: &TrustAnchor,
        now: UnixTime,
    ) -> Result<Collateral, KdsError> {
        if request.leaf_kind != LeafKind::Vcek {
            return Err(KdsError::VlekNotFetchable);
        }
        let (issuers, [ask, ark], cert_chain_origin) = self
            .issuers(request.product, request.leaf_kind, anchor, now)
            .await?;
        let vcek_entry = CacheEntry::Vcek {
            product: request.product,
            chip_id: request.chip_id,
            tcb: request.reported_tcb,
        };
        let verify_vcek = |der: &[u8]| verify_vcek(request, anchor, &ask, &ark, der, now);
        let (vcek, _, vcek_origin) = self
            .cached_or_fetched(
                Item::Vcek,
                request.product,
                &vcek_entry,
                request.kds_url(self.kds_base(), CollateralItem::Leaf),
                |der| verify_vcek(der).map(|_| der.to_vec()),
            )
            .await?;
        let (crl, crl_info, crl_origin) = self.crl(&issuers, request.product, now).await?;
        Ok(Collateral {
            vcek,
            ask,
            ark,
            crl,
            crl_info,
            origins: Origins {
                vcek: vcek_origin,
                cert_chain: cert_chain_origin,
                crl: crl_origin,
            },
        })
    }

    /// The CA chain of `product` for `kind` leaves, verified against `anchor` at `now`: the
    /// issuers, the DER certificates (intermediate, ARK) and where they came from.
    ///
    /// # Errors
    /// [`KdsError::Unavailable`].
    pub async fn issuers(
        &self,
        product: Product,
        kind: LeafKind,
        anchor: &TrustAnchor,
        now: UnixTime,
    ) -> Result<(VerifiedIssuers, [Vec<u8>; 2], Origin), KdsError> {
        let url = kds::cert_chain_url(self.kds_base(), product, kind);
        let (pem, (issuers, ders), origin) = self
            .cached_or_fetched(
                Item::CertChain,
                product,
                &CacheEntry::CertChain { product, kind },
                Some(url),
                |pem| {
                    let [intermediate, ark] = parse_cert_chain_pem(pem, kind.issuer_role())?;
                    let issuers =
                        chain::verify_issuers(anchor, kind, Some(&ark), Some(&intermediate), now)?;
                    Ok((issuers, [intermediate, ark]))
                },
            )
            .await?;
        drop(pem);
        Ok((issuers, ders, origin))
    }

    /// The CRL of `issuers`' product, verified (signature, issuer, freshness at `now`): the
    /// DER, what it says and where it came from.
    ///
    /// # Errors
    /// [`KdsError::Unavailable`].
    pub async fn crl(
        &self,
        issuers: &VerifiedIssuers,
        product: Product,
        now: UnixTime,
    ) -> Result<(Vec<u8>, VerifiedCrl, Origin), KdsError> {
        let kind = issuers.leaf_kind();
        let url = kds::crl_url(self.kds_base(), product, kind);
        self.cached_or_fetched(
            Item::Crl,
            product,
            &CacheEntry::Crl { product, kind },
            Some(url),
            |der| chain::verify_crl_with_issuers(der, issuers, now),
        )
        .await
    }

    /// The entry from the cache if it verifies, else from the network (verified, then cached).
    async fn cached_or_fetched<T>(
        &self,
        item: Item,
        product: Product,
        entry: &CacheEntry<'_>,
        url: Option<String>,
        verify: impl Fn(&[u8]) -> Result<T, contrast_attest::Error>,
    ) -> Result<(Vec<u8>, T, Origin), KdsError> {
        let mut attempts = Vec::new();
        if let Some(cache) = &self.cache
            && let Some(bytes) = cache.read(entry)
        {
            match verify(&bytes) {
                Ok(verified) => return Ok((bytes, verified, Origin::Cache)),
                Err(error) => {
                    let path = cache.path(entry);
                    tracing::warn!(path = %path.display(), %error, "collateral cache entry does not verify; fetching it anew");
                    attempts.push(FetchFailure {
                        origin: Origin::Cache,
                        url: path.display().to_string(),
                        attempt: 1,
                        kind: FailureKind::Invalid(error),
                    });
                }
            }
        }
        let Some(url) = url else {
            return Err(KdsError::Unavailable {
                item,
                product,
                attempts,
            });
        };
        match self.fetch(&url, &verify, &mut attempts).await {
            Some((bytes, verified, origin)) => {
                if let Some(cache) = &self.cache
                    && let Err(error) = cache.write(entry, &bytes)
                {
                    // A cache that cannot be written costs a fetch next time, nothing more.
                    tracing::warn!(%error, "cannot write the collateral cache");
                }
                Ok((bytes, verified, origin))
            }
            None => Err(KdsError::Unavailable {
                item,
                product,
                attempts,
            }),
        }
    }

    /// The proxy (unless cooling down), then the KDS; the first answer that verifies.
    async fn fetch<T>(
        &self,
        kds_url: &str,
        verify: &impl Fn(&[u8]) -> Result<T, contrast_attest::Error>,
        attempts: &mut Vec<FetchFailure>,
    ) -> Option<(Vec<u8>, T, Origin)> {
        if let Some(proxy) = &self.config.proxy
            && self.lock_proxy().use_proxy(Instant::now())
        {
            match policy::proxied_url(proxy, kds_url) {
                Ok(url) => {
                    let proxy_policy = RetryPolicy {
                        attempts: self.config.proxy_attempts,
                        ..self.config.retry
                    };
                    if let Some(found) = self
                        .fetch_from(Origin::Proxy, &url, proxy_policy, verify, attempts)
                        .await
                    {
                        self.lock_proxy().succeeded();
                        return Some(found);
                    }
                    tracing::warn!(proxy = %proxy, cooldown = ?self.config.proxy_cooldown, "collateral proxy failed; asking the KDS directly");
                    self.lock_proxy().failed(Instant::now());
                }
                Err(error) => tracing::warn!(%error, "cannot rewrite the KDS URL for the proxy"),
            }
        }
        self.fetch_from(Origin::Kds, kds_url, self.config.retry, verify, attempts)
            .await
    }

    fn lock_proxy(&self) -> std::sync::MutexGuard<'_, ProxyCooldown> {
        self.proxy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attempts at one source under `retry`; every failure is recorded.
    async fn fetch_from<T>(
        &self,
        origin: Origin,
        url: &str,
        retry: RetryPolicy,
        verify: &impl Fn(&[u8]) -> Result<T, contrast_attest::Error>,
        attempts: &mut Vec<FetchFailure>,
    ) -> Option<(Vec<u8>, T, Origin)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.get(url).await.and_then(|bytes| match verify(&bytes) {
                Ok(verified) => Ok((bytes.to_vec(), verified)),
                Err(error) => Err(FailureKind::Invalid(error)),
            });
            let kind = match outcome {
                Ok((bytes, verified)) => return Some((bytes, verified, origin)),
                Err(kind) => kind,
            };
            tracing::info!(%origin, url, attempt, error = %kind, "collateral fetch failed");
            let retry_after = match &kind {
                FailureKind::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let step = retry.next_step(attempt, kind.is_transient(), retry_after);
            attempts.push(FetchFailure {
                origin,
                url: url.to_owned(),
                attempt,
                kind,
            });
            match step {
                NextStep::RetryAfter(delay) => tokio::time::sleep(delay).await,
                NextStep::GiveUp => return None,
            }
        }
    }

    /// One GET: status 200 and a body of at most [`MAX_ENTRY_BYTES`], within the timeout.
    async fn get(&self, url: &str) -> Result<Bytes, FailureKind> {
        let request = http::Request::get(url)
            .header(
                http::header::USER_AGENT,
                concat!("contrast-rs/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| FailureKind::Connect(e.to_string()))?;
        self.network_requests.fetch_add(1, Ordering::Relaxed);
        let timeout = self.config.timeout;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| FailureKind::Connect(error_chain(&e)))?;
            let status = response.status();
            if status != http::StatusCode::OK {
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| policy::retry_after(value, SystemTime::now()));
                return Err(FailureKind::Status {
                    status: status.as_u16(),
                    retry_after,
                });
            }
            match Limited::new(response.into_body(), MAX_ENTRY_BYTES)
                .collect()
                .await
            {
                Ok(body) => Ok(body.to_bytes()),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    Err(FailureKind::TooLarge {
                        limit: MAX_ENTRY_BYTES,
                    })
                }
                Err(error) => Err(FailureKind::Body(error.to_string())),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FailureKind::Timeout(timeout))?
    }
}

/// The VCEK verifies under the CA chain and certifies exactly the chip and TCB asked for.
fn verify_vcek(
    request: &CollateralRequest<'_>,
    anchor: &TrustAnchor,
    ask: &[u8],
    ark: &[u8],
    vcek: &[u8],
    now: UnixTime,
) -> Result<VerifiedChain, contrast_attest::Error> {
    let verified = chain::verify_chain(
        anchor,
        LeafKind::Vcek,
        &ChainCertificates {
            ark: Some(ark),
            intermediate: Some(ask),
            leaf: vcek,
        },
        now,
    )?;
    chain::check_binding(
        LeafKind::Vcek,
        verified.extensions(),
        request.product,
        SigningKey::Vcek,
        &request.reported_tcb.to_bytes(request.product),
        request.chip_id,
    )?;
    Ok(verified)
}

/// An error with its sources, `: `-separated (hyper's own message is only "client error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
