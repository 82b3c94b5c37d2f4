//! What the plugin may know of the Mount's pod, each item only when the
//! operator granted it (`[plugins.<type>.capabilities]`).

use crate::FetchError;
use crate::bindings::alibabacloud_csi::plugin::identity as wit;

pub use wit::{IdentityError, PodInfo};

fn to_fetch_error(what: &str, error: IdentityError) -> FetchError {
    match error {
        IdentityError::Denied(m) => FetchError::PermissionDenied(format!("{what}: {m}")),
        IdentityError::NotFound(m) => FetchError::InvalidRequest(format!("{what}: {m}")),
    }
}

/// The pod's namespace, name, UID and service account (`pod_info = true`).
pub fn pod() -> Result<PodInfo, FetchError> {
    wit::pod().map_err(|e| to_fetch_error("pod info", e))
}

/// The pod's service-account token for `audience` (granted by
/// `service_account_audiences`; kubelet issues it through the CSIDriver's
/// tokenRequests). Never log it.
pub fn service_account_token(audience: &str) -> Result<String, FetchError> {
    wit::service_account_token(audience)
        .map_err(|e| to_fetch_error(&format!("service account token for audience {audience}"), e))
}

/// A key of the volume's nodePublishSecretRef Secret, required: a Mount
/// without it fails with `permission-denied` naming the key. Never log it.
pub fn required_node_publish_secret(key: &str) -> Result<String, FetchError> {
    node_publish_secret(key)?.ok_or_else(|| {
        FetchError::PermissionDenied(format!(
            "the volume's nodePublishSecretRef Secret has no key {key:?}"
        ))
    })
}

/// A key of the volume's nodePublishSecretRef Secret (granted by
/// `node_publish_secret_keys`). Never log it.
pub fn node_publish_secret(key: &str) -> Result<Option<String>, FetchError> {
    wit::node_publish_secret(key)
        .map_err(|e| to_fetch_error(&format!("nodePublishSecretRef key {key}"), e))
}
