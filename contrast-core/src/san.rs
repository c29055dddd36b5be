//! Subject alternative names of a workload: how a `PolicyEntry.SANs` string is classified, and
//! which strings can become a usable SAN of a workload certificate.
//!
//! Classification (the one definition; `contrast-ca` issues certificates by it): an IP address
//! (v4 or v6) is an IP SAN; a string that starts with an RFC 3986 scheme (`ALPHA *( ALPHA /
//! DIGIT / "+" / "-" / "." ) ":"`) is a URI SAN; anything else, `*` included, a DNS SAN. The
//! workload certificate's common name is the first DNS SAN, so a policy needs one.
//!
//! [`check_san`] adds what the certificate needs, so a manifest that would fail every
//! initializer later is refused when it is set (see [`crate::manifest::validate`]):
//!
//! - not empty, and ASCII (a DNS or URI SAN is an `IA5String`);
//! - a DNS SAN is `*` (upstream's catch-all) or a host name: at most 253 characters, labels of
//!   1 to 63 characters from `A–Z a–z 0–9 - _`, not starting or ending with `-`, the first label
//!   optionally the wildcard `*`, and the last label not all digits (`10.0.0.256` is neither an
//!   IP address nor a host name);
//! - a URI SAN has something after the scheme's `:` and only characters RFC 3986 allows, with
//!   every `%` followed by two hex digits.

use std::net::IpAddr;

/// One classified subject alternative name. Exhaustive on purpose: whoever issues or checks
/// SANs must handle every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// `dNSName`.
    Dns(String),
    /// `iPAddress`.
    Ip(IpAddr),
    /// `uniformResourceIdentifier`.
    Uri(String),
}

impl San {
    /// The SAN's kind as a certificate names it: `DNS`, `IP` or `URI`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS",
            Self::Ip(_) => "IP",
            Self::Uri(_) => "URI",
        }
    }
}

/// Why a SAN string cannot become a SAN of a workload certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SanError {
    /// The empty string.
    #[error("expected a DNS name, IP address or URI, found an empty string")]
    Empty,
    /// Not ASCII: a DNS or URI SAN is an `IA5String`.
    #[error("{value:?} is not ASCII: a {kind} name in a certificate holds ASCII only")]
    NotAscii {
        /// The SAN.
        value: String,
        /// What it was classified as (`DNS` or `URI`).
        kind: &'static str,
    },
    /// Classified as a DNS name, but not a valid one.
    #[error("{value:?} is not a valid DNS name: {reason}")]
    InvalidDnsName {
        /// The SAN.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Classified as a URI (it starts with `scheme:`), but not a valid one.
    #[error("{value:?} is not a valid URI: {reason}")]
    InvalidUri {
        /// The SAN.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whether `s` starts with a URI scheme followed by `:`. Go's `url.Parse` finds a scheme exactly
/// then (it also rejects some such strings, e.g. with control characters or a bad percent escape;
/// those fall back to DNS names there, and control characters do here too).
fn has_uri_scheme(s: &str) -> bool {
    if s.bytes().any(|b| b.is_ascii_control()) {
        return false;
    }
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => {}
        _ => return false,
    }
    for b in bytes {
        match b {
            b':' => return true,
            b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') => {}
            _ => return false,
        }
    }
    false
}

/// Classifies one SAN string (see the [module docs](self)). Never fails: whether the result is
/// usable is [`check_san`]'s question.
#[must_use]
pub fn classify_san(value: &str) -> San {
    if let Ok(ip) = value.parse::<IpAddr>() {
        San::Ip(ip)
    } else if has_uri_scheme(value) {
        San::Uri(value.to_owned())
    } else {
        San::Dns(value.to_owned())
    }
}

/// Classifies `value` and checks that it can be a SAN of a workload certificate (see the
/// [module docs](self)).
///
/// # Errors
/// [`SanError`] naming the SAN and what is wrong with it.
pub fn check_san(value: &str) -> Result<San, SanError> {
    if value.is_empty() {
        return Err(SanError::Empty);
    }
    let san = classify_san(value);
    if !value.is_ascii() {
        return Err(SanError::NotAscii {
            value: value.to_owned(),
            kind: san.kind(),
        });
    }
    let problem = match &san {
        San::Ip(_) => None,
        San::Dns(name) => dns_name_problem(name).map(|reason| SanError::InvalidDnsName {
            value: value.to_owned(),
            reason,
        }),
        San::Uri(uri) => uri_problem(uri).map(|reason| SanError::InvalidUri {
            value: value.to_owned(),
            reason,
        }),
    };
    problem.map_or(Ok(san), Err)
}

/// Longest DNS name in presentation form (RFC 1035, without the trailing dot).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label.
const MAX_DNS_LABEL: usize = 63;

/// What is wrong with an ASCII DNS name, if anything.
fn dns_name_problem(name: &str) -> Option<String> {
    if name == "*" {
        return None;
    }
    if name.len() > MAX_DNS_NAME {
        return Some(format!(
            "{} characters, at most {MAX_DNS_NAME} allowed",
            name.len()
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (index, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Some("empty label (a leading, trailing or doubled dot)".into());
        }
        if *label == "*" {
            if index == 0 && labels.len() > 1 {
                continue;
            }
            return Some("the wildcard * is allowed only as the whole first label".into());
        }
        if label.len() > MAX_DNS_LABEL {
            return Some(format!(
                "label {label:?} has {} characters, at most {MAX_DNS_LABEL} allowed",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Some(format!(
                "label {label:?} contains {c:?}; labels hold letters, digits, - and _"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label:?} starts or ends with -"));
        }
    }
    if labels
        .last()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(
            "the last label is all digits: it is neither an IP address nor a host name".into(),
        );
    }
    None
}

/// What is wrong with an ASCII string that starts with a URI scheme, if anything.
fn uri_problem(uri: &str) -> Option<String> {
    let rest = uri.split_once(':').map_or("", |(_, rest)| rest);
    if rest.is_empty() {
        return Some("nothing follows the scheme".into());
    }
    let bytes = uri.as_bytes();
    let mut index = 0;
    while let Some(&b) = bytes.get(index) {
        if b == b'%' {
            let escape = bytes.get(index + 1..index + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return Some(format!(
                    "% at offset {index} is not followed by two hex digits"
                ));
            }
            index += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if !allowed {
            return Some(format!(
                "contains {:?}, which a URI may not hold unescaped",
                char::from(b)
            ));
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_check() {
        assert!(has_uri_scheme("https://x"));
        assert!(has_uri_scheme("spiffe://a/b"));
        assert!(has_uri_scheme("a+b-c.d:"));
        assert!(has_uri_scheme("localhost:8080"));
        assert!(!has_uri_scheme("web"));
        assert!(!has_uri_scheme(":x"));
        assert!(!has_uri_scheme("1http://x"));
        assert!(!has_uri_scheme("we b:x"));
        assert!(!has_uri_scheme("a#b:c"));
        assert!(!has_uri_scheme("http://x\n"));
        assert!(!has_uri_scheme(""));
    }
}
