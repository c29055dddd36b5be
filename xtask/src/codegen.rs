//! `xtask codegen [--check]`: the Rust code for the `.proto` files, generated with protox (a
//! protobuf compiler in Rust, so no `protoc` is needed) and prost/tonic, then formatted with
//! rustfmt. The generated files are committed, so a crate that depends on ours builds without
//! any code generator; `--check` (run by CI) fails if a committed file differs from what the
//! `.proto` files give today.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One generation unit: `.proto` files (relative to `include`) and where their code goes.
struct Unit {
    include: &'static str,
    protos: &'static [&'static str],
    out_dir: &'static str,
    /// Services get tonic client and server code.
    grpc: bool,
}

const UNITS: &[Unit] = &[
    Unit {
        include: "contrast-attest/proto",
        protos: &["sevsnp.proto"],
        out_dir: "contrast-attest/src/evidence/generated",
        grpc: false,
    },
    Unit {
        include: "contrast-grpc/proto",
        protos: &["userapi.proto", "meshapi.proto"],
        out_dir: "contrast-grpc/src/generated",
        grpc: true,
    },
];

/// Messages with secret fields (seed, mesh CA key, workload secret): no derived `Debug`.
const SECRET_MESSAGES: [&str; 3] = [
    ".edgelesssys.contrast.userapi.RecoverRequest",
    ".meshapi.RecoverResponse",
    ".meshapi.NewMeshCertResponse",
];

/// Generates every unit into its directory, or with `check` into a temporary directory and
/// compares.
pub(crate) fn run(check: bool) -> Result<(), String> {
    let root = workspace_root()?;
    let mut stale = Vec::new();
    for unit in UNITS {
        let target = root.join(unit.out_dir);
        let scratch = std::env::temp_dir().join(format!(
            "contrast-codegen-{}-{}",
            std::process::id(),
            unit.out_dir.replace('/', "-")
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        generate(&root, unit, &scratch)?;
        for entry in std::fs::read_dir(&scratch).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().unwrap_or_default().to_owned();
            let generated = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let committed = target.join(&name);
            if check {
                if std::fs::read(&committed).ok().as_deref() != Some(generated.as_slice()) {
                    stale.push(committed.display().to_string());
                }
            } else {
                std::fs::create_dir_all(&target)
                    .map_err(|e| format!("{}: {e}", target.display()))?;
                std::fs::write(&committed, &generated)
                    .map_err(|e| format!("{}: {e}", committed.display()))?;
                println!("wrote {}", committed.display());
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "generated code is out of date (run `cargo run -p xtask -- codegen`): {}",
            stale.join(", ")
        ))
    }
}

fn generate(root: &Path, unit: &Unit, out: &Path) -> Result<(), String> {
    let include = root.join(unit.include);
    let fds = protox::compile(unit.protos, [&include])
        .map_err(|e| format!("compiling {}: {e:?}", unit.include))?;
    let result = if unit.grpc {
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(false)
            .emit_rerun_if_changed(false)
            // Messages carrying secrets get a redacting Debug and a wiping Drop by hand (contrast-grpc's
            // `secret.rs`): a logged request never prints a seed or key, a dropped one leaves none behind.
            .skip_debug(SECRET_MESSAGES)
            .out_dir(out)
            .compile_fds(fds)
    } else {
        let mut config = prost_build::Config::new();
        config.out_dir(out);
        config.compile_fds(fds)
    };
    result.map_err(|e| format!("generating {}: {e}", unit.include))?;
    for entry in std::fs::read_dir(out).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let status = Command::new("rustfmt")
            .args(["--edition", "2024"])
            .arg(&path)
            .status()
            .map_err(|e| format!("running rustfmt: {e}"))?;
        if !status.success() {
            return Err(format!("rustfmt failed on {}", path.display()));
        }
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| "run through `cargo run -p xtask`".to_owned())?;
    Path::new(&manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_owned())
}
