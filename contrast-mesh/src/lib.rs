//! The service mesh of contrast-rs: every connection between confidential pods mutually
//! authenticated with the mesh certificates, without changing the applications (the Rust
//! counterpart of upstream Contrast's Envoy sidecar).
//!
//! - [`config`]: upstream's annotation syntax (ingress, egress, admin port), parsed strictly.
//!   Pure; `contrast generate` uses it to refuse a bad annotation at generate time.
//! - [`iptables`]: upstream's TPROXY rules in the `mangle` table and the default-deny rule.
//!   Pure: `iptables-restore` input and argument vectors.
//! - `tls`, `proxy`, `metrics`, `admin` (feature `proxy`, on by default): the TLS
//!   configurations from the initializer's files, the ingress and egress listeners, the
//!   certificate reloader, and the admin interface.
#![forbid(unsafe_code)]

pub mod config;
pub mod iptables;

#[cfg(feature = "proxy")]
pub mod admin;
#[cfg(feature = "proxy")]
pub mod metrics;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "proxy")]
pub mod tls;
