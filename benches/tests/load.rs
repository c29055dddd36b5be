//! `contrast-load` end to end against the real `coordinator` binary: a tiny run of each
//! scenario, asserting zero errors and that the report's counts add up (never timings).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `coordinator` binary next to `contrast-load` (built by the README's `cargo test
/// --workspace` command); built here with cargo, with its `simulated` feature, when missing or
/// built without it.
fn coordinator_binary() -> PathBuf {
    let load = Path::new(env!("CARGO_BIN_EXE_contrast-load"));
    let coordinator = load.with_file_name("coordinator");
    if !contrast_tee::binary_has_simulated_tee(&coordinator) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.args([
            "build",
            "-p",
            "coordinator",
            "--features",
            "coordinator/simulated",
        ]);
        if load
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|profile| profile == "release")
        {
            command.arg("--release");
        }
        let status = command
            .status()
            .expect("running cargo build -p coordinator");
        assert!(
            status.success() && contrast_tee::binary_has_simulated_tee(&coordinator),
            "{} is missing or lacks --tee simulated, and `cargo build -p coordinator --features \
             coordinator/simulated` did not produce it",
            coordinator.display()
        );
    }
    coordinator
}

fn run_load(sim_dir: &Path, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_contrast-load"))
        .arg("--coordinator-bin")
        .arg(coordinator_binary())
        .arg("--sim-dir")
        .arg(sim_dir)
        .args(["--json", "--concurrency", "4", "--floor-budget-ms", "1"])
        .args(extra)
        .output()
        .expect("running contrast-load");
    assert!(
        output.status.success(),
        "contrast-load failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {summary}"))
}

/// Zero failures, and attempted = succeeded + failed = the sum over the error reasons + ok.
fn assert_clean(summary: &Value, expected: u64) {
    assert_eq!(count(summary, "failed"), 0, "errors: {}", summary["errors"]);
    assert_eq!(count(summary, "succeeded"), expected, "{summary}");
    assert_eq!(
        count(summary, "attempted"),
        count(summary, "succeeded") + count(summary, "failed")
    );
    let by_reason: u64 = summary["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, count(summary, "failed"));
}

fn sim_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("contrast-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn steady_and_mixed_runs_have_no_errors_and_consistent_counts() {
    let sim = sim_dir("steady");
    let report = run_load(&sim, &["--scenario", "steady", "--attestations", "20"]);
    assert_eq!(report["scenario"], "steady");
    assert_clean(&report["attestations"], 20);
    assert!(report["coordinator"]["peak_rss_mib"].as_f64().unwrap() > 0.0);
    let floor = &report["floor"];
    assert_eq!(floor["counted"].as_array().unwrap().len(), 5);
    assert!(floor["attestations_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["targets"].as_array().unwrap().len(), 5);

    // The same environment again (loaded, not created), with data owners in parallel.
    let report = run_load(
        &sim,
        &[
            "--scenario",
            "mixed",
            "--attestations",
            "12",
            "--data-owners",
            "1",
        ],
    );
    assert_clean(&report["attestations"], 12);
    let owner = &report["data_owner"];
    assert_eq!(count(owner, "failed"), 0, "errors: {}", owner["errors"]);
    assert!(count(owner, "succeeded") >= 1, "{owner}");
    assert_eq!(
        count(owner, "attempted"),
        count(owner, "succeeded") + count(owner, "failed")
    );
    let _ = std::fs::remove_dir_all(&sim);
}

#[test]
fn burst_run_has_no_errors_and_consistent_counts() {
    let sim = sim_dir("burst");
    let report = run_load(&sim, &["--scenario", "burst", "--bursts", "2"]);
    assert_eq!(report["scenario"], "burst");
    assert_clean(&report["initial_round"], 4);
    assert_clean(&report["manifest_updates"], 2);
    assert_clean(&report["attestations"], 8);
    assert_eq!(report["burst_ms"].as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&sim);
}

#[test]
fn recovery_run_becomes_ready_with_the_whole_history() {
    let sim = sim_dir("recovery");
    let report = run_load(
        &sim,
        &[
            "--scenario",
            "recovery",
            "--history-sizes",
            "20,40",
            "--workloads",
            "2",
        ],
    );
    assert_eq!(report["scenario"], "recovery");
    let build = report["build"].as_array().unwrap();
    assert_eq!(build.len(), 2);
    assert_eq!(count(&build[0], "from_entries"), 1);
    assert_eq!(count(&build[0], "to_entries"), 20);
    assert_clean(&build[0]["updates"], 19);
    assert_eq!(count(&build[1], "from_entries"), 20);
    assert_eq!(count(&build[1], "to_entries"), 40);
    assert_clean(&build[1]["updates"], 20);

    // contrast-load fails unless each restarted Coordinator accepted the recovery, answered
    // its readiness probe with 200 and served exactly the history set (last manifest
    // included); the report says so per restart.
    let restarts = report["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 2);
    for (restart, entries) in restarts.iter().zip([20, 40]) {
        assert_eq!(count(restart, "history_entries"), entries, "{restart}");
        for part in [
            "start_to_startup_ms",
            "recover_handshake_ms",
            "recover_request_ms",
            "recover_to_ready_ms",
            "total_ms",
        ] {
            assert!(
                restart[part].as_f64().is_some(),
                "{part} missing: {restart}"
            );
        }
    }
    assert_ne!(
        restarts[0]["coordinator_pid"],
        restarts[1]["coordinator_pid"]
    );
    let scaling = report["scaling"].as_array().unwrap();
    assert_eq!(scaling.len(), 1);
    assert_eq!(scaling[0]["entries_ratio"].as_f64(), Some(2.0));
    let _ = std::fs::remove_dir_all(&sim);
}
