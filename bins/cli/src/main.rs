//! The `contrast` command-line tool of contrast-rs: the tool workload owners, seed-share owners
//! and data owners use.
//!
//! Each subcommand lives in its own module with one `run(...) -> anyhow::Result<Outcome>`.
//! Adding a subcommand is one [`Command`] variant plus one module; `main` only parses the
//! command line, sets up logging, dispatches and prints the [`Outcome`].

#![forbid(unsafe_code)]
// The modules' `pub` items are the interface between subcommand modules of this binary.
#![allow(unreachable_pub)]

mod coordinator_resources;
mod generate;
mod kube;
mod simulate;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of every command (documented in `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The command did what was asked.
    Ok,
    /// The command failed; the message on stderr says why and what to do.
    Error,
    /// The command line or the combination of flags was not valid.
    Usage,
}

impl ExitStatus {
    /// The process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::Usage => 2,
        }
    }
}

/// What a command reports when it finishes: a text for people and a JSON value for scripts.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status.
    pub status: ExitStatus,
    /// Printed to stdout without `--json`.
    pub human: String,
    /// Printed to stdout (pretty JSON) with `--json`.
    pub json: serde_json::Value,
}

/// An error in how the tool was called that the parser could not see (e.g. a flag that another
/// flag requires). Exits with [`ExitStatus::Usage`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error (the message on stderr says what went wrong and what to do)
  2  usage error (unknown flag, missing argument, flags that cannot be combined)";

/// Command line of the `contrast` tool.
#[derive(Debug, Parser)]
#[command(
    name = "contrast",
    version,
    about = "Deploy and verify confidential Kubernetes workloads with Contrast",
    after_long_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Directory for the default input and output files (manifest.json, owner keys, ...).
    #[arg(long, global = true, default_value = ".")]
    pub workspace_dir: PathBuf,
    /// Log level on stderr: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: tracing::Level,
    /// Print a machine-readable JSON summary on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Add initdata and the initializer to Kubernetes resources and write manifest.json.
    #[command(
        long_about = generate::LONG_ABOUT,
        after_long_help = generate::AFTER_LONG_HELP
    )]
    Generate(generate::GenerateArgs),
    /// Create a simulated SEV-SNP environment for running without hardware.
    #[command(
        long_about = simulate::LONG_ABOUT,
        after_long_help = simulate::AFTER_LONG_HELP
    )]
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                ExitStatus::Ok.code()
            });
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(cli.global.log_level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let result = match &cli.command {
        Command::Generate(args) => generate::run(&cli.global, args),
        Command::Simulate(args) => simulate::run(&cli.global, args),
    };
    match result {
        Ok(outcome) => {
            if cli.global.json {
                match serde_json::to_string_pretty(&outcome.json) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: the JSON summary could not be encoded: {error}")
                    }
                }
            } else if !outcome.human.is_empty() {
                print!("{}", outcome.human);
            }
            ExitCode::from(outcome.status.code())
        }
        Err(error) => {
            let status = if error.downcast_ref::<UsageError>().is_some() {
                ExitStatus::Usage
            } else {
                ExitStatus::Error
            };
            eprintln!("error: {error:#}");
            if cli.global.json {
                println!("{}", serde_json::json!({ "error": format!("{error:#}") }));
            }
            ExitCode::from(status.code())
        }
    }
}
