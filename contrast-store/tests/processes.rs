//! Real processes on one file store: writers killed with SIGKILL at random points, and two
//! writers racing. Both run the `store-writer` test tool (`src/bin/store-writer.rs`).
//!
//! Counts are set by environment variables:
//! - `CONTRAST_STORE_CRASH_ITERATIONS` (default 200, about 25 s on 2 cores): writers killed.
//! - `CONTRAST_STORE_RACE_UPDATES` (default 100): attempts in total, split over two writers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may unwrap and panic.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use contrast_core::hexstring;
use contrast_core::history::{Hash, VerifiedHistory};
use contrast_core::seed::SeedEngine;
use contrast_store::{FileStore, FileStoreOptions, HistoryStore};
use rand_core::{OsRng, RngCore};

const WRITER: &str = env!("CARGO_BIN_EXE_store-writer");

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A running writer whose output lines arrive on a channel.
struct Writer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Writer {
    fn spawn(dir: &Path, id: &str, updates: usize) -> Writer {
        let mut child = Command::new(WRITER)
            .arg(dir)
            .arg(id)
            .arg(updates.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Writer { child, lines }
    }

    fn wait_ready(&self) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("writer did not start");
        assert_eq!(line, "ready");
    }

    /// Every line until the writer's stdout closes.
    fn rest(self) -> Vec<String> {
        let lines: Vec<String> = self.lines.iter().collect();
        lines
    }
}

fn parse_hash(hex: &str) -> Hash {
    hexstring::decode_array::<32>(hex).unwrap()
}

fn open_and_load(dir: &Path) -> Option<VerifiedHistory<'static>> {
    runtime().block_on(async {
        let store = FileStore::open(dir, FileStoreOptions::default())
            .await
            .unwrap();
        let key = engine().history_verifying_key();
        HistoryStore::new(store).load(&key).await.unwrap()
    })
}

fn engine() -> &'static SeedEngine {
    // The writer's test seed (see `src/bin/store-writer.rs`).
    static ENGINE: OnceLock<SeedEngine> = OnceLock::new();
    ENGINE.get_or_init(|| SeedEngine::new(&[0x5e; 32], &[0x5a; 32]).unwrap())
}

fn leftover_temporary_files(dir: &Path) -> Vec<String> {
    let mut leftovers = Vec::new();
    for kind in std::fs::read_dir(dir).unwrap() {
        let kind = kind.unwrap();
        if !kind.file_type().unwrap().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(kind.path()).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                leftovers.push(name);
            }
        }
    }
    leftovers
}

/// Kills a writer with SIGKILL at a random instant of its updates, many times. After each kill
/// the store opens clean and the history verifies; its head is the last reported one or one
/// transition further (the update that was published but not yet reported), never a fork.
#[test]
fn sigkill_during_updates_never_corrupts_or_forks() {
    let iterations = env_count("CONTRAST_STORE_CRASH_ITERATIONS", 200);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut head: Option<Hash> = None;
    let mut generation = 0;
    let mut killed_mid_update = 0;
    for iteration in 0..iterations {
        let writer = Writer::spawn(dir.path(), &format!("crash-{iteration}"), 0);
        writer.wait_ready();
        let delay = OsRng.next_u32() % 80_000;
        std::thread::sleep(Duration::from_micros(u64::from(delay)));
        let mut writer = writer;
        writer.child.kill().unwrap(); // SIGKILL
        writer.child.wait().unwrap();
        let reported: Vec<Hash> = writer
            .rest()
            .iter()
            .filter_map(|line| line.strip_prefix("ok ").map(parse_hash))
            .collect();

        let loaded = open_and_load(dir.path());
        assert!(
            leftover_temporary_files(dir.path()).is_empty(),
            "open left temporary files"
        );
        let Some(history) = loaded else {
            // Killed before the first publish.
            assert!(
                head.is_none() && reported.is_empty(),
                "iteration {iteration}"
            );
            continue;
        };
        let last_known = reported.last().copied().or(head);
        let new_head = history.head.transition_hash;
        let new_generation = history.generation();
        let entries = &history.entries;
        if Some(new_head) == last_known {
            assert_eq!(new_generation, generation + reported.len());
        } else {
            // One more transition, built on the last known head.
            killed_mid_update += 1;
            assert_eq!(new_generation, generation + reported.len() + 1);
            let previous = entries[new_generation - 1]
                .transition
                .previous_transition_hash;
            assert_eq!(
                Some(previous).filter(|hash| *hash != [0; 32]),
                last_known,
                "iteration {iteration}: head does not build on the last known head"
            );
        }
        // Every reported head is in the chain, in order.
        let chain: Vec<Hash> = entries.iter().map(|entry| entry.transition_hash).collect();
        let start = generation;
        for (offset, hash) in reported.iter().enumerate() {
            assert_eq!(chain[start + offset], *hash, "iteration {iteration}");
        }
        head = Some(new_head);
        generation = new_generation;
    }
    eprintln!(
        "{iterations} writers killed in {:.1} s; history has {generation} transitions; \
         {killed_mid_update} kills landed after a publish and before its report",
        started.elapsed().as_secs_f64()
    );
}

/// Two processes race updates on one store: one linear history, and every attempt that is not
/// in it was reported as a conflict.
#[test]
fn two_processes_racing_build_one_linear_history() {
    let total = env_count("CONTRAST_STORE_RACE_UPDATES", 100);
    let per_writer = total.div_ceil(2);
    let dir = tempfile::tempdir().unwrap();
    let writers: Vec<Writer> = ["left", "right"]
        .iter()
        .map(|id| Writer::spawn(dir.path(), id, per_writer))
        .collect();
    let mut outcomes = Vec::new();
    for mut writer in writers {
        let status = writer.child.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
        outcomes.push(writer.rest());
    }

    let mut won: Vec<Hash> = Vec::new();
    let mut conflicts = 0;
    for lines in &outcomes {
        assert_eq!(lines.first().map(String::as_str), Some("ready"));
        assert_eq!(lines.last().map(String::as_str), Some("done"));
        let attempts = &lines[1..lines.len() - 1];
        assert_eq!(attempts.len(), per_writer);
        for line in attempts {
            match line.strip_prefix("ok ") {
                Some(hash) => won.push(parse_hash(hash)),
                None => {
                    assert_eq!(line, "conflict");
                    conflicts += 1;
                }
            }
        }
    }

    let history = open_and_load(dir.path()).unwrap();
    assert_eq!(history.generation(), won.len());
    let mut chain: Vec<Hash> = history
        .entries
        .iter()
        .map(|entry| entry.transition_hash)
        .collect();
    chain.sort_unstable();
    won.sort_unstable();
    assert_eq!(chain, won, "the chain is exactly the reported wins");
    eprintln!(
        "{} attempts by two processes: {} published, {conflicts} conflicts",
        2 * per_writer,
        history.generation()
    );
}
