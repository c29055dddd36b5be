//! Test tool: runs history updates against a file store and prints each outcome, for the
//! crash-safety and multi-process tests in `tests/processes.rs` (not part of the product).
//!
//! Usage: `store-writer <state-dir> <writer-id> <updates>` (`0` updates: until killed).
//!
//! The history key comes from a fixed test seed. The writer reads the head (verified) at start
//! and after each lost race; otherwise it builds on the head it published itself, as the
//! Coordinator does. Each attempt builds a new manifest with one shared and one fresh policy and
//! runs [`HistoryStore::update`] from that head. Output, one line each, flushed:
//! `ready`, then per attempt `ok <new head hash>` or `conflict`, then `done`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use contrast_core::manifest::ManifestDocument;
use contrast_core::seed::SeedEngine;
use contrast_store::{FileStore, FileStoreOptions, HistoryStore, HistoryStoreError};
use rand_core::OsRng;

/// Seed and salt of the test history key (shared with `tests/processes.rs`).
const TEST_SEED: [u8; 32] = [0x5e; 32];
const TEST_SALT: [u8; 32] = [0x5a; 32];

fn manifest_with(policies: &[Vec<u8>]) -> Result<ManifestDocument, String> {
    let entries: Vec<String> = policies
        .iter()
        .map(|policy| {
            format!(
                r#""{}":{{"SANs":["w"],"WorkloadSecretID":"w","Role":""}}"#,
                contrast_core::hexstring::encode(contrast_core::sha256(policy))
            )
        })
        .collect();
    let json = format!(
        r#"{{"Policies":{{{}}},"ReferenceValues":{{}},"WorkloadOwnerPubKeys":null,"SeedshareOwnerPubKeys":null}}"#,
        entries.join(",")
    );
    ManifestDocument::parse(json.into_bytes()).map_err(|error| error.to_string())
}

fn say(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| error.to_string())
}

async fn run(dir: &str, writer: &str, updates: u64) -> Result<(), String> {
    let engine = SeedEngine::new(&TEST_SEED, &TEST_SALT).map_err(|error| error.to_string())?;
    let verifying_key = engine.history_verifying_key();
    let store = FileStore::open(dir, FileStoreOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    let history = HistoryStore::new(store);
    say("ready")?;
    // Like the Coordinator: read the head once, then build on the head it published itself,
    // and read it again only after losing a race.
    let mut head = history
        .latest(&verifying_key)
        .await
        .map_err(|error| error.to_string())?;
    let mut attempt: u64 = 0;
    while updates == 0 || attempt < updates {
        let policies = vec![
            b"shared policy".to_vec(),
            format!("policy of {writer} attempt {attempt}").into_bytes(),
        ];
        let manifest = manifest_with(&policies)?;
        let outcome = history
            .update(
                head.as_ref(),
                &manifest,
                &policies,
                None,
                engine.history_signing_key(),
                &mut OsRng,
            )
            .await;
        match outcome {
            Ok(update) => {
                say(&format!(
                    "ok {}",
                    contrast_core::hexstring::encode(update.latest.transition_hash)
                ))?;
                head = Some(update.latest);
            }
            Err(HistoryStoreError::Conflict) => {
                say("conflict")?;
                head = history
                    .latest(&verifying_key)
                    .await
                    .map_err(|error| error.to_string())?;
            }
            Err(error) => return Err(error.to_string()),
        }
        attempt += 1;
    }
    say("done")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(writer), Some(updates)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: store-writer <state-dir> <writer-id> <updates>");
        return ExitCode::from(2);
    };
    let Ok(updates) = updates.parse::<u64>() else {
        eprintln!("updates must be a number, got {updates:?}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(dir, writer, updates)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("store-writer {writer}: {error}");
            ExitCode::FAILURE
        }
    }
}
