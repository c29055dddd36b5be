//! Subject alternative names of a workload certificate.
//!
//! Each `PolicyEntry.SANs` string is classified in order by [`contrast_core::san`]: an IP
//! address (v4 or v6) becomes an IP SAN; a string that starts with an RFC 3986 scheme becomes a
//! URI SAN; anything else, `*` included, a DNS SAN. The extension lists all DNS
//! names, then all IPs, then all URIs (Go's order), each group in input order; the common name is
//! the first DNS name.

use std::net::IpAddr;

use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{CaError, encoding};

/// The classification is contrast-core's, the one definition that manifest validation uses too.
pub use contrast_core::san::{San, classify_san};

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
