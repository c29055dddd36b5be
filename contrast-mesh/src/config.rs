//! The sidecar's configuration: upstream Contrast's annotation syntax, carried into the sidecar
//! by environment variables ([`INGRESS_ENV`], [`EGRESS_ENV`], [`ADMIN_PORT_ENV`]).
//!
//! Entries are separated by `##`, their fields by `#`:
//! - ingress `<name>#<port>#<disableTLS>`: `disableTLS` true lets plain traffic to the port
//!   through; false terminates TLS without requiring a client certificate. Every other inbound
//!   TCP port requires mutual TLS with a mesh certificate. An empty value means just that;
//!   [`INGRESS_DISABLED`] turns the ingress redirection off.
//! - egress `<name>#<listen IPv4>:<port>#<remote host>:<port>`: the sidecar listens on the
//!   loopback address (inside 127.0.0.0/8) and originates mutual TLS to the remote.
//!
//! Parsing is strict where upstream's is loose: duplicate names, ports or listen addresses,
//! ports the sidecar uses itself, and empty fields are refused, each error naming the setting,
//! the entry and what is wrong with it. `contrast generate` uses the same parser, so a bad
//! annotation fails at generate time, not in the pod.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The environment variable with the ingress configuration (upstream's).
pub const INGRESS_ENV: &str = "CONTRAST_INGRESS_PROXY_CONFIG";
/// The environment variable with the egress configuration (upstream's).
pub const EGRESS_ENV: &str = "CONTRAST_EGRESS_PROXY_CONFIG";
/// The environment variable with the admin interface's port (upstream's).
pub const ADMIN_PORT_ENV: &str = "CONTRAST_ADMIN_PORT";
/// The initializer's environment variable (upstream's) that says the pod has no service mesh:
/// when it is set and not empty, the initializer removes the pod VM's default-deny rule itself
/// (otherwise the sidecar does, once its rules are in place).
pub const SERVICE_MESH_DISABLED_ENV: &str = "CONTRAST_SERVICE_MESH_DISABLED";
/// The ingress value that turns the ingress redirection off (upstream's).
pub const INGRESS_DISABLED: &str = "DISABLED";
/// Where inbound connections that need mutual TLS are redirected (upstream's port).
pub const MTLS_INGRESS_PORT: u16 = 15006;
/// Where inbound connections to ports declared `disableTLS=false` are redirected: TLS without a
/// client certificate (upstream's port).
pub const TLS_INGRESS_PORT: u16 = 15007;

const ENTRY_SEPARATOR: &str = "##";
const FIELD_SEPARATOR: char = '#';

/// The ingress configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingress {
    /// No redirection: inbound traffic reaches the pod's ports unchanged ([`INGRESS_DISABLED`]).
    Disabled,
    /// Every inbound TCP connection is redirected to the proxy: to [`MTLS_INGRESS_PORT`] unless
    /// an entry says otherwise for its port.
    Redirect(Vec<IngressEntry>),
}

/// What an ingress entry asks for its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngressMode {
    /// `disableTLS=true`: plain traffic passes, the proxy is not involved.
    Passthrough,
    /// `disableTLS=false`: TLS is terminated, a client certificate is not required.
    TlsWithoutClientCert,
}

/// One `<name>#<port>#<disableTLS>` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressEntry {
    /// The entry's name (for messages and metrics).
    pub name: String,
    /// The pod's port.
    pub port: u16,
    /// How traffic to the port is treated.
    pub mode: IngressMode,
}

/// One `<name>#<listen>:<port>#<remote host>:<port>` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressEntry {
    /// The entry's name (for messages and metrics).
    pub name: String,
    /// Where the sidecar listens for the application's plain connections (127.0.0.0/8).
    pub listen: SocketAddrV4,
    /// The remote's host name or IPv4 address.
    pub remote_host: String,
    /// The remote's port.
    pub remote_port: u16,
}

/// A configuration the sidecar cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One entry is malformed or conflicts with another.
    #[error("{setting} entry {index} {entry:?}: {problem}")]
    Entry {
        /// The environment variable (or annotation) it came from.
        setting: &'static str,
        /// The entry's position, from 1.
        index: usize,
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        problem: EntryProblem,
    },
    /// The admin port is not a port number.
    #[error("{ADMIN_PORT_ENV} {found:?}: expected a port number from 1 to 65535")]
    AdminPort {
        /// The value as written.
        found: String,
    },
    /// The admin port collides with a port the proxy listens on itself.
    #[error("{ADMIN_PORT_ENV} {port}: {reason}")]
    AdminPortConflict {
        /// The port.
        port: u16,
        /// What it collides with.
        reason: String,
    },
}

/// What is wrong with one entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// Not the expected number of `#`-separated fields.
    #[error("expected {expected} (fields separated by '#'), found {found} field(s)")]
    Fields {
        /// The syntax.
        expected: &'static str,
        /// The number of fields.
        found: usize,
    },
    /// A field is empty (also: an empty entry, e.g. from `####`).
    #[error("the {field} is empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A port that is not 1..=65535.
    #[error("the {field} {found:?} is not a port number from 1 to 65535")]
    Port {
        /// Which field.
        field: &'static str,
        /// The value.
        found: String,
    },
    /// `disableTLS` is not a boolean as Go's `strconv.ParseBool` reads one.
    #[error("disableTLS {found:?} is not a boolean (true/false, 1/0, t/f, TRUE/FALSE, True/False)")]
    Bool {
        /// The value.
        found: String,
    },
    /// A listen address that is not `IPv4:port`.
    #[error("the listen address {found:?} is not IPv4:port")]
    ListenAddress {
        /// The value.
        found: String,
    },
    /// A listen address outside 127.0.0.0/8.
    #[error("the listen address {found} is not a loopback address (127.0.0.0/8)")]
    NotLoopback {
        /// The address.
        found: Ipv4Addr,
    },
    /// A remote that is not `host:port`.
    #[error("the remote {found:?} is not host:port")]
    Remote {
        /// The value.
        found: String,
    },
    /// The name, port or listen address is already used by an earlier entry.
    #[error("the {field} {value} is already used by entry {earlier}")]
    Duplicate {
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
        /// The earlier entry's position, from 1.
        earlier: usize,
    },
    /// One of the proxy's own ports.
    #[error("port {port} is the proxy's own ingress port")]
    ReservedPort {
        /// The port.
        port: u16,
    },
}

/// Parses the ingress configuration; `setting` names its source in errors.
///
/// # Errors
///
/// The first malformed or conflicting entry.
pub fn parse_ingress(setting: &'static str, value: &str) -> Result<Ingress, ConfigError> {
    if value == INGRESS_DISABLED {
        return Ok(Ingress::Disabled);
    }
    let mut entries: Vec<IngressEntry> = Vec::new();
    for (index, text) in entries_of(value) {
        let problem = in_entry(setting, index, text);
        let [name, port, disable_tls] =
            fields(text, "<name>#<port>#<disableTLS>").map_err(problem)?;
        let name = non_empty(name, "name").map_err(problem)?;
        let port = parse_port(port, "port").map_err(problem)?;
        if port == MTLS_INGRESS_PORT || port == TLS_INGRESS_PORT {
            return Err(problem(EntryProblem::ReservedPort { port }));
        }
        let mode = if parse_go_bool(disable_tls).map_err(problem)? {
            IngressMode::Passthrough
        } else {
            IngressMode::TlsWithoutClientCert
        };
        if let Some(earlier) = entries.iter().position(|e| e.name == name) {
            return Err(problem(duplicate("name", name, earlier)));
        }
        if let Some(earlier) = entries.iter().position(|e| e.port == port) {
            return Err(problem(duplicate("port", &port.to_string(), earlier)));
        }
        entries.push(IngressEntry {
            name: name.to_owned(),
            port,
            mode,
        });
    }
    Ok(Ingress::Redirect(entries))
}

/// Parses the egress configuration (empty: no egress listeners); `setting` names its source.
///
/// # Errors
///
/// The first malformed or conflicting entry.
pub fn parse_egress(setting: &'static str, value: &str) -> Result<Vec<EgressEntry>, ConfigError> {
    let mut entries: Vec<EgressEntry> = Vec::new();
    for (index, text) in entries_of(value) {
        let problem = in_entry(setting, index, text);
        let [name, listen, remote] =
            fields(text, "<name>#<listen IPv4>:<port>#<remote host>:<port>").map_err(problem)?;
        let name = non_empty(name, "name").map_err(problem)?;
        let listen_text = non_empty(listen, "listen address").map_err(problem)?;
        let listen: SocketAddrV4 = listen_text.parse().map_err(|_| {
            problem(EntryProblem::ListenAddress {
                found: listen_text.to_owned(),
            })
        })?;
        if listen.port() == 0 {
            return Err(problem(EntryProblem::Port {
                field: "listen port",
                found: "0".to_owned(),
            }));
        }
        if !listen.ip().is_loopback() {
            return Err(problem(EntryProblem::NotLoopback {
                found: *listen.ip(),
            }));
        }
        let remote_text = non_empty(remote, "remote").map_err(problem)?;
        let Some((host, port)) = remote_text.rsplit_once(':') else {
            return Err(problem(EntryProblem::Remote {
                found: remote_text.to_owned(),
            }));
        };
        let host = non_empty(host, "remote host").map_err(problem)?;
        if host.contains([':', '[', ']', '/']) || host.chars().any(char::is_whitespace) {
            return Err(problem(EntryProblem::Remote {
                found: remote_text.to_owned(),
            }));
        }
        let remote_port = parse_port(port, "remote port").map_err(problem)?;
        if let Some(earlier) = entries.iter().position(|e| e.name == name) {
            return Err(problem(duplicate("name", name, earlier)));
        }
        if let Some(earlier) = entries.iter().position(|e| e.listen == listen) {
            return Err(problem(duplicate(
                "listen address",
                &listen.to_string(),
                earlier,
            )));
        }
        entries.push(EgressEntry {
            name: name.to_owned(),
            listen,
            remote_host: host.to_owned(),
            remote_port,
        });
    }
    Ok(entries)
}

/// Parses the admin interface's port and checks it against the proxy's own ports and the egress
/// listeners (served on all addresses, it would take their port on loopback too). An ingress
/// entry may name it: that is how the admin interface is reached from outside the pod in plain
/// (`admin#9901#true`); otherwise, like every port, only with mutual TLS through the mesh.
///
/// # Errors
///
/// [`ConfigError::AdminPort`] or [`ConfigError::AdminPortConflict`].
pub fn parse_admin_port(value: &str, egress: &[EgressEntry]) -> Result<u16, ConfigError> {
    let port = parse_port(value, "admin port").map_err(|_| ConfigError::AdminPort {
        found: value.to_owned(),
    })?;
    if port == MTLS_INGRESS_PORT || port == TLS_INGRESS_PORT {
        return Err(ConfigError::AdminPortConflict {
            port,
            reason: "it is one of the proxy's ingress ports".to_owned(),
        });
    }
    if let Some(entry) = egress.iter().find(|e| e.listen.port() == port) {
        return Err(ConfigError::AdminPortConflict {
            port,
            reason: format!(
                "the egress entry {:?} listens on {}",
                entry.name, entry.listen
            ),
        });
    }
    Ok(port)
}

/// Makes a problem with entry `index` (`text`) of `setting` an error.
fn in_entry<'a>(
    setting: &'static str,
    index: usize,
    text: &'a str,
) -> impl Fn(EntryProblem) -> ConfigError + Copy + 'a {
    move |problem| ConfigError::Entry {
        setting,
        index,
        entry: text.to_owned(),
        problem,
    }
}

/// The `#`-separated fields of an entry, exactly `N` of them (`expected` is the syntax).
fn fields<'a, const N: usize>(
    text: &'a str,
    expected: &'static str,
) -> Result<[&'a str; N], EntryProblem> {
    let fields: Vec<&str> = text.split(FIELD_SEPARATOR).collect();
    <[&str; N]>::try_from(fields).map_err(|fields| EntryProblem::Fields {
        expected,
        found: fields.len(),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Result<bool, EntryProblem> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(EntryProblem::Bool {
            found: text.to_owned(),
        }),
    }
}

/// The `##`-separated entries with their positions from 1; an empty value has none.
fn entries_of(value: &str) -> impl Iterator<Item = (usize, &str)> {
    let entries: Vec<&str> = if value.is_empty() {
        Vec::new()
    } else {
        value.split(ENTRY_SEPARATOR).collect()
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| (i + 1, entry))
}

fn non_empty<'a>(text: &'a str, field: &'static str) -> Result<&'a str, EntryProblem> {
    if text.is_empty() {
        Err(EntryProblem::Empty { field })
    } else {
        Ok(text)
    }
}

fn parse_port(text: &str, field: &'static str) -> Result<u16, EntryProblem> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(EntryProblem::Port {
            field,
            found: text.to_owned(),
        }),
    }
}

fn duplicate(field: &'static str, value: &str, earlier_index: usize) -> EntryProblem {
    EntryProblem::Duplicate {
        field,
        value: value.to_owned(),
        earlier: earlier_index + 1,
    }
}

impl fmt::Display for IngressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passthrough => "passthrough (disableTLS=true)",
            Self::TlsWithoutClientCert => "TLS without client certificate (disableTLS=false)",
        })
    }
}

/// The distinct ports of the ingress entries (for checks elsewhere).
#[must_use]
pub fn ingress_ports(ingress: &Ingress) -> BTreeSet<u16> {
    match ingress {
        Ingress::Disabled => BTreeSet::new(),
        Ingress::Redirect(entries) => entries.iter().map(|e| e.port).collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ingress(value: &str) -> Result<Ingress, ConfigError> {
        parse_ingress(INGRESS_ENV, value)
    }

    fn egress(value: &str) -> Result<Vec<EgressEntry>, ConfigError> {
        parse_egress(EGRESS_ENV, value)
    }

    fn problem(result: Result<impl fmt::Debug, ConfigError>) -> (usize, EntryProblem) {
        match result.unwrap_err() {
            ConfigError::Entry { index, problem, .. } => (index, problem),
            other => panic!("not an entry error: {other:?}"),
        }
    }

    #[test]
    fn ingress_entries_and_the_special_values() {
        assert_eq!(ingress("").unwrap(), Ingress::Redirect(Vec::new()));
        assert_eq!(ingress("DISABLED").unwrap(), Ingress::Disabled);
        assert_eq!(
            ingress("web#8080#false##metrics#9090#true").unwrap(),
            Ingress::Redirect(vec![
                IngressEntry {
                    name: "web".into(),
                    port: 8080,
                    mode: IngressMode::TlsWithoutClientCert
                },
                IngressEntry {
                    name: "metrics".into(),
                    port: 9090,
                    mode: IngressMode::Passthrough
                },
            ])
        );
        for (text, expected) in [
            ("1", true),
            ("T", true),
            ("True", true),
            ("0", false),
            ("F", false),
        ] {
            let Ingress::Redirect(entries) = ingress(&format!("a#1#{text}")).unwrap() else {
                panic!()
            };
            assert_eq!(
                entries[0].mode == IngressMode::Passthrough,
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn ingress_errors_name_the_entry_and_the_problem() {
        let error = ingress("web#8080#false##db#5432").unwrap_err().to_string();
        assert_eq!(
            error,
            "CONTRAST_INGRESS_PROXY_CONFIG entry 2 \"db#5432\": expected \
             <name>#<port>#<disableTLS> (fields separated by '#'), found 2 field(s)"
        );
        assert!(matches!(
            problem(ingress("a#0#true")),
            (1, EntryProblem::Port { .. })
        ));
        assert!(matches!(
            problem(ingress("a#65536#true")),
            (1, EntryProblem::Port { .. })
        ));
        assert!(matches!(
            problem(ingress("a#+80#true")),
            (1, EntryProblem::Port { .. })
        ));
        assert!(matches!(
            problem(ingress("a#80#yes")),
            (1, EntryProblem::Bool { .. })
        ));
        assert!(matches!(
            problem(ingress("#80#true")),
            (1, EntryProblem::Empty { field: "name" })
        ));
        assert!(matches!(
            problem(ingress("a#80#true####b#81#true")),
            (2, EntryProblem::Fields { found: 1, .. })
        ));
        assert!(matches!(
            problem(ingress("a#80#true##a#81#true")),
            (
                2,
                EntryProblem::Duplicate {
                    field: "name",
                    earlier: 1,
                    ..
                }
            )
        ));
        assert!(matches!(
            problem(ingress("a#80#true##b#80#false")),
            (2, EntryProblem::Duplicate { field: "port", .. })
        ));
        assert!(matches!(
            problem(ingress("a#15006#false")),
            (1, EntryProblem::ReservedPort { port: 15006 })
        ));
        assert!(matches!(
            problem(ingress("disabled")),
            (1, EntryProblem::Fields { .. })
        ));
    }

    #[test]
    fn egress_entries_and_errors() {
        assert_eq!(egress("").unwrap(), Vec::new());
        assert_eq!(
            egress("db#127.137.0.1:5432#db.default.svc:5432").unwrap(),
            vec![EgressEntry {
                name: "db".into(),
                listen: "127.137.0.1:5432".parse().unwrap(),
                remote_host: "db.default.svc".into(),
                remote_port: 5432,
            }]
        );
        let error = egress("db#10.0.0.1:5432#db:5432").unwrap_err().to_string();
        assert!(
            error.contains("10.0.0.1 is not a loopback address"),
            "{error}"
        );
        assert!(matches!(
            problem(egress("db#localhost:1#db:1")),
            (1, EntryProblem::ListenAddress { .. })
        ));
        assert!(matches!(
            problem(egress("db#127.0.0.1:0#db:1")),
            (1, EntryProblem::Port { .. })
        ));
        assert!(matches!(
            problem(egress("db#127.0.0.1:1#db")),
            (1, EntryProblem::Remote { .. })
        ));
        assert!(matches!(
            problem(egress("db#127.0.0.1:1#:5")),
            (
                1,
                EntryProblem::Empty {
                    field: "remote host"
                }
            )
        ));
        assert!(matches!(
            problem(egress("db#127.0.0.1:1#[::1]:5")),
            (1, EntryProblem::Remote { .. })
        ));
        assert!(matches!(
            problem(egress("db#127.0.0.1:1#db:x")),
            (1, EntryProblem::Port { .. })
        ));
        assert!(matches!(
            problem(egress("a#127.0.0.1:1#a:1##b#127.0.0.1:1#b:1")),
            (
                2,
                EntryProblem::Duplicate {
                    field: "listen address",
                    ..
                }
            )
        ));
        assert!(matches!(
            problem(egress("a#127.0.0.1:1")),
            (1, EntryProblem::Fields { found: 2, .. })
        ));
    }

    #[test]
    fn admin_port_must_not_collide() {
        let egress = egress("db#127.137.0.1:5432#db:5432").unwrap();
        assert_eq!(parse_admin_port("9901", &egress).unwrap(), 9901);
        assert!(matches!(
            parse_admin_port("x", &egress),
            Err(ConfigError::AdminPort { .. })
        ));
        assert!(matches!(
            parse_admin_port("15006", &egress),
            Err(ConfigError::AdminPortConflict { .. })
        ));
        // Declared in the ingress: reachable from outside as the entry says.
        assert_eq!(parse_admin_port("8080", &egress).unwrap(), 8080);
        let taken = parse_admin_port("5432", &egress).unwrap_err();
        assert_eq!(
            taken.to_string(),
            "CONTRAST_ADMIN_PORT 5432: the egress entry \"db\" listens on 127.137.0.1:5432"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(value in ".{0,80}") {
            let _ = ingress(&value);
            let _ = egress(&value);
            let _ = parse_admin_port(&value, &[]);
        }
    }
}
