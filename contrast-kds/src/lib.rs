//! SEV-SNP collateral for contrast-rs: the VCEK of a chip at its TCB, the product's CA chain and
//! the ARK-signed CRL, from AMD's Key Distribution Service, through a collateral proxy, and
//! from an on-disk cache.
//!
//! The order, per item: the [`DiskCache`] (a copy that verifies now; a CRL only until its
//! nextUpdate), then the collateral proxy (upstream's URL rewrite, [`policy::proxied_url`];
//! after [`ClientConfig::proxy_attempts`] failed attempts it is skipped for
//! [`ClientConfig::proxy_cooldown`]), then the KDS. Each source gets attempts with backoff on
//! 429, 5xx, timeouts and connection failures, honouring `Retry-After`
//! ([`policy::RetryPolicy`]); an answer that does not verify ends that source.
//!
//! **Nothing is trusted for being fetched or cached.** Every answer is verified before it is
//! used or written to the cache: the CA chain against the pinned ARK
//! (`contrast_attest::chain::verify_issuers`), the VCEK under it and for exactly the chip and
//! TCB asked ([`chain::check_binding`](contrast_attest::chain::check_binding)), the CRL's
//! signature, issuer and freshness. A cache entry that does not verify is ignored and replaced.
//! A verifier reading the cache ([`DiskCache`] is a
//! [`CollateralSource`](contrast_attest::collateral::CollateralSource)) checks it again as
//! evidence.
//!
//! Every failure says which item, which source, which URL and what happened
//! ([`KdsError::Unavailable`] lists the attempts).
//!
//! For verifiers without network access, [`import`] fills a cache from files (a `cert_chain`,
//! VCEKs, a CRL), verified the same way, and the cache directory is copied to the verifier.
//!
//! Time: certificate and CRL validity use the `now` the caller passes; backoff sleeps and the
//! proxy cooldown use tokio's clock.
#![forbid(unsafe_code)]

pub mod cache;
mod client;
mod error;
mod import;
pub mod policy;

pub use cache::{CacheEntry, DiskCache};
pub use client::{ClientConfig, Collateral, CollateralClient, Origins};
pub use error::{ConfigError, FailureKind, FetchFailure, Item, KdsError, Origin};
pub use import::{ImportError, Imported, import};
