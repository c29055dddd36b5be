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
