//! The core model end to end, on this machine: what a Contrast deployment does with its
//! manifest, seed and history, minus the network and the TEE.
//!
//! ```sh
//! cargo run -p contrast-core --example walkthrough
//! ```
//!
//! 1. A workload's initdata document gives its identity (the manifest `Policies` key).
//! 2. The workload owner writes a manifest; it is validated, and a broken one is explained.
//! 3. The first set creates a seed; the seed is encrypted to the seed-share owner.
//! 4. Three manifest generations form a signed history, which a data owner verifies.
//! 5. A later update is authorised by the workload owner's signature over the next transition.
//! 6. After a restart the seed-share owner recovers the seed; the derived keys are the same.
//! 7. A tampered history is rejected, naming the broken link.
//!
//! The seed-share owner's RSA key is the committed test fixture (generating RSA-4096 would
//! dominate the run time); every other key is fresh.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use contrast_core::history::{
    BlobKind, Hash, HistoryLimits, LatestTransition, ZERO_HASH, rebuild_chain, verify_history,
};
use contrast_core::initdata::{Algorithm, Initdata};
use contrast_core::manifest::{
    GuestPolicy, Manifest, ManifestDocument, MinimumTcb, PolicyEntry, ReferenceValues, Role,
    SnpReferenceValues,
};
use contrast_core::owner::{
    SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey, authorize_recovery, next_transition_hash,
    verify_update_signature,
};
use contrast_core::seed::{Salt, Seed, SeedEngine};
use contrast_core::seedshare::encrypt_seed_shares;
use contrast_core::{hexstring, sha256};
use rand_core::OsRng;

const SEEDSHARE_OWNER_KEY: &str = include_str!("../tests/fixtures/seedshare/rsa2048.pem");

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walkthrough failed: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run() -> Result<()> {
    // 1. Workload identity.
    let mut data = BTreeMap::new();
    data.insert(
        "policy.rego".to_owned(),
        "package agent_policy\ndefault AllowRequestsFailingPolicy := false\n".to_owned(),
    );
    let initdata = Initdata::build(Algorithm::Sha256, data)?;
    let policy_hash = initdata.policy_hash()?;
    println!(
        "1. initdata digest (HOST_DATA, manifest Policies key): {}",
        initdata.digest()
    );
    println!(
        "   pod annotation: {} base64 characters",
        initdata.to_annotation()?.len()
    );

    // 2. The manifest.
    let workload_owner = WorkloadOwnerPrivateKey::generate(&mut OsRng)?;
    let seedshare_owner = SeedshareOwnerPrivateKey::from_pem(SEEDSHARE_OWNER_KEY)?;
    let manifest = manifest_for(
        &policy_hash,
        "apps/v1/Deployment/default/web",
        &workload_owner,
        &seedshare_owner,
    );
    let document = ManifestDocument::parse(manifest.to_go_json()?)?;
    document.manifest().validate()?;
    println!(
        "2. manifest valid; hash {}",
        hexstring::encode(document.hash())
    );

    let mut broken = manifest.clone();
    broken.policies = BTreeMap::from([(
        hexstring::encode(policy_hash).to_uppercase(),
        PolicyEntry::default(),
    )]);
    broken.reference_values.snp[0].minimum_tcb.snp_version = None;
    if let Err(violations) = broken.validate() {
        println!("   a broken manifest is refused, with every reason:");
        for line in violations.to_string().lines() {
            println!("     {line}");
        }
    }

    // 3. First set: a new seed, encrypted to the seed-share owner.
    let seed = Seed::generate(&mut OsRng);
    let salt = Salt::generate(&mut OsRng);
    let engine = SeedEngine::from_parts(&seed, &salt)?;
    let owners = manifest
        .seedshare_owner_pub_keys
        .clone()
        .unwrap_or_default();
    let shares = encrypt_seed_shares(seed.as_bytes(), salt.as_bytes(), &owners)?;
    println!(
        "3. seed-shares.json: {} share(s), {} bytes",
        shares.seed_shares.len(),
        shares.to_json()?.len()
    );

    // 4. Three generations of history, signed with the seed-derived key.
    let manifests: Vec<Vec<u8>> = ["web", "web-v2", "web-v3"]
        .iter()
        .map(|name| {
            manifest_for(
                &policy_hash,
                &format!("apps/v1/Deployment/default/{name}"),
                &workload_owner,
                &seedshare_owner,
            )
            .to_go_json()
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut blobs: HashMap<(BlobKind, Hash), Vec<u8>> = HashMap::new();
    for (manifest, transition) in manifests.iter().zip(rebuild_chain(&manifests)) {
        blobs.insert((BlobKind::Manifest, sha256(manifest)), manifest.clone());
        blobs.insert(
            (BlobKind::Transition, transition.hash()),
            transition.encode().to_vec(),
        );
    }
    let head_hash = contrast_core::history::latest_transition_hash(&manifests);
    let head =
        LatestTransition::sign(head_hash, engine.history_signing_key(), &mut OsRng)?.encode();
    let verified = verify_history(
        &head,
        &engine.history_verifying_key(),
        &blobs,
        HistoryLimits::default(),
    )?;
    println!(
        "4. history verified: generation {}, head {}",
        verified.generation(),
        hexstring::encode(head_hash)
    );

    // 5. The workload owner authorises the next update by signing the next transition hash.
    let next_manifest = manifest_for(
        &policy_hash,
        "apps/v1/Deployment/default/web-v4",
        &workload_owner,
        &seedshare_owner,
    )
    .to_go_json()?;
    let next = next_transition_hash(&sha256(&next_manifest), &head_hash);
    let signature = workload_owner.sign_transition(&next)?;
    let owner_keys = manifest.workload_owner_pub_keys.clone().unwrap_or_default();
    let signer = verify_update_signature(&owner_keys, &next, &signature)?;
    println!("5. update signature verifies with workload owner key #{signer}");
    let stale = next_transition_hash(&sha256(&next_manifest), &ZERO_HASH);
    match verify_update_signature(&owner_keys, &stale, &signature) {
        Err(e) => println!("   the same signature for another head is refused: {e}"),
        Ok(_) => return Err("a signature over another transition was accepted".into()),
    }

    // 6. Recovery: the seed-share owner is authorised, decrypts the seed, and the keys match.
    authorize_recovery(&owners, seedshare_owner.public_key().pkcs1_der())?;
    let share = shares
        .share_for(&seedshare_owner.public_key())
        .ok_or("no share for the seed-share owner")?;
    let recovered_seed = share.decrypt(&seedshare_owner)?;
    let recovered = SeedEngine::new(&recovered_seed, salt.as_bytes())?;
    let same_root = recovered.root_ca_key().verifying_key() == engine.root_ca_key().verifying_key();
    verify_history(
        &head,
        &recovered.history_verifying_key(),
        &blobs,
        HistoryLimits::default(),
    )?;
    println!(
        "6. recovered from the seed share: same root CA key: {same_root}; history still verifies"
    );
    if !same_root {
        return Err("recovery derived a different root CA key".into());
    }

    // 7. Tampering with a stored manifest breaks the chain at a named link.
    let first = (BlobKind::Manifest, sha256(&manifests[0]));
    if let Some(blob) = blobs.get_mut(&first) {
        blob[10] ^= 0x01;
    }
    match verify_history(
        &head,
        &engine.history_verifying_key(),
        &blobs,
        HistoryLimits::default(),
    ) {
        Err(e) => println!("7. tampered history rejected: {e}"),
        Ok(_) => return Err("a tampered history verified".into()),
    }
    Ok(())
}

/// A manifest with one coordinator policy on the simulated platform.
fn manifest_for(
    policy_hash: &[u8; 32],
    workload_secret_id: &str,
    workload_owner: &WorkloadOwnerPrivateKey,
    seedshare_owner: &SeedshareOwnerPrivateKey,
) -> Manifest {
    let entry = PolicyEntry {
        sans: Some(vec!["web".into(), "*".into()]),
        workload_secret_id: workload_secret_id.into(),
        role: Role::Coordinator,
    };
    let snp = SnpReferenceValues {
        platform: "Simulated-SNP".into(),
        product_name: "Milan".into(),
        trusted_measurement: hexstring::encode([0x5a; 48]),
        minimum_tcb: MinimumTcb {
            bootloader_version: Some(3),
            tee_version: Some(0),
            snp_version: Some(23),
            microcode_version: Some(213),
        },
        guest_policy: GuestPolicy {
            smt: true,
            ..GuestPolicy::default()
        },
        simulated_ark_fingerprint: Some(hexstring::encode([0xa5; 32])),
        ..SnpReferenceValues::default()
    };
    Manifest {
        policies: BTreeMap::from([(hexstring::encode(policy_hash), entry)]),
        reference_values: ReferenceValues {
            snp: vec![snp],
            tdx: vec![],
        },
        workload_owner_pub_keys: Some(vec![workload_owner.public_key().to_hex()]),
        seedshare_owner_pub_keys: Some(vec![seedshare_owner.public_key().to_hex()]),
        ..Manifest::default()
    }
}
