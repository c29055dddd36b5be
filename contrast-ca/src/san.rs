//! Subject alternative names of a workload certificate.
//!
//! Each `PolicyEntry.SANs` string is classified in order: an IP address (v4 or v6) becomes an IP
//! SAN; a string that starts with an RFC 3986 scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
//! ":"`) becomes a URI SAN; anything else, `*` included, a DNS SAN. The extension lists all DNS
//! names, then all IPs, then all URIs (Go's order), each group in input order; the common name is
//! the first DNS name.

use std::net::IpAddr;

use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{CaError, encoding};

/// One classified subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum San {
    /// `dNSName`.
    Dns(String),
    /// `iPAddress`.
    Ip(IpAddr),
    /// `uniformResourceIdentifier`.
    Uri(String),
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

/// Classifies one SAN string.
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

/// The SANs of a leaf, grouped as the certificate lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassifiedSans {
    /// DNS names in input order; the first is the common name.
    pub dns: Vec<String>,
    /// IP addresses in input order.
    pub ips: Vec<IpAddr>,
    /// URIs in input order.
    pub uris: Vec<String>,
}

impl ClassifiedSans {
    /// Classifies every SAN in order.
    #[must_use]
    pub fn classify(sans: &[String]) -> Self {
        let mut out = Self::default();
        for san in sans {
            match classify_san(san) {
                San::Dns(d) => out.dns.push(d),
                San::Ip(ip) => out.ips.push(ip),
                San::Uri(u) => out.uris.push(u),
            }
        }
        out
    }

    /// The common name: the first DNS name.
    ///
    /// # Errors
    /// [`CaError::NoDnsSan`] when there is none.
    pub fn common_name(&self) -> Result<&str, CaError> {
        self.dns
            .first()
            .map(String::as_str)
            .ok_or(CaError::NoDnsSan {
                count: self.ips.len() + self.uris.len(),
            })
    }

    /// The SubjectAltName extension value: DNS names, then IPs (IPv4 and IPv4-mapped IPv6 as 4
    /// bytes, as Go's `To4`), then URIs.
    pub(crate) fn to_extension_value(&self) -> Result<SubjectAltName, CaError> {
        let ia5 = |value: &String, kind: &'static str| {
            Ia5String::new(value).map_err(|_| CaError::NonAsciiSan {
                value: value.clone(),
                kind,
            })
        };
        let mut names = Vec::with_capacity(self.dns.len() + self.ips.len() + self.uris.len());
        for dns in &self.dns {
            names.push(GeneralName::DnsName(ia5(dns, "DNS")?));
        }
        for ip in &self.ips {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => v4.octets().to_vec(),
                    None => v6.octets().to_vec(),
                },
            };
            names.push(GeneralName::IpAddress(
                OctetString::new(bytes).map_err(encoding("IP SAN"))?,
            ));
        }
        for uri in &self.uris {
            names.push(GeneralName::UniformResourceIdentifier(ia5(uri, "URI")?));
        }
        Ok(SubjectAltName(names))
    }
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
