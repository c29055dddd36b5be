//! The service mesh end to end, on this machine: "pods" are network namespaces on a bridge,
//! each with an unmodified plain-HTTP application (Python's http.server) and clients (curl),
//! and the real `contrast-mesh` sidecar with the files real `initializer` processes wrote after
//! attesting to real (simulated SEV-SNP) Coordinators. The sidecar installs its iptables rules
//! in the pod's namespace and removes the pod's default-deny rule, as in a pod VM.
//!
//! Needs root, `ip`, `iptables`, `curl` and `python3` (CI installs them); SKIPPED with a message
//! otherwise, except in CI (`contrast_testkit::skip`).

#![allow(missing_docs, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use contrast_core::api::SetManifestRequest;
use contrast_testkit::fixtures::{
    Workload, default_owner_keys, manifest, owner_atls_key, owners, policies, run_initializer,
};
use contrast_testkit::process::CoordinatorProcess;

const MESH: &str = env!("CARGO_BIN_EXE_contrast-mesh");
/// B's application ports: mutual TLS (the default), passthrough, TLS without client cert.
const APP_PORT: u16 = 8080;
const PASSTHROUGH_PORT: u16 = 9090;
const TLS_PORT: u16 = 8443;
const ADMIN_PORT: u16 = 9901;
/// Where the egress of A, D and O listens, and where it goes.
const EGRESS_LISTEN: &str = "127.137.0.1:8080";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout == b"0\n")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

#[track_caller]
fn must(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The namespaces and processes of one test run, removed when dropped.
struct Network {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

/// A pod: its namespace and address.
#[derive(Clone)]
struct Pod {
    ns: String,
    ip: String,
}

impl Network {
    fn new() -> Self {
        let prefix = format!("cm{}", std::process::id() % 100_000);
        let switch = format!("{prefix}-sw");
        let mut network = Self {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        must("ip", &["netns", "add", &switch]);
        network.namespaces.push(switch.clone());
        must(
            "ip",
            &["-n", &switch, "link", "add", "br0", "type", "bridge"],
        );
        must("ip", &["-n", &switch, "link", "set", "br0", "up"]);
        network
    }

    /// A namespace on the bridge with address 10.77.0.`host`.
    fn pod(&mut self, name: &str, host: u8) -> Pod {
        let ns = format!("{}-{name}", self.prefix);
        let switch = format!("{}-sw", self.prefix);
        let port = format!("{}{name}", self.prefix);
        must("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        must(
            "ip",
            &[
                "link", "add", &port, "netns", &switch, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ],
        );
        must(
            "ip",
            &["-n", &switch, "link", "set", &port, "master", "br0", "up"],
        );
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        must("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        let ip = format!("10.77.0.{host}");
        must(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        Pod { ns, ip }
    }

    /// Starts `program args` in `pod`'s namespace, stderr to `log`.
    fn spawn(
        &mut self,
        pod: &Pod,
        label: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) {
        let child = Command::new("ip")
            .args(["netns", "exec", &pod.ns, program])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push((label.to_owned(), child));
    }

    /// Sends SIGTERM to the process `label` and returns its exit code.
    fn terminate(&mut self, label: &str) -> Option<i32> {
        let index = self
            .children
            .iter()
            .position(|(name, _)| name == label)
            .unwrap();
        let (_, mut child) = self.children.remove(index);
        must("kill", &["-TERM", &child.id().to_string()]);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("{label} did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

fn in_pod(pod: &Pod, program: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &pod.ns, program])
        .args(args)
        .output()
        .unwrap()
}

/// `curl` in `pod`: the body on success, else the exit code and error.
fn curl(pod: &Pod, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-sS", "--max-time", "4"];
    all.extend_from_slice(args);
    let out = in_pod(pod, "curl", &all);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn wait_for_file(path: &Path, log: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} did not appear; log:\n{}",
            path.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_line(log: &Path, line: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(line)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{line:?} never appeared in {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_port(pod: &Pod, port: u16) {
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{port}/");
    while curl(pod, &["-o", "/dev/null", &url]).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing listens on {port} in {}",
            pod.ns
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Captures every frame on `pod`'s eth0 into `file` (Python's AF_PACKET socket: no tcpdump
/// needed) until the process is killed.
const SNIFFER: &str = "\
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
out = open(sys.argv[2], 'wb', buffering=0)
open(sys.argv[2] + '.ready', 'w').close()
while True:
    out.write(s.recv(65535))
";

async fn set(coordinator: &CoordinatorProcess, workloads: &[Workload], update: bool) {
    let key = update.then(|| owner_atls_key(&owners().workload));
    coordinator
        .user_client(key)
        .set_manifest(&SetManifestRequest {
            manifest: manifest(workloads, default_owner_keys()),
            policies: policies(workloads),
            previous_transition_hash: None,
            signature: None,
        })
        .await
        .unwrap();
}

#[track_caller]
fn initialize(coordinator: &CoordinatorProcess, workload: &Workload, root: &Path) {
    let out = run_initializer(coordinator, workload, root, &["--max-attempts", "5"]);
    assert!(
        out.status.success(),
        "initializer {}: {}",
        workload.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_talk_mutual_tls_through_their_sidecars() {
    if !is_root() {
        return contrast_testkit::skip("needs root (network namespaces, iptables)");
    }
    for program in ["ip", "iptables", "iptables-restore", "curl", "python3"] {
        if !have(program) {
            return contrast_testkit::skip(&format!("{program} is not installed"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };

    // Two deployments: A, B and O in the first, D in the second (another mesh CA).
    let first = CoordinatorProcess::start(&path("state-1"), &[]);
    let second = CoordinatorProcess::start(&path("state-2"), &[]);
    let [a, b, o, d] = ["a", "b", "o", "d"].map(Workload::new);
    set(&first, &[a.clone(), b.clone(), o.clone()], false).await;
    set(&second, std::slice::from_ref(&d), false).await;
    for (coordinator, workload) in [(&first, &a), (&first, &b), (&first, &o), (&second, &d)] {
        initialize(coordinator, workload, &path(&workload.name));
    }

    let mut net = Network::new();
    let pod_a = net.pod("a", 1);
    let pod_b = net.pod("b", 2);
    let pod_c = net.pod("c", 3);
    let pod_d = net.pod("d", 4);
    let pod_o = net.pod("o", 5);

    // B's unmodified application: plain HTTP on three ports, serving a secret page.
    let www = path("www");
    std::fs::create_dir_all(&www).unwrap();
    let secret = format!("secret-page-{}", std::process::id());
    std::fs::write(www.join("page.txt"), &secret).unwrap();
    for port in [APP_PORT, PASSTHROUGH_PORT, TLS_PORT] {
        net.spawn(
            &pod_b,
            &format!("app-{port}"),
            "python3",
            &[
                "-m",
                "http.server",
                &port.to_string(),
                "--directory",
                www.to_str().unwrap(),
            ],
            &[],
            &path(&format!("app-{port}.log")),
        );
        wait_for_port(&pod_b, port);
    }

    // The pod VM's default-deny rule: nothing comes in before the sidecar is ready.
    for pod in [&pod_a, &pod_b, &pod_d, &pod_o] {
        let deny = contrast_mesh::iptables::default_deny("-I");
        let mut args = vec!["netns", "exec", &pod.ns, "iptables"];
        args.extend(deny.iter().map(String::as_str));
        must("ip", &args);
    }
    let passthrough_url = format!("http://{}:{PASSTHROUGH_PORT}/page.txt", pod_b.ip);
    let refused = curl(&pod_c, &["--max-time", "2", &passthrough_url]);
    assert!(refused.is_err(), "default-deny let {refused:?} through");

    // The sidecars.
    let tls_dir = |w: &Workload| path(&w.name).join("tls-config");
    // The admin interface is declared passthrough too: reachable from outside in plain.
    let b_ingress = format!(
        "metrics#{PASSTHROUGH_PORT}#true##web-tls#{TLS_PORT}#false##admin#{ADMIN_PORT}#true"
    );
    let b_tls = tls_dir(&b);
    let b_ready = path("b.ready");
    let b_args = [
        "--tls-dir",
        b_tls.to_str().unwrap(),
        "--ready-file",
        b_ready.to_str().unwrap(),
        "--reload-interval",
        "200ms",
    ];
    let admin = ADMIN_PORT.to_string();
    net.spawn(
        &pod_b,
        "mesh-b",
        MESH,
        &b_args,
        &[
            ("CONTRAST_INGRESS_PROXY_CONFIG", &b_ingress),
            ("CONTRAST_ADMIN_PORT", &admin),
        ],
        &path("mesh-b.log"),
    );
    wait_for_file(&b_ready, &path("mesh-b.log"));
    let egress = format!("backend#{EGRESS_LISTEN}#{}:{APP_PORT}", pod_b.ip);
    for (pod, workload) in [(&pod_a, &a), (&pod_d, &d), (&pod_o, &o)] {
        let tls = tls_dir(workload);
        let ready = path(&format!("{}.ready", workload.name));
        let log = path(&format!("mesh-{}.log", workload.name));
        net.spawn(
            pod,
            &format!("mesh-{}", workload.name),
            MESH,
            &[
                "--tls-dir",
                tls.to_str().unwrap(),
                "--ready-file",
                ready.to_str().unwrap(),
                "--reload-interval",
                "200ms",
            ],
            &[("CONTRAST_EGRESS_PROXY_CONFIG", &egress)],
            &log,
        );
        wait_for_file(&ready, &log);
    }

    // The rules are in place and the default-deny rule is gone.
    let mangle =
        String::from_utf8(in_pod(&pod_b, "iptables", &["-t", "mangle", "-S"]).stdout).unwrap();
    for rule in [
        "-A PREROUTING -p tcp -j CONTRAST_INBOUND",
        "-A CONTRAST_INBOUND -i lo -j RETURN",
        &format!("-A CONTRAST_IN_REDIRECT -p tcp -m tcp --dport {PASSTHROUGH_PORT} -j RETURN"),
        "--on-port 15007",
        "--on-port 15006",
    ] {
        assert!(mangle.contains(rule), "missing {rule:?} in:\n{mangle}");
    }
    let filter = String::from_utf8(in_pod(&pod_b, "iptables", &["-S", "INPUT"]).stdout).unwrap();
    assert!(
        !filter.contains("DROP"),
        "default-deny still there:\n{filter}"
    );

    // A's application reaches B's through A's egress and B's ingress; on the wire it is TLS.
    let capture = path("b-eth0.pcap");
    net.spawn(
        &pod_b,
        "sniffer",
        "python3",
        &["-c", SNIFFER, "eth0", capture.to_str().unwrap()],
        &[],
        &path("sniffer.log"),
    );
    wait_for_file(&capture.with_extension("pcap.ready"), &path("sniffer.log"));
    let request_marker = format!("request-marker-{}", std::process::id());
    let through_mesh = curl(
        &pod_a,
        &[&format!("http://{EGRESS_LISTEN}/page.txt?{request_marker}")],
    );
    assert_eq!(through_mesh.as_deref(), Ok(secret.as_str()));
    // The sniffer writes what it reads as it reads it: wait until it has the exchange.
    let started = Instant::now();
    while std::fs::metadata(&capture).map_or(0, |m| m.len()) < 1000 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the capture stayed empty"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = net.terminate("sniffer");
    let wire = std::fs::read(&capture).unwrap();
    assert!(wire.len() > 1000, "captured only {} bytes", wire.len());
    for plaintext in [
        secret.as_bytes(),
        request_marker.as_bytes(),
        b"HTTP/1.".as_slice(),
    ] {
        assert!(
            !wire.windows(plaintext.len()).any(|w| w == plaintext),
            "{:?} crossed the wire in plaintext",
            String::from_utf8_lossy(plaintext)
        );
    }
    // TLS 1.3 application data records (content type 23, legacy version 3.3).
    assert!(
        wire.windows(3).any(|w| w == [0x17, 0x03, 0x03]),
        "no TLS application data on the wire"
    );

    // A client without a mesh certificate does not reach B's application.
    let plain = curl(
        &pod_c,
        &[&format!("http://{}:{APP_PORT}/page.txt", pod_b.ip)],
    );
    assert!(plain.is_err(), "plain client got {plain:?}");
    // The declared passthrough port is reachable in plain.
    assert_eq!(
        curl(&pod_c, &[&passthrough_url]).as_deref(),
        Ok(secret.as_str())
    );
    // The port declared disableTLS=false: TLS (B's mesh certificate) without a client
    // certificate.
    let b_ca = tls_dir(&b).join("mesh-ca.pem");
    let tls_url = format!("https://b:{TLS_PORT}/page.txt");
    let resolve = format!("b:{TLS_PORT}:{}", pod_b.ip);
    assert_eq!(
        curl(
            &pod_c,
            &[
                "--cacert",
                b_ca.to_str().unwrap(),
                "--resolve",
                &resolve,
                &tls_url
            ]
        )
        .as_deref(),
        Ok(secret.as_str())
    );
    // A workload of another deployment (another mesh CA) is refused.
    let foreign = curl(&pod_d, &[&format!("http://{EGRESS_LISTEN}/page.txt")]);
    assert!(foreign.is_err(), "foreign deployment got {foreign:?}");
    // O, of A's deployment, gets through (until the mesh CA rotates).
    let o_url = format!("http://{EGRESS_LISTEN}/page.txt");
    assert_eq!(curl(&pod_o, &[&o_url]).as_deref(), Ok(secret.as_str()));

    // A manifest update rotates the mesh CA; A and B get new files (their initializers run
    // again), O keeps the old ones. New connections use the new certificates.
    let e = Workload::new("e");
    set(&first, &[a.clone(), b.clone(), o.clone(), e], true).await;
    initialize(&first, &a, &path("a"));
    initialize(&first, &b, &path("b"));
    // Both sidecars put the new files in force at their next look (every 200 ms here).
    for label in ["a", "b"] {
        wait_for_line(
            &path(&format!("mesh-{label}.log")),
            "new mesh certificates in force mesh_ca_changed=true",
        );
    }
    assert_eq!(
        curl(&pod_a, &[&format!("http://{EGRESS_LISTEN}/page.txt")]).as_deref(),
        Ok(secret.as_str())
    );
    let stale = curl(&pod_o, &[&o_url]);
    assert!(
        stale.is_err(),
        "a certificate of the old mesh CA got {stale:?}"
    );

    // B's admin interface: ready (also from outside, as declared), and metrics with fixed
    // labels that counted all of this.
    assert_eq!(
        curl(&pod_b, &[&format!("http://127.0.0.1:{ADMIN_PORT}/ready")]).as_deref(),
        Ok("ready\n")
    );
    assert_eq!(
        curl(
            &pod_c,
            &[&format!("http://{}:{ADMIN_PORT}/ready", pod_b.ip)]
        )
        .as_deref(),
        Ok("ready\n")
    );
    let metrics = curl(&pod_b, &[&format!("http://127.0.0.1:{ADMIN_PORT}/metrics")]).unwrap();
    for line in [
        "contrast_mesh_ready 1",
        "contrast_mesh_connections_total{listener=\"IngressMtls\",outcome=\"Ok\"} 3",
        "contrast_mesh_connections_total{listener=\"IngressTls\",outcome=\"Ok\"} 1",
        "contrast_mesh_certificate_reloads_total{ok=\"true\"}",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    assert!(
        metrics.contains("listener=\"IngressMtls\",outcome=\"HandshakeFailed\""),
        "{metrics}"
    );

    // SIGTERM: the sidecars stop cleanly.
    for label in ["mesh-a", "mesh-b", "mesh-d", "mesh-o"] {
        assert_eq!(net.terminate(label), Some(0), "{label}");
    }
}

#[test]
fn a_configuration_it_cannot_parse_is_refused_naming_the_entry() {
    for (variable, value, needle) in [
        (
            "CONTRAST_INGRESS_PROXY_CONFIG",
            "web#8080#false##db#5432",
            "entry 2 \"db#5432\"",
        ),
        (
            "CONTRAST_EGRESS_PROXY_CONFIG",
            "db#10.0.0.1:5432#db:5432",
            "not a loopback address",
        ),
        ("CONTRAST_ADMIN_PORT", "15006", "the proxy's ingress ports"),
    ] {
        let out = Command::new(MESH)
            .env(variable, value)
            .args(["--tls-dir", "/nonexistent"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(needle), "{variable}: {stderr}");
    }
}
