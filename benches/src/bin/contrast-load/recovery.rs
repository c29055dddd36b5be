//! `--scenario recovery`: the startup-to-ready time of a Coordinator with a long manifest
//! history after recovery.
//!
//! The workload owner sets a first manifest and then distinct manifest updates through the
//! real user API (aTLS with the owner key, on one attested connection) until the history has
//! each of `--history-sizes` entries. At each size the Coordinator is killed with SIGKILL and
//! started again over the same state directory, and the way back is timed: process start →
//! `/probe/startup` 200 → `UserAPI/Recover` accepted (seed-share owner key; seed and salt
//! decrypted from the first set's seed shares, as `contrast recover` does) →
//! `/probe/readiness` 200. The recovered Coordinator then takes the next updates, so the
//! history of the larger size includes the smaller one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use contrast_attest::AtlsClient;
use contrast_core::api::{RecoverRequest, SetManifestRequest};
use contrast_core::manifest::Manifest;
use contrast_core::seedshare::SeedShareDocument;
use contrast_sdk::CoordinatorClient;
use contrast_sdk::coordinator_validator;
use contrast_tee::SimulatedEnvironment;
use serde::Serialize;

use crate::coordinator::{CoordinatorProcess, cpu_time, status_bytes};
use crate::stats::{Summary, Tally};
use crate::{Args, Scenario, Setup, Workload, progress};

/// The largest `UserAPI/GetManifests` answer accepted (the client's default is 32 MiB).
const MAX_HISTORY_BODY: usize = 1 << 30;

/// The owner's connection is replaced after this: the Coordinator closes any connection after
/// its `--connection-timeout` (120 s by default), whatever it is doing.
const SESSION_AGE: Duration = Duration::from_secs(50);

/// The recovery scenario's report (the `--json` document).
#[derive(Debug, Serialize)]
pub(crate) struct RecoveryReport {
    scenario: Scenario,
    /// Workloads in each manifest besides the Coordinator and the update's own.
    workloads: u32,
    /// Size of the last manifest set, bytes (each manifest has the same shape).
    manifest_bytes: usize,
    /// The first set (`UserAPI/SetManifest` without history), milliseconds.
    first_set_ms: f64,
    /// Growth of the history up to each size.
    build: Vec<BuildPhase>,
    /// The kill -9, restart and recovery at each size.
    restarts: Vec<Restart>,
    /// Each restart against the first.
    scaling: Vec<Scaling>,
}

/// The manifest updates that grew the history from `from_entries` to `to_entries`.
#[derive(Debug, Serialize)]
struct BuildPhase {
    from_entries: u64,
    to_entries: u64,
    /// The updates (`UserAPI/SetManifest`), one after the other on one attested connection
    /// (replaced every 50 s: the Coordinator closes connections after 120 s). The wall time
    /// includes those reconnections; the latencies do not.
    updates: Summary,
}

/// One kill -9, restart and recovery. Times are wall clock, milliseconds.
#[derive(Debug, Serialize)]
struct Restart {
    /// Manifests in the history, as `UserAPI/GetManifests` serves them once ready.
    history_entries: u64,
    /// The restarted process.
    coordinator_pid: u32,
    /// Process start (just before the spawn) → first 200 of `/probe/startup`.
    start_to_startup_ms: f64,
    /// The recover connection: TCP and the aTLS handshake, in which the client appraises the
    /// Coordinator's report and presents the seed-share owner key.
    recover_handshake_ms: f64,
    /// `UserAPI/Recover` on that connection until its 200: the Coordinator checks the key,
    /// derives the keys from the seed, loads and verifies the whole history, rebuilds its
    /// state.
    recover_request_ms: f64,
    /// Handshake + request.
    recover_call_ms: f64,
    /// Recover answered → first 200 of `/probe/readiness`.
    recover_to_ready_ms: f64,
    /// Process start → ready.
    total_ms: f64,
    /// The new process's CPU time (user + system) from its start to ready; 10 ms ticks.
    coordinator_cpu_ms: f64,
    /// Its CPU time during the recover call; 10 ms ticks.
    recover_cpu_ms: f64,
    /// Its VmRSS once ready, MiB.
    rss_at_ready_mib: f64,
    /// That call (handshake, the whole history as JSON, decoding), milliseconds; informative.
    get_manifests_ms: f64,
}

/// A restart against the first one.
#[derive(Debug, Serialize)]
struct Scaling {
    from_entries: u64,
    to_entries: u64,
    /// to / from.
    entries_ratio: f64,
    /// Ratios of the times (to / from).
    total_ratio: f64,
    start_to_startup_ratio: f64,
    recover_call_ratio: f64,
    recover_request_ratio: f64,
    /// (total at to − total at from) / (to − from), microseconds per entry.
    total_per_entry_us: f64,
    /// The same for the recover request alone.
    recover_request_per_entry_us: f64,
    /// total at from − per entry × from: the part that does not grow with the history, ms.
    total_fixed_ms: f64,
}

/// Grows the history and restarts, recovers and times the Coordinator at each size.
pub(crate) fn run(
    args: &Args,
    env: SimulatedEnvironment,
    work_dir: &Path,
    coordinator_bin: &Path,
) -> Result<RecoveryReport> {
    let sizes = &args.history_sizes;
    if sizes.is_empty() || sizes.windows(2).any(|pair| pair[0] >= pair[1]) {
        bail!("--history-sizes must be ascending and distinct, e.g. 1000,10000");
    }
    let workloads = (0..args.workloads)
        .map(|i| Workload::new(&format!("recovery-{i}")))
        .collect();
    let setup = Setup::new(env, workloads)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    progress(args, "starting the coordinator");
    let state_dir = work_dir.join("coordinator-state");
    let mut process = CoordinatorProcess::start(
        coordinator_bin,
        setup.env.dir(),
        &hex::encode(setup.coordinator_workload.host_data()),
        &state_dir,
        &args.coordinator_log_level,
    )?;

    // Entry n of the history is the manifest with the extra workload `update-{n}`.
    let manifest_for = |entry: u64| setup.manifest(&[Workload::new(&format!("update-{entry}"))]);
    let (manifest, json, policies) = manifest_for(1)?;
    let mut manifest_bytes = json.len();
    let mut last_manifest = json.clone();
    let started = Instant::now();
    let first =
        runtime
            .block_on(setup.owner_client(&process.user, &manifest)?.set_manifest(
                &SetManifestRequest {
                    manifest: json,
                    policies,
                    previous_transition_hash: None,
                    signature: None,
                },
            ))
            .context("setting the first manifest")?;
    let first_set_ms = millis(started.elapsed());
    let shares = SeedShareDocument::from(
        first
            .value
            .seed_shares_doc
            .context("the first set returned no seed shares")?,
    );
    let share = shares
        .share_for(&setup.seedshare_owner.public_key())
        .context("the seed shares hold none for the seed-share owner")?;
    let recover = RecoverRequest {
        seed: share
            .decrypt(&setup.seedshare_owner)
            .context("decrypting the seed share")?,
        salt: shares.salt.clone(),
        force: false,
        history_contains: None,
    };

    let mut entries = 1;
    let mut build = Vec::new();
    let mut restarts = Vec::new();
    for &size in sizes {
        progress(
            args,
            &format!("growing the history from {entries} to {size} entries through the user API"),
        );
        let from = entries;
        let owner = setup.owner_client(&process.user, &manifest)?;
        let updates = runtime.block_on(async {
            let mut session = owner.connect().await.context("connecting as the owner")?;
            let mut connected = Instant::now();
            let mut tally = Tally::default();
            let phase = Instant::now();
            while entries < size {
                if connected.elapsed() > SESSION_AGE {
                    session = owner.connect().await.context("reconnecting as the owner")?;
                    connected = Instant::now();
                }
                let (_, json, policies) = manifest_for(entries + 1)?;
                manifest_bytes = json.len();
                last_manifest.clone_from(&json);
                let started = Instant::now();
                session
                    .set_manifest(&SetManifestRequest {
                        manifest: json,
                        policies,
                        previous_transition_hash: None,
                        signature: None,
                    })
                    .await
                    .with_context(|| format!("manifest update to entry {}", entries + 1))?;
                tally.ok(started.elapsed());
                entries += 1;
                if entries % 1000 == 0 && entries < size {
                    progress(
                        args,
                        &format!(
                            "  {entries} entries ({:.0} updates/s)",
                            (entries - from) as f64 / phase.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            anyhow::Ok(tally.summary(phase.elapsed()))
        })?;
        build.push(BuildPhase {
            from_entries: from,
            to_entries: size,
            updates,
        });

        progress(
            args,
            &format!("kill -9 at {size} entries, restart, recover, wait for readiness"),
        );
        let restart = restart_and_recover(&runtime, &setup, &manifest, &mut process, &recover)?;
        check_history(&runtime, &process, &manifest, size, &last_manifest)?;
        restarts.push(restart);
    }
    if !process.is_running() {
        bail!(
            "the coordinator died during the run; log {}",
            process.log.display()
        );
    }
    if args.keep || args.work_dir.is_some() {
        progress(args, &format!("coordinator log: {}", process.log.display()));
    }
    drop(process);

    let scaling = restarts
        .split_first()
        .map(|(first, rest)| rest.iter().map(|to| scaling(first, to)).collect())
        .unwrap_or_default();
    Ok(RecoveryReport {
        scenario: Scenario::Recovery,
        workloads: args.workloads,
        manifest_bytes,
        first_set_ms,
        build,
        restarts,
        scaling,
    })
}

/// Kills the Coordinator, restarts it, recovers it and waits until it is ready; then fetches
/// the history once.
fn restart_and_recover(
    runtime: &tokio::runtime::Runtime,
    setup: &Setup,
    manifest: &Manifest,
    process: &mut CoordinatorProcess,
    recover: &RecoverRequest,
) -> Result<Restart> {
    process.kill9_and_restart()?;
    let pid = process.pid();
    let pid_text = pid.to_string();
    let client = setup.seedshare_client(&process.user, manifest)?;
    let cpu_before = cpu_time(&pid_text);
    let started = Instant::now();
    let session = runtime
        .block_on(client.connect())
        .context("connecting to the restarted coordinator")?;
    let handshake = started.elapsed();
    let requested = Instant::now();
    runtime
        .block_on(session.recover(recover))
        .context("recovering the restarted coordinator")?;
    let recovered = Instant::now();
    let request = recovered - requested;
    let cpu_after = cpu_time(&pid_text);
    drop(session);
    let to_ready = process.wait_for("/probe/readiness", recovered, Duration::from_secs(60))?;
    let total = process.started.elapsed();
    let cpu_at_ready = cpu_time(&pid_text);
    let rss = status_bytes(pid, "VmRSS").unwrap_or(0);

    let fetched = Instant::now();
    let history = runtime
        .block_on(history_client(&process.user, manifest)?.get_manifests())
        .context("UserAPI/GetManifests after recovery")?;
    let get_manifests = fetched.elapsed();
    let entries = history.value.manifests.len() as u64;

    let cpu_ms = |duration: Option<Duration>| duration.map_or(f64::NAN, millis);
    Ok(Restart {
        history_entries: entries,
        coordinator_pid: pid,
        start_to_startup_ms: millis(process.startup),
        recover_handshake_ms: millis(handshake),
        recover_request_ms: millis(request),
        recover_call_ms: millis(handshake + request),
        recover_to_ready_ms: millis(to_ready),
        total_ms: millis(total),
        coordinator_cpu_ms: cpu_ms(cpu_at_ready),
        recover_cpu_ms: match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => millis(after.saturating_sub(before)),
            _ => f64::NAN,
        },
        rss_at_ready_mib: rss as f64 / (1024.0 * 1024.0),
        get_manifests_ms: millis(get_manifests),
    })
}

/// The recovered Coordinator serves `size` manifests, the last of them `last`.
fn check_history(
    runtime: &tokio::runtime::Runtime,
    process: &CoordinatorProcess,
    manifest: &Manifest,
    size: u64,
    last: &[u8],
) -> Result<()> {
    let history = runtime
        .block_on(history_client(&process.user, manifest)?.get_manifests())
        .context("UserAPI/GetManifests after recovery")?;
    let served = &history.value.manifests;
    if served.len() as u64 != size {
        bail!(
            "the recovered coordinator serves {} manifests, expected {size}",
            served.len()
        );
    }
    if served.last().map(Vec::as_slice) != Some(last) {
        bail!("the recovered coordinator's last manifest is not the last one set");
    }
    Ok(())
}

/// A user-API client without a key that accepts the whole history in one answer.
fn history_client(user_addr: &str, manifest: &Manifest) -> Result<CoordinatorClient> {
    let validator = coordinator_validator(manifest).context("the coordinator validator")?;
    Ok(
        CoordinatorClient::new(user_addr, AtlsClient::new(validator))
            .with_max_response_body(MAX_HISTORY_BODY),
    )
}

fn scaling(from: &Restart, to: &Restart) -> Scaling {
    let entries = (to.history_entries - from.history_entries) as f64;
    let per_entry_us = |a: f64, b: f64| (b - a) * 1e3 / entries;
    let total_per_entry_us = per_entry_us(from.total_ms, to.total_ms);
    Scaling {
        from_entries: from.history_entries,
        to_entries: to.history_entries,
        entries_ratio: to.history_entries as f64 / from.history_entries as f64,
        total_ratio: to.total_ms / from.total_ms,
        start_to_startup_ratio: to.start_to_startup_ms / from.start_to_startup_ms,
        recover_call_ratio: to.recover_call_ms / from.recover_call_ms,
        recover_request_ratio: to.recover_request_ms / from.recover_request_ms,
        total_per_entry_us,
        recover_request_per_entry_us: per_entry_us(from.recover_request_ms, to.recover_request_ms),
        total_fixed_ms: from.total_ms - total_per_entry_us * from.history_entries as f64 / 1e3,
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The text report.
pub(crate) fn print_text(report: &RecoveryReport) {
    println!(
        "scenario recovery: manifests of the Coordinator + {} workloads + 1 per update ({} \
         bytes), set through the user API with the workload-owner key; first set {:.1} ms",
        report.workloads, report.manifest_bytes, report.first_set_ms
    );
    for phase in &report.build {
        let u = &phase.updates;
        let l = &u.latency_ms;
        println!(
            "history {} -> {}: {} updates in {:.1} s = {:.0} updates/s; latency ms p50 {:.1} p90 \
             {:.1} p99 {:.1} max {:.1}",
            phase.from_entries,
            phase.to_entries,
            u.succeeded,
            u.seconds,
            u.per_second,
            l.p50,
            l.p90,
            l.p99,
            l.max
        );
    }
    for r in &report.restarts {
        println!(
            "restart at {} entries: start -> startup probe {:.1} ms, recover call {:.1} ms \
             (handshake {:.1} + request {:.1}), recover -> ready {:.1} ms; total {:.1} ms",
            r.history_entries,
            r.start_to_startup_ms,
            r.recover_call_ms,
            r.recover_handshake_ms,
            r.recover_request_ms,
            r.recover_to_ready_ms,
            r.total_ms
        );
        println!(
            "  coordinator CPU to ready {:.0} ms (recover call {:.0} ms), VmRSS at ready {:.1} \
             MiB; UserAPI/GetManifests after ready: {} manifests in {:.1} ms",
            r.coordinator_cpu_ms,
            r.recover_cpu_ms,
            r.rss_at_ready_mib,
            r.history_entries,
            r.get_manifests_ms
        );
    }
    for s in &report.scaling {
        println!(
            "scaling {} -> {} entries ({:.1}x): total {:.2}x, start -> startup {:.2}x, recover \
             call {:.2}x, recover request {:.2}x",
            s.from_entries,
            s.to_entries,
            s.entries_ratio,
            s.total_ratio,
            s.start_to_startup_ratio,
            s.recover_call_ratio,
            s.recover_request_ratio
        );
        println!(
            "  per entry: {:.1} µs (total), {:.1} µs (recover request); fixed part of the total \
             {:.1} ms",
            s.total_per_entry_us, s.recover_request_per_entry_us, s.total_fixed_ms
        );
    }
}
