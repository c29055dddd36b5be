//! A deployment for the core's unit tests: a memory store, a fixed clock, seeded randomness, a
//! simulated SEV-SNP platform, owner keys and workloads, and helpers that attest a workload the
//! way the mesh transport would (a real aTLS certificate verified by the state's validator).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use contrast_attest::atls::{AtlsKey, Issuer, issue_certificate, verify_certificate};
use contrast_attest::{AtlsError, CrlPolicy, Product, TcbVersion, UnixTime, VerifiedPeer};
use contrast_coordinator::{Clock, Coordinator, Entropy, Options, PeerDirectory, State};
use contrast_core::api::{RecoverRequest, SetManifestRequest};
use contrast_core::manifest::{GuestPolicy, Manifest, PolicyEntry, Role};
use contrast_core::owner::{SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey};
use contrast_core::seedshare::SeedShareDocument;
use contrast_sim::{SimulatedGuest, SimulatedIssuer, SimulatedPlatform};
use contrast_store::{HistoryStore, Key, MemoryStore, Store, StoreError, Watch};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

/// The fixed time of every test (2027-01-15).
pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 209,
};

pub(crate) const MEASUREMENT: [u8; 48] = [0x11; 48];

/// A clock that says what the test says.
#[derive(Debug)]
pub(crate) struct FixedClock(pub(crate) AtomicU64);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_secs(self.0.load(Ordering::Relaxed))
    }
}

/// Reproducible randomness.
#[derive(Debug)]
pub(crate) struct SeededEntropy(Mutex<ChaCha20Rng>);

impl SeededEntropy {
    pub(crate) fn new(seed: u64) -> Self {
        Self(Mutex::new(ChaCha20Rng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, dest: &mut [u8]) {
        self.0.lock().unwrap().fill_bytes(dest);
    }
}

/// Ready peers as the test sets them.
#[derive(Debug, Default, Clone)]
pub(crate) struct TestPeers(pub(crate) Arc<Mutex<Vec<String>>>);

impl TestPeers {
    pub(crate) fn set(&self, peers: &[&str]) {
        *self.0.lock().unwrap() = peers.iter().map(|p| (*p).to_owned()).collect();
    }
}

impl PeerDirectory for TestPeers {
    async fn ready_peers(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) type Core = Coordinator<MemoryStore, TestPeers>;

/// One Milan hierarchy for the whole binary (RSA-4096 generation).
pub(crate) fn platform() -> &'static SimulatedPlatform {
    static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let not_before = UNIX_EPOCH + Duration::from_secs(NOW - 30 * 24 * 3600);
        SimulatedPlatform::generate(Product::Milan, not_before, &mut rand_core::OsRng).unwrap()
    })
}

fn guest_policy() -> GuestPolicy {
    GuestPolicy {
        smt: true,
        ..GuestPolicy::default()
    }
}

/// A workload: its initdata document (the policy) and its role.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) name: String,
    pub(crate) policy: Vec<u8>,
    pub(crate) role: Role,
}

impl Workload {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: format!("# initdata of {name}\npolicy = \"allow\"\n").into_bytes(),
            role: Role::None,
        }
    }

    pub(crate) fn coordinator() -> Self {
        Self {
            role: Role::Coordinator,
            ..Self::new("coordinator")
        }
    }

    pub(crate) fn host_data(&self) -> [u8; 32] {
        contrast_core::sha256(&self.policy)
    }

    pub(crate) fn entry(&self) -> PolicyEntry {
        PolicyEntry {
            sans: Some(vec![self.name.clone(), "*".into()]),
            workload_secret_id: format!("default/{}", self.name),
            role: self.role.clone(),
        }
    }
}

/// Keys and workloads of one deployment.
pub(crate) struct Deployment {
    pub(crate) owner: WorkloadOwnerPrivateKey,
    pub(crate) seedshare_owner: SeedshareOwnerPrivateKey,
    /// The seed-share owner's key as an SPKI (what a TLS client certificate carries).
    pub(crate) seedshare_spki: Vec<u8>,
    pub(crate) workloads: Vec<Workload>,
}

/// One RSA-2048 seed-share owner key for the whole binary.
fn seedshare_pkcs8() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
            .unwrap()
            .as_ref()
            .to_vec()
    })
}

impl Deployment {
    pub(crate) fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let seedshare_owner = SeedshareOwnerPrivateKey::from_pkcs8_der(seedshare_pkcs8()).unwrap();
        let seedshare_spki = seedshare_owner.public_key().to_spki_der().unwrap();
        Self {
            owner: WorkloadOwnerPrivateKey::generate(&mut rng).unwrap(),
            seedshare_owner,
            seedshare_spki,
            workloads: vec![
                Workload::coordinator(),
                Workload::new("frontend"),
                Workload::new("backend"),
            ],
        }
    }

    pub(crate) fn owner_spki(&self) -> Vec<u8> {
        self.owner.public_key().pkix_der().to_vec()
    }

    /// The manifest over `workloads`, with this deployment's owners.
    pub(crate) fn manifest_for(&self, workloads: &[Workload]) -> Manifest {
        let mut manifest = Manifest::default();
        for workload in workloads {
            manifest
                .policies
                .insert(hex::encode(workload.host_data()), workload.entry());
        }
        manifest.reference_values.snp =
            vec![platform().reference_values(&MEASUREMENT, &guest_policy(), TCB)];
        manifest.workload_owner_pub_keys = Some(vec![self.owner.public_key().to_hex()]);
        manifest.seedshare_owner_pub_keys = Some(vec![self.seedshare_owner.public_key().to_hex()]);
        manifest
    }

    pub(crate) fn manifest(&self) -> Manifest {
        self.manifest_for(&self.workloads)
    }

    /// A set-manifest request for `manifest` carrying every workload's policy.
    pub(crate) fn request(&self, manifest: &Manifest) -> SetManifestRequest {
        let mut policies: Vec<Vec<u8>> = self.workloads.iter().map(|w| w.policy.clone()).collect();
        policies.push(Workload::new("extra").policy);
        SetManifestRequest {
            manifest: manifest.to_go_json().unwrap(),
            policies,
            previous_transition_hash: None,
            signature: None,
        }
    }

    /// The seed and salt from the first set's shares, as a recovery request.
    pub(crate) fn recover_request(
        &self,
        shares: &SeedShareDocument,
        force: bool,
    ) -> RecoverRequest {
        let share = shares
            .share_for(&self.seedshare_owner.public_key())
            .unwrap();
        RecoverRequest {
            seed: share.decrypt(&self.seedshare_owner).unwrap(),
            salt: shares.salt.clone(),
            force,
            history_contains: None,
        }
    }
}

/// A Coordinator over `store` with the fixed clock, entropy seeded with `seed`, and `peers`.
pub(crate) fn core(store: &MemoryStore, peers: &TestPeers, seed: u64) -> Core {
    core_over(store.clone(), peers, seed)
}

/// As [`core`], over any store.
pub(crate) fn core_over<S: Store>(
    store: S,
    peers: &TestPeers,
    seed: u64,
) -> Coordinator<S, TestPeers> {
    Coordinator::new(
        HistoryStore::new(store),
        peers.clone(),
        Arc::new(FixedClock(AtomicU64::new(NOW))),
        Arc::new(SeededEntropy::new(seed)),
        // The simulated ARK signs no CRL.
        Options::default().with_crl_policy(CrlPolicy::BestEffort),
    )
}

/// Every key and value in the store, for "nothing changed" assertions.
pub(crate) async fn snapshot(store: &MemoryStore) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for kind in ["manifests", "policies", "transitions"] {
        for name in store.list(kind).await.unwrap() {
            let key = Key::from_parts(kind, &name).unwrap();
            out.insert(
                format!("{kind}/{name}"),
                store.get(&key).await.unwrap().unwrap(),
            );
        }
    }
    out
}

/// A simulated guest launched with `measurement` whose HOST_DATA is `workload`'s.
pub(crate) fn guest(workload: &Workload, measurement: [u8; 48]) -> SimulatedGuest {
    let mut guest = SimulatedGuest::launched(
        Product::Milan,
        [0x42; 64],
        TCB,
        measurement,
        &guest_policy(),
    )
    .unwrap();
    guest.host_data = workload.host_data();
    guest
}

/// What the mesh transport's handshake yields for `workload` (launched with `measurement`)
/// under `state`: its certificate verified and appraised by the state's validator.
pub(crate) fn handshake(
    state: &State,
    workload: &Workload,
    measurement: [u8; 48],
) -> Result<VerifiedPeer, AtlsError> {
    replayed_handshake(state, workload, measurement, [9; 32])
}

/// As [`handshake`], but the workload's evidence answers `evidence_nonce` instead of the
/// server's nonce (a replayed certificate).
pub(crate) fn replayed_handshake(
    state: &State,
    workload: &Workload,
    measurement: [u8; 48],
    evidence_nonce: [u8; 32],
) -> Result<VerifiedPeer, AtlsError> {
    let key = AtlsKey::generate_p256().unwrap();
    let issuer: Arc<dyn Issuer> = Arc::new(SimulatedIssuer::new(
        platform(),
        guest(workload, measurement),
    ));
    let nonce = [9u8; 32];
    let der = issue_certificate(
        &key,
        Some(&*issuer),
        &evidence_nonce,
        Duration::from_secs(NOW),
        &mut rand_core::OsRng,
    )
    .unwrap();
    verify_certificate(
        &der,
        &nonce,
        UnixTime::from_secs(NOW),
        Some(state.mesh_validator()),
    )
}

/// The Coordinator's own issuer (for `/attest`).
pub(crate) fn coordinator_issuer() -> SimulatedIssuer<&'static SimulatedPlatform> {
    SimulatedIssuer::new(platform(), guest(&Workload::coordinator(), MEASUREMENT))
}

/// A secret as plain bytes for comparisons.
pub(crate) fn bytes(secret: &Zeroizing<Vec<u8>>) -> Vec<u8> {
    secret.to_vec()
}

/// A memory store that yields to the scheduler before every operation, so that two requests
/// joined in one task interleave at every store access (a race, reproducibly).
#[derive(Debug, Clone, Default)]
pub(crate) struct YieldingStore(pub(crate) MemoryStore);

impl Store for YieldingStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.put(key, value).await
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.compare_and_swap(key, old, new).await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        tokio::task::yield_now().await;
        self.0.list(kind).await
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        tokio::task::yield_now().await;
        self.0.watch(key).await
    }
}
