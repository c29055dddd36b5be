//! JSON bodies of the network API, as a server or client receives them.
#![no_main]

use contrast_core::api::{
    AttestRequest, AttestResponse, ErrorResponse, GetManifestsResponse, MeshCertResponse,
    MeshRecoverResponse, RecoverRequest, SetManifestRequest, SetManifestResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SetManifestRequest>(data);
    let _ = serde_json::from_slice::<SetManifestResponse>(data);
    let _ = serde_json::from_slice::<GetManifestsResponse>(data);
    let _ = serde_json::from_slice::<RecoverRequest>(data);
    let _ = serde_json::from_slice::<MeshCertResponse>(data);
    let _ = serde_json::from_slice::<MeshRecoverResponse>(data);
    let _ = serde_json::from_slice::<AttestRequest>(data);
    let _ = serde_json::from_slice::<AttestResponse>(data);
    let _ = serde_json::from_slice::<ErrorResponse>(data);
});
