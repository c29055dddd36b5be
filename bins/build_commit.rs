//! Build script of the binaries: the commit they are built from, for `--version`
//! (`CONTRAST_BUILD_COMMIT`; see `contrast_tee::binary_version!`). Set the variable to override
//! it (e.g. when building from a source archive); without git it is `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CONTRAST_BUILD_COMMIT");
    let commit = std::env::var("CONTRAST_BUILD_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CONTRAST_BUILD_COMMIT={commit}");
}

/// The short commit of HEAD; watches the files that change when HEAD moves.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(reference);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
