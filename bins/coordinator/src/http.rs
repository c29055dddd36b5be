//! Serving plain HTTP/1.1 (the evidence API and the ops port): request limits and timeouts,
//! JSON bodies and error responses. The aTLS listeners speak gRPC (`contrast_grpc::server`).
//!
//! Every accepted connection gets its own task and lives at most the connection timeout, so a
//! stalled client costs a task and a socket for a bounded time and never blocks others; a
//! listener holds at most `Limits::max_connections` (`contrast_grpc::server::accept_loop`, as
//! the aTLS listeners).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use contrast_core::api::{ErrorCode, ErrorResponse};
use contrast_grpc::server::{Limits, accept_loop};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Response bodies are always complete JSON (or text for metrics).
pub(crate) type Response = http::Response<Full<Bytes>>;

/// The version every response names.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An API refusal: upstream's error code, the HTTP status and the explanation.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error whose status follows from its code.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// An error with an explicit status (413, 415, 404, 405 have no code of their own).
    pub(crate) fn with_status(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_argument`.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// 500 `internal`; the details go to the log, the caller gets the summary.
    pub(crate) fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{what}");
        Self::new(ErrorCode::Internal, format!("{what}: {error}"))
    }

    /// 404 for an unknown path.
    pub(crate) fn not_found(path: &str) -> Self {
        Self::with_status(
            StatusCode::NOT_FOUND,
            ErrorCode::InvalidArgument,
            format!("no endpoint {path}"),
        )
    }

    /// 405 for a known path with the wrong method.
    pub(crate) fn method_not_allowed(method: &http::Method, path: &str, allowed: &str) -> Self {
        Self::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidArgument,
            format!("{method} is not allowed on {path}; use {allowed}"),
        )
    }

    /// The JSON error response `{"version","status_code","code","error"}`.
    pub(crate) fn response(&self) -> Response {
        let body = ErrorResponse {
            version: VERSION.to_owned(),
            status_code: self.status.as_u16(),
            code: self.code.clone(),
            error: self.message.clone(),
        };
        json_with_status(self.status, &body)
    }
}

impl From<contrast_coordinator::Error> for ApiError {
    /// The core's refusal with its upstream code; internal failures are logged in full.
    fn from(error: contrast_coordinator::Error) -> Self {
        let code = error.code();
        if code == ErrorCode::Internal {
            tracing::error!(%error, "internal error");
        }
        Self::new(code, error.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

/// A response with `status` and the JSON `body`, already encoded.
pub(crate) fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 JSON response.
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    json_with_status(StatusCode::OK, value)
}

fn json_with_status<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_body(status, body),
        Err(error) => {
            tracing::error!(%error, "encoding a response");
            let mut response = http::Response::new(Full::new(Bytes::from_static(
                b"{\"code\":\"internal\",\"error\":\"encoding the response failed\",\"status_code\":500}",
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// A plain-text response (probes, metrics).
pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut response = http::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Reads a request body of at most `limit` bytes: 413 beyond it.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidArgument,
            format!("request body exceeds {limit} bytes"),
        )),
        Err(error) => Err(ApiError::invalid_argument(format!(
            "reading the request body: {error}"
        ))),
    }
}

/// Requires a `Content-Type` that parses to `application/json` (parameters such as `charset`
/// allowed): a malformed one is 400, another type 415, as upstream.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidArgument,
            "missing Content-Type; send application/json",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_argument("malformed Content-Type header"))?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, subtype)) if is_token(kind) && is_token(subtype) => {
            if kind.eq_ignore_ascii_case("application") && subtype.eq_ignore_ascii_case("json") {
                Ok(())
            } else {
                Err(ApiError::with_status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::InvalidArgument,
                    format!("Content-Type {essence} is not supported; send application/json"),
                ))
            }
        }
        _ => Err(ApiError::invalid_argument(format!(
            "malformed Content-Type {value:?}"
        ))),
    }
}

/// Reads a JSON request: content type, size limit, then the body as `T` (400 if it does not
/// parse, naming where).
pub(crate) async fn read_json<T: DeserializeOwned>(
    request: http::Request<Incoming>,
    limit: usize,
) -> Result<T, ApiError> {
    require_json(request.headers())?;
    let body = read_body(request.into_body(), limit).await?;
    serde_json::from_slice(&body)
        .map_err(|error| ApiError::invalid_argument(format!("malformed JSON body: {error}")))
}

/// A service behind a plain HTTP/1.1 listener.
pub(crate) trait PlainService: Send + Sync + 'static {
    /// The listener's name in logs.
    fn name(&self) -> &'static str;

    /// Answers one request.
    fn handle(
        self: Arc<Self>,
        request: http::Request<Incoming>,
    ) -> impl Future<Output = Response> + Send;
}

/// Accepts plain HTTP/1.1 connections until `shutdown` turns true; `on_refused` is called for
/// a connection closed at the connection cap.
pub(crate) async fn serve_plain<S: PlainService>(
    listener: TcpListener,
    service: Arc<S>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    on_refused: impl FnMut(SocketAddr),
) {
    let name = service.name();
    accept_loop(
        listener,
        name,
        limits.max_connections,
        shutdown,
        on_refused,
        |tcp, remote, slot| {
            let service = Arc::clone(&service);
            let http = http1_server(limits).serve_connection(
                TokioIo::new(tcp),
                hyper::service::service_fn(move |request| {
                    let service = Arc::clone(&service);
                    async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
                }),
            );
            tokio::spawn(slot.serve(name, remote, limits.connection_timeout, http, None));
        },
    )
    .await;
}

/// The HTTP/1.1 server of every listener: a client gets the handshake timeout to send each
/// request's headers.
pub(crate) fn http1_server(limits: Limits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn status(result: Result<(), ApiError>) -> Option<u16> {
        result.err().map(|e| e.status.as_u16())
    }

    #[test]
    fn content_type_rules() {
        assert_eq!(
            status(require_json(&headers(Some("application/json")))),
            None
        );
        assert_eq!(
            status(require_json(&headers(Some(
                "Application/JSON; charset=utf-8"
            )))),
            None
        );
        assert_eq!(
            status(require_json(&headers(Some("text/plain")))),
            Some(415)
        );
        assert_eq!(status(require_json(&headers(None))), Some(415));
        assert_eq!(status(require_json(&headers(Some("json")))), Some(400));
        assert_eq!(
            status(require_json(&headers(Some("application/")))),
            Some(400)
        );
    }

    #[test]
    fn error_response_carries_code_status_and_version() {
        let response = ApiError::from(contrast_coordinator::Error::NeedsRecovery).response();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        let too_large = ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidArgument,
            "x",
        );
        assert_eq!(too_large.response().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
