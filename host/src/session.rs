//! One object's access to the cloud during a Mount: the shared client with
//! the Mount's identity, region and deadline. It sits above both `cloud`
//! (which signs and sends) and `identity` (which resolves credentials, and
//! itself calls STS through `cloud`), so neither depends on the other's
//! caller.

use std::sync::Arc;
use std::time::Instant;

use crate::cloud::{ApiCall, ApiError, ApiResponse, CloudClient};
use crate::identity;

/// Why a call of a session failed: the host could not get the Mount's
/// credentials, or the call itself failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No credentials for the Mount (or for the object's cross-account
    /// role). Classified by the host, whatever the plugin makes of it.
    #[error("{message}")]
    Credentials {
        /// What went wrong, naming the chain link; never a secret.
        message: String,
        /// Whether a later Mount may succeed (throttled or unavailable STS,
        /// metadata server, ServiceAccount lookup).
        retryable: bool,
    },
    /// The call was sent and failed, or could not be sent.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl SessionError {
    /// Whether a later Mount may succeed where this one failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SessionError::Credentials { retryable, .. } => *retryable,
            SessionError::Api(error) => error.is_retryable(),
        }
    }
}

/// One object's access to the cloud: the shared client, the Mount's region,
/// deadline and identity, and the object's cross-account role, if any.
#[derive(Debug)]
pub struct CloudSession {
    client: Arc<CloudClient>,
    auth: Arc<identity::MountAuth>,
    cross_account: Option<String>,
    region: String,
    deadline: Instant,
    /// `OOS object "db"`, `object "db"`: the object, for messages.
    object: Option<String>,
}

impl CloudSession {
    /// A session for one object of a Mount; `region` is the Mount's region
    /// (the SecretProviderClass's, else the provider's default, which always
    /// resolves: see `mount::RegionSource`).
    pub fn new(
        client: Arc<CloudClient>,
        auth: Arc<identity::MountAuth>,
        cross_account: Option<String>,
        region: String,
        deadline: Instant,
    ) -> CloudSession {
        CloudSession {
            client,
            auth,
            cross_account,
            region,
            deadline,
            object: None,
        }
    }

    /// Names the object the session is for (`objectName`, `objectType`), in
    /// a failed cross-account AssumeRole's message as upstream worded it:
    /// `failed to assume cross account role <arn> for object <name>: ...`
    /// (`for OOS object` for `oos`).
    pub fn for_object(mut self, name: &str, object_type: &str) -> CloudSession {
        self.object = Some(if object_type == "oos" {
            format!("OOS object {name}")
        } else {
            format!("object {name}")
        });
        self
    }

    /// What the Mount brought (pod, tokens, nodePublishSecretRef).
    pub fn mount_identity(&self) -> &identity::OwnedMountIdentity {
        self.auth.identity()
    }

    /// The provider's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        self.client.metrics()
    }

    /// Makes one call with the Mount's (or the cross-account) credentials.
    pub async fn call(&self, call: &ApiCall) -> Result<ApiResponse, SessionError> {
        let region = self.region.as_str();
        let credentials = self
            .auth
            .credentials(self.cross_account.as_deref())
            .await
            .map_err(|e| {
                let message = match (&self.cross_account, &self.object, &e) {
                    (
                        Some(role),
                        Some(object),
                        identity::CredentialError::Failed {
                            link: identity::CROSS_ACCOUNT_LINK,
                            ..
                        },
                    ) => format!("failed to assume cross account role {role} for {object}: {e}"),
                    _ => e.to_string(),
                };
                SessionError::Credentials {
                    message,
                    retryable: e.is_retryable(),
                }
            })?;
        Ok(self
            .client
            .call(call, &credentials, region, self.deadline)
            .await?)
    }
}
