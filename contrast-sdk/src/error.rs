//! The client's error: which stage failed, against which Coordinator, and why.

use std::sync::Arc;
use std::time::Duration;

use contrast_core::api::ErrorCode;

use contrast_attest::atls::AtlsError;

/// Why a call to the Coordinator failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The host name did not resolve (or the address is not `host:port`). Final: the name or
    /// the DNS has to change first.
    #[error("cannot resolve the coordinator address {addr}: {source}")]
    Resolve {
        /// The address, `host:port`.
        addr: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection could not be opened (refused, unreachable).
    #[error("cannot connect to the coordinator at {addr}: {source}")]
    Connect {
        /// The address, `host:port`.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A stage did not finish in time.
    #[error("the coordinator at {addr} did not complete the {stage} within {after:?}")]
    Timeout {
        /// The address, `host:port`.
        addr: String,
        /// `"connect"`, `"handshake"` or `"request"`.
        stage: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// Our validator refused the server's attestation: the failed check with expected and found
    /// values. Shared with the connection's [`contrast_attest::PeerSlot`], hence the `Arc`.
    #[error("the coordinator at {addr} failed attestation: {source}")]
    Attestation {
        /// The address, `host:port`.
        addr: String,
        /// The check that failed.
        #[source]
        source: Arc<AtlsError>,
    },
    /// The server at this address does not speak TLS (e.g. a plain HTTP port such as a
    /// Coordinator's evidence API or probes). Final: the address names the wrong service.
    #[error("the server at {addr} does not speak TLS: {reason}")]
    NotTls {
        /// The address, `host:port`.
        addr: String,
        /// What the TLS library saw.
        reason: String,
    },
    /// The TLS handshake failed for another reason (e.g. the server refused us, or closed the
    /// connection, as a Coordinator in recovery mode does on the mesh API).
    #[error("tls handshake with the coordinator at {addr} failed: {reason}")]
    Handshake {
        /// The address, `host:port`.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the call: its gRPC status code (upstream's), our fine-grained
    /// [`ErrorCode`] (from the `contrast-error-code` metadata; from the gRPC code alone for a
    /// server that does not send it) and its message.
    #[error("the coordinator at {addr} refused {method} with {status:?} ({code}): {message}")]
    Api {
        /// The address, `host:port`.
        addr: String,
        /// The full gRPC method name.
        method: &'static str,
        /// The gRPC status code.
        status: tonic::Code,
        /// The Coordinator's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The evidence API (`/attest`, plain HTTP) answered with an error: its HTTP status and
    /// upstream's error body (`{"version", "error", "status_code"}`). A body that is not one
    /// (e.g. from a proxy) gets the code `ErrorCode::Other("http_<status>")` and the start of
    /// the body as its message.
    #[error("the coordinator at {addr} refused {path} with status {status} ({code}): {message}")]
    Evidence {
        /// The address, `host:port`.
        addr: String,
        /// The request path.
        path: &'static str,
        /// The HTTP status.
        status: u16,
        /// The Coordinator's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The gRPC exchange failed after the handshake (connection reset, protocol violation,
    /// oversized response).
    #[error("grpc exchange with the coordinator at {addr} failed: {reason}")]
    Protocol {
        /// The address, `host:port`.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// A response that is not what was expected.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// The type that was expected.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl ClientError {
    /// Whether the same call may succeed later without the caller changing anything: the
    /// Coordinator is unreachable, slow, refused the handshake (starting, or in recovery
    /// mode), the connection broke, or it answered with a state another party resolves
    /// (`needs_recovery`, `no_manifest`) or `Unavailable`.
    /// A name that does not resolve, a server that does not speak TLS, a failed attestation, a
    /// refusal (`permission_denied`, `invalid_argument`, a service the server does not
    /// implement, ...) and an undecodable response are final.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Handshake { .. }
            | Self::Protocol { .. } => true,
            Self::Api { status, code, .. } => {
                matches!(code, ErrorCode::NeedsRecovery | ErrorCode::NoManifest)
                    || *status == tonic::Code::Unavailable
            }
            Self::Evidence { status, code, .. } => {
                matches!(code, ErrorCode::NeedsRecovery | ErrorCode::NoManifest)
                    || matches!(status, 502..=504)
            }
            Self::Resolve { .. }
            | Self::NotTls { .. }
            | Self::Attestation { .. }
            | Self::Decode { .. } => false,
        }
    }

    /// The Coordinator's state, in words, when it refused because it is not serving yet: no
    /// manifest is set, or it restarted and waits for its seed. For logs of callers that wait.
    #[must_use]
    pub fn coordinator_not_ready(&self) -> Option<&'static str> {
        match self.api_code()? {
            ErrorCode::NoManifest => {
                Some("the coordinator has no manifest yet; `contrast set` sets the first one")
            }
            ErrorCode::NeedsRecovery => Some(
                "the coordinator restarted and waits for its seed; a ready peer recovers it, or \
                 a seed-share owner runs `contrast recover`",
            ),
            _ => None,
        }
    }

    /// The server's error code, for an [`ClientError::Api`] or [`ClientError::Evidence`]
    /// error.
    #[must_use]
    pub fn api_code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Api { code, .. } | Self::Evidence { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The gRPC status code, for an [`ClientError::Api`] error.
    #[must_use]
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
