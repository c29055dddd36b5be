//! The `coordinator` binary. Its behaviour arrives with its issue; until then it only says so.

fn main() -> std::process::ExitCode {
    eprintln!("coordinator: not built yet in this version of contrast-rs (see the open issues)");
    std::process::ExitCode::from(2)
}
