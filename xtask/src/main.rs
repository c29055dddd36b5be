//! CI helpers that read `cargo metadata` (`.ci/run`), so new crates and targets are covered
//! without editing CI:
//!
//! - `xtask test-features` prints, comma-separated, every `package/feature` that some target
//!   built by `cargo test` (lib, bin, test, example) requires: the `--features` of the
//!   workspace test run. `cargo test` skips a target whose `required-features` are off without
//!   a word.
//! - `xtask libraries` prints the workspace members that have a library target, one a line.
//! - `xtask check-test-log LOG` reads the output of the test run and fails unless every test
//!   target of every workspace member ran, and every integration test (`tests/*.rs`) ran at
//!   least one test (a file gated by `#![cfg(feature = ...)]` compiles to an empty binary that
//!   "passes").
//! - `xtask codegen [--check]` generates the Rust code of the `.proto` files (see [`codegen`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, ExitCode};

use serde_json::Value;

mod codegen;

/// A test target as cargo's log names it: the source path relative to its package, and the
/// executable's name (the target name with `-` as `_`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TargetKey {
    src: String,
    name: String,
}

/// A test target of the workspace.
#[derive(Clone, Debug)]
struct Target {
    package: String,
    key: TargetKey,
    /// An integration test (`tests/*.rs`): it must run at least one test.
    integration: bool,
    /// Built by `cargo test` (lib, bin, test, example).
    built_by_test: bool,
    /// Run by `cargo test` (`test = true`).
    runs: bool,
    /// A library target.
    library: bool,
    required_features: Vec<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["test-features"] => metadata().map(|targets| {
            println!("{}", features(&targets).join(","));
        }),
        ["libraries"] => metadata().map(|targets| {
            for package in libraries(&targets) {
                println!("{package}");
            }
        }),
        ["check-test-log", log] => metadata().and_then(|targets| {
            let log = std::fs::read_to_string(log).map_err(|e| format!("reading {log}: {e}"))?;
            check(&targets, &log)
        }),
        ["codegen"] => codegen::run(false),
        ["codegen", "--check"] => codegen::run(true),
        _ => Err(
            "usage: xtask test-features | xtask libraries | xtask check-test-log LOG \
             | xtask codegen [--check]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Every target of every workspace member, from `cargo metadata --no-deps`.
fn metadata() -> Result<Vec<Target>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    targets(&json)
}

fn targets(metadata: &Value) -> Result<Vec<Target>, String> {
    let str_of = |value: &Value, field: &str| {
        value[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("cargo metadata: no {field} in {value}"))
    };
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = str_of(package, "name")?;
        let manifest = str_of(package, "manifest_path")?;
        let root = Path::new(&manifest).parent().unwrap_or(Path::new(""));
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let src = str_of(target, "src_path")?;
            let src = Path::new(&src)
                .strip_prefix(root)
                .map_or(src.clone(), |p| p.display().to_string());
            let required_features = target["required-features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            out.push(Target {
                package: name.clone(),
                key: TargetKey {
                    src,
                    name: str_of(target, "name")?.replace('-', "_"),
                },
                integration: kinds == ["test"],
                library: kinds
                    .iter()
                    .any(|kind| matches!(*kind, "lib" | "rlib" | "proc-macro")),
                built_by_test: kinds.iter().any(|kind| {
                    matches!(
                        *kind,
                        "lib" | "rlib" | "proc-macro" | "bin" | "test" | "example"
                    )
                }),
                runs: target["test"].as_bool().unwrap_or(true),
                required_features,
            });
        }
    }
    Ok(out)
}

/// `package/feature` for every feature some target built by `cargo test` requires.
fn features(targets: &[Target]) -> Vec<String> {
    let set: BTreeSet<String> = targets
        .iter()
        .filter(|t| t.built_by_test)
        .flat_map(|t| {
            t.required_features
                .iter()
                .map(move |feature| format!("{}/{feature}", t.package))
        })
        .collect();
    set.into_iter().collect()
}

/// The packages with a library target, in workspace order.
fn libraries(targets: &[Target]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for target in targets.iter().filter(|t| t.library) {
        if !out.contains(&target.package.as_str()) {
            out.push(&target.package);
        }
    }
    out
}

/// Each test executable cargo ran (`Running [unittests ]SRC (…/deps/NAME-HASH)`) and the
/// number of tests it ran (`running N tests`), in order.
fn runs(log: &str) -> Vec<(TargetKey, Option<usize>)> {
    let mut out: Vec<(TargetKey, Option<usize>)> = Vec::new();
    for line in log.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Running ") {
            let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
            let Some((src, exe)) = rest.split_once(" (") else {
                continue;
            };
            let exe = exe.trim_end_matches(')');
            let file = exe.rsplit('/').next().unwrap_or(exe);
            let name = file.rsplit_once('-').map_or(file, |(name, _hash)| name);
            out.push((
                TargetKey {
                    src: src.to_owned(),
                    name: name.to_owned(),
                },
                None,
            ));
        } else if let Some(count) = line
            .strip_prefix("running ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            && let Some(last) = out.last_mut()
            && last.1.is_none()
        {
            last.1 = Some(count);
        }
    }
    out
}

/// Fails unless every test target ran (as often as targets with its key exist) and every
/// integration test ran at least one test.
fn check(targets: &[Target], log: &str) -> Result<(), String> {
    let ran = runs(log);
    let mut seen: BTreeMap<&TargetKey, Vec<Option<usize>>> = BTreeMap::new();
    for (key, count) in &ran {
        seen.entry(key).or_default().push(*count);
    }
    let mut problems = Vec::new();
    let mut expected: BTreeMap<&TargetKey, Vec<&Target>> = BTreeMap::new();
    for target in targets.iter().filter(|t| t.runs && t.built_by_test) {
        if target.key.src.starts_with("examples/") {
            continue; // Examples are built, not run, by `cargo test`.
        }
        expected.entry(&target.key).or_default().push(target);
    }
    for (key, wanted) in &expected {
        let counts = seen.get(key).map_or(&[][..], Vec::as_slice);
        if counts.len() < wanted.len() {
            for target in &wanted[counts.len()..] {
                let needs = if target.required_features.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it requires the features {})",
                        target.required_features.join(", ")
                    )
                };
                problems.push(format!(
                    "{} {} ({}) did not run{needs}",
                    target.package, target.key.name, target.key.src
                ));
            }
        }
        if wanted.iter().any(|t| t.integration) && counts.contains(&Some(0)) {
            problems.push(format!(
                "{} ({}) ran no test: is it gated by #![cfg(feature = ...)]? Use \
                 required-features in Cargo.toml instead",
                key.name, key.src
            ));
        }
    }
    if problems.is_empty() {
        println!(
            "xtask: all {} test targets ran",
            expected.values().map(Vec::len).sum::<usize>()
        );
        Ok(())
    } else {
        Err(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn metadata_json() -> Value {
        serde_json::json!({"packages": [
            {"name": "a", "manifest_path": "/w/a/Cargo.toml", "targets": [
                {"kind": ["lib"], "name": "a", "src_path": "/w/a/src/lib.rs", "test": true},
                {"kind": ["test"], "name": "gated", "src_path": "/w/a/tests/gated.rs", "test": true,
                 "required-features": ["sim"]},
                {"kind": ["example"], "name": "demo", "src_path": "/w/a/examples/demo.rs", "test": false,
                 "required-features": ["client"]},
                {"kind": ["bench"], "name": "b", "src_path": "/w/a/benches/b.rs", "test": false,
                 "required-features": ["bench-only"]},
            ]},
            {"name": "my-bin", "manifest_path": "/w/bins/x/Cargo.toml", "targets": [
                {"kind": ["bin"], "name": "my-bin", "src_path": "/w/bins/x/src/main.rs", "test": true},
                {"kind": ["test"], "name": "e2e", "src_path": "/w/bins/x/tests/e2e.rs", "test": true},
            ]},
        ]})
    }

    const LOG: &str = "\
     Running unittests src/lib.rs (target/debug/deps/a-0123abcd)

running 3 tests
test result: ok. 3 passed; 0 failed
     Running tests/gated.rs (target/debug/deps/gated-89ab)

running 1 test
     Running unittests src/main.rs (target/debug/deps/my_bin-77)

running 0 tests
     Running tests/e2e.rs (/abs/target/debug/deps/e2e-55)

running 2 tests
";

    #[test]
    fn features_are_those_of_targets_cargo_test_builds() {
        let targets = targets(&metadata_json()).unwrap();
        assert_eq!(features(&targets), ["a/client", "a/sim"]);
    }

    #[test]
    fn libraries_are_packages_with_a_lib_target() {
        let targets = targets(&metadata_json()).unwrap();
        assert_eq!(libraries(&targets), ["a"]);
    }

    #[test]
    fn a_complete_run_passes() {
        let targets = targets(&metadata_json()).unwrap();
        check(&targets, LOG).unwrap();
    }

    #[test]
    fn a_skipped_target_is_named_with_its_features() {
        let targets = targets(&metadata_json()).unwrap();
        let log = LOG.replace("Running tests/gated.rs", "Compiling tests/gated.rs");
        let error = check(&targets, &log).unwrap_err();
        assert!(
            error.contains("a gated (tests/gated.rs) did not run (it requires the features sim)"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_integration_test_fails_but_an_empty_unit_test_binary_does_not() {
        let targets = targets(&metadata_json()).unwrap();
        let log = LOG.replace("running 2 tests", "running 0 tests");
        let error = check(&targets, &log).unwrap_err();
        assert!(error.contains("e2e (tests/e2e.rs) ran no test"), "{error}");
        assert_eq!(error.matches("ran no test").count(), 1, "{error}");
    }
}
