//! The sidecar's packet rules (upstream's, in the `mangle` table): inbound TCP that is not on
//! loopback and not part of an established connection is redirected with TPROXY to the proxy's
//! ingress ports, except ports declared passthrough. And the pod VM's default-deny rule, which
//! the sidecar removes once its own rules are in place.
//!
//! Pure: the rules as `iptables-restore` input and argument vectors; the sidecar runs them.

use crate::config::{Ingress, IngressMode, MTLS_INGRESS_PORT, TLS_INGRESS_PORT};

/// The program the argument vectors are for.
pub const IPTABLES: &str = "iptables";
/// The program that applies [`ingress_rules`] atomically (with `--noflush`).
pub const IPTABLES_RESTORE: &str = "iptables-restore";
/// The table of the redirection rules.
pub const TABLE: &str = "mangle";
/// The chain `PREROUTING` jumps to for every inbound TCP packet (upstream's name).
pub const INBOUND_CHAIN: &str = "CONTRAST_INBOUND";
/// The chain that picks the proxy port per destination port (upstream's name).
pub const REDIRECT_CHAIN: &str = "CONTRAST_IN_REDIRECT";

/// The pod VM's default-deny rule in `filter`/`INPUT`: inbound connections are dropped until the
/// sidecar (or, without a mesh, the initializer) has taken over (upstream's rule).
pub const DEFAULT_DENY_RULE: [&str; 7] = [
    "-m",
    "conntrack",
    "!",
    "--ctstate",
    "ESTABLISHED,RELATED",
    "-j",
    "DROP",
];

/// The exit status of `iptables -D` when the rule is not there (already removed).
pub const NO_SUCH_RULE: i32 = 1;

/// The redirection rules as `iptables-restore --noflush` input: both chains are declared (so
/// created, or emptied if an earlier run left them) and filled; `None` when the ingress is
/// [`Ingress::Disabled`]. The jump from `PREROUTING` is not in it: see [`prerouting_jump`].
#[must_use]
pub fn ingress_rules(ingress: &Ingress) -> Option<String> {
    let Ingress::Redirect(entries) = ingress else {
        return None;
    };
    let mut lines = vec![
        format!("*{TABLE}"),
        format!(":{INBOUND_CHAIN} - [0:0]"),
        format!(":{REDIRECT_CHAIN} - [0:0]"),
        // The proxy's own connections to the application arrive on loopback.
        format!("-A {INBOUND_CHAIN} -i lo -j RETURN"),
        // Only a connection's first packet is redirected; the rest find its socket.
        format!("-A {INBOUND_CHAIN} -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"),
        format!("-A {INBOUND_CHAIN} -p tcp -j {REDIRECT_CHAIN}"),
    ];
    for entry in entries {
        let target = match entry.mode {
            IngressMode::Passthrough => "RETURN".to_owned(),
            IngressMode::TlsWithoutClientCert => format!("TPROXY --on-port {TLS_INGRESS_PORT}"),
        };
        lines.push(format!(
            "-A {REDIRECT_CHAIN} -p tcp --dport {} -j {target}",
            entry.port
        ));
    }
    lines.push(format!(
        "-A {REDIRECT_CHAIN} -p tcp -j TPROXY --on-port {MTLS_INGRESS_PORT}"
    ));
    lines.push("COMMIT".to_owned());
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

/// The rule in `PREROUTING` that sends inbound TCP to [`INBOUND_CHAIN`], after `-t mangle` and
/// an operation (`-C` to look for it, `-A` to append it, `-D` to delete it).
#[must_use]
pub fn prerouting_jump(operation: &str) -> Vec<String> {
    [
        "-t",
        TABLE,
        operation,
        "PREROUTING",
        "-p",
        "tcp",
        "-j",
        INBOUND_CHAIN,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `iptables -t filter <operation> INPUT <DEFAULT_DENY_RULE>`: `-D` removes the default-deny
/// rule, `-I` inserts it (what the pod VM does at boot; tests do it too).
#[must_use]
pub fn default_deny(operation: &str) -> Vec<String> {
    ["-t", "filter", operation, "INPUT"]
        .into_iter()
        .chain(DEFAULT_DENY_RULE)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{INGRESS_ENV, parse_ingress};

    #[test]
    fn rules_are_upstreams_in_order() {
        let ingress = parse_ingress(INGRESS_ENV, "web#8080#false##metrics#9090#true").unwrap();
        assert_eq!(
            ingress_rules(&ingress).unwrap(),
            "*mangle\n\
             :CONTRAST_INBOUND - [0:0]\n\
             :CONTRAST_IN_REDIRECT - [0:0]\n\
             -A CONTRAST_INBOUND -i lo -j RETURN\n\
             -A CONTRAST_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n\
             -A CONTRAST_INBOUND -p tcp -j CONTRAST_IN_REDIRECT\n\
             -A CONTRAST_IN_REDIRECT -p tcp --dport 8080 -j TPROXY --on-port 15007\n\
             -A CONTRAST_IN_REDIRECT -p tcp --dport 9090 -j RETURN\n\
             -A CONTRAST_IN_REDIRECT -p tcp -j TPROXY --on-port 15006\n\
             COMMIT\n"
        );
    }

    #[test]
    fn disabled_ingress_has_no_rules() {
        assert_eq!(ingress_rules(&Ingress::Disabled), None);
    }

    #[test]
    fn default_deny_is_upstreams_rule() {
        assert_eq!(
            default_deny("-D").join(" "),
            "-t filter -D INPUT -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP"
        );
        assert_eq!(
            prerouting_jump("-C").join(" "),
            "-t mangle -C PREROUTING -p tcp -j CONTRAST_INBOUND"
        );
    }
}
