//! Key-value stores with compare-and-swap and watch, and the signed manifest history on top.
//!
//! This is the Coordinator's durable state (upstream's history store, `contrast-formats.md` §5):
//!
//! - [`key`]: `<kind>/<name>` keys, content addresses and ConfigMap names.
//! - [`Store`]: the async store trait; [`FileStore`] (one file per key, the embedded default),
//!   [`MemoryStore`] (tests) and [`AnyStore`] (the backend chosen at run time).
//! - [`history`]: policies, manifests and transitions stored by content address, and the signed
//!   head `transitions/latest` advanced by compare-and-swap; loading verifies the whole chain
//!   with contrast-core's [`verify_history`](contrast_core::history::verify_history).
//!
//! Conflicts (someone else wrote first), corruption (stored data fails its check) and storage
//! failures are distinct error variants throughout.
#![forbid(unsafe_code)]

mod error;
mod file;
pub mod history;
pub mod key;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
mod memory;
mod store;

pub use error::StoreError;
pub use file::{FileStore, FileStoreOptions};
pub use history::{HistoryStore, HistoryStoreError, Update};
pub use key::{Key, KeyError, configmap_name};
pub use memory::MemoryStore;
pub use store::{AnyStore, Store, Watch};
