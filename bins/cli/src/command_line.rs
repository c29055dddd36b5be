//! The command lines of a local deployment on the simulated platform: the `coordinator` and
//! `initializer` processes and the `contrast` commands between them. One builder per process,
//! used both to run it (`contrast demo`) and to print what a user types (`contrast generate`
//! with `--reference-values Simulated-SNP`, `contrast demo --show-commands`), so the printed
//! commands are the ones that run.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use contrast_core::api::{EVIDENCE_API_PORT, MESH_API_PORT, OPS_PORT, USER_API_PORT};
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;

/// The `coordinator` binary's name.
pub const COORDINATOR_PROGRAM: &str = "coordinator";
/// The `initializer` binary's name.
pub const INITIALIZER_PROGRAM: &str = "initializer";
/// The `contrast` binary's name.
pub const CONTRAST_PROGRAM: &str = "contrast";
/// The Coordinator's file store under the workspace, for local runs.
pub const COORDINATOR_STATE_DIR: &str = "coordinator-state";
/// Where a local initializer writes a workload's files: `<workspace>/workloads/<name>`.
pub const WORKLOADS_DIR: &str = "workloads";
/// The marker file an initializer writes last, under its `--root`.
pub const DONE_FILE: &str = "done";

/// One command line: environment variables, the program's name and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// Environment variables set for the command.
    pub env: Vec<(String, String)>,
    /// The program's name (looked up on `PATH` when typed).
    pub program: String,
    /// The arguments.
    pub args: Vec<String>,
}

impl CommandLine {
    /// A command line running `program` without arguments.
    #[must_use]
    pub fn new(program: &str) -> Self {
        Self {
            env: Vec::new(),
            program: program.to_owned(),
            args: Vec::new(),
        }
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command running `binary` (the program's path) with these arguments and environment.
    #[must_use]
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command.args(&self.args);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// The line a user types in a POSIX shell: `NAME='value' program arg ...`, each word quoted
    /// when it needs to be.
    #[must_use]
    pub fn to_shell(&self) -> String {
        self.env
            .iter()
            .map(|(name, value)| format!("{name}={}", shell_quote(value)))
            .chain(std::iter::once(shell_quote(&self.program)))
            .chain(self.args.iter().map(|arg| shell_quote(arg)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `{"env": {...}, "argv": [program, args...], "shell": "..."}`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let env: serde_json::Map<String, serde_json::Value> = self
            .env
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
        let argv: Vec<&str> = std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect();
        serde_json::json!({ "env": env, "argv": argv, "shell": self.to_shell() })
    }
}

/// Quotes `word` for a POSIX shell when it holds anything but plainly safe characters.
#[must_use]
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The four listen addresses of a local Coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorAddrs {
    /// User API (`contrast set`, `verify`, `recover`).
    pub user: String,
    /// Mesh API (initializers).
    pub mesh: String,
    /// Evidence API (`/attest`).
    pub evidence: String,
    /// Probes.
    pub ops: String,
}

impl CoordinatorAddrs {
    /// Loopback with the given ports (user, mesh, evidence, ops).
    #[must_use]
    pub fn loopback([user, mesh, evidence, ops]: [u16; 4]) -> Self {
        let addr = |port: u16| format!("127.0.0.1:{port}");
        Self {
            user: addr(user),
            mesh: addr(mesh),
            evidence: addr(evidence),
            ops: addr(ops),
        }
    }

    /// Loopback with the Coordinator's standard ports.
    #[must_use]
    pub fn default_loopback() -> Self {
        Self::loopback([USER_API_PORT, MESH_API_PORT, EVIDENCE_API_PORT, OPS_PORT])
    }
}

/// `coordinator` on the simulated platform in `sim_dir`, as the VM whose HOST_DATA is
/// `host_data` (the Coordinator's policy digest), with its file store in `state_dir`.
#[must_use]
pub fn coordinator(
    sim_dir: &Path,
    host_data: &str,
    state_dir: &Path,
    addrs: &CoordinatorAddrs,
) -> CommandLine {
    CommandLine::new(COORDINATOR_PROGRAM)
        .args(["--tee", "simulated", "--sim-dir"])
        .arg(sim_dir)
        .args(["--sim-host-data", host_data, "--state-dir"])
        .arg(state_dir)
        .args(["--user-addr", &addrs.user, "--mesh-addr", &addrs.mesh])
        .args(["--evidence-addr", &addrs.evidence, "--ops-addr", &addrs.ops])
}

/// `initializer` of one workload on the simulated platform: the VM whose HOST_DATA is
/// `host_data` (the workload's initdata digest), attesting the Coordinator at `mesh` with
/// `identity` (the JSON `contrast generate` puts into the pod's
/// [`COORDINATOR_IDENTITY_ENV`]), writing its files under `root`.
#[must_use]
pub fn initializer(
    sim_dir: &Path,
    host_data: &str,
    identity: &str,
    mesh: &str,
    root: &Path,
) -> CommandLine {
    CommandLine::new(INITIALIZER_PROGRAM)
        .env(COORDINATOR_IDENTITY_ENV, identity)
        .args(["--coordinator", mesh, "--root"])
        .arg(root)
        .arg("--done-file")
        .arg(root.join(DONE_FILE))
        .args(["--tee", "simulated", "--sim-dir"])
        .arg(sim_dir)
        .args(["--sim-host-data", host_data])
}

/// `contrast [--workspace-dir DIR] args...` (the flag only when the workspace is not `.`).
#[must_use]
pub fn contrast<I, S>(workspace: &Path, args: I) -> CommandLine
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let command = CommandLine::new(CONTRAST_PROGRAM);
    let command = if workspace == Path::new(".") {
        command
    } else {
        command.arg("--workspace-dir").arg(workspace)
    };
    command.args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("127.0.0.1:7777"), "127.0.0.1:7777");
        assert_eq!(shell_quote("./sim"), "./sim");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("{\"a\": 1}"), "'{\"a\": 1}'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn printed_and_run_commands_agree() {
        let line = initializer(
            Path::new("sim dir"),
            "ab",
            "{}",
            "127.0.0.1:7777",
            Path::new("w/web"),
        );
        assert_eq!(
            line.to_shell(),
            "CONTRAST_COORDINATOR_IDENTITY='{}' initializer --coordinator 127.0.0.1:7777 \
             --root w/web --done-file w/web/done --tee simulated --sim-dir 'sim dir' \
             --sim-host-data ab"
        );
        let command = line.command(Path::new("/bin/initializer"));
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args, line.args);
        assert_eq!(
            contrast(Path::new("."), ["verify"]).to_shell(),
            "contrast verify"
        );
        assert_eq!(
            contrast(Path::new("ws"), ["verify"]).to_shell(),
            "contrast --workspace-dir ws verify"
        );
    }
}
