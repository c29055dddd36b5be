//! How the nonces travel: the client's in an ALPN entry, the server's as the CN of the single
//! acceptable-CA name of the CertificateRequest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use const_oid::db::rfc4519;
use der::asn1::{PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode};
use x509_cert::name::Name;

use super::cert::common_name;
use super::error::NonceError;
use super::{ALPN_NONCE_PREFIX, NONCE_LEN};

/// A 32-byte aTLS nonce.
pub type Nonce = [u8; NONCE_LEN];

/// The ALPN entry carrying the client nonce: `atls:v1:nonce:<lowercase hex>`.
#[must_use]
pub(crate) fn alpn_for_nonce(nonce: &Nonce) -> Vec<u8> {
    let mut out = ALPN_NONCE_PREFIX.as_bytes().to_vec();
    out.extend_from_slice(hex::encode(nonce).as_bytes());
    out
}

/// The client nonce from the offered ALPN protocols: the first entry starting with `atls` must
/// be `atls:v1:nonce:<64 lowercase hex>`; other entries are ignored.
///
/// # Errors
/// [`NonceError::NoAlpnNonce`], [`NonceError::MalformedAlpn`],
/// [`NonceError::UnsupportedVersion`], [`NonceError::BadHex`].
pub fn nonce_from_alpn<'a>(
    mut protocols: impl Iterator<Item = &'a [u8]>,
) -> Result<Nonce, NonceError> {
    let entry = protocols
        .find(|p| p.starts_with(b"atls"))
        .ok_or(NonceError::NoAlpnNonce)?;
    let text = String::from_utf8_lossy(entry);
    let malformed = || NonceError::MalformedAlpn {
        entry: text.to_string(),
    };
    let mut parts = text.splitn(4, ':');
    let (Some("atls"), Some(version), Some("nonce"), Some(hex_nonce)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if version != "v1" {
        return Err(NonceError::UnsupportedVersion {
            found: version.to_string(),
        });
    }
    let bad_hex = || NonceError::BadHex {
        found: hex_nonce.to_string(),
    };
    if hex_nonce.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad_hex());
    }
    let mut nonce = [0u8; NONCE_LEN];
    hex::decode_to_slice(hex_nonce, &mut nonce).map_err(|_| bad_hex())?;
    Ok(nonce)
}

/// The acceptable-CA name carrying the server nonce: the DER Name `CN = base64std(nonce)`.
///
/// # Errors
/// [`NonceError::MalformedCaHint`] if encoding fails (it does not for 32 bytes).
pub(crate) fn ca_hint_for_nonce(nonce: &Nonce) -> Result<Vec<u8>, NonceError> {
    let malformed = |e: der::Error| NonceError::MalformedCaHint {
        reason: e.to_string(),
    };
    common_name(&STANDARD.encode(nonce))
        .map_err(malformed)?
        .to_der()
        .map_err(malformed)
}

/// The server nonce from the CertificateRequest's acceptable-CA names: exactly one name whose
/// (first) CN is standard base64 of 32 bytes.
///
/// # Errors
/// [`NonceError::CaHintCount`], [`NonceError::MalformedCaHint`], [`NonceError::BadBase64`].
pub fn nonce_from_ca_hints(hints: &[&[u8]]) -> Result<Nonce, NonceError> {
    let [hint] = hints else {
        return Err(NonceError::CaHintCount { found: hints.len() });
    };
    let name = Name::from_der(hint).map_err(|e| NonceError::MalformedCaHint {
        reason: e.to_string(),
    })?;
    let value = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == rfc4519::CN)
        .ok_or_else(|| NonceError::MalformedCaHint {
            reason: "no common name".into(),
        })?;
    let cn = value
        .value
        .decode_as::<PrintableStringRef<'_>>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| {
            value
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .map_err(|e| NonceError::MalformedCaHint {
            reason: format!("common name is not a printable or utf-8 string: {e}"),
        })?;
    let bytes = STANDARD
        .decode(&cn)
        .map_err(|_| NonceError::BadBase64 { found: cn.clone() })?;
    Nonce::try_from(bytes.as_slice()).map_err(|_| NonceError::BadBase64 { found: cn })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NONCE: Nonce = [0xAB; 32];

    #[test]
    fn alpn_round_trip_skips_other_entries() {
        let entry = alpn_for_nonce(&NONCE);
        assert_eq!(
            entry,
            format!("atls:v1:nonce:{}", "ab".repeat(32)).into_bytes()
        );
        let offered: [&[u8]; 3] = [b"h2", &entry, b"atls:v2:nonce:00"];
        assert_eq!(nonce_from_alpn(offered.into_iter()), Ok(NONCE));
    }

    #[test]
    fn alpn_errors() {
        let cases: [(&[u8], NonceError); 5] = [
            (b"h2", NonceError::NoAlpnNonce),
            (
                b"atls:v2:nonce:00",
                NonceError::UnsupportedVersion { found: "v2".into() },
            ),
            (
                b"atls-v1",
                NonceError::MalformedAlpn {
                    entry: "atls-v1".into(),
                },
            ),
            (
                b"atls:v1:nonce:abcd",
                NonceError::BadHex {
                    found: "abcd".into(),
                },
            ),
            (
                b"atls:v1:nonce:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
                NonceError::BadHex {
                    found: "AB".repeat(32),
                },
            ),
        ];
        for (entry, expected) in cases {
            assert_eq!(nonce_from_alpn([entry].into_iter()), Err(expected));
        }
    }

    #[test]
    fn ca_hint_round_trip_and_encoding() {
        let hint = ca_hint_for_nonce(&NONCE).unwrap();
        // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, PrintableString "q6ur…" } } }
        assert_eq!(
            &hint[..11],
            &[
                0x30, 0x37, 0x31, 0x35, 0x30, 0x33, 0x06, 0x03, 0x55, 0x04, 0x03
            ]
        );
        assert_eq!(&hint[11..13], &[0x13, 44]);
        assert_eq!(&hint[13..], STANDARD.encode(NONCE).as_bytes());
        assert_eq!(nonce_from_ca_hints(&[&hint]), Ok(NONCE));
    }

    #[test]
    fn ca_hint_errors() {
        let hint = ca_hint_for_nonce(&NONCE).unwrap();
        assert_eq!(
            nonce_from_ca_hints(&[]),
            Err(NonceError::CaHintCount { found: 0 })
        );
        assert_eq!(
            nonce_from_ca_hints(&[&hint, &hint]),
            Err(NonceError::CaHintCount { found: 2 })
        );
        assert!(matches!(
            nonce_from_ca_hints(&[b"\x30\x01"]),
            Err(NonceError::MalformedCaHint { .. })
        ));
        let short = common_name("AAAA").unwrap().to_der().unwrap();
        assert_eq!(
            nonce_from_ca_hints(&[&short]),
            Err(NonceError::BadBase64 {
                found: "AAAA".into()
            })
        );
        let not_base64 = common_name("Contrast?").unwrap().to_der().unwrap();
        assert_eq!(
            nonce_from_ca_hints(&[&not_base64]),
            Err(NonceError::BadBase64 {
                found: "Contrast?".into()
            })
        );
    }
}
