//! A Coordinator's address as a user types it: `HOST[:PORT]`, with the port defaulted, and the
//! mistakes that can never work (a URL scheme, a path, a bad port) refused at once with the
//! form that would.

/// Why an address was refused. Each message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing was given.
    #[error(
        "the coordinator address is empty; give HOST or HOST:PORT, e.g. 127.0.0.1:{default_port}"
    )]
    Empty {
        /// The port that would be used without one.
        default_port: u16,
    },
    /// A URL was given: the Coordinator's APIs are gRPC over attested TLS, addressed by host
    /// and port only.
    #[error(
        "{input:?} is a URL ({scheme}://); the coordinator address is HOST[:PORT] without a \
         scheme (the API speaks attested TLS, not {scheme}): use {suggestion}"
    )]
    Scheme {
        /// What was given.
        input: String,
        /// The scheme found.
        scheme: String,
        /// The address without scheme and path.
        suggestion: String,
    },
    /// A path follows the host and port.
    #[error("{input:?} has a path; the coordinator address is HOST[:PORT] only: use {suggestion}")]
    Path {
        /// What was given.
        input: String,
        /// The address without the path.
        suggestion: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("{input:?}: the port {port:?} is not a number from 1 to 65535")]
    Port {
        /// What was given.
        input: String,
        /// The port text found.
        port: String,
    },
}

/// Parses `input` as `HOST[:PORT]` (an IPv6 host in brackets, `[::1]:1313`; a bare IPv6
/// address is taken as a host) and returns `host:port`, with `default_port` when none is given.
///
/// # Errors
/// [`AddressError`] for an empty input, a URL scheme, a path or an invalid port.
pub fn coordinator_address(input: &str, default_port: u16) -> Result<String, AddressError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(AddressError::Empty { default_port });
    }
    if let Some((scheme, rest)) = trimmed.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let suggestion = coordinator_address(authority, default_port)
            .unwrap_or_else(|_| format!("HOST:{default_port}"));
        return Err(AddressError::Scheme {
            input: input.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
            suggestion,
        });
    }
    if let Some((authority, _path)) = trimmed.split_once('/') {
        let suggestion = coordinator_address(authority, default_port)
            .unwrap_or_else(|_| format!("HOST:{default_port}"));
        return Err(AddressError::Path {
            input: input.to_owned(),
            suggestion,
        });
    }
    let (host, port) = split_host_port(trimmed);
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(AddressError::Port {
                    input: input.to_owned(),
                    port: text.to_owned(),
                });
            }
        },
    };
    if host.contains(':') {
        Ok(format!("[{host}]:{port}"))
    } else {
        Ok(format!("{host}:{port}"))
    }
}

/// Splits `HOST[:PORT]`; the host loses IPv6 brackets. A bare IPv6 address has no port.
fn split_host_port(address: &str) -> (&str, Option<&str>) {
    if let Some(rest) = address.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match address.matches(':').count() {
        1 => address
            .split_once(':')
            .map_or((address, None), |(host, port)| (host, Some(port))),
        _ => (address, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_the_port_and_keeps_a_given_one() {
        assert_eq!(
            coordinator_address("127.0.0.1", 1313).unwrap(),
            "127.0.0.1:1313"
        );
        assert_eq!(
            coordinator_address(" coordinator ", 1313).unwrap(),
            "coordinator:1313"
        );
        assert_eq!(coordinator_address("host:7777", 1313).unwrap(), "host:7777");
        assert_eq!(coordinator_address("[::1]:1", 1313).unwrap(), "[::1]:1");
        assert_eq!(coordinator_address("[::1]", 1313).unwrap(), "[::1]:1313");
        assert_eq!(coordinator_address("::1", 1313).unwrap(), "[::1]:1313");
    }

    #[test]
    fn refuses_what_can_never_connect_with_the_form_that_would() {
        assert_eq!(
            coordinator_address("http://10.0.0.1:1313/", 1313),
            Err(AddressError::Scheme {
                input: "http://10.0.0.1:1313/".into(),
                scheme: "http".into(),
                suggestion: "10.0.0.1:1313".into(),
            })
        );
        let https = coordinator_address("HTTPS://coordinator", 1313).unwrap_err();
        assert!(
            https.to_string().contains("use coordinator:1313"),
            "{https}"
        );
        assert_eq!(
            coordinator_address("host:1313/api", 1313),
            Err(AddressError::Path {
                input: "host:1313/api".into(),
                suggestion: "host:1313".into(),
            })
        );
        for port in ["0", "65536", "x", ""] {
            assert_eq!(
                coordinator_address(&format!("host:{port}"), 1313),
                Err(AddressError::Port {
                    input: format!("host:{port}"),
                    port: port.into(),
                }),
                "{port}"
            );
        }
        assert_eq!(
            coordinator_address("  ", 1313),
            Err(AddressError::Empty { default_port: 1313 })
        );
    }
}
