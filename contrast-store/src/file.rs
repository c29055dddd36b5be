//! The file store: one file per key under a state directory, the embedded default.
//!
//! Layout under the state directory `<dir>`:
//!
//! | path                                 | what                                            |
//! |--------------------------------------|-------------------------------------------------|
//! | `<dir>/<kind>/<name>`                | the value of key `<kind>/<name>`                |
//! | `<dir>/<kind>/.tmp-<name>-<pid>-<n>` | a write in progress (or left by a crash)        |
//! | `<dir>/<kind>/.lock-<name>`          | advisory lock taken by compare-and-swap         |
//! | `<dir>/.lock`                        | store lock: shared by writers, exclusive at open |
//!
//! Keys only contain `[a-zA-Z0-9-]`, so no key collides with the dot files.
//!
//! **Atomic writes.** A value is written to a fresh temporary file in the key's directory, the
//! file is fsynced, renamed over the target, and the directory is fsynced. A rename within one
//! directory replaces the target atomically, so a crash at any instant leaves the old or the new
//! value, never a torn or empty one; after the directory fsync the new value survives power loss.
//! Temporary files left by a crash are removed by [`FileStore::open`]. Writers hold the store
//! lock shared, and `open` takes it exclusively for the clean-up, so a store opened while another
//! process writes never deletes that process's temporary file.
//!
//! **Compare-and-swap** takes an exclusive `flock` (through `std::fs::File::lock`) on the key's
//! lock file around read, compare and write. `flock` locks belong to the open file description,
//! so the lock excludes other processes and other threads of this process alike. Reads take no
//! lock: the rename makes them see a whole value.
//!
//! **Watch** polls the file every [`FileStoreOptions::poll_interval`] (100 ms by default) and
//! also receives every write made through the same [`FileStore`] (or a clone) at once, in order.
//! Changes made by other processes are seen at the next poll; several of them between two polls
//! show up as the last one only (and a change that is undone before the poll is not seen).
//!
//! All file I/O runs in `tokio::task::spawn_blocking`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{StoreError, check_content, check_mutable, check_put};
use crate::key::{Key, check_kind};
use crate::store::{Store, Watch};

const STORE_LOCK: &str = ".lock";
const KEY_LOCK_PREFIX: &str = ".lock-";

/// The outcome of reading one key.
type ReadResult = Result<Option<Vec<u8>>, StoreError>;

/// Settings of a [`FileStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStoreOptions {
    /// How often a watch re-reads its file to see writes by other processes.
    pub poll_interval: Duration,
}

impl FileStoreOptions {
    /// Default for [`FileStoreOptions::poll_interval`].
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

    /// Options with the given poll interval.
    #[must_use]
    pub const fn with_poll_interval(poll_interval: Duration) -> FileStoreOptions {
        FileStoreOptions { poll_interval }
    }
}

impl Default for FileStoreOptions {
    fn default() -> FileStoreOptions {
        FileStoreOptions::with_poll_interval(FileStoreOptions::DEFAULT_POLL_INTERVAL)
    }
}

/// A [`Store`] of one file per key under a state directory. Clones share the same instance (and
/// its watchers).
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    dir: PathBuf,
    options: FileStoreOptions,
    /// Per key, the watch tasks to tell about writes made through this instance. Writers send
    /// while holding it, watch polls read the file while holding it (see `poll_file`).
    watchers: Mutex<HashMap<Key, Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        operation,
        path,
        source,
    }
}

async fn blocking<T: Send + 'static>(
    what: impl FnOnce() -> String,
    task: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(task)
        .await
        .map_err(|error| StoreError::TaskFailed {
            what: what(),
            message: error.to_string(),
        })?
}

impl FileStore {
    /// Opens (creating if needed) the store under `dir` and removes temporary files left by a
    /// crash.
    pub async fn open(
        dir: impl Into<PathBuf>,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        let dir = dir.into();
        let task_dir = dir.clone();
        blocking(
            || format!("opening {}", dir.display()),
            move || open_blocking(&task_dir),
        )
        .await?;
        Ok(FileStore {
            inner: Arc::new(FileInner {
                dir,
                options,
                watchers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file that holds `key`.
    #[must_use]
    pub fn path_of(&self, key: &Key) -> PathBuf {
        self.inner.path_of(key)
    }
}

/// Opens (creating if needed) the lock file at `path` and takes an exclusive `flock` on it; the
/// lock is held until the returned file is dropped.
fn lock_exclusively(path: &Path) -> Result<fs::File, StoreError> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error("open lock file", path))?;
    lock.lock().map_err(io_error("lock", path))?;
    Ok(lock)
}

fn open_blocking(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    let lock_path = dir.join(STORE_LOCK);
    let _lock = lock_exclusively(&lock_path)?;
    for entry in fs::read_dir(dir).map_err(io_error("read directory", dir))? {
        let entry = entry.map_err(io_error("read directory", dir))?;
        let kind_dir = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(io_error("stat", &kind_dir))?
            .is_dir();
        if !is_dir {
            continue;
        }
        let mut removed = false;
        for file in fs::read_dir(&kind_dir).map_err(io_error("read directory", &kind_dir))? {
            let file = file.map_err(io_error("read directory", &kind_dir))?;
            if contrast_fs::is_temporary(&file.file_name()) {
                let path = file.path();
                fs::remove_file(&path)
                    .map_err(io_error("remove leftover temporary file", &path))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&kind_dir)?;
        }
    }
    // Unlocked when `_lock` is dropped (closed).
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    contrast_fs::sync_dir(dir).map_err(write_error)
}

/// A failed durable write as the store reports I/O errors.
fn write_error(error: contrast_fs::WriteError) -> StoreError {
    let operation = error.operation();
    let path = error.path().to_path_buf();
    let source = match error {
        contrast_fs::WriteError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    };
    StoreError::Io {
        operation,
        path,
        source,
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

impl FileInner {
    fn path_of(&self, key: &Key) -> PathBuf {
        self.dir.join(key.kind()).join(key.name())
    }

    fn watchers(&self) -> MutexGuard<'_, HashMap<Key, Vec<mpsc::UnboundedSender<Vec<u8>>>>> {
        // Every change under this lock is a single push or retain; poisoning leaves it whole.
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, key: &Key, value: &[u8]) {
        let mut watchers = self.watchers();
        if let Some(senders) = watchers.get_mut(key) {
            senders.retain(|sender| sender.send(value.to_vec()).is_ok());
        }
    }

    fn get_blocking(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let value = read_optional(&self.path_of(key))?;
        if let Some(value) = &value {
            check_content(key, value)?;
        }
        Ok(value)
    }

    /// Creates `<dir>/<kind>` if missing, durably.
    fn kind_dir(&self, key: &Key) -> Result<PathBuf, StoreError> {
        let kind_dir = self.dir.join(key.kind());
        match fs::create_dir(&kind_dir) {
            Ok(()) => sync_dir(&self.dir)?,
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error("create directory", &kind_dir)(error)),
        }
        Ok(kind_dir)
    }

    /// Replaces the value of `key` atomically and durably (`contrast_fs::write_atomic`:
    /// temporary file, fsync, rename, directory fsync).
    fn write_atomic(&self, key: &Key, kind_dir: &Path, value: &[u8]) -> Result<(), StoreError> {
        let lock_path = self.dir.join(STORE_LOCK);
        let store_lock = File::open(&lock_path).map_err(io_error("open lock file", &lock_path))?;
        store_lock
            .lock_shared()
            .map_err(io_error("lock", &lock_path))?;

        contrast_fs::write_atomic(&kind_dir.join(key.name()), value, None).map_err(write_error)
    }

    fn put_blocking(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        check_put(key, value)?;
        // Content-addressed: a stored, intact copy is already the value. A corrupt one is
        // replaced.
        if let Some(existing) = read_optional(&self.path_of(key))?
            && existing == value
        {
            return Ok(());
        }
        let kind_dir = self.kind_dir(key)?;
        self.write_atomic(key, &kind_dir, value)?;
        self.notify(key, value);
        Ok(())
    }

    fn compare_and_swap_blocking(
        &self,
        key: &Key,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), StoreError> {
        check_mutable(key)?;
        let kind_dir = self.kind_dir(key)?;
        let lock_path = kind_dir.join(format!("{KEY_LOCK_PREFIX}{}", key.name()));
        let lock = lock_exclusively(&lock_path)?;

        let current = read_optional(&kind_dir.join(key.name()))?;
        if current.as_deref().unwrap_or_default() != old {
            return Err(StoreError::Conflict { key: key.clone() });
        }
        if current.as_deref() != Some(new) {
            self.write_atomic(key, &kind_dir, new)?;
            // Still under the key lock, so notifications go out in write order.
            self.notify(key, new);
        }
        drop(lock);
        Ok(())
    }

    fn list_blocking(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        check_kind(kind)?;
        let kind_dir = self.dir.join(kind);
        let entries = match fs::read_dir(&kind_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("read directory", &kind_dir)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("read directory", &kind_dir))?;
            if let Some(name) = entry.file_name().to_str()
                && Key::from_parts(kind, name).is_ok()
            {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Registers a watch task's channel and reads the current value, both under the watchers
    /// lock, so no write falls between them.
    fn subscribe_blocking(
        &self,
        key: &Key,
        sender: mpsc::UnboundedSender<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut watchers = self.watchers();
        let current = self.get_blocking(key)?;
        let senders = watchers.entry(key.clone()).or_default();
        senders.retain(|sender| !sender.is_closed());
        senders.push(sender);
        Ok(current)
    }

    /// One poll: under the watchers lock, takes the writes this instance already announced
    /// and then reads the file. A write through this instance announces itself before it
    /// releases its key lock, and announcing needs the watchers lock, so the file never shows a
    /// value whose announcement is still to come after an older one: order is kept.
    fn poll_file(
        &self,
        key: &Key,
        pushed: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> (Vec<Vec<u8>>, ReadResult) {
        let _watchers = self.watchers();
        let mut announced = Vec::new();
        while let Ok(value) = pushed.try_recv() {
            announced.push(value);
        }
        (announced, self.get_blocking(key))
    }
}

/// Forwards a value to the watcher unless it equals the last one forwarded.
struct Forwarder {
    out: mpsc::UnboundedSender<Result<Vec<u8>, StoreError>>,
    last: Option<Vec<u8>>,
    failing: bool,
}

impl Forwarder {
    fn value(&mut self, value: Vec<u8>) -> bool {
        self.failing = false;
        if self.last.as_ref() == Some(&value) {
            return true;
        }
        self.last = Some(value.clone());
        self.out.send(Ok(value)).is_ok()
    }

    fn error(&mut self, error: StoreError) -> bool {
        // One report per failing stretch, not one per poll.
        if self.failing {
            return true;
        }
        self.failing = true;
        self.out.send(Err(error)).is_ok()
    }
}

async fn watch_task(
    inner: Arc<FileInner>,
    key: Key,
    mut pushed: mpsc::UnboundedReceiver<Vec<u8>>,
    mut forwarder: Forwarder,
) {
    let interval = inner.options.poll_interval;
    let mut next_poll = Instant::now() + interval;
    loop {
        match tokio::time::timeout_at(next_poll, pushed.recv()).await {
            Ok(Some(value)) => {
                if !forwarder.value(value) {
                    return;
                }
            }
            // The sender lives in `inner`'s table until this task's receiver is gone.
            Ok(None) => return,
            Err(_elapsed) => {
                let task_inner = Arc::clone(&inner);
                let task_key = key.clone();
                let polled = tokio::task::spawn_blocking(move || {
                    let (announced, current) = task_inner.poll_file(&task_key, &mut pushed);
                    (pushed, announced, current)
                })
                .await;
                let Ok((receiver, announced, current)) = polled else {
                    return;
                };
                pushed = receiver;
                for value in announced {
                    if !forwarder.value(value) {
                        return;
                    }
                }
                let alive = match current {
                    Ok(Some(value)) => forwarder.value(value),
                    Ok(None) => !forwarder.out.is_closed(),
                    Err(error) => forwarder.error(error),
                };
                if !alive {
                    return;
                }
                next_poll = Instant::now() + interval;
            }
        }
    }
}

impl Store for FileStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let task_key = key.clone();
        blocking(
            || format!("get {key}"),
            move || inner.get_blocking(&task_key),
        )
        .await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let task_key = key.clone();
        let value = value.to_vec();
        blocking(
            || format!("put {key}"),
            move || inner.put_blocking(&task_key, &value),
        )
        .await
    }

    async fn compare_and_swap(&self, key: &Key, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let task_key = key.clone();
        let (old, new) = (old.to_vec(), new.to_vec());
        blocking(
            || format!("compare-and-swap {key}"),
            move || inner.compare_and_swap_blocking(&task_key, &old, &new),
        )
        .await
    }

    async fn list(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let inner = Arc::clone(&self.inner);
        let task_kind = kind.to_owned();
        blocking(
            || format!("list {kind}"),
            move || inner.list_blocking(&task_kind),
        )
        .await
    }

    async fn watch(&self, key: &Key) -> Result<Watch, StoreError> {
        let (push_sender, pushed) = mpsc::unbounded_channel();
        let inner = Arc::clone(&self.inner);
        let task_key = key.clone();
        let current = blocking(
            || format!("watch {key}"),
            move || inner.subscribe_blocking(&task_key, push_sender),
        )
        .await?;

        let (out, receiver) = mpsc::unbounded_channel();
        let mut forwarder = Forwarder {
            out,
            last: None,
            failing: false,
        };
        if let Some(value) = current {
            forwarder.value(value);
        }
        let task = tokio::spawn(watch_task(
            Arc::clone(&self.inner),
            key.clone(),
            pushed,
            forwarder,
        ));
        Ok(Watch::new(key.clone(), receiver, Some(task.abort_handle())))
    }

    async fn get_many(&self, keys: &[Key]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        let inner = Arc::clone(&self.inner);
        let task_keys = keys.to_vec();
        let values = blocking(
            || format!("get {} keys", keys.len()),
            move || {
                Ok(task_keys
                    .iter()
                    .map(|key| inner.get_blocking(key))
                    .collect::<Vec<_>>())
            },
        )
        .await;
        match values {
            Ok(values) => values,
            Err(error) => {
                let message = error.to_string();
                keys.iter()
                    .map(|key| {
                        Err(StoreError::TaskFailed {
                            what: format!("get {key}"),
                            message: message.clone(),
                        })
                    })
                    .collect()
            }
        }
    }
}
