//! Test support for the ConfigMap store: an in-process fake Kubernetes API server.
//!
//! [`FakeApiServer`] serves plain HTTP on 127.0.0.1 (ephemeral port) and keeps ConfigMaps (and
//! read-only pods) of one namespace with the real server's semantics where the store depends on
//! them:
//!
//! - `GET`/`POST`/`PUT`/`DELETE` of `/api/v1/namespaces/<ns>/configmaps[/<name>]`, answers and
//!   errors as the real server words them: `metav1.Status` bodies with 404 NotFound,
//!   409 AlreadyExists, 409 Conflict (stale `metadata.resourceVersion` on PUT; a PUT without one
//!   is unconditional, as for real ConfigMaps), 422 Invalid (too large, duplicate keys, bad key
//!   names), 400 BadRequest (name or namespace mismatch, bad selectors);
//! - one global, monotonically increasing `resourceVersion`; a PUT that changes nothing keeps
//!   the version and sends no event (as the real server skips no-op updates);
//! - `binaryData` as base64 (checked), `uid` and `creationTimestamp` set on create;
//! - LIST with `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`), `fieldSelector`
//!   (`metadata.name`, `metadata.namespace`), `limit` and `continue`;
//! - WATCH (`?watch=true`): newline-delimited JSON events, replayed from the history after the
//!   given `resourceVersion` (or synthetic `ADDED` events for `0`/none), `timeoutSeconds` (with a
//!   `BOOKMARK` just before the end if `allowWatchBookmarks`), and `ERROR` 410 Expired for a
//!   version older than the last [`compact`](FakeApiServer::compact);
//! - authentication and authorisation as a real server answers them: 401 Unauthorized for a
//!   bearer token it does not know; an RBAC-style 403 Forbidden for `system:anonymous` when the
//!   token is missing (unless [`allow_anonymous`](FakeApiServer::allow_anonymous)), or when the
//!   namespace is not the server's;
//! - enough discovery (`/api`, `/apis`, `/api/v1`, `/version`) for `kubectl`.
//!
//! Test controls: [`drop_watches`](FakeApiServer::drop_watches) aborts every open watch
//! connection, [`compact`](FakeApiServer::compact) forgets the event history,
//! [`add_pod`](FakeApiServer::add_pod) and [`add_labelled_pod`](FakeApiServer::add_labelled_pod)
//! add pods (listed by label selector), [`set_pod_ready`](FakeApiServer::set_pod_ready) plays
//! the kubelet's readiness probe, and [`requests`](FakeApiServer::requests)
//! logs what was asked. [`SilentServer`] accepts connections and never answers.
//!
//! For tests that set up a cluster through the API, so that the same code runs against a real
//! server: `POST` of pods (nothing schedules them), `PATCH pods/<name>/status` as merge or
//! strategic merge patch (the kubelet's part), and `POST`/`GET` of `apps/v1` StatefulSets
//! (nothing controls them).
//!
//! Not reproduced: TLS, other resources and API groups, server-side apply, PATCH other than
//! pod status,
//! `generateName`, finalizers and graceful deletion, `resourceVersionMatch`, set-based label
//! selectors, protobuf beyond the ConfigMaps `kubectl create` sends, aggregated discovery, admission, real RBAC rules, immutable ConfigMaps,
//! periodic bookmarks and the real server's watch cache sizes.
// Test code may unwrap and panic; handlers return the error response itself, whose size does
// not matter in a test server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use contrast_core::kubernetes::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, std::io::Error>;

/// The most a ConfigMap may hold (`data` plus decoded `binaryData`), as the real server checks.
pub const MAX_CONFIGMAP_BYTES: usize = 1024 * 1024;

/// A fake Kubernetes API server for ConfigMaps in one namespace. Stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    url: String,
    task: JoinHandle<()>,
}

struct Shared {
    token: String,
    namespace: String,
    state: Mutex<State>,
    /// Bumped by `drop_watches`: every open watch aborts its connection.
    disconnect: watch::Sender<u64>,
    /// Whether requests without a token are allowed (RBAC granting `system:anonymous`).
    anonymous: AtomicBool,
}

#[derive(Default)]
struct State {
    version: u64,
    next_uid: u64,
    configmaps: BTreeMap<String, Value>,
    pods: BTreeMap<String, Value>,
    statefulsets: BTreeMap<String, Value>,
    /// Events after `compacted`, oldest first.
    history: Vec<Event>,
    compacted: u64,
    watchers: Vec<Watcher>,
    requests: Vec<String>,
}

#[derive(Clone)]
struct Event {
    version: u64,
    kind: &'static str,
    object: Value,
}

struct Watcher {
    filter: Filter,
    sender: mpsc::UnboundedSender<Event>,
}

impl FakeApiServer {
    /// Starts a server for `namespace` that accepts the bearer token `token`.
    pub async fn start(namespace: &str, token: &str) -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            namespace: namespace.to_owned(),
            state: Mutex::new(State::default()),
            disconnect: watch::channel(0).0,
            anonymous: AtomicBool::new(false),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        FakeApiServer { shared, url, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace it serves.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The accepted bearer token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Grants (or revokes) access to requests that carry no token at all; a wrong token stays
    /// unauthorized (401). `kubectl` (client-go) sends no credentials over plain HTTP, and this server
    /// has no TLS.
    pub fn allow_anonymous(&self, allow: bool) {
        self.shared.anonymous.store(allow, Ordering::Relaxed);
    }

    /// Aborts every open watch connection (the client sees a broken chunked body).
    pub fn drop_watches(&self) {
        self.shared
            .disconnect
            .send_modify(|generation| *generation += 1);
    }

    /// Forgets the event history: watches from an older version get 410 Expired.
    pub fn compact(&self) {
        let mut state = self.shared.lock();
        state.compacted = state.version;
        state.history.clear();
    }

    /// Adds a pod named `name` with these owner references (JSON array).
    pub fn add_pod(&self, name: &str, owner_references: Value) {
        self.add_labelled_pod(name, owner_references, json!({}), json!({}), None);
    }

    /// Adds a pod named `name` with owner references, labels and annotations (JSON), and, if
    /// `pod_ip` is given, a status with that IP whose `Ready` condition is `False` until
    /// [`set_pod_ready`](FakeApiServer::set_pod_ready).
    pub fn add_labelled_pod(
        &self,
        name: &str,
        owner_references: Value,
        labels: Value,
        annotations: Value,
        pod_ip: Option<&str>,
    ) {
        let mut state = self.shared.lock();
        let version = state.next_version();
        let uid = state.next_uid();
        let mut pod = json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": self.shared.namespace,
                "uid": uid,
                "resourceVersion": version.to_string(),
                "ownerReferences": owner_references,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {"containers": [{"name": "coordinator", "image": "coordinator"}]},
        });
        if let Some(ip) = pod_ip {
            pod["status"] = json!({
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "False"}],
            });
        }
        state.pods.insert(name.to_owned(), pod);
    }

    /// Sets the `Ready` condition of pod `name`, as the kubelet does from the readiness probe.
    pub fn set_pod_ready(&self, name: &str, ready: bool) {
        let mut state = self.shared.lock();
        let version = state.next_version();
        let Some(pod) = state.pods.get_mut(name) else {
            panic!("no pod {name}");
        };
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
    }

    /// Sets `binaryData[entry]` of ConfigMap `name` directly in the server's state (as a
    /// direct PUT would: new version, `MODIFIED` event), creating it with the store's label if
    /// absent. Synchronous, for code that cannot await.
    pub fn overwrite(&self, name: &str, entry: &str, value: &[u8]) {
        let mut state = self.shared.lock();
        let version = state.next_version();
        let uid = state.next_uid();
        let namespace = self.shared.namespace.clone();
        let (kind, object) = match state.configmaps.get(name) {
            Some(current) => {
                let mut object = current.clone();
                object["binaryData"] = json!({entry: BASE64.encode(value)});
                object["metadata"]["resourceVersion"] = json!(version.to_string());
                ("MODIFIED", object)
            }
            None => (
                "ADDED",
                json!({
                    "kind": "ConfigMap",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": name, "namespace": namespace, "uid": uid,
                        "resourceVersion": version.to_string(),
                        "creationTimestamp": "2025-01-01T00:00:00Z",
                        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                    },
                    "binaryData": {entry: BASE64.encode(value)},
                }),
            ),
        };
        state.configmaps.insert(name.to_owned(), object.clone());
        state.record(kind, object);
    }

    /// The stored ConfigMap `name` as the server keeps it.
    pub fn configmap(&self, name: &str) -> Option<Value> {
        self.shared.lock().configmaps.get(name).cloned()
    }

    /// The current (global) resource version.
    pub fn version(&self) -> u64 {
        self.shared.lock().version
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// How many watch connections are open.
    pub fn open_watches(&self) -> usize {
        let mut state = self.shared.lock();
        state.watchers.retain(|watcher| !watcher.sender.is_closed());
        state.watchers.len()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_watches();
    }
}

/// A TCP server that accepts connections and never answers (for timeouts).
pub struct SilentServer {
    url: String,
    task: JoinHandle<()>,
}

impl SilentServer {
    /// Starts it on 127.0.0.1.
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentServer { url, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            // A connection ends with an error when a watch is dropped on purpose.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn next_uid(&mut self) -> String {
        self.next_uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
    }

    fn record(&mut self, kind: &'static str, object: Value) {
        let event = Event {
            version: self.version,
            kind,
            object,
        };
        self.watchers.retain(|watcher| {
            !watcher.filter.matches(&event.object) || watcher.sender.send(event.clone()).is_ok()
        });
        self.history.push(event);
    }
}

// ---------------------------------------------------------------- responses

fn full(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap()
}

fn status_object(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

fn failure(code: u16, reason: &str, message: &str, name: Option<&str>) -> Response<Body> {
    let details = name.map(|name| json!({"name": name, "kind": "configmaps"}));
    full(
        StatusCode::from_u16(code).unwrap(),
        &status_object(code, reason, message, details),
    )
}

fn not_found(resource: &str, name: &str) -> Response<Body> {
    failure(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(name),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    failure(400, "BadRequest", message, None)
}

fn invalid(name: &str, message: &str) -> Response<Body> {
    invalid_object("ConfigMap", name, message)
}

/// 422 Invalid for an object of `kind`, worded as the real server's.
fn invalid_object(kind: &str, name: &str, message: &str) -> Response<Body> {
    failure(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {message}"),
        Some(name),
    )
}

// ---------------------------------------------------------------- routing

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = parse_query(request.uri().query().unwrap_or(""));
    shared.lock().requests.push(format!(
        "{method} {path}{}",
        request
            .uri()
            .query()
            .map(|query| format!("?{query}"))
            .unwrap_or_default()
    ));

    let authorization = request.headers().get("authorization");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match authorization {
        // Authenticated as system:anonymous, which RBAC may or may not allow.
        None if !shared.anonymous.load(Ordering::Relaxed) => {
            return Ok(forbidden(&method, &segments, "system:anonymous"));
        }
        None => {}
        // A credential the server does not know fails authentication, before any RBAC.
        Some(value)
            if value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                != Some(shared.token.as_str()) =>
        {
            return Ok(full(
                StatusCode::UNAUTHORIZED,
                &status_object(401, "Unauthorized", "Unauthorized", None),
            ));
        }
        Some(_) => {}
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return Ok(bad_request(&format!("reading the body: {error}"))),
    };

    let body = if body.is_empty()
        || content_type.starts_with("application/json")
        || content_type.starts_with(MERGE_PATCH)
        || content_type.starts_with(STRATEGIC_MERGE_PATCH)
    {
        body
    } else if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        // kubectl sends built-in types as protobuf.
        match protobuf::configmap_to_json(&body) {
            Ok(object) => Bytes::from(object.to_string()),
            Err(message) => return Ok(bad_request(&format!("decoding protobuf: {message}"))),
        }
    } else {
        return Ok(failure(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf",
            None,
        ));
    };
    let response = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["api"]) => full(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        (Method::GET, ["apis"]) => full(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        (Method::GET, ["api", "v1"]) => full(StatusCode::OK, &resource_list()),
        (Method::GET, ["version"]) => full(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"}),
        ),
        (_, ["api", "v1", "namespaces", namespace, resource, rest @ ..])
            if *namespace != shared.namespace =>
        {
            let _ = (resource, rest);
            forbidden(&method, &segments, "system:serviceaccount:test:coordinator")
        }
        (Method::GET, ["api", "v1", "namespaces", _, "configmaps"]) => {
            if query
                .get("watch")
                .is_some_and(|watch| watch == "true" || watch == "1")
            {
                watch_configmaps(&shared, &query)
            } else {
                list_configmaps(&shared, &query)
            }
        }
        (Method::POST, ["api", "v1", "namespaces", _, "configmaps"]) => {
            create_configmap(&shared, &body)
        }
        (Method::GET, ["api", "v1", "namespaces", _, "configmaps", name]) => {
            match shared.lock().configmaps.get(*name) {
                Some(configmap) => full(StatusCode::OK, configmap),
                None => not_found("configmaps", name),
            }
        }
        (Method::PUT, ["api", "v1", "namespaces", _, "configmaps", name]) => {
            replace_configmap(&shared, name, &body)
        }
        (Method::DELETE, ["api", "v1", "namespaces", _, "configmaps", name]) => {
            delete_configmap(&shared, name)
        }
        (Method::GET, ["api", "v1", "namespaces", _, "pods"]) => list_pods(&shared, &query),
        (Method::POST, ["api", "v1", "namespaces", _, "pods"]) => create_pod(&shared, &body),
        (Method::PATCH, ["api", "v1", "namespaces", _, "pods", name, "status"]) => {
            patch_pod_status(&shared, name, &content_type, &body)
        }
        (_, ["apis", "apps", "v1", "namespaces", namespace, ..])
            if *namespace != shared.namespace =>
        {
            forbidden(&method, &segments, "system:serviceaccount:test:coordinator")
        }
        (Method::POST, ["apis", "apps", "v1", "namespaces", _, "statefulsets"]) => {
            create_statefulset(&shared, &body)
        }
        (Method::GET, ["apis", "apps", "v1", "namespaces", _, "statefulsets", name]) => {
            match shared.lock().statefulsets.get(*name) {
                Some(statefulset) => full(StatusCode::OK, statefulset),
                None => not_found("statefulsets.apps", name),
            }
        }
        (Method::GET, ["api", "v1", "namespaces", _, "pods", name]) => {
            match shared.lock().pods.get(*name) {
                Some(pod) => full(StatusCode::OK, pod),
                None => not_found("pods", name),
            }
        }
        _ => failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    };
    Ok(response)
}

/// An RBAC denial worded as the real server's.
fn forbidden(method: &Method, segments: &[&str], user: &str) -> Response<Body> {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::DELETE => "delete",
        _ if segments.len() == 5 => "list",
        _ => "get",
    };
    let (resource, name, namespace) = match segments {
        ["api", "v1", "namespaces", namespace, resource, name] => {
            (*resource, Some(*name), Some(*namespace))
        }
        ["api", "v1", "namespaces", namespace, resource] => (*resource, None, Some(*namespace)),
        _ => ("", None, None),
    };
    let subject = match name {
        Some(name) => format!("{resource} \"{name}\" is forbidden"),
        None if resource.is_empty() => "forbidden".to_owned(),
        None => format!("{resource} is forbidden"),
    };
    let scope = namespace
        .map(|namespace| format!(" in the namespace \"{namespace}\""))
        .unwrap_or_default();
    let message = format!(
        "{subject}: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"\"{scope}"
    );
    let details = name.map(|name| json!({"name": name, "kind": resource}));
    full(
        StatusCode::FORBIDDEN,
        &status_object(403, "Forbidden", &message, details),
    )
}

fn resource_list() -> Value {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "configmaps", "singularName": "configmap", "namespaced": true,
             "kind": "ConfigMap", "verbs": verbs, "shortNames": ["cm"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list", "watch"], "shortNames": ["po"]},
        ],
    })
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------- selectors

#[derive(Clone, Default)]
struct Filter {
    labels: Vec<LabelTerm>,
    fields: Vec<(String, bool, String)>,
}

#[derive(Clone)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

impl Filter {
    fn parse(query: &BTreeMap<String, String>) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for term in query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            if term.contains('(') || term.contains(' ') {
                return Err(format!(
                    "unable to parse requirement: set-based selector {term:?} is not supported by the fake"
                ));
            }
            let label = if let Some((key, value)) = term.split_once("!=") {
                LabelTerm::NotEquals(key.to_owned(), value.to_owned())
            } else if let Some((key, value)) = term.split_once("==") {
                LabelTerm::Equals(key.to_owned(), value.to_owned())
            } else if let Some((key, value)) = term.split_once('=') {
                LabelTerm::Equals(key.to_owned(), value.to_owned())
            } else if let Some(key) = term.strip_prefix('!') {
                LabelTerm::NotExists(key.to_owned())
            } else {
                LabelTerm::Exists(term.to_owned())
            };
            filter.labels.push(label);
        }
        for term in query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|term| !term.is_empty())
        {
            let (field, equal, value) = if let Some((field, value)) = term.split_once("!=") {
                (field, false, value)
            } else if let Some((field, value)) = term.split_once("==") {
                (field, true, value)
            } else if let Some((field, value)) = term.split_once('=') {
                (field, true, value)
            } else {
                return Err(format!(
                    "invalid selector: {term:?}; can't understand {term:?}"
                ));
            };
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            filter
                .fields
                .push((field.to_owned(), equal, value.to_owned()));
        }
        Ok(filter)
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|term| match term {
            LabelTerm::Equals(key, value) => label(key) == Some(value.as_str()),
            LabelTerm::NotEquals(key, value) => label(key) != Some(value.as_str()),
            LabelTerm::Exists(key) => label(key).is_some(),
            LabelTerm::NotExists(key) => label(key).is_none(),
        });
        labels_match
            && self.fields.iter().all(|(field, equal, value)| {
                let actual = match field.as_str() {
                    "metadata.name" => object["metadata"]["name"].as_str(),
                    _ => object["metadata"]["namespace"].as_str(),
                };
                (actual == Some(value.as_str())) == *equal
            })
    }
}

/// LIST of pods with a label or field selector (no paging: the tests keep a handful).
fn list_pods(shared: &Shared, query: &BTreeMap<String, String>) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(&message),
    };
    let state = shared.lock();
    let items: Vec<Value> = state
        .pods
        .values()
        .filter(|pod| filter.matches(pod))
        .map(|pod| {
            let mut pod = pod.clone();
            if let Some(object) = pod.as_object_mut() {
                object.remove("kind");
                object.remove("apiVersion");
            }
            pod
        })
        .collect();
    full(
        StatusCode::OK,
        &json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": state.version.to_string()},
            "items": items,
        }),
    )
}

/// `PATCH` bodies: RFC 7386 JSON merge patch, and Kubernetes' strategic merge patch.
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// Creates a pod as the API server does: name and metadata checked, `uid`, `resourceVersion`
/// and `creationTimestamp` set, `status` from the body or `Pending`. Nothing schedules or runs
/// it; [`patch_pod_status`] plays the kubelet.
fn create_pod(shared: &Shared, body: &Bytes) -> Response<Body> {
    let mut pod = match parse_body(body) {
        Ok(pod) => pod,
        Err(response) => return response,
    };
    let Some(name) = pod["metadata"]["name"].as_str().map(str::to_owned) else {
        return invalid_object(
            "Pod",
            "",
            "metadata.name: Required value: name or generateName is required",
        );
    };
    if pod["spec"]["containers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return invalid_object("Pod", &name, "spec.containers: Required value");
    }
    let mut state = shared.lock();
    if state.pods.contains_key(&name) {
        return failure(
            409,
            "AlreadyExists",
            &format!("pods \"{name}\" already exists"),
            Some(&name),
        );
    }
    let version = state.next_version();
    let uid = state.next_uid();
    pod["kind"] = json!("Pod");
    pod["apiVersion"] = json!("v1");
    pod["metadata"]["namespace"] = json!(shared.namespace);
    pod["metadata"]["uid"] = json!(uid);
    pod["metadata"]["resourceVersion"] = json!(version.to_string());
    pod["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    if pod["status"].is_null() {
        pod["status"] = json!({"phase": "Pending"});
    }
    state.pods.insert(name, pod.clone());
    full(StatusCode::CREATED, &pod)
}

/// `PATCH pods/<name>/status`: only `status` changes. A merge patch replaces lists whole; a
/// strategic merge patch merges `status.conditions` by `type`, as the real server's pod schema
/// says.
fn patch_pod_status(
    shared: &Shared,
    name: &str,
    content_type: &str,
    body: &Bytes,
) -> Response<Body> {
    let strategic = content_type.starts_with(STRATEGIC_MERGE_PATCH);
    if !strategic && !content_type.starts_with(MERGE_PATCH) {
        return failure(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}"
            ),
            None,
        );
    }
    let patch = match parse_body(body) {
        Ok(patch) => patch,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let version = state.next_version();
    let Some(pod) = state.pods.get_mut(name) else {
        return not_found("pods", name);
    };
    let mut status = pod["status"].take();
    let mut status_patch = patch["status"].clone();
    if strategic && let Some(conditions) = status_patch.get_mut("conditions").map(Value::take) {
        let mut merged = status["conditions"].as_array().cloned().unwrap_or_default();
        for condition in conditions.as_array().into_iter().flatten() {
            match merged
                .iter_mut()
                .find(|existing| existing["type"] == condition["type"])
            {
                Some(existing) => merge_patch(existing, condition),
                None => merged.push(condition.clone()),
            }
        }
        status_patch["conditions"] = Value::Array(merged);
    }
    merge_patch(&mut status, &status_patch);
    pod["status"] = status;
    pod["metadata"]["resourceVersion"] = json!(version.to_string());
    full(StatusCode::OK, pod)
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        if value.is_null() {
            if let Some(object) = target.as_object_mut() {
                object.remove(key);
            }
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

/// Creates a StatefulSet object (nothing controls it): the owner of pods and ConfigMaps.
fn create_statefulset(shared: &Shared, body: &Bytes) -> Response<Body> {
    let mut statefulset = match parse_body(body) {
        Ok(statefulset) => statefulset,
        Err(response) => return response,
    };
    let Some(name) = statefulset["metadata"]["name"].as_str().map(str::to_owned) else {
        return invalid_object(
            "StatefulSet.apps",
            "",
            "metadata.name: Required value: name or generateName is required",
        );
    };
    let mut state = shared.lock();
    if state.statefulsets.contains_key(&name) {
        return failure(
            409,
            "AlreadyExists",
            &format!("statefulsets.apps \"{name}\" already exists"),
            Some(&name),
        );
    }
    let version = state.next_version();
    let uid = state.next_uid();
    statefulset["kind"] = json!("StatefulSet");
    statefulset["apiVersion"] = json!("apps/v1");
    statefulset["metadata"]["namespace"] = json!(shared.namespace);
    statefulset["metadata"]["uid"] = json!(uid);
    statefulset["metadata"]["resourceVersion"] = json!(version.to_string());
    state.statefulsets.insert(name, statefulset.clone());
    full(StatusCode::CREATED, &statefulset)
}

// ---------------------------------------------------------------- ConfigMaps

/// Checks a ConfigMap body as the real server validates it; returns the name.
fn validate(shared: &Shared, object: &Value) -> Result<String, Response<Body>> {
    if !object.is_object() {
        return Err(bad_request("the body is not a JSON object"));
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != "ConfigMap"
    {
        return Err(bad_request(&format!("expected kind ConfigMap, got {kind}")));
    }
    let Some(name) = object["metadata"]["name"]
        .as_str()
        .filter(|name| !name.is_empty())
    else {
        return Err(invalid(
            "",
            "metadata.name: Required value: name or generateName is required",
        ));
    };
    if name.len() > 253
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(invalid(
            name,
            "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
        ));
    }
    if let Some(namespace) = object["metadata"]["namespace"].as_str()
        && namespace != shared.namespace
    {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut size = 0;
    let data = object.get("data").and_then(Value::as_object);
    let binary = object.get("binaryData").and_then(Value::as_object);
    for (key, value) in data.into_iter().flatten() {
        check_data_key(name, "data", key)?;
        let Some(value) = value.as_str() else {
            return Err(bad_request(&format!("data[{key}] is not a string")));
        };
        size += key.len() + value.len();
    }
    for (key, value) in binary.into_iter().flatten() {
        check_data_key(name, "binaryData", key)?;
        if data.is_some_and(|data| data.contains_key(key)) {
            return Err(invalid(
                name,
                &format!(
                    "binaryData[{key}]: Invalid value: \"{key}\": duplicate of key present in data"
                ),
            ));
        }
        let decoded = value
            .as_str()
            .and_then(|text| BASE64.decode(text).ok())
            .ok_or_else(|| bad_request(&format!("binaryData[{key}] is not base64")))?;
        size += key.len() + decoded.len();
    }
    if size > MAX_CONFIGMAP_BYTES {
        return Err(invalid(
            name,
            &format!("[]: Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes"),
        ));
    }
    Ok(name.to_owned())
}

fn check_data_key(name: &str, field: &str, key: &str) -> Result<(), Response<Body>> {
    if key.is_empty()
        || key.len() > 253
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(invalid(
            name,
            &format!(
                "{field}[{key}]: Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            ),
        ));
    }
    Ok(())
}

fn parse_body(body: &Bytes) -> Result<Value, Response<Body>> {
    serde_json::from_slice(body)
        .map_err(|error| bad_request(&format!("the body is not valid JSON: {error}")))
}

fn create_configmap(shared: &Shared, body: &Bytes) -> Response<Body> {
    let mut object = match parse_body(body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let name = match validate(shared, &object) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    if state.configmaps.contains_key(&name) {
        return failure(
            409,
            "AlreadyExists",
            &format!("configmaps \"{name}\" already exists"),
            Some(&name),
        );
    }
    let version = state.next_version();
    let uid = state.next_uid();
    object["kind"] = json!("ConfigMap");
    object["apiVersion"] = json!("v1");
    let metadata = &mut object["metadata"];
    metadata["namespace"] = json!(shared.namespace);
    metadata["uid"] = json!(uid);
    metadata["resourceVersion"] = json!(version.to_string());
    metadata["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    state.configmaps.insert(name, object.clone());
    state.record("ADDED", object.clone());
    full(StatusCode::CREATED, &object)
}

fn replace_configmap(shared: &Shared, name: &str, body: &Bytes) -> Response<Body> {
    let mut object = match parse_body(body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    match validate(shared, &object) {
        Ok(body_name) if body_name == name => {}
        Ok(body_name) => {
            return bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            ));
        }
        Err(response) => return response,
    }
    let mut state = shared.lock();
    let Some(current) = state.configmaps.get(name).cloned() else {
        return not_found("configmaps", name);
    };
    let current_version = current["metadata"]["resourceVersion"].clone();
    match object["metadata"]["resourceVersion"].as_str() {
        Some(version) if !version.is_empty() && Some(version) != current_version.as_str() => {
            return failure(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on configmaps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
                Some(name),
            );
        }
        // No version: an unconditional update, which ConfigMaps allow.
        _ => {}
    }
    object["kind"] = json!("ConfigMap");
    object["apiVersion"] = json!("v1");
    for field in ["namespace", "uid", "creationTimestamp"] {
        object["metadata"][field] = current["metadata"][field].clone();
    }
    object["metadata"]["resourceVersion"] = current_version;
    if object == current {
        // The real server does not write (nor bump the version, nor notify) a no-op update.
        return full(StatusCode::OK, &current);
    }
    let version = state.next_version();
    object["metadata"]["resourceVersion"] = json!(version.to_string());
    state.configmaps.insert(name.to_owned(), object.clone());
    state.record("MODIFIED", object.clone());
    full(StatusCode::OK, &object)
}

fn delete_configmap(shared: &Shared, name: &str) -> Response<Body> {
    let mut state = shared.lock();
    let Some(mut object) = state.configmaps.remove(name) else {
        return not_found("configmaps", name);
    };
    let version = state.next_version();
    object["metadata"]["resourceVersion"] = json!(version.to_string());
    let uid = object["metadata"]["uid"].clone();
    state.record("DELETED", object);
    full(
        StatusCode::OK,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "kind": "configmaps", "uid": uid},
        }),
    )
}

fn list_configmaps(shared: &Shared, query: &BTreeMap<String, String>) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(&message),
    };
    let limit = match query.get("limit").map(|limit| limit.parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(0)) => usize::MAX,
        Some(Ok(limit)) => limit,
        Some(Err(_)) => return bad_request("limit is not a number"),
    };
    let after = query
        .get("continue")
        .map(|token| token.strip_prefix("after:").unwrap_or("").to_owned());
    let state = shared.lock();
    let mut items: Vec<Value> = state
        .configmaps
        .iter()
        .filter(|(name, _)| {
            after
                .as_ref()
                .is_none_or(|after| name.as_str() > after.as_str())
        })
        .map(|(_, configmap)| configmap)
        .filter(|configmap| filter.matches(configmap))
        .cloned()
        .collect();
    let mut metadata = json!({"resourceVersion": state.version.to_string()});
    if items.len() > limit {
        items.truncate(limit);
        let last = items
            .last()
            .and_then(|item| item["metadata"]["name"].as_str())
            .unwrap_or_default();
        metadata["continue"] = json!(format!("after:{last}"));
        metadata["remainingItemCount"] = json!(0);
    }
    for item in &mut items {
        // List items carry no kind of their own.
        if let Some(object) = item.as_object_mut() {
            object.remove("kind");
            object.remove("apiVersion");
        }
    }
    full(
        StatusCode::OK,
        &json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": metadata, "items": items}),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch_configmaps(shared: &Arc<Shared>, query: &BTreeMap<String, String>) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(&message),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|value| value == "true");
    let version = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");

    let (frames, body_frames) = mpsc::unbounded_channel::<Result<Frame<Bytes>, std::io::Error>>();
    let (events, mut event_receiver) = mpsc::unbounded_channel::<Event>();
    {
        let mut state = shared.lock();
        if version.is_empty() || version == "0" {
            for configmap in state.configmaps.values().filter(|c| filter.matches(c)) {
                let _ = frames.send(Ok(Frame::data(event_line("ADDED", configmap))));
            }
        } else {
            let Ok(from) = version.parse::<u64>() else {
                return bad_request(&format!("invalid resource version {version:?}"));
            };
            if from < state.compacted {
                let status = status_object(
                    410,
                    "Expired",
                    &format!("too old resource version: {from} ({})", state.compacted),
                    None,
                );
                let _ = frames.send(Ok(Frame::data(event_line("ERROR", &status))));
                drop(frames);
                return streaming(body_frames);
            }
            for event in state.history.iter().filter(|event| event.version > from) {
                if filter.matches(&event.object) {
                    let _ = frames.send(Ok(Frame::data(event_line(event.kind, &event.object))));
                }
            }
        }
        state.watchers.push(Watcher {
            filter,
            sender: events,
        });
    }

    let mut disconnect = shared.disconnect.subscribe();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                event = event_receiver.recv() => {
                    let Some(event) = event else { return };
                    if frames.send(Ok(Frame::data(event_line(event.kind, &event.object)))).is_err() {
                        return; // The client went away.
                    }
                }
                _ = disconnect.changed() => {
                    let _ = frames.send(Err(std::io::Error::other("watch dropped by the test")));
                    return;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if bookmarks {
                        let version = shared.lock().version.to_string();
                        let bookmark = json!({
                            "kind": "ConfigMap", "apiVersion": "v1",
                            "metadata": {"resourceVersion": version},
                        });
                        let _ = frames.send(Ok(Frame::data(event_line("BOOKMARK", &bookmark))));
                    }
                    return; // Dropping `frames` ends the body cleanly.
                }
            }
        }
    });
    streaming(body_frames)
}

fn streaming(
    mut frames: mpsc::UnboundedReceiver<Result<Frame<Bytes>, std::io::Error>>,
) -> Response<Body> {
    let stream = futures_util::stream::poll_fn(move |context| frames.poll_recv(context));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

/// Just enough protobuf to read the ConfigMaps `kubectl create configmap` sends: the `k8s\0`
/// envelope (`runtime.Unknown`), and of `v1.ConfigMap` the name, namespace and labels of its
/// metadata, `data`, `binaryData` and `immutable`.
mod protobuf {
    use serde_json::{Map, Value, json};

    use super::BASE64;
    use base64::Engine as _;

    struct Reader<'a> {
        bytes: &'a [u8],
    }

    enum Field<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Other,
    }

    impl<'a> Reader<'a> {
        fn varint(&mut self) -> Result<u64, String> {
            let mut value = 0u64;
            for shift in (0..64).step_by(7) {
                let (&byte, rest) = self.bytes.split_first().ok_or("truncated varint")?;
                self.bytes = rest;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Ok(value);
                }
            }
            Err("varint too long".to_owned())
        }

        fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
            if length > self.bytes.len() {
                return Err("truncated field".to_owned());
            }
            let (taken, rest) = self.bytes.split_at(length);
            self.bytes = rest;
            Ok(taken)
        }

        fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
            if self.bytes.is_empty() {
                return Ok(None);
            }
            let tag = self.varint()?;
            let field = match tag & 7 {
                0 => Field::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Field::Other
                }
                2 => {
                    let length = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                    Field::Bytes(self.take(length)?)
                }
                5 => {
                    self.take(4)?;
                    Field::Other
                }
                wire => return Err(format!("unsupported wire type {wire}")),
            };
            Ok(Some((tag >> 3, field)))
        }
    }

    fn fields(bytes: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
        let mut reader = Reader { bytes };
        let mut fields = Vec::new();
        while let Some(field) = reader.next()? {
            fields.push(field);
        }
        Ok(fields)
    }

    fn text(bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }

    /// A map entry: key 1, value 2.
    fn entry(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
        let (mut key, mut value) = (String::new(), Vec::new());
        for (number, field) in fields(bytes)? {
            match (number, field) {
                (1, Field::Bytes(bytes)) => key = text(bytes)?,
                (2, Field::Bytes(bytes)) => value = bytes.to_vec(),
                _ => {}
            }
        }
        Ok((key, value))
    }

    pub(super) fn configmap_to_json(body: &[u8]) -> Result<Value, String> {
        let unknown = body
            .strip_prefix(b"k8s\0")
            .ok_or("missing the k8s envelope")?;
        let mut raw = None;
        for (number, field) in fields(unknown)? {
            if let (2, Field::Bytes(bytes)) = (number, field) {
                raw = Some(bytes);
            }
        }
        let mut configmap = Map::new();
        let mut metadata = Map::new();
        let mut data = Map::new();
        let mut binary = Map::new();
        for (number, field) in fields(raw.ok_or("no raw object")?)? {
            match (number, field) {
                (1, Field::Bytes(meta)) => {
                    let mut labels = Map::new();
                    for (number, field) in fields(meta)? {
                        match (number, field) {
                            (1, Field::Bytes(name)) => {
                                metadata.insert("name".into(), json!(text(name)?));
                            }
                            (3, Field::Bytes(namespace)) => {
                                metadata.insert("namespace".into(), json!(text(namespace)?));
                            }
                            (11, Field::Bytes(label)) => {
                                let (key, value) = entry(label)?;
                                labels.insert(key, json!(text(&value)?));
                            }
                            _ => {}
                        }
                    }
                    if !labels.is_empty() {
                        metadata.insert("labels".into(), Value::Object(labels));
                    }
                }
                (2, Field::Bytes(item)) => {
                    let (key, value) = entry(item)?;
                    data.insert(key, json!(text(&value)?));
                }
                (3, Field::Bytes(item)) => {
                    let (key, value) = entry(item)?;
                    binary.insert(key, json!(BASE64.encode(value)));
                }
                (4, Field::Varint(immutable)) => {
                    configmap.insert("immutable".into(), json!(immutable != 0));
                }
                _ => {}
            }
        }
        configmap.insert("kind".into(), json!("ConfigMap"));
        configmap.insert("apiVersion".into(), json!("v1"));
        configmap.insert("metadata".into(), Value::Object(metadata));
        if !data.is_empty() {
            configmap.insert("data".into(), Value::Object(data));
        }
        if !binary.is_empty() {
            configmap.insert("binaryData".into(), Value::Object(binary));
        }
        Ok(Value::Object(configmap))
    }
}
