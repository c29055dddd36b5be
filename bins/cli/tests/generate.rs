//! `contrast generate`, driven through the built binary in temporary workspaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may unwrap and panic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::initdata::{ANNOTATION_KEY, Initdata};
use contrast_core::kubernetes::COORDINATOR_IDENTITY_ENV;
use contrast_core::manifest::{Manifest, ManifestDocument, Role};
use contrast_core::owner::{SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey};
use serde::Deserialize as _;
use serde_norway::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The Coordinator policy hash of [`TestEnv::seed_coordinator`].
const SEEDED_COORDINATOR: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";

/// A seed-share owner key generated once per test binary by the binary itself (RSA-4096 key
/// generation is slow in debug builds), copied into workspaces that do not test generation.
fn shared_seedshare_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let env = TestEnv::with_dir(dir.path().to_path_buf());
        let out = env.generate(&["--insecure-allow-all-policy", "--coordinator"]);
        assert_success(&out);
        fs::read_to_string(env.ws.join("seedshare-owner.pem")).unwrap()
    })
}

struct TestEnv {
    _dir: Option<tempfile::TempDir>,
    root: PathBuf,
    ws: PathBuf,
    /// PATH for the child: never the machine's, so a real genpolicy cannot interfere.
    path_var: String,
}

impl TestEnv {
    /// A workspace with the sample app copied in and the shared seed-share key in place.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut env = Self::with_dir(root);
        env._dir = Some(dir);
        copy_dir(
            &Path::new(FIXTURES).join("sample-app"),
            &env.root.join("app"),
        );
        fs::create_dir_all(&env.ws).unwrap();
        fs::write(env.ws.join("seedshare-owner.pem"), shared_seedshare_key()).unwrap();
        env
    }

    fn with_dir(root: PathBuf) -> Self {
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        Self {
            _dir: None,
            ws: root.join("ws"),
            path_var: bin.display().to_string(),
            root,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_contrast"))
            .current_dir(&self.root)
            .env("PATH", &self.path_var)
            .arg("--workspace-dir")
            .arg(&self.ws)
            .args(args)
            .output()
            .unwrap()
    }

    /// `generate` for the real-hardware platform with the fixture reference values.
    fn generate(&self, extra: &[&str]) -> Output {
        let rv = format!("{FIXTURES}/reference-values.json");
        let mut args = vec![
            "generate",
            "--reference-values",
            "Metal-QEMU-SNP",
            "--reference-values-file",
            &rv,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Writes a manifest that names a Coordinator (its policy hash, [`SEEDED_COORDINATOR`]), as
    /// an earlier `generate --coordinator` would have: workloads generated now get the identity
    /// of that Coordinator.
    fn seed_coordinator(&self) {
        let mut manifest = Manifest::default();
        manifest.policies.insert(
            SEEDED_COORDINATOR.to_owned(),
            contrast_core::manifest::PolicyEntry {
                sans: Some(vec!["coordinator".to_owned()]),
                workload_secret_id: String::new(),
                role: Role::Coordinator,
            },
        );
        fs::create_dir_all(&self.ws).unwrap();
        fs::write(
            self.ws.join("manifest.json"),
            manifest.to_go_json().unwrap(),
        )
        .unwrap();
    }

    fn app_paths(&self) -> [String; 2] {
        [
            self.root.join("app/app.yml").display().to_string(),
            self.root.join("app/more").display().to_string(),
        ]
    }

    fn manifest_bytes(&self) -> Vec<u8> {
        fs::read(self.ws.join("manifest.json")).unwrap()
    }

    fn manifest(&self) -> Manifest {
        ManifestDocument::parse(self.manifest_bytes())
            .unwrap()
            .manifest()
            .clone()
    }

    /// Every file under the temporary root except the bin directory, with its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        for dir in [self.root.join("app"), self.ws.clone()] {
            collect(&dir, &mut files);
        }
        files
    }
}

fn collect(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

/// The raw text of each document, split at `---` lines (what an untouched document must keep).
fn raw_documents(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push_str(line);
        }
    }
    out
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn pod_template(resource: &Value) -> &Value {
    match resource["kind"].as_str().unwrap() {
        "Pod" => resource,
        "CronJob" => &resource["spec"]["jobTemplate"]["spec"]["template"],
        _ => &resource["spec"]["template"],
    }
}

/// The value of the initializer's environment variable `name` (`None` without an initializer
/// or without the variable); panics if the variable is set twice.
fn initializer_env(resource: &Value, name: &str) -> Option<String> {
    let init = pod_template(resource)["spec"]["initContainers"]
        .as_sequence()?
        .iter()
        .find(|c| c["name"].as_str() == Some("contrast-initializer"))?;
    let values: Vec<String> = init["env"]
        .as_sequence()?
        .iter()
        .filter(|e| e["name"].as_str() == Some(name))
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect();
    assert!(values.len() <= 1, "{name} is set {} times", values.len());
    values.into_iter().next()
}

/// The Coordinator identity the initializer of `resource` is given.
fn identity_of(resource: &Value) -> CoordinatorIdentity {
    let json = initializer_env(resource, COORDINATOR_IDENTITY_ENV).expect("identity env");
    CoordinatorIdentity::from_json(&json).unwrap()
}

/// The line a policy file gets for the identity its pod's initializer is given.
fn identity_line(resource: &Value) -> String {
    let json = initializer_env(resource, COORDINATOR_IDENTITY_ENV).expect("identity env");
    format!(
        "# contrast coordinator identity (sha256 of {COORDINATOR_IDENTITY_ENV}): {}\n",
        hex::encode(contrast_core::sha256(json.as_bytes()))
    )
}

fn initdata_of(resource: &Value) -> Initdata {
    let annotation = pod_template(resource)["metadata"]["annotations"][ANNOTATION_KEY]
        .as_str()
        .expect("initdata annotation");
    Initdata::from_annotation(annotation).unwrap()
}

fn digest_hex(initdata: &Initdata) -> String {
    hex::encode(initdata.policy_hash().unwrap())
}

#[test]
fn sample_app_gets_identities_initializer_and_manifest() {
    let env = TestEnv::new();
    let original_app = fs::read_to_string(env.root.join("app/app.yml")).unwrap();
    let untouched_path = env.root.join("app/more/untouched.yml");
    let untouched_before = fs::read(&untouched_path).unwrap();
    let untouched_mtime = fs::metadata(&untouched_path).unwrap().modified().unwrap();
    let policy = format!("{FIXTURES}/policy.rego");
    let [app, more] = env.app_paths();
    env.seed_coordinator();

    let out = env.generate(&["--policy", &policy, &app, &more]);
    assert_success(&out);

    let policy_text = fs::read_to_string(&policy).unwrap();
    let manifest = env.manifest();
    let app_text = fs::read_to_string(env.root.join("app/app.yml")).unwrap();
    let backend_text = fs::read_to_string(env.root.join("app/more/backend.yaml")).unwrap();
    let mut resources = documents(&app_text);
    resources.extend(documents(&backend_text));

    let expected = [
        (
            "Deployment",
            "web",
            "shop/deployment/web",
            "apps/v1/Deployment/shop/web",
        ),
        (
            "StatefulSet",
            "db",
            "shop/statefulset/db",
            "apps/v1/StatefulSet/shop/db",
        ),
        (
            "Job",
            "migrate",
            "shop/job/migrate",
            "batch/v1/Job/shop/migrate",
        ),
        (
            "CronJob",
            "nightly-report",
            "shop/cronjob/nightly-report",
            "batch/v1/CronJob/shop/nightly-report",
        ),
        (
            "Pod",
            "backend",
            "default/pod/backend",
            "core/v1/Pod/default/backend",
        ),
        ("Pod", "payments", "default/pod/payments", "payments-v2"),
    ];
    assert_eq!(manifest.policies.len(), expected.len() + 1);
    for (kind, name, qualified, secret_id) in expected {
        let resource = find(&resources, kind, name);
        let initdata = initdata_of(resource);
        assert_eq!(
            initdata.data()["policy.rego"],
            format!(
                "# contrast workload: {qualified}\n{}{policy_text}",
                identity_line(resource)
            )
        );
        // The initializer is given the Coordinator of the manifest and its reference values.
        let identity = identity_of(resource);
        assert_eq!(
            identity
                .policy_hashes()
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>(),
            [SEEDED_COORDINATOR]
        );
        assert_eq!(
            identity.snp_reference_values(),
            &manifest.reference_values.snp[..]
        );
        let entry = &manifest.policies[&digest_hex(&initdata)];
        assert_eq!(
            entry.sans.as_deref(),
            Some(&[name.to_owned(), "*".to_owned()][..])
        );
        assert_eq!(entry.workload_secret_id, secret_id);
        assert_eq!(entry.role, Role::None);

        let spec = &pod_template(resource)["spec"];
        assert_eq!(spec["runtimeClassName"].as_str(), Some("contrast-cc"));
        let init = &spec["initContainers"][0];
        assert_eq!(init["name"].as_str(), Some("contrast-initializer"));
        assert_eq!(
            init["image"].as_str(),
            Some("localhost/contrast-rs/initializer:0.1.0")
        );
        assert_eq!(init["env"][0]["name"].as_str(), Some("COORDINATOR_HOST"));
        assert_eq!(init["env"][0]["value"].as_str(), Some("coordinator-ready"));
        assert_eq!(init["resources"]["limits"]["memory"].as_str(), Some("50Mi"));
        assert_eq!(
            init["volumeMounts"][0]["name"].as_str(),
            Some("contrast-secrets")
        );
        assert_eq!(
            init["volumeMounts"][0]["mountPath"].as_str(),
            Some("/contrast")
        );
        let volume = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("contrast-secrets"))
            .expect("contrast-secrets volume");
        assert!(volume["emptyDir"].is_mapping());
    }

    // The web Deployment keeps its own init container (after the initializer), volume, pod
    // annotation and a field this tool does not know.
    let web_spec = &pod_template(find(&resources, "Deployment", "web"))["spec"];
    assert_eq!(
        web_spec["initContainers"][1]["name"].as_str(),
        Some("wait-for-db")
    );
    assert_eq!(web_spec["volumes"][0]["name"].as_str(), Some("cache"));
    assert_eq!(web_spec["someFutureField"].as_str(), Some("kept"));
    assert_eq!(
        pod_template(find(&resources, "Deployment", "web"))["metadata"]["annotations"]
            ["example.com/owner"]
            .as_str(),
        Some("team-web")
    );

    // Untouched documents keep their exact bytes; the untouched file is not even rewritten.
    let before = raw_documents(&original_app);
    let after = raw_documents(&app_text);
    assert_eq!(after.len(), before.len());
    for index in [0, 1, 6] {
        assert_eq!(after[index], before[index], "document {index} changed");
    }
    assert!(after[6].contains("metrics-exporter"));
    assert!(!after[6].contains(ANNOTATION_KEY));
    assert!(after[2].starts_with("# The confidential web frontend.\n"));
    assert_eq!(fs::read(&untouched_path).unwrap(), untouched_before);
    assert_eq!(
        fs::metadata(&untouched_path).unwrap().modified().unwrap(),
        untouched_mtime
    );

    // Owner keys: generated workload key (0600), the existing seed-share key, both in the
    // manifest in upstream's encodings.
    let workload_pem = fs::read_to_string(env.ws.join("workload-owner.pem")).unwrap();
    assert!(workload_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let workload_key = WorkloadOwnerPrivateKey::from_pem(&workload_pem).unwrap();
    assert_eq!(
        manifest.workload_owner_pub_keys,
        Some(vec![workload_key.public_key().to_hex()])
    );
    let seedshare_key = SeedshareOwnerPrivateKey::from_pem(shared_seedshare_key()).unwrap();
    assert_eq!(
        manifest.seedshare_owner_pub_keys,
        Some(vec![seedshare_key.public_key().to_hex()])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(env.ws.join("workload-owner.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Reference values from the file, tagged with the platform; the manifest is Go's encoding.
    assert_eq!(manifest.reference_values.snp.len(), 1);
    assert_eq!(manifest.reference_values.snp[0].platform, "Metal-QEMU-SNP");
    assert_eq!(manifest.reference_values.snp[0].product_name, "Genoa");
    assert_eq!(manifest.to_go_json().unwrap(), env.manifest_bytes());
    assert_eq!(
        manifest.policies[SEEDED_COORDINATOR].role,
        Role::Coordinator
    );
}

#[test]
fn rerun_is_byte_identical_and_writes_nothing() {
    let env = TestEnv::new();
    let policy = format!("{FIXTURES}/policy.rego");
    let [app, more] = env.app_paths();
    let args = ["--policy", &policy, "--coordinator", &app, &more];
    assert_success(&env.generate(&args));
    let first = env.snapshot();

    // The same policy read from another path: identities do not depend on the path.
    let copy = env.root.join("copy.rego");
    fs::copy(&policy, &copy).unwrap();
    let copy = copy.display().to_string();
    let out = env.generate(&["--json", "--policy", &copy, "--coordinator", &app, &more]);
    assert_success(&out);
    assert_eq!(env.snapshot(), first);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files_written"], serde_json::json!([]));
    assert_eq!(summary["keys_generated"], serde_json::json!([]));
    assert_eq!(summary["policies"].as_array().unwrap().len(), 7);
}

#[test]
fn json_summary_lists_files_and_policies() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    env.seed_coordinator();
    let out = env.generate(&["--json", "--insecure-allow-all-policy", &app]);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = env.manifest();
    let policies = summary["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 4);
    for policy in policies {
        let entry = &manifest.policies[policy["digest"].as_str().unwrap()];
        assert_eq!(policy["sans"], serde_json::json!(entry.sans));
        assert_eq!(
            policy["workload_secret_id"],
            entry.workload_secret_id.as_str()
        );
    }
    let written: Vec<&str> = summary["files_written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        written,
        [
            env.root.join("app/app.yml").display().to_string(),
            env.ws.join("manifest.json").display().to_string()
        ]
    );
    assert_eq!(
        summary["keys_generated"],
        serde_json::json!([env.ws.join("workload-owner.pem").display().to_string()])
    );
    // The allow-all policy is marked insecure inside the policy itself.
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let initdata = initdata_of(find(&resources, "Job", "migrate"));
    assert!(
        initdata.data()["policy.rego"]
            .contains("# INSECURE: this Kata agent policy allows every request.")
    );
}

#[test]
fn refuses_without_a_policy_and_writes_nothing() {
    let env = TestEnv::new();
    let [app, more] = env.app_paths();
    let before = env.snapshot();
    let out = env.generate(&[&app, &more]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(message.contains("no policy for the workloads"), "{message}");
    assert!(message.contains("--policy FILE"), "{message}");
    assert!(message.contains("genpolicy"), "{message}");
    assert!(message.contains("--insecure-allow-all-policy"), "{message}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn workspace_rules_rego_is_the_default_policy() {
    let env = TestEnv::new();
    fs::write(
        env.ws.join("rules.rego"),
        "package agent_policy\n# workspace rules\n",
    )
    .unwrap();
    let [app, _] = env.app_paths();
    env.seed_coordinator();
    assert_success(&env.generate(&[&app]));
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let initdata = initdata_of(find(&resources, "StatefulSet", "db"));
    assert!(initdata.data()["policy.rego"].ends_with("package agent_policy\n# workspace rules\n"));
}

#[test]
fn genpolicy_on_path_is_run_per_workload() {
    let env = TestEnv::new();
    let log = env.root.join("genpolicy.log");
    // Shell builtins only: the child's PATH holds nothing but this script.
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> {log}\nwhile IFS= read -r line; do\n  case \"$line\" in\n    \"  name: \"*) echo \"package agent_policy\"; echo \"# for ${{line#  name: }}\"; exit 0;;\n  esac\ndone < \"$2\"\necho \"no name\" >&2\nexit 3\n",
        log = log.display()
    );
    let program = env.root.join("bin/genpolicy");
    fs::write(&program, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let more = env.root.join("app/more").display().to_string();
    env.seed_coordinator();
    assert_success(&env.generate(&[&more]));

    let calls = fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        let args: Vec<&str> = call.split(' ').collect();
        assert_eq!(args[0], "--yaml-file");
        assert!(args[1].ends_with("resource.yml"));
        assert_eq!(
            &args[2..],
            [
                "--raw-out",
                "--runtime-class-names=contrast-cc",
                "--layers-cache-file-path",
                &env.ws.join("layers-cache.json").display().to_string()
            ]
        );
    }
    let resources = documents(&fs::read_to_string(env.root.join("app/more/backend.yaml")).unwrap());
    let initdata = initdata_of(find(&resources, "Pod", "payments"));
    assert_eq!(
        initdata.data()["policy.rego"],
        "package agent_policy\n# for payments\n"
    );
}

#[test]
fn disable_updates_conflicts_with_add_workload_owner_key() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let key = env.ws.join("seedshare-owner.pem").display().to_string();
    let out = env.generate(&["--insecure-allow-all-policy", "-d", "-w", &key, &app]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert!(!env.ws.join("manifest.json").exists());
}

#[test]
fn disable_updates_empties_workload_owner_keys() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    env.seed_coordinator();
    assert_success(&env.generate(&["--insecure-allow-all-policy", &app]));
    let mut manifest = env.manifest();
    assert_eq!(
        manifest.workload_owner_pub_keys.as_ref().map(Vec::len),
        Some(1)
    );
    // An old-schema digest list authorises updates too, so -d must empty it as well.
    manifest.workload_owner_key_digests = Some(vec!["cd".repeat(32)]);
    fs::write(env.ws.join("manifest.json"), manifest.to_go_json().unwrap()).unwrap();
    assert_success(&env.generate(&["--insecure-allow-all-policy", "-d", &app]));
    assert_eq!(env.manifest().workload_owner_pub_keys, None);
    assert_eq!(env.manifest().workload_owner_key_digests, None);
    let text = String::from_utf8(env.manifest_bytes()).unwrap();
    assert!(text.contains("\"WorkloadOwnerPubKeys\": null"), "{text}");
}

#[test]
fn added_owner_keys_are_merged_sorted() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let other = tempfile::tempdir().unwrap();
    let alice = other.path().join("alice.pem");
    let alice_key = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
    fs::write(&alice, alice_key.to_sec1_pem().unwrap().as_bytes()).unwrap();
    let alice_arg = alice.display().to_string();
    let seedshare = env.ws.join("seedshare-owner.pem").display().to_string();
    env.seed_coordinator();
    assert_success(&env.generate(&[
        "--insecure-allow-all-policy",
        "-w",
        &alice_arg,
        "--add-seedshare-owner-key",
        &seedshare,
        &app,
    ]));
    let manifest = env.manifest();
    let own = WorkloadOwnerPrivateKey::from_pem(
        &fs::read_to_string(env.ws.join("workload-owner.pem")).unwrap(),
    )
    .unwrap();
    let mut expected = vec![alice_key.public_key().to_hex(), own.public_key().to_hex()];
    expected.sort();
    assert_eq!(manifest.workload_owner_pub_keys, Some(expected));
    // The same seed-share key given twice is listed once.
    assert_eq!(manifest.seedshare_owner_pub_keys.map(|k| k.len()), Some(1));
}

#[test]
fn update_keeps_foreign_entries_and_replaces_owned_ones() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let policy_v1 = env.root.join("v1.rego");
    fs::write(&policy_v1, "package agent_policy\n# v1\n").unwrap();
    let policy_v1 = policy_v1.display().to_string();
    env.seed_coordinator();
    assert_success(&env.generate(&["--policy", &policy_v1, &app]));

    // The owner adds an entry by hand and a second reference-value platform.
    let mut manifest = env.manifest();
    let manual_key = "ab".repeat(32);
    manifest.policies.insert(
        manual_key.clone(),
        contrast_core::manifest::PolicyEntry {
            sans: Some(vec!["manual".to_owned()]),
            workload_secret_id: "hand-made".to_owned(),
            role: Role::None,
        },
    );
    let mut other_platform = manifest.reference_values.snp[0].clone();
    other_platform.platform = "Metal-QEMU-SNP-GPU".to_owned();
    manifest.reference_values.snp.push(other_platform);
    fs::write(env.ws.join("manifest.json"), manifest.to_go_json().unwrap()).unwrap();

    let policy_v2 = env.root.join("v2.rego");
    fs::write(&policy_v2, "package agent_policy\n# v2\n").unwrap();
    let policy_v2 = policy_v2.display().to_string();
    assert_success(&env.generate(&["--policy", &policy_v2, &app]));

    let updated = env.manifest();
    assert_eq!(updated.policies.len(), 6);
    assert_eq!(
        updated.policies[&manual_key].workload_secret_id,
        "hand-made"
    );
    let resources = documents(&fs::read_to_string(&app).unwrap());
    for (kind, name) in [
        ("Deployment", "web"),
        ("StatefulSet", "db"),
        ("Job", "migrate"),
        ("CronJob", "nightly-report"),
    ] {
        let initdata = initdata_of(find(&resources, kind, name));
        assert!(initdata.data()["policy.rego"].ends_with("# v2\n"));
        assert!(updated.policies.contains_key(&digest_hex(&initdata)));
    }
    let platforms: Vec<&str> = updated
        .reference_values
        .snp
        .iter()
        .map(|e| e.platform.as_str())
        .collect();
    assert_eq!(platforms, ["Metal-QEMU-SNP-GPU", "Metal-QEMU-SNP"]);
    assert_eq!(
        updated.workload_owner_pub_keys,
        manifest.workload_owner_pub_keys
    );
}

#[test]
fn real_platform_without_reference_values_file_is_refused() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let out = env.run(&[
        "generate",
        "--reference-values",
        "Metal-QEMU-SNP",
        "--insecure-allow-all-policy",
        &app,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ships no measured reference values for Metal-QEMU-SNP"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--reference-values-file FILE"));
}

#[test]
fn reference_values_file_for_another_platform_is_refused() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let rv = env.root.join("rv.json");
    fs::write(
        &rv,
        fs::read_to_string(format!("{FIXTURES}/reference-values.json"))
            .unwrap()
            .replacen(
                "\"ProductName\"",
                "\"Platform\": \"AKS-CLH-SNP\", \"ProductName\"",
                1,
            ),
    )
    .unwrap();
    let rv = rv.display().to_string();
    let out = env.run(&[
        "generate",
        "--reference-values",
        "Metal-QEMU-SNP",
        "--reference-values-file",
        &rv,
        "--insecure-allow-all-policy",
        &app,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("entry 0 is for platform \"AKS-CLH-SNP\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_documents_examples_and_exit_codes() {
    let env = TestEnv::new();
    let out = env.run(&["generate", "--help"]);
    assert_success(&out);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Examples:"));
    assert!(help.contains("2  usage error"));
    assert!(help.contains("genpolicy --yaml-file"));
}

mod coordinator {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role as K8sRole, RoleBinding};

    /// Parses a document into a k8s-openapi type and checks that serialising it back gives the
    /// same tree: no field is unknown to the type or lost.
    pub(super) fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(document: &Value) -> T {
        let typed: T = serde_norway::from_value(document.clone()).unwrap();
        let back = serde_json::to_value(&typed).unwrap();
        let original = serde_json::to_value(document).unwrap();
        assert_eq!(back, original);
        typed
    }

    /// `--coordinator-transit-engine` gives the container `--transit-addr 0.0.0.0:8200` and both
    /// Services and the container the port `transit`; without it neither is there.
    #[test]
    fn the_transit_engine_is_served_only_when_asked() {
        let env = TestEnv::new();
        assert_success(&env.generate(&[
            "--insecure-allow-all-policy",
            "--coordinator",
            "--coordinator-transit-engine",
        ]));
        let text = fs::read_to_string(env.ws.join("coordinator.yml")).unwrap();
        let docs = documents(&text);
        let stateful_set: StatefulSet = typed(&docs[5]);
        let container = &stateful_set.spec.template.spec.unwrap().containers[0];
        assert_eq!(
            container.args.as_deref().unwrap(),
            ["--store", "kubernetes", "--transit-addr", "0.0.0.0:8200"]
        );
        let port = |ports: Vec<(Option<String>, i32)>| {
            ports
                .into_iter()
                .find(|(_, number)| *number == 8200)
                .and_then(|(name, _)| name)
        };
        assert_eq!(
            port(
                container
                    .ports
                    .clone()
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.name, p.container_port))
                    .collect()
            )
            .as_deref(),
            Some("transit")
        );
        for document in [&docs[3], &docs[4]] {
            let service: Service = typed(document);
            let ports = service.spec.unwrap().ports.unwrap();
            assert_eq!(
                port(ports.into_iter().map(|p| (p.name, p.port)).collect()).as_deref(),
                Some("transit")
            );
        }

        let env = TestEnv::new();
        assert_success(&env.generate(&["--insecure-allow-all-policy", "--coordinator"]));
        let text = fs::read_to_string(env.ws.join("coordinator.yml")).unwrap();
        assert!(
            !text.contains("8200") && !text.contains("--transit-addr"),
            "{text}"
        );

        // The flag needs the Coordinator's resources.
        let out = env.generate(&[
            "--insecure-allow-all-policy",
            "--coordinator-transit-engine",
        ]);
        assert_eq!(out.status.code(), Some(2));
    }

    #[test]
    fn coordinator_resources_round_trip_and_get_a_coordinator_policy() {
        let env = TestEnv::new();
        let out = env.generate(&[
            "--insecure-allow-all-policy",
            "--coordinator",
            "--coordinator-replicas",
            "5",
        ]);
        assert_success(&out);
        let text = fs::read_to_string(env.ws.join("coordinator.yml")).unwrap();
        let docs = documents(&text);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Service",
                "Service",
                "StatefulSet"
            ]
        );

        let account: ServiceAccount = typed(&docs[0]);
        assert_eq!(account.metadata.name.as_deref(), Some("coordinator"));

        let role: K8sRole = typed(&docs[1]);
        let rules = role.rules.unwrap();
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["configmaps".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "list", "create", "update", "watch"]);
        assert_eq!(
            rules[1].resources.as_deref(),
            Some(&["pods".to_owned()][..])
        );
        assert_eq!(rules[1].verbs, ["get", "list"]);

        let binding: RoleBinding = typed(&docs[2]);
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, "coordinator");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "coordinator", Some("default"))
        );

        let expected_ports = [
            ("userapi", 1313),
            ("httpapi", 1314),
            ("meshapi", 7777),
            ("metrics", 9102),
        ];
        for (document, name, publish_not_ready) in [
            (&docs[3], "coordinator", true),
            (&docs[4], "coordinator-ready", false),
        ] {
            let service: Service = typed(document);
            assert_eq!(service.metadata.name.as_deref(), Some(name));
            let spec = service.spec.unwrap();
            assert_eq!(
                spec.publish_not_ready_addresses.unwrap_or(false),
                publish_not_ready
            );
            assert_eq!(
                spec.selector.unwrap()["app.kubernetes.io/name"],
                "coordinator"
            );
            let ports: Vec<(String, i32)> = spec
                .ports
                .unwrap()
                .into_iter()
                .map(|p| (p.name.unwrap(), p.port))
                .collect();
            let expected: Vec<(String, i32)> = expected_ports
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p))
                .collect();
            assert_eq!(ports, expected);
            let exposed = service
                .metadata
                .annotations
                .unwrap_or_default()
                .get("contrast.edgeless.systems/expose-service")
                .cloned();
            assert_eq!(exposed.as_deref(), publish_not_ready.then_some("true"));
        }

        let stateful_set: StatefulSet = typed(&docs[5]);
        let spec = stateful_set.spec;
        assert_eq!(spec.replicas, Some(5));
        assert_eq!(spec.service_name.as_deref(), Some("coordinator"));
        let template = spec.template;
        let annotations = template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap();
        assert_eq!(
            annotations["contrast.edgeless.systems/pod-role"],
            "coordinator"
        );
        let pod = template.spec.unwrap();
        assert_eq!(pod.runtime_class_name.as_deref(), Some("contrast-cc"));
        assert_eq!(pod.service_account_name.as_deref(), Some("coordinator"));
        assert_eq!(
            pod.init_containers, None,
            "no initializer in the Coordinator"
        );
        assert_eq!(pod.volumes, None);
        let container = &pod.containers[0];
        assert_eq!(container.name, "coordinator");
        assert_eq!(
            container.image.as_deref(),
            Some("localhost/contrast-rs/coordinator:0.1.0")
        );
        assert_eq!(
            container.args.as_deref(),
            Some(&["--store".to_owned(), "kubernetes".to_owned()][..])
        );
        let resources = container.resources.clone().unwrap();
        assert_eq!(resources.limits.unwrap()["memory"].0, "128Mi");
        assert_eq!(resources.requests.unwrap()["memory"].0, "128Mi");
        let env_var = &container.env.as_ref().unwrap()[0];
        assert_eq!(env_var.name, "HOSTNAME");
        assert_eq!(
            env_var
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.name"
        );
        let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            let p = p.clone().unwrap();
            let get = p.http_get.unwrap();
            (
                get.path.unwrap(),
                serde_json::to_value(&get.port).unwrap(),
                p.period_seconds,
                p.failure_threshold,
                p.initial_delay_seconds,
            )
        };
        assert_eq!(
            probe(&container.startup_probe),
            (
                "/probe/startup".to_owned(),
                serde_json::json!(9102),
                Some(1),
                Some(60),
                Some(1)
            )
        );
        assert_eq!(
            probe(&container.liveness_probe),
            (
                "/probe/liveness".to_owned(),
                serde_json::json!(9102),
                Some(10),
                Some(3),
                None
            )
        );
        assert_eq!(
            probe(&container.readiness_probe),
            (
                "/probe/readiness".to_owned(),
                serde_json::json!(9102),
                Some(5),
                None,
                None
            )
        );
        let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
        let term = &anti
            .preferred_during_scheduling_ignored_during_execution
            .unwrap()[0];
        assert_eq!(term.weight, 100);
        assert_eq!(
            term.pod_affinity_term.topology_key,
            "kubernetes.io/hostname"
        );

        // Its initdata is the manifest's coordinator entry.
        let initdata = initdata_of(&docs[5]);
        let manifest = env.manifest();
        let entry = &manifest.policies[&digest_hex(&initdata)];
        assert_eq!(entry.role, Role::Coordinator);
        assert_eq!(
            entry.sans.as_deref(),
            Some(&["coordinator".to_owned(), "*".to_owned()][..])
        );
        assert_eq!(
            entry.workload_secret_id,
            "apps/v1/StatefulSet/default/coordinator"
        );
        assert_eq!(manifest.coordinator_policy_hashes().count(), 1);
    }
}

#[test]
fn simulated_platform_takes_reference_values_from_sim_dir() {
    let env = TestEnv::new();
    let sim_dir = env.root.join("sim");
    let environment = contrast_tee::SimulatedEnvironment::create(
        &sim_dir,
        contrast_core::manifest::Product::Genoa,
        std::time::SystemTime::now(),
        &mut rand_core::OsRng,
    )
    .unwrap();
    let sim_arg = sim_dir.display().to_string();
    let [app, _] = env.app_paths();
    let out = env.run(&[
        "generate",
        "--reference-values",
        "Simulated-SNP",
        "--sim-dir",
        &sim_arg,
        "--insecure-allow-all-policy",
        "--coordinator",
        &app,
    ]);
    assert_success(&out);
    let manifest = env.manifest();
    assert_eq!(
        manifest.reference_values.snp,
        [environment.reference_values()]
    );
    assert_eq!(manifest.reference_values.snp[0].platform, "Simulated-SNP");
    // With a coordinator entry and simulated values the manifest is valid: no warnings.
    manifest.validate().unwrap();
    assert!(
        !stderr(&out).contains("warning: manifest"),
        "{}",
        stderr(&out)
    );

    // Without --sim-dir: a usage error that names the flag.
    let out = env.run(&[
        "generate",
        "--reference-values",
        "Simulated-SNP",
        "--insecure-allow-all-policy",
        &app,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs --sim-dir DIR"),
        "{}",
        stderr(&out)
    );
}

/// kubectl's client-side dry run still asks the API server which resources exist (discovery)
/// and, for `apply`, whether each object exists. This answers exactly that on loopback: the
/// discovery documents for the Coordinator's kinds and 404 for every object.
mod fake_discovery {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    pub(super) struct Server {
        pub(super) url: String,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn resource(name: &str, kind: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name, "singularName": "", "namespaced": true, "kind": kind,
            "verbs": ["create", "get", "list"]
        })
    }

    fn respond(path: &str) -> (u16, serde_json::Value) {
        let group = |name: &str| {
            serde_json::json!({
                "name": name,
                "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
                "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}
            })
        };
        let list = |group_version: &str, resources: Vec<serde_json::Value>| {
            serde_json::json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": group_version, "resources": resources
            })
        };
        match path {
            "/version" => (
                200,
                serde_json::json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"}),
            ),
            "/api" => (
                200,
                serde_json::json!({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
                }),
            ),
            "/apis" => (
                200,
                serde_json::json!({
                    "kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [group("apps"), group("rbac.authorization.k8s.io")]
                }),
            ),
            "/api/v1" => (
                200,
                list(
                    "v1",
                    vec![
                        resource("serviceaccounts", "ServiceAccount"),
                        resource("services", "Service"),
                    ],
                ),
            ),
            "/apis/apps/v1" => (
                200,
                list(
                    "apps/v1",
                    vec![
                        resource("statefulsets", "StatefulSet"),
                        resource("deployments", "Deployment"),
                    ],
                ),
            ),
            "/apis/rbac.authorization.k8s.io/v1" => (
                200,
                list(
                    "rbac.authorization.k8s.io/v1",
                    vec![
                        resource("roles", "Role"),
                        resource("rolebindings", "RoleBinding"),
                    ],
                ),
            ),
            _ => (
                404,
                serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404
                }),
            ),
        }
    }

    fn serve(stream: TcpStream) {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => break,
                Ok(_) if header == "\r\n" || header == "\n" => break,
                Ok(_) => {}
            }
        }
        let target = request_line.split(' ').nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or(target);
        let (status, body) = respond(path);
        let body = body.to_string();
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    pub(super) fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream);
                }
            }
        });
        Server {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

fn find_kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

#[test]
fn kubectl_accepts_the_coordinator_resources() {
    let Some(kubectl) = find_kubectl() else {
        println!("SKIPPED: kubectl is not on PATH; the k8s-openapi round trip still ran");
        return;
    };
    let env = TestEnv::new();
    assert_success(&env.generate(&["--insecure-allow-all-policy", "--coordinator"]));
    let coordinator = env.ws.join("coordinator.yml");

    let cluster = FakeCluster::start(&env);
    let kubectl_run = |args: &[&str]| cluster.kubectl(&kubectl, args, &coordinator);

    let out = kubectl_run(&["apply", "--dry-run=client", "--validate=false"]);
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for line in [
        "serviceaccount/coordinator created (dry run)",
        "role.rbac.authorization.k8s.io/coordinator created (dry run)",
        "rolebinding.rbac.authorization.k8s.io/coordinator created (dry run)",
        "service/coordinator created (dry run)",
        "service/coordinator-ready created (dry run)",
        "statefulset.apps/coordinator created (dry run)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }

    // kubectl's own decoding of the file gives back the same objects.
    let out = kubectl_run(&[
        "create",
        "--dry-run=client",
        "--validate=false",
        "-o",
        "json",
    ]);
    assert_success(&out);
    assert_eq!(json_documents(&out.stdout), yaml_as_json(&coordinator));
}

/// kubectl pointed at [`fake_discovery`]'s server, for client-side dry runs.
struct FakeCluster {
    _server: fake_discovery::Server,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl FakeCluster {
    fn start(env: &TestEnv) -> Self {
        let server = fake_discovery::start();
        let kubeconfig = env.root.join("kubeconfig");
        fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u, namespace: default}}}}]\ncurrent-context: c\n",
                server.url
            ),
        )
        .unwrap();
        Self {
            _server: server,
            kubeconfig,
            home: env.root.join("home"),
        }
    }

    /// `kubectl <args> -f <file>`.
    fn kubectl(&self, kubectl: &Path, args: &[&str], file: &Path) -> Output {
        Command::new(kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .args(args)
            .arg("-f")
            .arg(file)
            .output()
            .unwrap()
    }
}

/// The JSON documents kubectl printed (`-o json`, one per object).
fn json_documents(stdout: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The documents of a YAML file, as JSON.
fn yaml_as_json(path: &Path) -> Vec<serde_json::Value> {
    documents(&fs::read_to_string(path).unwrap())
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect()
}

#[test]
fn the_same_workload_twice_is_refused() {
    let env = TestEnv::new();
    let backend = env.root.join("app/more/backend.yaml");
    let copy = env.root.join("copy.yaml");
    fs::copy(&backend, &copy).unwrap();
    let backend = backend.display().to_string();
    let copy = copy.display().to_string();
    let out = env.generate(&[
        "--insecure-allow-all-policy",
        "--skip-initializer",
        &backend,
        &copy,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("workload default/pod/backend appears twice"),
        "{}",
        stderr(&out)
    );
    assert!(!env.ws.join("manifest.json").exists());
}

/// The Coordinator's policy hash in this run's coordinator.yml.
fn coordinator_digest(env: &TestEnv) -> String {
    let docs = documents(&fs::read_to_string(env.ws.join("coordinator.yml")).unwrap());
    digest_hex(&initdata_of(find(&docs, "StatefulSet", "coordinator")))
}

#[test]
fn workloads_get_the_identity_of_the_coordinator_of_the_same_run_once() {
    let env = TestEnv::new();
    let [app, more] = env.app_paths();
    let args = ["--insecure-allow-all-policy", "--coordinator", &app, &more];
    assert_success(&env.generate(&args));
    let manifest = env.manifest();
    let coordinator = coordinator_digest(&env);
    assert_eq!(
        manifest.coordinator_policy_hashes().collect::<Vec<_>>(),
        [coordinator.as_str()]
    );
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let web = find(&resources, "Deployment", "web");
    let identity = identity_of(web);
    assert_eq!(
        identity
            .policy_hashes()
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>(),
        std::slice::from_ref(&coordinator)
    );
    assert_eq!(
        identity.snp_reference_values(),
        &manifest.reference_values.snp[..]
    );
    // The Coordinator's own pod has no initializer and so no identity.
    let docs = documents(&fs::read_to_string(env.ws.join("coordinator.yml")).unwrap());
    let statefulset = find(&docs, "StatefulSet", "coordinator");
    assert_eq!(initializer_env(statefulset, COORDINATOR_IDENTITY_ENV), None);

    // A re-run replaces the variable (initializer_env panics on a duplicate) and writes the
    // same bytes.
    let before = env.snapshot();
    assert_success(&env.generate(&args));
    assert_eq!(env.snapshot(), before);
    let resources = documents(&fs::read_to_string(&app).unwrap());
    assert_eq!(identity_of(find(&resources, "Deployment", "web")), identity);
}

/// The workload's initdata digest (its HOST_DATA) covers the identity its initializer is given:
/// a pod whose identity was changed is another workload to the Coordinator. With a policy file
/// the identity's digest is a line of the policy; with genpolicy the policy is computed over the
/// resource after the injection (the fake genpolicy here prints the resource as comments).
#[test]
fn the_workload_digest_changes_with_the_coordinator_identity() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let web_digest = || {
        let resources = documents(&fs::read_to_string(&app).unwrap());
        let web = find(&resources, "Deployment", "web");
        (digest_hex(&initdata_of(web)), identity_of(web))
    };

    assert_success(&env.generate(&["--insecure-allow-all-policy", "--coordinator", &app]));
    let (first, first_identity) = web_digest();
    let first_coordinator = coordinator_digest(&env);

    // Another Coordinator (its namespace is part of its policy): new identity, new digest.
    assert_success(&env.generate(&[
        "--insecure-allow-all-policy",
        "--coordinator",
        "--coordinator-namespace",
        "elsewhere",
        &app,
    ]));
    let (second, second_identity) = web_digest();
    assert_ne!(coordinator_digest(&env), first_coordinator);
    assert_ne!(second_identity, first_identity);
    assert_ne!(second, first);

    // Other reference values: new identity, new digest.
    let values = env.root.join("other-values.json");
    let text = fs::read_to_string(format!("{FIXTURES}/reference-values.json"))
        .unwrap()
        .replace("\"SNPVersion\": 23", "\"SNPVersion\": 24");
    fs::write(&values, text).unwrap();
    let out = env.run(&[
        "generate",
        "--reference-values",
        "Metal-QEMU-SNP",
        "--reference-values-file",
        &values.display().to_string(),
        "--insecure-allow-all-policy",
        "--coordinator",
        "--coordinator-namespace",
        "elsewhere",
        &app,
    ]);
    assert_success(&out);
    let (third, third_identity) = web_digest();
    assert_eq!(
        third_identity.policy_hashes(),
        second_identity.policy_hashes()
    );
    assert_ne!(third_identity, second_identity);
    assert_ne!(third, second);

    // genpolicy: the policy is computed over the injected resource, environment included.
    let program = env.root.join("bin/genpolicy");
    fs::write(
        &program,
        "#!/bin/sh\necho \"package agent_policy\"\nwhile IFS= read -r line; do echo \"# $line\"; done < \"$2\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_success(&env.generate(&["--coordinator", &app]));
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let web = find(&resources, "Deployment", "web");
    let policy = initdata_of(web).data()["policy.rego"].clone();
    let json = initializer_env(web, COORDINATOR_IDENTITY_ENV).unwrap();
    // No service mesh: the initializer removes the pod VM's default-deny rule.
    assert_eq!(
        initializer_env(web, "CONTRAST_SERVICE_MESH_DISABLED").as_deref(),
        Some("true")
    );
    assert!(policy.contains(COORDINATOR_IDENTITY_ENV), "{policy}");
    assert!(
        policy.contains(&json[..40]),
        "the policy does not cover the identity: {policy}"
    );
    let (genpolicy_first, _) = web_digest();
    assert_success(&env.generate(&[
        "--coordinator",
        "--coordinator-namespace",
        "elsewhere",
        &app,
    ]));
    let (genpolicy_second, _) = web_digest();
    assert_ne!(genpolicy_second, genpolicy_first);
}

#[test]
fn workloads_without_a_known_coordinator_are_refused_unless_skip_initializer() {
    let env = TestEnv::new();
    let [app, _] = env.app_paths();
    let before = env.snapshot();
    let out = env.generate(&["--insecure-allow-all-policy", &app]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    for needle in [
        "needs the Coordinator's identity",
        "no policy hash",
        "--coordinator",
        "--skip-initializer",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    assert_eq!(env.snapshot(), before);

    assert_success(&env.generate(&["--insecure-allow-all-policy", "--skip-initializer", &app]));
    let resources = documents(&fs::read_to_string(&app).unwrap());
    assert_eq!(
        initializer_env(
            find(&resources, "Deployment", "web"),
            COORDINATOR_IDENTITY_ENV
        ),
        None
    );
}

/// A Deployment `name` in `namespace` with `runtime_class`, its pod template annotated with
/// `annotations` (`key: value` YAML lines, values as written).
fn deployment(name: &str, namespace: &str, runtime_class: &str, annotations: &[&str]) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!(
            "      annotations:\n{}",
            annotations
                .iter()
                .map(|line| format!("        {line}\n"))
                .collect::<String>()
        )
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n{annotations}    spec:\n      runtimeClassName: {runtime_class}\n      containers:\n        - name: {name}\n          image: example/{name}:1\n"
    )
}

fn has_initializer(resource: &Value) -> bool {
    pod_template(resource)["spec"]["initContainers"]
        .as_sequence()
        .is_some_and(|containers| {
            containers
                .iter()
                .any(|c| c["name"].as_str() == Some("contrast-initializer"))
        })
}

#[test]
fn skip_initializer_annotation_is_honoured_and_an_invalid_value_refused() {
    let env = TestEnv::new();
    let app = env.root.join("skip.yml");
    let app_arg = app.display().to_string();
    let args = [
        "--insecure-allow-all-policy",
        "--coordinator",
        app_arg.as_str(),
    ];

    // First without the annotation: both get the initializer.
    fs::write(
        &app,
        [
            deployment("web", "default", "contrast-cc", &[]),
            deployment("api", "default", "contrast-cc", &[]),
        ]
        .join("---\n"),
    )
    .unwrap();
    assert_success(&env.generate(&args));
    let resources = documents(&fs::read_to_string(&app).unwrap());
    assert!(has_initializer(find(&resources, "Deployment", "web")));

    // Annotated "true" (on the generated file, as a user would edit it): web's injected
    // initializer goes, its initdata stays and is in the manifest; api keeps its initializer.
    let mut resources = documents(&fs::read_to_string(&app).unwrap());
    for resource in &mut resources {
        if resource["metadata"]["name"].as_str() == Some("web") {
            let Value::Mapping(annotations) =
                &mut resource["spec"]["template"]["metadata"]["annotations"]
            else {
                panic!("no annotations: {resource:?}");
            };
            annotations.insert(
                Value::String("contrast.edgeless.systems/skip-initializer".to_owned()),
                Value::String("true".to_owned()),
            );
        }
    }
    let text = resources
        .iter()
        .map(|r| serde_norway::to_string(r).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    fs::write(&app, text).unwrap();
    let out = env.generate(&args);
    assert_success(&out);
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let web = find(&resources, "Deployment", "web");
    assert!(!has_initializer(web), "{web:?}");
    let web_digest = digest_hex(&initdata_of(web));
    let manifest = env.manifest();
    assert!(manifest.policies.contains_key(&web_digest));
    // Without an initializer the policy names no Coordinator identity.
    assert!(
        !initdata_of(web).data()["policy.rego"].contains("coordinator identity"),
        "{}",
        initdata_of(web).data()["policy.rego"]
    );
    let api = find(&resources, "Deployment", "api");
    assert!(has_initializer(api));
    assert!(
        manifest
            .policies
            .contains_key(&digest_hex(&initdata_of(api)))
    );
    // "false" injects it.
    fs::write(
        &app,
        deployment(
            "web",
            "default",
            "contrast-cc",
            &["contrast.edgeless.systems/skip-initializer: \"false\""],
        ),
    )
    .unwrap();
    assert_success(&env.generate(&args));
    let resources = documents(&fs::read_to_string(&app).unwrap());
    assert!(has_initializer(find(&resources, "Deployment", "web")));

    // Any other value is refused, naming the resource and the value; nothing is written.
    for value in ["\"yes\"", "true", "\"TRUE\""] {
        fs::write(
            &app,
            deployment(
                "web",
                "default",
                "contrast-cc",
                &[&format!(
                    "contrast.edgeless.systems/skip-initializer: {value}"
                )],
            ),
        )
        .unwrap();
        let before = env.snapshot();
        let out = env.generate(&args);
        assert_eq!(out.status.code(), Some(1), "{value}: {}", stderr(&out));
        for needle in [
            "default/deployment/web",
            "contrast.edgeless.systems/skip-initializer",
        ] {
            assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        }
        assert_eq!(env.snapshot(), before);
    }
}

#[test]
fn image_store_annotation_is_refused() {
    let env = TestEnv::new();
    let app = env.root.join("store.yml");
    let app_arg = app.display().to_string();
    // The service-mesh annotations are honoured now (mod service_mesh); the image store is not.
    for value in ["\"20Gi\"", "\"\""] {
        let annotation = "contrast.edgeless.systems/image-store-size";
        fs::write(
            &app,
            deployment(
                "web",
                "shop",
                "contrast-cc",
                &[&format!("{annotation}: {value}")],
            ),
        )
        .unwrap();
        let before = env.snapshot();
        let out = env.generate(&["--insecure-allow-all-policy", "--coordinator", &app_arg]);
        assert_eq!(out.status.code(), Some(1), "{value}: {}", stderr(&out));
        let message = stderr(&out);
        for needle in [
            "shop/deployment/web",
            annotation,
            "image store",
            "does not support",
            "yet",
        ] {
            assert!(message.contains(needle), "{needle} missing: {message}");
        }
        assert_eq!(env.snapshot(), before, "{value}");
    }
    // image-store-size "0" disables the image store: nothing to refuse.
    fs::write(
        &app,
        deployment(
            "web",
            "shop",
            "contrast-cc",
            &["contrast.edgeless.systems/image-store-size: \"0\""],
        ),
    )
    .unwrap();
    assert_success(&env.generate(&[
        "--insecure-allow-all-policy",
        "--coordinator",
        "--coordinator-namespace",
        "shop",
        &app_arg,
    ]));
}

#[test]
fn near_miss_runtime_classes_are_warned_about() {
    let env = TestEnv::new();
    let app = env.root.join("near.yml");
    fs::write(
        &app,
        [
            deployment("exact", "default", "contrast-cc", &[]),
            deployment("short", "default", "contrast-c", &[]),
            deployment("upstream", "default", "contrast-cc-metal-qemu-snp", &[]),
            deployment("unrelated", "default", "kata-qemu-snp", &[]),
        ]
        .join("---\n"),
    )
    .unwrap();
    // A file that never spells contrast-cc exactly is checked too.
    let other = env.root.join("case.yml");
    fs::write(&other, deployment("cased", "shop", "Contrast-CC", &[])).unwrap();
    let out = env.generate(&[
        "--insecure-allow-all-policy",
        "--coordinator",
        &app.display().to_string(),
        &other.display().to_string(),
    ]);
    assert_success(&out);
    let message = stderr(&out);
    for (resource, found) in [
        ("default/deployment/short", "contrast-c"),
        ("default/deployment/upstream", "contrast-cc-metal-qemu-snp"),
        ("shop/deployment/cased", "Contrast-CC"),
    ] {
        let line = message
            .lines()
            .find(|line| line.contains(resource))
            .unwrap_or_else(|| panic!("no warning for {resource}: {message}"));
        assert!(line.starts_with("warning: "), "{line}");
        assert!(
            line.contains(&format!("runtimeClassName {found:?}")),
            "{line}"
        );
        assert!(line.contains("did you mean contrast-cc?"), "{line}");
    }
    for quiet in ["default/deployment/exact", "default/deployment/unrelated"] {
        assert!(!message.contains(quiet), "{quiet}: {message}");
    }
    // The warnings are in the JSON summary too.
    let out = env.generate(&[
        "--json",
        "--insecure-allow-all-policy",
        "--coordinator",
        &app.display().to_string(),
    ]);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.as_str().unwrap().contains("did you mean contrast-cc?"))
            .count(),
        2,
        "{warnings:?}"
    );
}

#[test]
fn a_coordinator_in_another_namespace_than_the_workloads_is_warned_about() {
    let env = TestEnv::new();
    let app = env.root.join("ns.yml");
    fs::write(
        &app,
        [
            deployment("web", "shop", "contrast-cc", &[]),
            deployment(
                "quiet",
                "shop",
                "contrast-cc",
                &["contrast.edgeless.systems/skip-initializer: \"true\""],
            ),
        ]
        .join("---\n"),
    )
    .unwrap();
    let app_arg = app.display().to_string();
    let out = env.generate(&["--insecure-allow-all-policy", "--coordinator", &app_arg]);
    assert_success(&out);
    let message = stderr(&out);
    let line = message
        .lines()
        .find(|line| line.contains("shop/deployment/web"))
        .unwrap_or_else(|| panic!("no namespace warning: {message}"));
    assert!(line.starts_with("warning: "), "{line}");
    for needle in [
        "namespace shop",
        "the Coordinator is in namespace default",
        "--coordinator-namespace shop",
    ] {
        assert!(line.contains(needle), "{needle}: {line}");
    }
    // A pod without an initializer does not look for the Coordinator.
    assert!(!message.contains("shop/deployment/quiet"), "{message}");

    let out = env.generate(&[
        "--insecure-allow-all-policy",
        "--coordinator",
        "--coordinator-namespace",
        "shop",
        &app_arg,
    ]);
    assert_success(&out);
    assert!(!stderr(&out).contains("namespace"), "{}", stderr(&out));
}

#[test]
fn simulated_generate_prints_the_commands_with_the_digests() {
    let env = TestEnv::new();
    let sim_dir = env.root.join("sim");
    contrast_tee::SimulatedEnvironment::create(
        &sim_dir,
        contrast_core::manifest::Product::Milan,
        std::time::SystemTime::now(),
        &mut rand_core::OsRng,
    )
    .unwrap();
    let sim_arg = sim_dir.display().to_string();
    let [app, _] = env.app_paths();
    let args = [
        "generate",
        "--reference-values",
        "Simulated-SNP",
        "--sim-dir",
        &sim_arg,
        "--insecure-allow-all-policy",
        "--coordinator",
        &app,
    ];
    let out = env.run(&args);
    assert_success(&out);
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    let manifest = env.manifest();
    let coordinator = coordinator_digest(&env);
    assert!(
        human.contains("To run this deployment on this machine"),
        "{human}"
    );
    assert!(
        human.contains(&format!(
            "coordinator --tee simulated --sim-dir {sim_arg} --sim-host-data {coordinator} "
        )),
        "{human}"
    );

    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let out = env.run(&json_args);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let commands = summary["commands"].as_array().unwrap();
    let argv = contrast_testkit::fixtures::printed_argv;
    let flag = contrast_testkit::fixtures::flag_value;
    // The Coordinator runs as the VM of the manifest's coordinator policy.
    let first = argv(&commands[0]);
    assert_eq!(first[0], "coordinator");
    assert_eq!(flag(&first, "--sim-host-data"), coordinator);
    assert_eq!(
        manifest.coordinator_policy_hashes().collect::<Vec<_>>(),
        [coordinator.as_str()]
    );
    assert_eq!(flag(&first, "--tee"), "simulated");
    assert_eq!(flag(&first, "--sim-dir"), sim_arg);
    assert_eq!(flag(&first, "--user-addr"), "127.0.0.1:1313");
    assert_eq!(flag(&first, "--mesh-addr"), "127.0.0.1:7777");
    // Then set, one initializer per workload with an initializer, then verify.
    assert_eq!(
        argv(&commands[1])[..4],
        [
            "contrast",
            "--workspace-dir",
            &env.ws.display().to_string(),
            "set"
        ]
    );
    assert_eq!(argv(commands.last().unwrap())[3], "verify");
    let resources = documents(&fs::read_to_string(&app).unwrap());
    let initializers: Vec<&serde_json::Value> = commands
        .iter()
        .filter(|c| argv(c)[0] == "initializer")
        .collect();
    assert!(!initializers.is_empty());
    for command in initializers {
        let workload = command["workload"].as_str().unwrap();
        let name = workload.rsplit('/').next().unwrap();
        let kind = workload.split('/').nth(1).unwrap();
        let resource = resources
            .iter()
            .find(|r| {
                r["metadata"]["name"].as_str() == Some(name)
                    && r["kind"].as_str().unwrap().eq_ignore_ascii_case(kind)
            })
            .unwrap();
        let digest = digest_hex(&initdata_of(resource));
        let argv = argv(command);
        assert_eq!(flag(&argv, "--sim-host-data"), digest, "{workload}");
        assert!(manifest.policies.contains_key(&digest), "{workload}");
        assert_eq!(flag(&argv, "--coordinator"), "127.0.0.1:7777");
        assert_eq!(
            command["env"][COORDINATOR_IDENTITY_ENV].as_str(),
            initializer_env(resource, COORDINATOR_IDENTITY_ENV).as_deref(),
            "{workload}"
        );
        let shell = command["shell"].as_str().unwrap();
        assert!(human.contains(shell), "{shell} not in {human}");
    }

    // Without --coordinator: the manifest's Coordinator, and set takes the Coordinator's
    // resources where an earlier run wrote them.
    let without: Vec<&str> = json_args
        .iter()
        .copied()
        .filter(|a| *a != "--coordinator")
        .collect();
    let out = env.run(&without);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let commands = summary["commands"].as_array().unwrap();
    assert_eq!(flag(&argv(&commands[0]), "--sim-host-data"), coordinator);
    let set = argv(&commands[1]);
    assert_eq!(set[3], "set");
    assert!(
        set.contains(&env.ws.join("coordinator.yml").display().to_string()),
        "{set:?}"
    );

    // Real platforms print no local commands.
    let out = env.generate(&[
        "--json",
        "--insecure-allow-all-policy",
        "--coordinator",
        &app,
    ]);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["commands"], serde_json::json!([]));
    assert!(
        !String::from_utf8_lossy(
            &env.generate(&["--insecure-allow-all-policy", "--coordinator", &app])
                .stdout
        )
        .contains("To run this deployment")
    );
}

/// `contrast.edgeless.systems/secure-pv`: the sidecar generate injects, and what it refuses.
mod secure_pv {
    use super::*;
    use contrast_core::kubernetes::{
        INITIALIZER_DONE_FILE, SECRETS_MOUNT_PATH, SECURE_PV_DEVICE_PATH, SECURE_PV_MOUNT_POINT,
        cryptsetup_args,
    };
    use k8s_openapi::api::apps::v1::StatefulSet;

    const INITIALIZER_IMAGE: &str = "example.com/contrast/initializer:1";

    /// Upstream's documented example: a StatefulSet whose volume claim template is a raw block
    /// device, and an emptyDir `share` that the main container mounts (without
    /// mountPropagation), with its own workload secret ID.
    const VOLUME_TESTER: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: volume-tester
  namespace: default
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: volume-tester
  serviceName: volume-tester
  template:
    metadata:
      labels:
        app.kubernetes.io/name: volume-tester
      annotations:
        contrast.edgeless.systems/secure-pv: "state:share"
        contrast.edgeless.systems/workload-secret-id: "volume-tester-secret"
    spec:
      runtimeClassName: contrast-cc
      containers:
        - name: volume-tester
          image: example.com/volume-tester:1
          command: ["/bin/sh", "-c", "sleep inf"]
          volumeMounts:
            - name: share
              mountPath: /state
      volumes:
        - name: share
          emptyDir: {}
  volumeClaimTemplates:
    - apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: state
      spec:
        accessModes: ["ReadWriteOnce"]
        resources:
          requests:
            storage: 1Gi
        volumeMode: Block
"#;

    /// A Deployment annotated `disk:share` whose volume `disk` has the source `device` (one
    /// YAML line), and a container mounting `share` at /data.
    fn web(device: &str) -> String {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
      annotations:
        contrast.edgeless.systems/secure-pv: "disk:share"
    spec:
      runtimeClassName: contrast-cc
      containers:
        - name: web
          image: example.com/web:1
          volumeMounts:
            - name: share
              mountPath: /data
      volumes:
        - name: share
          emptyDir: {{}}
        - name: disk
          {device}
"#
        )
    }

    /// A PersistentVolumeClaim `web-data` with `volume_mode` (a YAML line under spec, or empty).
    fn claim(namespace: &str, volume_mode: &str) -> String {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: web-data\n  namespace: {namespace}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n  {volume_mode}\n"
        )
    }

    /// A workspace that knows a Coordinator (from an earlier run), with `files` (name, text)
    /// written to its app directory (which [`TestEnv::snapshot`] covers); their paths.
    fn env_with(files: &[(&str, &str)]) -> (TestEnv, Vec<String>) {
        let env = TestEnv::new();
        env.seed_coordinator();
        let paths = files
            .iter()
            .map(|(name, text)| write_app(&env, name, text))
            .collect();
        (env, paths)
    }

    fn write_app(env: &TestEnv, name: &str, text: &str) -> String {
        let path = env.root.join("app").join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `generate` with the fixture policy and [`INITIALIZER_IMAGE`].
    fn generate(env: &TestEnv, paths: &[String], extra: &[&str]) -> Output {
        let policy = format!("{FIXTURES}/policy.rego");
        let mut args = vec![
            "--policy",
            &policy,
            "--initializer-image",
            INITIALIZER_IMAGE,
        ];
        args.extend_from_slice(extra);
        args.extend(paths.iter().map(String::as_str));
        env.generate(&args)
    }

    pub(super) fn init_container_names(resource: &Value) -> Vec<&str> {
        pod_template(resource)["spec"]["initContainers"]
            .as_sequence()
            .map(|containers| {
                containers
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn init_container<'a>(resource: &'a Value, name: &str) -> &'a Value {
        pod_template(resource)["spec"]["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no init container {name}: {resource:?}"))
    }

    pub(super) fn as_json(value: &Value) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    /// Every field of the sidecar for the volumes `device` and `mount`.
    fn expected_sidecar(device: &str, mount: &str) -> serde_json::Value {
        serde_json::json!({
            "name": "contrast-secure-pv",
            "image": INITIALIZER_IMAGE,
            "args": cryptsetup_args(SECURE_PV_DEVICE_PATH, SECURE_PV_MOUNT_POINT),
            "restartPolicy": "Always",
            "securityContext": { "privileged": true },
            "startupProbe": {
                "exec": { "command": ["test", "-f", INITIALIZER_DONE_FILE] },
                "initialDelaySeconds": 1,
                "periodSeconds": 1,
                "failureThreshold": 600,
            },
            "resources": {
                "limits": { "memory": "100Mi" },
                "requests": { "memory": "100Mi" },
            },
            "volumeDevices": [{ "name": device, "devicePath": SECURE_PV_DEVICE_PATH }],
            "volumeMounts": [
                {
                    "name": mount,
                    "mountPath": SECURE_PV_MOUNT_POINT,
                    "mountPropagation": "Bidirectional",
                },
                { "name": "contrast-secrets", "mountPath": SECRETS_MOUNT_PATH },
            ],
        })
    }

    /// A genpolicy whose policy is the resource it is given, as comments: the policy shows
    /// what genpolicy saw. Shell builtins only (the child's PATH holds nothing but this).
    pub(super) fn install_echo_genpolicy(env: &TestEnv) {
        let program = env.root.join("bin/genpolicy");
        fs::write(
            &program,
            "#!/bin/sh\necho 'package agent_policy'\nwhile IFS= read -r line; do echo \"# $line\"; done < \"$2\"\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn a_stateful_set_gets_the_sidecar_and_its_policy_covers_it() {
        let (env, paths) = env_with(&[("volume-tester.yml", VOLUME_TESTER)]);
        install_echo_genpolicy(&env);
        let args = ["--initializer-image", INITIALIZER_IMAGE, paths[0].as_str()];
        let out = env.generate(&args);
        assert_success(&out);
        assert!(!stderr(&out).contains("secure-pv"), "{}", stderr(&out));

        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let tester = find(&resources, "StatefulSet", "volume-tester");
        assert_eq!(
            init_container_names(tester),
            ["contrast-initializer", "contrast-secure-pv"]
        );
        assert_eq!(
            as_json(init_container(tester, "contrast-secure-pv")),
            expected_sidecar("state", "share")
        );
        assert_eq!(
            init_container(tester, "contrast-initializer")["image"].as_str(),
            Some(INITIALIZER_IMAGE)
        );
        let spec = &pod_template(tester)["spec"];
        assert_eq!(
            as_json(&spec["containers"][0]["volumeMounts"]),
            serde_json::json!([
                { "name": "share", "mountPath": "/state", "mountPropagation": "HostToContainer" }
            ])
        );
        assert_eq!(
            as_json(&spec["volumes"]),
            serde_json::json!([
                { "name": "share", "emptyDir": {} },
                { "name": "contrast-secrets", "emptyDir": {} },
            ])
        );
        // The claim template is left alone.
        assert_eq!(
            tester["spec"]["volumeClaimTemplates"],
            find(&documents(VOLUME_TESTER), "StatefulSet", "volume-tester")["spec"]["volumeClaimTemplates"]
        );

        // genpolicy saw the injected sidecar and the changed mount.
        let initdata = initdata_of(tester);
        let policy = &initdata.data()["policy.rego"];
        for needle in [
            "name: contrast-secure-pv",
            "- cryptsetup",
            "mountPropagation: Bidirectional",
            "mountPropagation: HostToContainer",
        ] {
            assert!(policy.contains(needle), "{needle} missing from:\n{policy}");
        }
        let manifest = env.manifest();
        let entry = &manifest.policies[&digest_hex(&initdata)];
        assert_eq!(entry.workload_secret_id, "volume-tester-secret");
        assert_eq!(
            entry.sans.as_deref(),
            Some(&["volume-tester".to_owned(), "*".to_owned()][..])
        );

        // Again: nothing changes.
        let first = env.snapshot();
        assert_success(&env.generate(&args));
        assert_eq!(env.snapshot(), first);

        // The annotation removed: the sidecar goes, the initializer stays, the manifest entry
        // is replaced.
        let mut resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let Value::Mapping(annotations) =
            &mut resources[0]["spec"]["template"]["metadata"]["annotations"]
        else {
            panic!("no annotations");
        };
        annotations.remove("contrast.edgeless.systems/secure-pv");
        fs::write(&paths[0], serde_norway::to_string(&resources[0]).unwrap()).unwrap();
        assert_success(&env.generate(&args));
        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let tester = find(&resources, "StatefulSet", "volume-tester");
        assert_eq!(init_container_names(tester), ["contrast-initializer"]);
        let digest = digest_hex(&initdata_of(tester));
        let manifest = env.manifest();
        assert_eq!(
            manifest.policies[&digest].workload_secret_id,
            "volume-tester-secret"
        );
        assert_eq!(manifest.policies.len(), 2, "{:?}", manifest.policies);
    }

    #[test]
    fn the_annotation_on_the_resources_own_metadata_is_honoured() {
        let moved = VOLUME_TESTER
            .replace(
                "        contrast.edgeless.systems/secure-pv: \"state:share\"\n",
                "",
            )
            .replace(
                "  namespace: default\n",
                "  namespace: default\n  annotations:\n    contrast.edgeless.systems/secure-pv: \"state:share\"\n",
            );
        let (env, paths) = env_with(&[("volume-tester.yml", &moved)]);
        assert_success(&generate(&env, &paths, &[]));
        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let tester = find(&resources, "StatefulSet", "volume-tester");
        assert_eq!(
            as_json(init_container(tester, "contrast-secure-pv")),
            expected_sidecar("state", "share")
        );
    }

    #[test]
    fn an_ephemeral_block_volume_is_a_device() {
        let ephemeral = "ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], volumeMode: Block, resources: {requests: {storage: 1Gi}}}}}";
        let (env, paths) = env_with(&[("web.yml", &web(ephemeral))]);
        let out = generate(&env, &paths, &[]);
        assert_success(&out);
        assert!(!stderr(&out).contains("secure-pv"), "{}", stderr(&out));
        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let web = find(&resources, "Deployment", "web");
        assert_eq!(
            as_json(init_container(web, "contrast-secure-pv")),
            expected_sidecar("disk", "share")
        );
        assert_eq!(
            pod_template(web)["spec"]["containers"][0]["volumeMounts"][0]["mountPropagation"]
                .as_str(),
            Some("HostToContainer")
        );
    }

    #[test]
    fn a_persistent_volume_claim_is_checked_when_among_the_inputs() {
        let volume = "persistentVolumeClaim: {claimName: web-data}";

        // In another input file (one generate does not rewrite), block-mode: accepted.
        let (env, paths) = env_with(&[
            ("web.yml", &web(volume)),
            ("claims.yml", &claim("default", "volumeMode: Block")),
        ]);
        let out = generate(&env, &paths, &[]);
        assert_success(&out);
        assert!(!stderr(&out).contains("web-data"), "{}", stderr(&out));
        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        assert_eq!(
            as_json(init_container(
                find(&resources, "Deployment", "web"),
                "contrast-secure-pv"
            )),
            expected_sidecar("disk", "share")
        );

        // Filesystem, or no volumeMode (Filesystem by default): refused, nothing written.
        for (volume_mode, found) in [
            ("volumeMode: Filesystem", "volumeMode Filesystem"),
            ("", "no volumeMode (Filesystem, the default)"),
        ] {
            let (env, paths) = env_with(&[
                ("web.yml", &web(volume)),
                ("claims.yml", &claim("default", volume_mode)),
            ]);
            let before = env.snapshot();
            let out = generate(&env, &paths, &[]);
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            let message = stderr(&out);
            for needle in [
                "default/deployment/web",
                "contrast.edgeless.systems/secure-pv",
                "\"disk\"",
                "PersistentVolumeClaim default/web-data",
                found,
                "volumeMode to Block",
            ] {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
            assert_eq!(env.snapshot(), before);
        }

        // Not among the inputs (here: only in another namespace): accepted with a warning.
        for claims in [None, Some(claim("other", "volumeMode: Filesystem"))] {
            let mut files = vec![("web.yml", web(volume))];
            files.extend(claims.map(|text| ("claims.yml", text)));
            let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
            let (env, paths) = env_with(&files);
            let out = generate(&env, &paths, &[]);
            assert_success(&out);
            let message = stderr(&out);
            for needle in [
                "warning: default/deployment/web",
                "PersistentVolumeClaim default/web-data",
                "could not check its volumeMode",
                "Block",
            ] {
                assert!(message.contains(needle), "{needle} missing: {message}");
            }
            let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
            assert!(
                init_container_names(find(&resources, "Deployment", "web"))
                    .contains(&"contrast-secure-pv")
            );
            // --json lists it too.
            let out = generate(&env, &paths, &["--json"]);
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                summary["warnings"].as_array().unwrap().iter().any(|w| w
                    .as_str()
                    .unwrap()
                    .contains("could not check its volumeMode")),
                "{summary}"
            );
        }
    }

    #[test]
    fn a_mount_volume_no_container_mounts_is_warned_about() {
        let ephemeral = "ephemeral: {volumeClaimTemplate: {spec: {volumeMode: Block, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}}";
        let text = web(ephemeral).replace(
            "          volumeMounts:\n            - name: share\n              mountPath: /data\n",
            "",
        );
        let (env, paths) = env_with(&[("web.yml", &text)]);
        let out = generate(&env, &paths, &[]);
        assert_success(&out);
        let message = stderr(&out);
        for needle in [
            "warning: default/deployment/web",
            "no container mounts the secure-pv volume \"share\"",
        ] {
            assert!(message.contains(needle), "{needle} missing: {message}");
        }
    }

    #[test]
    fn each_misfit_is_refused_and_nothing_is_written() {
        let annotated = |value: &str| {
            VOLUME_TESTER.replace(
                "secure-pv: \"state:share\"",
                &format!("secure-pv: \"{value}\""),
            )
        };
        let syntax = "\"<device volume>:<mount volume>\"";
        let cases: Vec<(&str, String, &[&str], Vec<&str>)> = vec![
            (
                "no colon",
                annotated("state"),
                &[],
                vec!["\"state\"", "0 ':'", syntax],
            ),
            (
                "two colons",
                annotated("state:share:x"),
                &[],
                vec!["\"state:share:x\"", "2 ':'", syntax],
            ),
            (
                "empty device",
                annotated(":share"),
                &[],
                vec!["\":share\"", "device volume is empty", syntax],
            ),
            (
                "empty mount",
                annotated("state:"),
                &[],
                vec!["\"state:\"", "mount volume is empty", syntax],
            ),
            (
                "not a volume name",
                annotated("State:share"),
                &[],
                vec!["\"State\" is not a valid volume name", syntax],
            ),
            (
                "no such device volume",
                annotated("disk:share"),
                &[],
                vec![
                    "device volume \"disk\"",
                    "no such volume",
                    "volume claim templates: state",
                    "volumes: share",
                ],
            ),
            (
                "claim template not block-mode",
                VOLUME_TESTER.replace("volumeMode: Block", "volumeMode: Filesystem"),
                &[],
                vec![
                    "device volume \"state\"",
                    "volume claim template",
                    "volumeMode Filesystem",
                    "set its spec.volumeMode to Block",
                ],
            ),
            (
                "claim template without volumeMode",
                VOLUME_TESTER.replace("        volumeMode: Block\n", ""),
                &[],
                vec!["no volumeMode (Filesystem, the default)", "Block"],
            ),
            (
                "device volume of another kind",
                annotated("config:share").replace(
                    "      volumes:\n",
                    "      volumes:\n        - name: config\n          configMap: {name: config}\n",
                ),
                &[],
                vec!["device volume \"config\"", "a configMap volume", "Block"],
            ),
            (
                "mount volume not an emptyDir",
                VOLUME_TESTER.replace("emptyDir: {}", "hostPath: {path: /mnt}"),
                &[],
                vec!["mount volume \"share\"", "a hostPath volume", "emptyDir"],
            ),
            (
                "no such mount volume",
                annotated("state:shared"),
                &[],
                vec!["mount volume \"shared\"", "no such volume", "emptyDir"],
            ),
            (
                "mountPropagation None",
                VOLUME_TESTER.replace(
                    "              mountPath: /state\n",
                    "              mountPath: /state\n              mountPropagation: None\n",
                ),
                &[],
                vec![
                    "container volume-tester",
                    "mountPropagation \"None\"",
                    "never see the encrypted volume",
                    "HostToContainer",
                ],
            ),
            (
                "--skip-initializer",
                VOLUME_TESTER.to_owned(),
                &["--skip-initializer"],
                vec!["--skip-initializer", "workload secret"],
            ),
            (
                "skip-initializer annotation",
                VOLUME_TESTER.replace(
                    "      annotations:\n",
                    "      annotations:\n        contrast.edgeless.systems/skip-initializer: \"true\"\n",
                ),
                &[],
                vec![
                    "contrast.edgeless.systems/skip-initializer: \"true\"",
                    "workload secret",
                ],
            ),
        ];
        for (case, text, extra, needles) in cases {
            let (env, paths) = env_with(&[("volume-tester.yml", &text)]);
            let before = env.snapshot();
            let out = generate(&env, &paths, extra);
            assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
            let message = stderr(&out);
            for needle in [
                "default/statefulset/volume-tester",
                "contrast.edgeless.systems/secure-pv",
            ]
            .iter()
            .chain(&needles)
            {
                assert!(
                    message.contains(needle),
                    "{case}: {needle} missing: {message}"
                );
            }
            assert_eq!(env.snapshot(), before, "{case}");
        }
    }

    #[test]
    fn k8s_openapi_and_kubectl_accept_the_stateful_set() {
        let (env, paths) = env_with(&[("volume-tester.yml", VOLUME_TESTER)]);
        assert_success(&generate(&env, &paths, &[]));
        let resources = documents(&fs::read_to_string(&paths[0]).unwrap());
        let stateful_set: StatefulSet = super::coordinator::typed(&resources[0]);
        let pod = stateful_set.spec.template.spec.unwrap();
        let init = pod.init_containers.unwrap();
        let sidecar = &init[1];
        assert_eq!(sidecar.name, "contrast-secure-pv");
        assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            sidecar.security_context.as_ref().unwrap().privileged,
            Some(true)
        );
        let devices = sidecar.volume_devices.as_ref().unwrap();
        assert_eq!(
            (devices[0].name.as_str(), devices[0].device_path.as_str()),
            ("state", SECURE_PV_DEVICE_PATH)
        );
        let mounts = sidecar.volume_mounts.as_ref().unwrap();
        assert_eq!(
            (
                mounts[0].name.as_str(),
                mounts[0].mount_path.as_str(),
                mounts[0].mount_propagation.as_deref()
            ),
            ("share", SECURE_PV_MOUNT_POINT, Some("Bidirectional"))
        );
        let probe = sidecar.startup_probe.as_ref().unwrap();
        assert_eq!(
            probe.exec.as_ref().unwrap().command.as_deref().unwrap(),
            ["test", "-f", INITIALIZER_DONE_FILE]
        );
        assert_eq!(
            (
                probe.initial_delay_seconds,
                probe.period_seconds,
                probe.failure_threshold
            ),
            (Some(1), Some(1), Some(600))
        );
        let main_mount = &pod.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            main_mount.mount_propagation.as_deref(),
            Some("HostToContainer")
        );

        let Some(kubectl) = find_kubectl() else {
            println!("SKIPPED: kubectl is not on PATH; the k8s-openapi round trip still ran");
            return;
        };
        let cluster = FakeCluster::start(&env);
        let file = Path::new(&paths[0]);
        let out = cluster.kubectl(
            &kubectl,
            &["apply", "--dry-run=client", "--validate=false"],
            file,
        );
        assert_success(&out);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("statefulset.apps/volume-tester created (dry run)"),
            "{stdout}"
        );
        let out = cluster.kubectl(
            &kubectl,
            &[
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "json",
            ],
            file,
        );
        assert_success(&out);
        assert_eq!(json_documents(&out.stdout), yaml_as_json(file));
    }
}

mod service_mesh {
    use super::secure_pv::{as_json, init_container, init_container_names, install_echo_genpolicy};
    use super::*;
    use contrast_core::kubernetes::{SECRETS_MOUNT_PATH, SERVICE_MESH_READY_FILE};
    use k8s_openapi::api::apps::v1::Deployment;

    const INITIALIZER_IMAGE: &str = "example.com/contrast/initializer:1";
    const MESH_IMAGE: &str = "example.com/contrast/mesh:1";
    const INGRESS: &str = "contrast.edgeless.systems/servicemesh-ingress";
    const EGRESS: &str = "contrast.edgeless.systems/servicemesh-egress";
    const ADMIN_PORT: &str = "contrast.edgeless.systems/servicemesh-admin-interface-port";

    const INGRESS_VALUE: &str = "web#8080#false##metrics#9090#true";
    const EGRESS_VALUE: &str = "db#127.137.0.1:5432#db:5432";

    /// A Deployment `web` in `default` annotated with `annotations` ((key, value) pairs, the
    /// values quoted as YAML strings).
    fn web(annotations: &[(&str, &str)]) -> String {
        let lines: Vec<String> = annotations
            .iter()
            .map(|(key, value)| format!("{key}: {value:?}"))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        deployment("web", "default", "contrast-cc", &lines)
    }

    /// A workspace that knows a Coordinator, with `text` as app/web.yml; its path.
    fn env_with(text: &str) -> (TestEnv, String) {
        let env = TestEnv::new();
        env.seed_coordinator();
        let path = env.root.join("app/web.yml");
        fs::write(&path, text).unwrap();
        (env, path.display().to_string())
    }

    /// `generate` with the fixture policy and the test images, and `extra` flags.
    fn generate(env: &TestEnv, path: &str, extra: &[&str]) -> Output {
        let policy = format!("{FIXTURES}/policy.rego");
        let mut args = vec![
            "--policy",
            &policy,
            "--initializer-image",
            INITIALIZER_IMAGE,
            "--service-mesh-image",
            MESH_IMAGE,
        ];
        args.extend_from_slice(extra);
        args.push(path);
        env.generate(&args)
    }

    fn web_of(path: &str) -> Value {
        find(
            &documents(&fs::read_to_string(path).unwrap()),
            "Deployment",
            "web",
        )
        .clone()
    }

    /// Every field of the sidecar, with `env` and, if `admin_port`, its container port.
    fn expected_sidecar(env: serde_json::Value, admin_port: Option<u16>) -> serde_json::Value {
        let mut sidecar = serde_json::json!({
            "name": "contrast-service-mesh",
            "image": MESH_IMAGE,
            "restartPolicy": "Always",
            "securityContext": { "privileged": true, "capabilities": { "add": ["NET_ADMIN"] } },
            "env": env,
        });
        if let Some(port) = admin_port {
            sidecar["ports"] =
                serde_json::json!([{ "name": "contrast-admin", "containerPort": port }]);
        }
        sidecar["startupProbe"] = serde_json::json!({
            "exec": { "command": ["test", "-f", SERVICE_MESH_READY_FILE] },
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
            "failureThreshold": 300,
        });
        sidecar["resources"] = serde_json::json!({
            "limits": { "memory": "100Mi" },
            "requests": { "memory": "100Mi" },
        });
        sidecar["volumeMounts"] =
            serde_json::json!([{ "name": "contrast-secrets", "mountPath": SECRETS_MOUNT_PATH }]);
        sidecar
    }

    fn all_three() -> String {
        web(&[
            (INGRESS, INGRESS_VALUE),
            (EGRESS, EGRESS_VALUE),
            (ADMIN_PORT, "9901"),
        ])
    }

    #[test]
    fn a_deployment_gets_the_sidecar_and_its_policy_covers_it() {
        let (env, path) = env_with(&all_three());
        install_echo_genpolicy(&env);
        let args = [
            "--initializer-image",
            INITIALIZER_IMAGE,
            "--service-mesh-image",
            MESH_IMAGE,
            path.as_str(),
        ];
        let out = env.generate(&args);
        assert_success(&out);
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

        let web = web_of(&path);
        assert_eq!(
            init_container_names(&web),
            ["contrast-initializer", "contrast-service-mesh"]
        );
        // The sidecar removes the default-deny rule, not the initializer.
        assert_eq!(
            super::initializer_env(&web, "CONTRAST_SERVICE_MESH_DISABLED"),
            None
        );
        let sidecar = as_json(init_container(&web, "contrast-service-mesh"));
        // Field by field, so that the order of the keys is checked too.
        let expected = expected_sidecar(
            serde_json::json!([
                { "name": "CONTRAST_INGRESS_PROXY_CONFIG", "value": INGRESS_VALUE },
                { "name": "CONTRAST_EGRESS_PROXY_CONFIG", "value": EGRESS_VALUE },
                { "name": "CONTRAST_ADMIN_PORT", "value": "9901" },
            ]),
            Some(9901),
        );
        assert_eq!(
            sidecar.as_object().unwrap().keys().collect::<Vec<_>>(),
            expected.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        assert_eq!(sidecar, expected);
        // The annotations stay as written; the volume is the initializer's.
        let annotations = &pod_template(&web)["metadata"]["annotations"];
        assert_eq!(annotations[INGRESS].as_str(), Some(INGRESS_VALUE));
        assert_eq!(annotations[EGRESS].as_str(), Some(EGRESS_VALUE));
        assert_eq!(annotations[ADMIN_PORT].as_str(), Some("9901"));
        assert_eq!(
            as_json(&pod_template(&web)["spec"]["volumes"]),
            serde_json::json!([{ "name": "contrast-secrets", "emptyDir": {} }])
        );

        // genpolicy saw the injected sidecar.
        let initdata = initdata_of(&web);
        let policy = &initdata.data()["policy.rego"];
        for needle in [
            "name: contrast-service-mesh",
            &format!("image: {MESH_IMAGE}"),
            "- NET_ADMIN",
            "name: CONTRAST_EGRESS_PROXY_CONFIG",
            &format!("value: {EGRESS_VALUE}"),
            "containerPort: 9901",
        ] {
            assert!(policy.contains(needle), "{needle} missing from:\n{policy}");
        }
        let digest = digest_hex(&initdata);
        assert!(env.manifest().policies.contains_key(&digest));

        // Again: nothing changes.
        let first = env.snapshot();
        assert_success(&env.generate(&args));
        assert_eq!(env.snapshot(), first);

        // The annotations removed: the sidecar goes, the initializer stays, the manifest entry
        // is replaced.
        let mut resource = web_of(&path);
        let Value::Mapping(annotations) =
            &mut resource["spec"]["template"]["metadata"]["annotations"]
        else {
            panic!("no annotations");
        };
        for key in [INGRESS, EGRESS, ADMIN_PORT] {
            annotations.remove(key);
        }
        fs::write(&path, serde_norway::to_string(&resource).unwrap()).unwrap();
        assert_success(&env.generate(&args));
        let web = web_of(&path);
        assert_eq!(init_container_names(&web), ["contrast-initializer"]);
        let initdata = initdata_of(&web);
        let policy = &initdata.data()["policy.rego"];
        assert!(!policy.contains("contrast-service-mesh"), "{policy}");
        let manifest = env.manifest();
        assert!(!manifest.policies.contains_key(&digest));
        assert!(
            manifest
                .policies
                .contains_key(&digest_hex(&initdata_of(&web)))
        );
        assert_eq!(manifest.policies.len(), 2, "{:?}", manifest.policies);
    }

    #[test]
    fn the_sidecar_follows_the_secure_pv_sidecar() {
        let text = web(&[(EGRESS, EGRESS_VALUE), ("contrast.edgeless.systems/secure-pv", "disk:share")])
            .replace(
                "          image: example/web:1\n",
                "          image: example/web:1\n          volumeMounts: [{name: share, mountPath: /data}]\n      volumes:\n        - {name: share, emptyDir: {}}\n        - name: disk\n          ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], volumeMode: Block, resources: {requests: {storage: 1Gi}}}}}\n",
            );
        let (env, path) = env_with(&text);
        assert_success(&generate(&env, &path, &[]));
        assert_eq!(
            init_container_names(&web_of(&path)),
            [
                "contrast-initializer",
                "contrast-secure-pv",
                "contrast-service-mesh"
            ]
        );
    }

    #[test]
    fn an_empty_or_disabled_ingress_alone_injects_the_sidecar() {
        for value in ["", "DISABLED"] {
            let (env, path) = env_with(&web(&[(INGRESS, value)]));
            assert_success(&generate(&env, &path, &[]));
            let web = web_of(&path);
            assert_eq!(
                as_json(init_container(&web, "contrast-service-mesh")),
                expected_sidecar(
                    serde_json::json!([{ "name": "CONTRAST_INGRESS_PROXY_CONFIG", "value": value }]),
                    None
                ),
                "{value:?}"
            );
        }
        // The default image, with only an admin port: no ingress variable, so the sidecar's
        // default (every port mutual TLS) applies.
        let (env, path) = env_with(&web(&[(ADMIN_PORT, "9901")]));
        let policy = format!("{FIXTURES}/policy.rego");
        assert_success(&env.generate(&["--policy", &policy, &path]));
        let sidecar = as_json(init_container(&web_of(&path), "contrast-service-mesh"));
        assert_eq!(sidecar["image"], "localhost/contrast-rs/mesh:0.1.0");
        assert_eq!(
            sidecar["env"],
            serde_json::json!([{ "name": "CONTRAST_ADMIN_PORT", "value": "9901" }])
        );
    }

    #[test]
    fn each_bad_annotation_is_refused_and_nothing_is_written() {
        let both = format!("the annotations {INGRESS} and {ADMIN_PORT}");
        let cases: Vec<(&str, String, &[&str], Vec<&str>)> = vec![
            (
                "malformed ingress entry",
                web(&[(INGRESS, "web#8080#false##db#5432")]),
                &[],
                vec![INGRESS, "entry 2 \"db#5432\"", "<name>#<port>#<disableTLS>"],
            ),
            (
                "ingress disableTLS not a boolean",
                web(&[(INGRESS, "web#8080#yes")]),
                &[],
                vec![INGRESS, "entry 1 \"web#8080#yes\"", "not a boolean"],
            ),
            (
                "duplicate ingress port",
                web(&[(INGRESS, "a#80#true##b#80#false")]),
                &[],
                vec![
                    INGRESS,
                    "entry 2 \"b#80#false\"",
                    "port 80 is already used by entry 1",
                ],
            ),
            (
                "non-loopback egress listen address",
                web(&[(EGRESS, "db#10.0.0.1:5432#db:5432")]),
                &[],
                vec![
                    EGRESS,
                    "entry 1 \"db#10.0.0.1:5432#db:5432\"",
                    "10.0.0.1 is not a loopback address",
                ],
            ),
            (
                "empty egress",
                web(&[(INGRESS, ""), (EGRESS, "")]),
                &[],
                vec![EGRESS, "is empty", "at least one entry", "removed"],
            ),
            (
                "admin port not a port",
                web(&[(ADMIN_PORT, "99999")]),
                &[],
                vec![ADMIN_PORT, "\"99999\"", "port number from 1 to 65535"],
            ),
            (
                "admin port of an egress listener",
                web(&[(EGRESS, EGRESS_VALUE), (ADMIN_PORT, "5432")]),
                &[],
                vec![
                    ADMIN_PORT,
                    "\"5432\"",
                    "the egress entry \"db\" listens on 127.137.0.1:5432",
                    "another port",
                ],
            ),
            (
                "admin port of the proxy",
                web(&[(ADMIN_PORT, "15006")]),
                &[],
                vec![ADMIN_PORT, "\"15006\"", "the proxy's ingress ports"],
            ),
            (
                "--skip-initializer",
                web(&[(EGRESS, EGRESS_VALUE)]),
                &["--skip-initializer"],
                vec![EGRESS, "--skip-initializer", "mesh certificates"],
            ),
            (
                "skip-initializer annotation",
                web(&[
                    ("contrast.edgeless.systems/skip-initializer", "true"),
                    (INGRESS, ""),
                    (ADMIN_PORT, "9901"),
                ]),
                &[],
                vec![
                    &both,
                    "contrast.edgeless.systems/skip-initializer: \"true\"",
                    "mesh certificates",
                ],
            ),
            (
                "the Coordinator's pod",
                web(&[
                    ("contrast.edgeless.systems/pod-role", "coordinator"),
                    (INGRESS, ""),
                ]),
                &[],
                vec![INGRESS, "it is the Coordinator", "mesh certificates"],
            ),
        ];
        for (case, text, extra, needles) in cases {
            let (env, path) = env_with(&text);
            let before = env.snapshot();
            let out = generate(&env, &path, extra);
            assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
            let message = stderr(&out);
            for needle in std::iter::once(&"default/deployment/web").chain(&needles) {
                assert!(
                    message.contains(needle),
                    "{case}: {needle} missing: {message}"
                );
            }
            assert_eq!(env.snapshot(), before, "{case}");
        }
    }

    #[test]
    fn k8s_openapi_and_kubectl_accept_the_deployment() {
        let (env, path) = env_with(&all_three());
        assert_success(&generate(&env, &path, &[]));
        let deployment: Deployment = super::coordinator::typed(&web_of(&path));
        let pod = deployment.spec.template.spec.unwrap();
        let init = pod.init_containers.unwrap();
        let sidecar = &init[1];
        assert_eq!(sidecar.name, "contrast-service-mesh");
        assert_eq!(sidecar.image.as_deref(), Some(MESH_IMAGE));
        assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
        let security = sidecar.security_context.as_ref().unwrap();
        assert_eq!(security.privileged, Some(true));
        assert_eq!(
            security.capabilities.as_ref().unwrap().add.as_deref(),
            Some(&["NET_ADMIN".to_owned()][..])
        );
        let env_vars: Vec<(&str, Option<&str>)> = sidecar
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|var| (var.name.as_str(), var.value.as_deref()))
            .collect();
        assert_eq!(
            env_vars,
            [
                ("CONTRAST_INGRESS_PROXY_CONFIG", Some(INGRESS_VALUE)),
                ("CONTRAST_EGRESS_PROXY_CONFIG", Some(EGRESS_VALUE)),
                ("CONTRAST_ADMIN_PORT", Some("9901")),
            ]
        );
        let ports = sidecar.ports.as_ref().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].container_port),
            (Some("contrast-admin"), 9901)
        );
        let probe = sidecar.startup_probe.as_ref().unwrap();
        assert_eq!(
            probe.exec.as_ref().unwrap().command.as_deref().unwrap(),
            ["test", "-f", SERVICE_MESH_READY_FILE]
        );
        assert_eq!(
            (
                probe.initial_delay_seconds,
                probe.period_seconds,
                probe.failure_threshold
            ),
            (Some(1), Some(1), Some(300))
        );
        let mounts = sidecar.volume_mounts.as_ref().unwrap();
        assert_eq!(
            (mounts[0].name.as_str(), mounts[0].mount_path.as_str()),
            ("contrast-secrets", SECRETS_MOUNT_PATH)
        );

        let Some(kubectl) = find_kubectl() else {
            println!("SKIPPED: kubectl is not on PATH; the k8s-openapi round trip still ran");
            return;
        };
        let cluster = FakeCluster::start(&env);
        let file = Path::new(&path);
        let out = cluster.kubectl(
            &kubectl,
            &["apply", "--dry-run=client", "--validate=false"],
            file,
        );
        assert_success(&out);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("deployment.apps/web created (dry run)"),
            "{stdout}"
        );
        let out = cluster.kubectl(
            &kubectl,
            &[
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "json",
            ],
            file,
        );
        assert_success(&out);
        assert_eq!(json_documents(&out.stdout), yaml_as_json(file));
    }
}
