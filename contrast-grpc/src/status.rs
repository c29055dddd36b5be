//! The one mapping between the Coordinator's error codes ([`ErrorCode`]) and gRPC status codes.
//!
//! Upstream's Coordinator answers with plain gRPC codes (reference table in
//! `contrast-wire.md` §1.5 and §2.3): a refused caller gets `PermissionDenied`, a malformed
//! request `InvalidArgument`, every state rule (stale, no manifest, already recovered, lost
//! compare-and-swap) `FailedPrecondition`. Ours does the same, with a message that says what was
//! checked, and additionally names the fine-grained code in the response metadata key
//! [`ERROR_CODE_METADATA`] so that our clients can still tell `needs_recovery` from
//! `manifest_conflict`; upstream's clients ignore the key.
//!
//! | situation | our code | gRPC code |
//! |---|---|---|
//! | stale / restarted (`coordinator is in recovery mode`) | `needs_recovery` | FailedPrecondition |
//! | no manifest yet; `Recover` with nothing persisted | `no_manifest` | FailedPrecondition |
//! | `Recover` when already active, or while ready peers exist | `already_recovered` | FailedPrecondition |
//! | lost compare-and-swap, stale `PreviousTransitionHash` | `manifest_conflict` | FailedPrecondition |
//! | the store holds a head no replica can have written (contrast-rs only) | `history_tampered` | FailedPrecondition |
//! | manifest not JSON or invalid, bad seed or salt | `invalid_argument` | InvalidArgument |
//! | no or wrong client key, updates disabled, seed-share owners changed, not a seed-share owner, policy not in manifest, role not `coordinator`, attestation refused | `permission_denied` | PermissionDenied |
//! | a detached signature that does not verify | `invalid_signature` | PermissionDenied |
//! | too many manifest updates in progress, nothing read (contrast-rs only; retry) | `busy` | Unavailable |
//! | store or other internal failure | `internal` | Internal |
//!
//! Where upstream answers less specifically, ours says what the caller did wrong: a policy
//! missing for a manifest hash is `InvalidArgument` (upstream: `Internal`), a seed that does
//! not verify the signed head on `Recover` is `PermissionDenied` (upstream: `Unknown`), and the
//! mesh API's refusals carry their codes (upstream: `Unknown` for all but the policy and role
//! checks).

use contrast_core::api::ErrorCode;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// The response metadata key (trailer) carrying the [`ErrorCode`] wire spelling.
pub const ERROR_CODE_METADATA: &str = "contrast-error-code";

/// The gRPC code upstream answers with for `code`.
///
/// `InvalidSignature` and `ApiVersionTooOld` are refusals of the caller (`PermissionDenied`);
/// codes this version does not know are `Unknown`.
#[must_use]
pub fn grpc_code(code: &ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::InvalidSignature | ErrorCode::PermissionDenied | ErrorCode::ApiVersionTooOld => {
            Code::PermissionDenied
        }
        ErrorCode::NoManifest
        | ErrorCode::NeedsRecovery
        | ErrorCode::AlreadyRecovered
        | ErrorCode::ManifestConflict
        | ErrorCode::HistoryTampered => Code::FailedPrecondition,
        ErrorCode::Busy => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The status for a refusal: [`grpc_code`] of `code`, `message` as the status message and the
/// code's wire spelling in [`ERROR_CODE_METADATA`].
#[must_use]
pub fn status(code: &ErrorCode, message: impl Into<String>) -> Status {
    let mut status = Status::new(grpc_code(code), message);
    if let Ok(value) = MetadataValue::try_from(code.as_str()) {
        status.metadata_mut().insert(ERROR_CODE_METADATA, value);
    }
    status
}

/// The [`ErrorCode`] of a status: from [`ERROR_CODE_METADATA`] when the server named it (ours
/// does), else the closest code for the gRPC code alone (upstream's server): `InvalidArgument`,
/// `PermissionDenied` and `Internal` map to theirs, anything else is kept as
/// [`ErrorCode::Other`] with the gRPC code's name (e.g. `failed_precondition`).
#[must_use]
pub fn error_code(status: &Status) -> ErrorCode {
    if let Some(code) = status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|value| value.to_str().ok())
    {
        return ErrorCode::from_wire(code);
    }
    match status.code() {
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::PermissionDenied => ErrorCode::PermissionDenied,
        Code::Internal => ErrorCode::Internal,
        other => ErrorCode::Other(code_name(other).to_owned()),
    }
}

/// The snake-case name of a gRPC code (`failed_precondition`).
#[must_use]
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_upstreams_and_back_through_metadata() {
        let table = [
            (ErrorCode::InvalidArgument, Code::InvalidArgument),
            (ErrorCode::InvalidSignature, Code::PermissionDenied),
            (ErrorCode::PermissionDenied, Code::PermissionDenied),
            (ErrorCode::NoManifest, Code::FailedPrecondition),
            (ErrorCode::NeedsRecovery, Code::FailedPrecondition),
            (ErrorCode::AlreadyRecovered, Code::FailedPrecondition),
            (ErrorCode::ManifestConflict, Code::FailedPrecondition),
            (ErrorCode::HistoryTampered, Code::FailedPrecondition),
            (ErrorCode::Busy, Code::Unavailable),
            (ErrorCode::ApiVersionTooOld, Code::PermissionDenied),
            (ErrorCode::Internal, Code::Internal),
            (ErrorCode::Other("teapot".into()), Code::Unknown),
        ];
        for (code, expected) in table {
            let status = status(&code, "why");
            assert_eq!(status.code(), expected, "{code}");
            assert_eq!(status.message(), "why");
            assert_eq!(error_code(&status), code);
        }
    }

    #[test]
    fn a_status_without_metadata_keeps_the_grpc_code() {
        assert_eq!(
            error_code(&Status::permission_denied("x")),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            error_code(&Status::failed_precondition(
                "coordinator is in recovery mode"
            )),
            ErrorCode::Other("failed_precondition".into())
        );
    }
}
