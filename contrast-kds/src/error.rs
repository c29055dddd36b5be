//! Errors of the collateral client: each says which item, which source, which URL and what
//! happened.

use std::fmt;
use std::time::Duration;

use contrast_attest::Product;

/// A configuration value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?}: {reason}")]
pub struct ConfigError {
    /// What was configured (e.g. "the collateral proxy").
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// Why it cannot be used.
    pub reason: &'static str,
}

/// Where collateral came from, or was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The on-disk cache.
    Cache,
    /// The collateral proxy.
    Proxy,
    /// AMD's Key Distribution Service (or the base URL configured for it).
    Kds,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cache => "cache",
            Self::Proxy => "collateral proxy",
            Self::Kds => "KDS",
        })
    }
}

/// A piece of collateral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Item {
    /// The chip's VCEK for its reported TCB.
    Vcek,
    /// The product's CA chain (ASK or ASVK, then ARK).
    CertChain,
    /// The ARK-signed CRL.
    Crl,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vcek => "VCEK",
            Self::CertChain => "CA chain",
            Self::Crl => "CRL",
        })
    }
}

/// What went wrong in one attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailureKind {
    /// The server answered with a status other than 200.
    #[error("HTTP {status}{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// What `Retry-After` asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// No complete answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed (DNS, TCP, TLS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The body is larger than any collateral.
    #[error("the answer exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Reading the body failed.
    #[error("reading the answer failed: {0}")]
    Body(String),
    /// The answer arrived but does not verify (garbage, wrong key, stale CRL, other chip).
    #[error("the answer does not verify: {0}")]
    Invalid(contrast_attest::Error),
}

impl FailureKind {
    /// Whether another attempt at the same source may succeed (429, 5xx, timeouts, connection
    /// failures).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Timeout(_) | Self::Connect(_) | Self::Body(_) => true,
            Self::TooLarge { .. } | Self::Invalid(_) => false,
        }
    }
}

/// One failed attempt: where, which URL, what happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin} {url} (attempt {attempt}): {kind}")]
pub struct FetchFailure {
    /// The source asked.
    pub origin: Origin,
    /// The URL (or cache path) asked.
    pub url: String,
    /// 1-based attempt at this source.
    pub attempt: u32,
    /// What happened.
    pub kind: FailureKind,
}

/// Why the client could not provide collateral.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KdsError {
    /// Every source failed; the attempts in order.
    #[error("could not get the {item} for {}: {}", product.name(), Attempts(attempts))]
    Unavailable {
        /// What was needed.
        item: Item,
        /// For which product.
        product: Product,
        /// Every failed attempt, in order.
        attempts: Vec<FetchFailure>,
    },
    /// The KDS hands VLEKs only to cloud providers: a VLEK must come with the evidence.
    #[error("a VLEK cannot be fetched from the KDS; it must come with the evidence")]
    VlekNotFetchable,
    /// A configuration value cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTPS client could not be built.
    #[error("could not set up the HTTPS client: {0}")]
    Tls(String),
}

struct Attempts<'a>(&'a [FetchFailure]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no source is configured");
        }
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}
