//! Talking to a Coordinator's user API: the attested client, the retry loop with progress, and
//! turning a client error into the command's error. Shared by `set`, `verify` and `recover`.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use contrast_attest::AtlsClient;
use contrast_attest::atls::{AtlsKey, VerifiedPeer};
use contrast_core::api::{ErrorCode, USER_API_PORT, coordinator_port_role};
use contrast_core::duration::parse_duration;
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

/// The flags of every command that talks to a Coordinator.
// The doc comments of these flags are their `--help` text, written for a terminal: `[:PORT]` is
// meant literally, not as an intra-doc link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// The Coordinator's user API, HOST[:PORT]; the port defaults to 1313.
    #[arg(short = 'c', long, value_name = "HOST[:PORT]", value_parser = user_api_address)]
    pub coordinator: String,
    /// How long to wait while the Coordinator is starting or recovering, e.g. 30s or 3m; what
    /// waiting cannot fix (a host that does not resolve, a port that is not the user API, a
    /// refused attestation) ends the command at once.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parses `--coordinator`: `HOST[:PORT]`, the port defaulting to the user API's (1313). A URL,
/// a path or a bad port is a usage error that says what to type instead.
pub fn user_api_address(input: &str) -> Result<String, String> {
    contrast_sdk::coordinator_address(input, USER_API_PORT).map_err(|error| error.to_string())
}

/// Whether a failed call may succeed if tried again unchanged: what the SDK deems transient,
/// except "no manifest yet", which no command here waits for (`set` asks for it itself).
fn worth_retrying(error: &ClientError) -> bool {
    error.is_retryable() && error.api_code() != Some(&ErrorCode::NoManifest)
}

/// What a retry waits for, in words.
fn waiting_for(error: &ClientError) -> String {
    match error {
        ClientError::Connect { source, .. } => {
            format!("not reachable yet ({source}); it may be starting")
        }
        ClientError::Timeout { stage, .. } => format!("no answer to the {stage} yet"),
        other => other
            .coordinator_not_ready()
            .map_or_else(|| other.to_string(), str::to_owned),
    }
}

/// Calls `call` until it succeeds, fails finally, or `timeout` has passed, retrying transient
/// errors (see [`worth_retrying`]) every second. Progress goes to stderr (a spinner on a
/// terminal).
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
            Err(error) if worth_retrying(&error) && started.elapsed() < timeout => {
                attempt += 1;
                let reason = waiting_for(&error);
                if terminal {
                    let frame = SPINNER.get(attempt % SPINNER.len()).copied().unwrap_or('.');
                    eprint!("\r\x1b[2K{frame} {what}: waiting for the coordinator: {reason}");
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("{what}: attempt {attempt} failed, retrying in 1s: {reason}");
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

/// Turns a client error into the command's error: the error once, then what to do. A refused
/// attestation exits with [`ExitStatus::AttestationRefused`] and names the failed check.
pub fn client_failure(error: ClientError, addr: &str) -> anyhow::Error {
    if let ClientError::Attestation { source, .. } = &error {
        return Failure {
            status: ExitStatus::AttestationRefused,
            message: format!(
                "the coordinator at {addr} failed attestation against the manifest's reference \
                 values: {source}\nit is not the Coordinator the manifest describes: check the \
                 address, and --reference-values of `contrast generate`"
            ),
        }
        .into();
    }
    let wrong_service = || {
        let port = addr
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok());
        let role = port.and_then(|port| coordinator_port_role(port).map(|role| (port, role)));
        match role {
            Some((port, role)) if port != USER_API_PORT => format!(
                "port {port} is the Coordinator's {role}; the user API is port {USER_API_PORT}: \
                 use -c HOST:{USER_API_PORT}"
            ),
            _ => format!(
                "this address does not serve the Coordinator's user API; check the host and \
                 the port (the user API is port {USER_API_PORT})"
            ),
        }
    };
    let hint = match &error {
        ClientError::Resolve { .. } => {
            "check the host name, or give the Coordinator's IP address (e.g. the coordinator \
             Service's external IP from `kubectl get svc`)"
                .to_owned()
        }
        ClientError::NotTls { .. } => wrong_service(),
        ClientError::Api {
            status: tonic::Code::Unimplemented,
            ..
        } => wrong_service(),
        _ => match error.api_code() {
            Some(ErrorCode::NoManifest) => {
                "no manifest is set yet: run `contrast set` first".into()
            }
            Some(ErrorCode::NeedsRecovery) => {
                "it restarted and waits for its seed: run `contrast recover`".into()
            }
            Some(ErrorCode::PermissionDenied) => {
                "it refused our key: use an owner key the manifest in force names".into()
            }
            Some(_) => "it refused the request (its message says why)".into(),
            None if worth_retrying(&error) => {
                "check that it runs and is reachable, or raise --timeout".into()
            }
            None => "check the address and that it is a Contrast Coordinator".into(),
        },
    };
    Failure {
        status: ExitStatus::Error,
        message: format!("{error}\n{hint}"),
    }
    .into()
}

/// What the Coordinator proved in its handshake, for a command's output: the people's text
/// (full values, so they can be compared with or copied into a manifest) and the JSON object.
pub fn attested_summary(
    peer: &VerifiedPeer,
    manifest: &ManifestDocument,
) -> (String, serde_json::Value) {
    let Some(attested) = &peer.attestation else {
        return (
            "  the coordinator was not attested\n".to_owned(),
            serde_json::Value::Null,
        );
    };
    let platform = manifest
        .manifest()
        .reference_values
        .snp
        .get(attested.matched_index)
        .map_or("SEV-SNP", |entry| entry.platform.as_str());
    let measurement = hex::encode(attested.measurement);
    let chip_id = hex::encode(attested.chip_id);
    let host_data = hex::encode(attested.host_data);
    let human = format!(
        "  attested: {platform} on {product} ({leaf}), reference values entry {index}\n    \
         measurement  {measurement}\n    \
         reported TCB {tcb}\n    \
         chip ID      {chip_id}\n    \
         policy hash  {host_data} (HOST_DATA: the coordinator's policy)\n",
        product = attested.product.name(),
        leaf = attested.leaf_kind,
        index = attested.matched_index,
        tcb = attested.reported_tcb,
    );
    let json = serde_json::json!({
        "platform": platform,
        "product": attested.product.name(),
        "signing_key": attested.leaf_kind.to_string(),
        "reference_values_index": attested.matched_index,
        "measurement": measurement,
        "reported_tcb": attested.reported_tcb.to_dotted(),
        "launch_tcb": attested.launch_tcb.to_dotted(),
        "chip_id": chip_id,
        "host_data": host_data,
    });
    (human, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: ClientError, addr: &str) -> String {
        client_failure(error, addr).to_string()
    }

    #[test]
    fn another_coordinator_port_is_named_with_the_user_api_port() {
        let text = message(
            ClientError::Api {
                addr: "10.0.0.1:7777".into(),
                method: "/edgelesssys.contrast.userapi.UserAPI/GetManifests",
                status: tonic::Code::Unimplemented,
                code: ErrorCode::Other("unimplemented".into()),
                message: String::new(),
            },
            "10.0.0.1:7777",
        );
        assert!(
            text.contains(
                "port 7777 is the Coordinator's mesh API, which initializers use (gRPC over \
                 mutual attested TLS); the user API is port 1313: use -c HOST:1313"
            ),
            "{text}"
        );
        let text = message(
            ClientError::NotTls {
                addr: "10.0.0.1:9102".into(),
                reason: "received corrupt message".into(),
            },
            "10.0.0.1:9102",
        );
        assert!(
            text.contains("port 9102 is the Coordinator's probe and metrics port (plain HTTP)"),
            "{text}"
        );
        let text = message(
            ClientError::NotTls {
                addr: "10.0.0.1:8080".into(),
                reason: "received corrupt message".into(),
            },
            "10.0.0.1:8080",
        );
        assert!(
            text.contains("this address does not serve the Coordinator's user API"),
            "{text}"
        );
    }

    #[test]
    fn only_what_can_change_is_retried() {
        let api = |code: ErrorCode, status| ClientError::Api {
            addr: "h:1313".into(),
            method: "m",
            status,
            code,
            message: String::new(),
        };
        assert!(worth_retrying(&api(
            ErrorCode::NeedsRecovery,
            tonic::Code::FailedPrecondition
        )));
        assert!(!worth_retrying(&api(
            ErrorCode::NoManifest,
            tonic::Code::FailedPrecondition
        )));
        assert!(!worth_retrying(&api(
            ErrorCode::Other("unimplemented".into()),
            tonic::Code::Unimplemented
        )));
        assert!(worth_retrying(&ClientError::Connect {
            addr: "h:1313".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        }));
        assert!(!worth_retrying(&ClientError::Resolve {
            addr: "h:1313".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }));
    }
}
