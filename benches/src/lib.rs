//! Shared fixtures for the benches (see `BENCHMARKS.md`).
//!
//! [`HistoryFixture`] builds an in-memory manifest history the way the Coordinator stores it:
//! every manifest under `manifests/<sha256>` and every 64-byte transition under
//! `transitions/<sha256>`, chained from the zero hash. Signing the head is left to the bench
//! (it needs a random number generator).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use contrast_core::history::{BlobKind, Hash, Transition, ZERO_HASH};
use contrast_core::sha256;

/// Content-addressed blobs as stored (`<kind>/<hash>` → bytes).
pub type Blobs = HashMap<(BlobKind, Hash), Vec<u8>>;

/// A realistic manifest of about 1 KiB in upstream's JSON layout: two policies (one with a key
/// that varies with `index`, so every manifest in a history is distinct), SNP reference values,
/// a workload owner key digest and a (shortened) seed-share owner key.
#[must_use]
pub fn realistic_manifest(index: usize) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"Policies":{{"#,
            r#""{index:064x}":{{"SANs":["web","*"],"WorkloadSecretID":"default/deployment/web-{index:08}","Role":""}},"#,
            r#""{coordinator}":{{"SANs":["coordinator","*"],"WorkloadSecretID":"default/statefulset/coordinator","Role":"coordinator"}}}},"#,
            r#""ReferenceValues":{{"snp":[{{"MinimumTCB":{{"BootloaderVersion":7,"TEEVersion":0,"SNPVersion":15,"MicrocodeVersion":72}},"#,
            r#""ProductName":"Milan","TrustedMeasurement":"{measurement}","#,
            r#""GuestPolicy":{{"ABIMinor":0,"ABIMajor":0,"SMT":true,"MigrateMA":false,"Debug":false,"SingleSocket":false,"CXLAllowed":false,"MemAES256XTS":false,"RAPLDis":false,"CipherTextHiding":false,"PageSwapDisable":false}}}}]}},"#,
            r#""WorkloadOwnerKeyDigests":["{owner}"],"#,
            r#""SeedshareOwnerPubKeys":["{seedshare}"]}}"#,
        ),
        index = index,
        coordinator = "c0".repeat(32),
        measurement = "d".repeat(96),
        owner = "a".repeat(64),
        seedshare = "3082010a0282010100".to_owned() + &"b".repeat(130),
    )
    .into_bytes()
}

/// An in-memory history of `generation` distinct realistic manifests.
#[derive(Debug, Clone)]
pub struct HistoryFixture {
    /// All stored manifests and transitions.
    pub blobs: Blobs,
    /// Hash of the newest transition (what the head signs).
    pub head_hash: Hash,
    /// Number of transitions.
    pub generation: usize,
}

impl HistoryFixture {
    /// Stores `generation` manifests ([`realistic_manifest`] 0, 1, …) and their chained
    /// transitions.
    #[must_use]
    pub fn build(generation: usize) -> HistoryFixture {
        let mut blobs = Blobs::with_capacity(2 * generation);
        let mut previous_transition_hash = ZERO_HASH;
        for index in 0..generation {
            let manifest = realistic_manifest(index);
            let manifest_hash = sha256(&manifest);
            blobs.insert((BlobKind::Manifest, manifest_hash), manifest);
            let transition = Transition {
                manifest_hash,
                previous_transition_hash,
            }
            .encode();
            previous_transition_hash = sha256(&transition);
            blobs.insert(
                (BlobKind::Transition, previous_transition_hash),
                transition.to_vec(),
            );
        }
        HistoryFixture {
            blobs,
            head_hash: previous_transition_hash,
            generation,
        }
    }

    /// Total bytes of all stored blobs (what a verification hashes).
    #[must_use]
    pub fn stored_bytes(&self) -> usize {
        self.blobs.values().map(Vec::len).sum()
    }

    /// The baseline: plain SHA-256 of every stored blob, one call per blob exactly as
    /// verification makes them, with no lookups, decoding or signature check. Returns the XOR of
    /// the digests so the work cannot be optimised away.
    #[must_use]
    pub fn sha256_all_blobs(&self) -> Hash {
        self.blobs.values().fold(ZERO_HASH, |mut acc, blob| {
            for (a, b) in acc.iter_mut().zip(sha256(blob)) {
                *a ^= b;
            }
            acc
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contrast_core::history::{HistoryLimits, walk_transitions};

    #[test]
    fn manifests_are_about_one_kib_and_distinct() {
        let a = realistic_manifest(0);
        let b = realistic_manifest(99_999);
        assert!((900..=1200).contains(&a.len()), "{}", a.len());
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }

    #[test]
    fn fixture_walks_its_full_length() {
        let fixture = HistoryFixture::build(25);
        assert_eq!(fixture.blobs.len(), 50);
        let walked = walk_transitions(&fixture.head_hash, &fixture.blobs, HistoryLimits::default());
        assert_eq!(walked.map(|w| w.len()), Ok(25));
    }
}
