//! Durable file writes, the one implementation every crate of contrast-rs uses: the file store's
//! values, the initializer's certificates and secret, the CLI's workspace files.
//!
//! [`write_atomic`] replaces a file so that a reader (or a crash) sees either the old or the
//! new contents, never a mix, and the new contents survive a power loss once it returns: a
//! temporary file in the same directory, write, mode, fsync, rename over the target (which
//! replaces it even when it is read-only), fsync of the directory. A temporary file left by a
//! crash is recognised by [`is_temporary`] so its owner can clean it up.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How the name of every temporary file starts (`.tmp-<name>-<pid>-<n>`).
pub const TEMP_PREFIX: &str = ".tmp-";

/// Makes temporary file names unique within this process (the pid makes them unique across).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Whether `file_name` is one of [`write_atomic`]'s temporary files (a crash's leftover when
/// no write is running).
#[must_use]
pub fn is_temporary(file_name: &OsStr) -> bool {
    file_name.to_string_lossy().starts_with(TEMP_PREFIX)
}

/// A failed write: what was being done, to which path, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The path has no file name (`/`, `..`).
    #[error("{} does not name a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file-system call failed.
    #[error("cannot {operation} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `fsync`, `rename`, …).
        operation: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    /// What was being done (for callers that keep their own error type).
    #[must_use]
    pub fn operation(&self) -> &'static str {
        match self {
            Self::NotAFile { .. } => "name",
            Self::Io { operation, .. } => operation,
        }
    }

    /// The path concerned.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::NotAFile { path } | Self::Io { path, .. } => path,
        }
    }
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        operation,
        path,
        source,
    }
}

/// Replaces `path` with `contents` atomically and durably (see the [crate] docs). With `mode`,
/// the file gets exactly that mode (not subject to the umask; the temporary file is 0600
/// until then); without, a new file's default (0666 less the umask). The directory must exist.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| WriteError::NotAFile {
        path: path.to_path_buf(),
    })?;
    let mut temp_name = std::ffi::OsString::from(TEMP_PREFIX);
    temp_name.push(name);
    temp_name.push(format!(
        "-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);
    // A leftover with this very name: an interrupted run with the same pid (a restarted
    // container's pid 1).
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove the leftover", &temp)(e)),
    }
    let written = write_new_file(&temp, contents, mode)
        .and_then(|()| fs::rename(&temp, path).map_err(io("rename", &temp)));
    if written.is_err() {
        // Best effort: the owner's clean-up (`is_temporary`) removes it otherwise.
        let _ = fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}

fn write_new_file(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if mode.is_some() {
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io("create", path))?;
    file.write_all(contents).map_err(io("write", path))?;
    if let Some(mode) = mode {
        // Set explicitly: the creation mode is subject to the umask.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(io("set the mode of", path))?;
    }
    file.sync_all().map_err(io("fsync", path))
}

/// The mode of [`write_marker`]'s files.
pub const MARKER_MODE: u32 = 0o644;

/// Writes the empty marker file `path` ([`MARKER_MODE`], atomically), creating its directory
/// if missing: what a startup probe tests (the initializer's done file, the mesh sidecar's
/// ready file).
pub fn write_marker(path: &Path) -> Result<(), WriteError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io("create the directory", parent))?;
    }
    write_atomic(path, b"", Some(MARKER_MODE))
}

/// fsync of a directory: makes the creation, rename or removal of its entries durable.
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io("fsync the directory", dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Moved from the initializer (`files.rs`) with its writer.
    #[test]
    fn atomic_write_replaces_read_only_files_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.pem");
        write_atomic(&path, b"one", Some(0o444)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o444);
        write_atomic(&path, b"two", Some(0o400)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o400);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.pem")]);
    }

    #[test]
    fn a_marker_is_empty_0644_and_gets_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/done");
        write_marker(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(mode(&path), 0o644);
        // Again over an existing marker.
        write_marker(&path).unwrap();
        assert_eq!(mode(&path), 0o644);
    }

    #[test]
    fn a_leftover_of_the_same_name_is_replaced_and_temporaries_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        // Whatever counter the next write takes, a leftover with its name is in the way.
        for n in next..next + 64 {
            let leftover = dir
                .path()
                .join(format!(".tmp-value-{}-{n}", std::process::id()));
            fs::write(&leftover, b"half").unwrap();
            assert!(is_temporary(leftover.file_name().unwrap()));
        }
        write_atomic(&path, b"whole", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!is_temporary(OsStr::new("value")));
    }

    #[test]
    fn errors_name_the_operation_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("file");
        let error = write_atomic(&missing, b"x", None).unwrap_err();
        assert_eq!(error.operation(), "create");
        assert!(error.to_string().starts_with("cannot create "), "{error}");
        assert!(error.to_string().contains("no-such-dir"), "{error}");
        assert!(matches!(
            write_atomic(Path::new("/"), b"x", None),
            Err(WriteError::NotAFile { .. })
        ));
    }
}
