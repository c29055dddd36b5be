//! Talking to a Coordinator's user API: the attested client, the retry loop with progress, and
//! turning a client error into the command's error. Shared by `set`, `verify` and `recover`.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use contrast_attest::AtlsClient;
use contrast_attest::atls::AtlsKey;
use contrast_core::api::ErrorCode;
use contrast_core::manifest::ManifestDocument;
use contrast_sdk::{ClientError, CoordinatorClient, coordinator_validator};

use crate::{ExitStatus, Failure};

/// Default of `--timeout`.
pub const DEFAULT_TIMEOUT: &str = "180s";

/// A client of the Coordinator at `addr` that attests it against `manifest` and presents `key`.
pub fn attested_client(
    addr: &str,
    manifest: &ManifestDocument,
    key: Option<AtlsKey>,
) -> anyhow::Result<CoordinatorClient> {
    let validator = coordinator_validator(manifest.manifest()).context(
        "the manifest cannot attest the Coordinator; regenerate it with --reference-values",
    )?;
    let mut atls = AtlsClient::new(validator);
    if let Some(key) = key {
        atls = atls.with_key(Arc::new(key));
    }
    Ok(CoordinatorClient::new(addr, atls))
}

/// A runtime for the client's calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// Calls `call` until it succeeds, fails finally, or `timeout` has passed, retrying retryable
/// errors every second. Progress goes to stderr (a spinner on a terminal).
pub async fn with_retries<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut call: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut attempt = 0usize;
    loop {
        match call().await {
            Ok(value) => {
                if terminal && attempt > 0 {
                    eprint!("\r\x1b[2K");
                }
                return Ok(value);
            }
            Err(error) if error.is_retryable() && started.elapsed() < timeout => {
                attempt += 1;
                if terminal {
                    let frame = SPINNER.get(attempt % SPINNER.len()).copied().unwrap_or('.');
                    eprint!("\r\x1b[2K{frame} {what}: waiting for the coordinator ({error})");
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("{what}: attempt {attempt} failed, retrying in 1s: {error}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                if terminal && attempt > 0 {
                    eprintln!();
                }
                return Err(error);
            }
        }
    }
}

/// Turns a client error into the command's error: a refused attestation exits with
/// [`ExitStatus::AttestationRefused`] and names the failed check.
pub fn client_failure(error: ClientError, addr: &str) -> anyhow::Error {
    match &error {
        ClientError::Attestation { source, .. } => Failure {
            status: ExitStatus::AttestationRefused,
            message: format!(
                "the coordinator at {addr} failed attestation against the manifest's reference \
                 values: {source}; it is not the Coordinator the manifest describes (check \
                 --reference-values of `contrast generate` and the address)"
            ),
        }
        .into(),
        _ => {
            let hint = match error.api_code() {
                Some(ErrorCode::NoManifest) => "no manifest is set yet; run `contrast set` first",
                Some(ErrorCode::NeedsRecovery) => {
                    "it restarted and waits for its seed; run `contrast recover`"
                }
                Some(ErrorCode::PermissionDenied) => {
                    "it refused our key; use an owner key the manifest in force names"
                }
                Some(_) => "it refused the request",
                None => "check that it runs and is reachable, or raise --timeout",
            };
            anyhow::Error::new(error).context(format!(
                "the call to the coordinator at {addr} failed: {hint}"
            ))
        }
    }
}
