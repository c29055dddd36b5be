#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Upstream's first step of the initializer: with `CONTRAST_SERVICE_MESH_DISABLED` set (a pod
//! without the service-mesh sidecar), it removes the pod VM's default-deny rule, before it
//! waits for anything; without the variable the rule stays (the sidecar removes it). Run in a
//! network namespace of its own (needs root and iptables; SKIPPED otherwise, except in CI).

use std::process::{Command, Output};

use contrast_mesh::config::SERVICE_MESH_DISABLED_ENV;
use contrast_mesh::iptables::default_deny;

const INITIALIZER: &str = env!("CARGO_BIN_EXE_initializer");

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// The initializer in a fresh namespace with the default-deny rule, `env` set; returns the
/// namespace's INPUT rules afterwards and the initializer's log.
fn input_rules_after(name: &str, env: &[(&str, &str)]) -> (String, String) {
    let ns = Namespace(format!("dd{}{name}", std::process::id() % 100_000));
    assert!(run("ip", &["netns", "add", &ns.0]).status.success());
    let mut insert = vec!["netns", "exec", &ns.0, "iptables"];
    let rule = default_deny("-I");
    insert.extend(rule.iter().map(String::as_str));
    assert!(run("ip", &insert).status.success());
    // Nothing answers on port 1: the run fails after its first step.
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, INITIALIZER])
        .args([
            "--coordinator",
            "127.0.0.1:1",
            "--insecure-trust-any-coordinator",
            "--max-attempts",
            "1",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rules = run("ip", &["netns", "exec", &ns.0, "iptables", "-S", "INPUT"]);
    (
        String::from_utf8(rules.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_mesh_the_initializer_removes_the_default_deny_rule() {
    let root = run("id", &["-u"]).stdout == b"0\n";
    let tools = ["ip", "iptables"].iter().all(|tool| {
        Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if !root || !tools {
        return contrast_testkit::skip("needs root, ip and iptables");
    }
    let (rules, log) = input_rules_after("off", &[(SERVICE_MESH_DISABLED_ENV, "true")]);
    assert!(!rules.contains("DROP"), "{rules}\n{log}");
    assert!(log.contains("removed the default-deny rule"), "{log}");

    // Without the variable (a pod with the sidecar) the rule stays; so does an empty value.
    for (name, env) in [
        ("unset", &[][..]),
        ("empty", &[(SERVICE_MESH_DISABLED_ENV, "")][..]),
    ] {
        let (rules, log) = input_rules_after(name, env);
        assert!(
            rules.contains("-A INPUT -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP"),
            "{name}: {rules}\n{log}"
        );
    }
}
