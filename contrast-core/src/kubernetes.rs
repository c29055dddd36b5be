//! The names, labels and annotations that Contrast's Kubernetes objects share: what
//! `contrast generate` writes into the Coordinator's resources and the workloads' pod
//! templates, what the Coordinator's peer discovery selects pods by, and what the ConfigMap
//! store labels its ConfigMaps with, and what the injected initializer container is given
//! (its environment and mount path). One definition each, so the writer and the readers cannot
//! drift. The ports are [`crate::api`]'s ([`USER_API_PORT`](crate::api::USER_API_PORT) and the
//! others).

/// Spelled once as literals, so that the selector below can be a `const` built by `concat!`.
macro_rules! name_label {
    () => {
        "app.kubernetes.io/name"
    };
}
macro_rules! coordinator_name {
    () => {
        "coordinator"
    };
}

/// The label naming the application of a pod or Service (`app.kubernetes.io/name`).
pub const NAME_LABEL: &str = name_label!();

/// The Coordinator's name: its StatefulSet (which owns the store's ConfigMaps), container,
/// ServiceAccount, Role, RoleBinding, the Service that also routes to not-ready replicas, and
/// the value of [`NAME_LABEL`] on its pods.
pub const COORDINATOR_NAME: &str = coordinator_name!();

/// The label selector of the Coordinator's pods: [`NAME_LABEL`]`=`[`COORDINATOR_NAME`].
pub const COORDINATOR_SELECTOR: &str = concat!(name_label!(), "=", coordinator_name!());

/// The Service that routes to ready Coordinators only: initializers connect to it.
pub const COORDINATOR_READY_SERVICE: &str = "coordinator-ready";

/// Pod annotation naming a special role of the pod (see [`COORDINATOR_POD_ROLE`]).
pub const POD_ROLE_ANNOTATION: &str = "contrast.edgeless.systems/pod-role";

/// The value of [`POD_ROLE_ANNOTATION`] that marks a Coordinator: its policy gets the
/// manifest role `coordinator`, and only such pods are asked for peer recovery.
pub const COORDINATOR_POD_ROLE: &str = "coordinator";

/// Pod annotation overriding a workload's default workload-secret ID.
pub const WORKLOAD_SECRET_ID_ANNOTATION: &str = "contrast.edgeless.systems/workload-secret-id";

/// Pod annotation (upstream's) asking `contrast generate` not to inject the initializer into
/// this pod: `"true"` skips it, `"false"` (or no annotation) injects it. The pod still gets its
/// initdata and its manifest entry. Upstream compares with `"true"` and treats anything else as
/// `"false"`; contrast-rs refuses any other value, so a typo is not silently an injection.
pub const SKIP_INITIALIZER_ANNOTATION: &str = "contrast.edgeless.systems/skip-initializer";

/// Pod annotation (upstream's) configuring the service mesh's ingress: `<name>#<port>#<disableTLS>`
/// entries separated by `##` (`disableTLS` true: plain traffic to the port passes; false: TLS
/// without a client certificate); every other inbound TCP port requires mutual TLS with a mesh
/// certificate. An empty value means just that; `DISABLED` turns the ingress redirection off.
///
/// Any of the three service-mesh annotations makes `contrast generate` inject the sidecar
/// `contrast-service-mesh` (the `contrast-mesh` binary) right after the initializer (and the
/// secure-pv sidecar), with each present annotation's value, verbatim, in the sidecar's
/// environment: this one in `CONTRAST_INGRESS_PROXY_CONFIG`. Without it the sidecar's default
/// applies: every inbound TCP port requires mutual TLS. `generate` parses the values with
/// `contrast_mesh::config`, the sidecar's own parser, and refuses a value the sidecar would
/// refuse, and a pod without the initializer (the sidecar needs the mesh certificates the
/// initializer writes); `docs/service-mesh.md` lists what it checks.
pub const SERVICE_MESH_INGRESS_ANNOTATION: &str = "contrast.edgeless.systems/servicemesh-ingress";

/// Pod annotation (upstream's) configuring the service mesh's egress:
/// `<name>#<listen IPv4>:<port>#<remote host>:<port>` entries separated by `##`; the sidecar
/// listens on the loopback address (127.0.0.0/8) and connects to the remote with mutual TLS.
/// `contrast generate` copies it into the sidecar's `CONTRAST_EGRESS_PROXY_CONFIG` (see
/// [`SERVICE_MESH_INGRESS_ANNOTATION`]); an empty value is refused, as upstream refuses it.
pub const SERVICE_MESH_EGRESS_ANNOTATION: &str = "contrast.edgeless.systems/servicemesh-egress";

/// Pod annotation (upstream's) enabling the service-mesh sidecar's admin interface (upstream:
/// Envoy's) on a port of all the pod's addresses. `contrast generate` copies it into the
/// sidecar's `CONTRAST_ADMIN_PORT` and declares the port on the sidecar (see
/// [`SERVICE_MESH_INGRESS_ANNOTATION`]); a port an ingress entry or the proxy uses is refused.
pub const SERVICE_MESH_ADMIN_INTERFACE_PORT_ANNOTATION: &str =
    "contrast.edgeless.systems/servicemesh-admin-interface-port";

/// The marker file the service-mesh sidecar writes once it is ready (its listeners bound, its
/// rules installed): the startup probe `contrast generate` gives the sidecar tests it, so the
/// pod's containers start only when their traffic is meshed.
pub const SERVICE_MESH_READY_FILE: &str = "/ready";

/// Pod annotation (upstream's) asking for secure persistence: `<device volume>:<mount volume>`
/// (a block-mode volume claim and an `emptyDir` volume of the pod). `contrast generate` injects
/// the initializer a second time, as a sidecar running [`cryptsetup_args`]: it opens a LUKS2
/// volume on the device, keyed by the workload secret, and mounts it on the `emptyDir`, which
/// the pod's containers see through mount propagation. `generate` refuses a value or volumes
/// that do not fit, and a pod without the initializer (the sidecar needs the workload secret
/// the initializer writes); `docs/secure-persistence.md` lists what it checks.
pub const SECURE_PV_ANNOTATION: &str = "contrast.edgeless.systems/secure-pv";

/// Where the secure-pv sidecar gets the block device (`volumeDevices[].devicePath`; upstream's
/// example path).
pub const SECURE_PV_DEVICE_PATH: &str = "/dev/csi0";

/// Where the secure-pv sidecar mounts the `emptyDir` volume, and the opened LUKS volume on it.
pub const SECURE_PV_MOUNT_POINT: &str = "/state";

/// The marker file the initializer writes when it is done (its `--done-file` default): the main
/// run once the files are written, the `cryptsetup` sidecar once the volume is mounted. The
/// sidecar's startup probe tests it.
pub const INITIALIZER_DONE_FILE: &str = "/done";

/// The initializer's subcommand that opens (formatting it first if it is not LUKS) an encrypted
/// volume and keeps it mounted until signalled.
pub const CRYPTSETUP_SUBCOMMAND: &str = "cryptsetup";

/// The initializer's arguments (after the program name) for the secure-pv sidecar: the one
/// spelling of that command line, which `contrast generate` writes into the sidecar's `args`
/// and the initializer's tests parse.
#[must_use]
pub fn cryptsetup_args(device_path: &str, mount_point: &str) -> Vec<String> {
    vec![
        CRYPTSETUP_SUBCOMMAND.to_owned(),
        "--device-path".to_owned(),
        device_path.to_owned(),
        "--mount-point".to_owned(),
        mount_point.to_owned(),
    ]
}

/// Pod annotation (upstream's) setting the size of the secure image store (`generate
/// --inject-image-store`; `"0"` disables the store for the pod). contrast-rs has no image store,
/// so `"0"` asks for what happens anyway; any other value is refused by `contrast generate`.
pub const IMAGE_STORE_SIZE_ANNOTATION: &str = "contrast.edgeless.systems/image-store-size";

/// Service annotation asking the platform to expose the Service.
pub const EXPOSE_SERVICE_ANNOTATION: &str = "contrast.edgeless.systems/expose-service";

/// The label every ConfigMap of the store carries (upstream's).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "contrast.edgeless.systems";

/// The environment variable of the initializer container that `contrast generate` injects:
/// the Coordinator's mesh API host (the initializer's `--coordinator`).
pub const COORDINATOR_HOST_ENV: &str = "COORDINATOR_HOST";

/// The environment variable of the injected initializer container that holds the Coordinator's
/// identity ([`CoordinatorIdentity::to_json`](crate::coordinator_identity::CoordinatorIdentity::to_json)):
/// the initializer's `--coordinator-identity`, written by `contrast generate` before the pod's
/// policy is computed, so the policy pins it and the pod's HOST_DATA binds it.
pub const COORDINATOR_IDENTITY_ENV: &str = "CONTRAST_COORDINATOR_IDENTITY";

/// Where the injected initializer container mounts the shared volume it writes the workload's
/// certificates and secret to: the initializer's default `--root`.
pub const SECRETS_MOUNT_PATH: &str = "/contrast";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_is_the_name_label_with_the_coordinator_name() {
        assert_eq!(
            COORDINATOR_SELECTOR,
            format!("{NAME_LABEL}={COORDINATOR_NAME}")
        );
    }
}
