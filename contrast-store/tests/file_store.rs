//! What only the file store has: its layout, clean-up of crash leftovers, and sharing one state
//! directory between instances (as between processes).
#![allow(clippy::unwrap_used, clippy::panic)] // Tests may unwrap and panic.

use std::time::Duration;

use contrast_store::{FileStore, FileStoreOptions, Key, Store, StoreError};

fn options() -> FileStoreOptions {
    FileStoreOptions::with_poll_interval(Duration::from_millis(20))
}

#[tokio::test]
async fn layout_is_one_file_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), options()).await.unwrap();
    let k = Key::latest_transition();
    store.compare_and_swap(&k, b"", b"head").await.unwrap();
    assert_eq!(store.path_of(&k), dir.path().join("transitions/latest"));
    assert_eq!(
        std::fs::read(dir.path().join("transitions/latest")).unwrap(),
        b"head"
    );
    assert_eq!(store.dir(), dir.path());
}

#[tokio::test]
async fn open_removes_leftover_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), options()).await.unwrap();
    let k = Key::latest_transition();
    store.compare_and_swap(&k, b"", b"head").await.unwrap();
    // What a writer killed between creating and renaming its temporary file leaves.
    let leftover = dir.path().join("transitions/.tmp-latest-999999-7");
    std::fs::write(&leftover, b"half").unwrap();
    assert_eq!(store.list("transitions").await.unwrap(), vec!["latest"]);

    let reopened = FileStore::open(dir.path(), options()).await.unwrap();
    assert!(!leftover.exists());
    assert_eq!(reopened.get(&k).await.unwrap().unwrap(), b"head");
    assert!(dir.path().join("transitions/.lock-latest").exists());
}

#[tokio::test]
async fn instances_on_one_directory_share_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::open(dir.path(), options()).await.unwrap();
    let second = FileStore::open(dir.path(), options()).await.unwrap();
    let k = Key::latest_transition();
    first.compare_and_swap(&k, b"", b"a").await.unwrap();
    assert!(matches!(
        second.compare_and_swap(&k, b"", b"b").await,
        Err(StoreError::Conflict { .. })
    ));
    second.compare_and_swap(&k, b"a", b"b").await.unwrap();
    assert_eq!(first.get(&k).await.unwrap().unwrap(), b"b");
}

#[tokio::test]
async fn watch_sees_writes_of_other_instances_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = FileStore::open(dir.path(), options()).await.unwrap();
    let writer = FileStore::open(dir.path(), options()).await.unwrap();
    let k = Key::latest_transition();
    let mut watch = watcher.watch(&k).await.unwrap();
    for (old, new) in [(&b""[..], &b"one"[..]), (b"one", b"two")] {
        writer.compare_and_swap(&k, old, new).await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(seen, new);
        // Let the next write fall into a later poll.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // A changed file that is no content address but garbage is still just a value here.
    // Written by rename: a plain write truncates first, and a poll in between sees an empty
    // value (that made this test flaky on a loaded machine).
    let staged = dir.path().join("three.staged");
    std::fs::write(&staged, b"three").unwrap();
    std::fs::rename(&staged, dir.path().join("transitions/latest")).unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen, b"three");
}

#[tokio::test]
async fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), options()).await.unwrap();
    // A directory where a value file should be.
    std::fs::create_dir_all(dir.path().join("transitions/latest")).unwrap();
    match store.get(&Key::latest_transition()).await {
        Err(StoreError::Io {
            operation, path, ..
        }) => {
            assert_eq!(operation, "read");
            assert_eq!(path, dir.path().join("transitions/latest"));
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
