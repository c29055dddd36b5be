//! gRPC messages of the user and mesh APIs, as a server or client receives them: prost decodes
//! the bytes, then the conversions to the Coordinator's request and response types run.
#![no_main]

use contrast_core::api;
use contrast_grpc::{meshapi, userapi};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = userapi::SetManifestRequest::decode(data) {
        let _ = api::SetManifestRequest::from(message);
    }
    if let Ok(message) = userapi::SetManifestResponse::decode(data) {
        let _ = api::SetManifestResponse::from(message);
    }
    if let Ok(message) = userapi::GetManifestsResponse::decode(data) {
        let _ = api::GetManifestsResponse::from(message);
    }
    if let Ok(message) = userapi::RecoverRequest::decode(data) {
        let _ = api::RecoverRequest::from(message);
    }
    if let Ok(message) = meshapi::NewMeshCertResponse::decode(data) {
        let _ = api::MeshCertResponse::from(message);
    }
    if let Ok(message) = meshapi::RecoverResponse::decode(data) {
        let _ = api::MeshRecoverResponse::from(message);
    }
});
