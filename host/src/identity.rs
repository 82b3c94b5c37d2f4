//! Identity: the credentials a Mount's signed calls use, and where they come
//! from (the credential chain, STS, the ECS metadata server, the pod's
//! service account), with a cache so that a credential is fetched once per
//! lifetime, not once per Mount.

pub mod cache;
mod chain;
pub mod imds;
pub mod kube;
pub mod sts;
pub use contract::tokens;

/// Credentials are what the chain produces and what `cloud` signs with.
pub use crate::cloud::Credentials;

/// An environment lookup over `pairs`, for the settings' `from_env` in tests.
#[cfg(test)]
fn test_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

pub use chain::{
    CROSS_ACCOUNT_LINK, CredentialChain, CredentialError, DEFAULT_PROVIDER_TOKEN_FILE,
    DEFAULT_SESSION_NAME, IdentitySettings, InvalidRoleArn, MountIdentity, NODE_PUBLISH_ACCESS_KEY,
    NODE_PUBLISH_ACCESS_SECRET, NODE_PUBLISH_SECURITY_TOKEN, OwnedMountIdentity, ProviderRrsa,
    RamRole, Resolved, SettingsError, check_role_arn,
};

/// One Mount's identity: resolved on first use, then shared by every object
/// of the Mount (an object's `crossAccountRoleArn` builds on it).
#[derive(Debug)]
pub struct MountAuth {
    chain: std::sync::Arc<CredentialChain>,
    identity: OwnedMountIdentity,
    deadline: std::time::Instant,
    base: tokio::sync::OnceCell<Result<Resolved, CredentialError>>,
}

impl MountAuth {
    /// The identity of one Mount.
    pub fn new(
        chain: std::sync::Arc<CredentialChain>,
        identity: OwnedMountIdentity,
        deadline: std::time::Instant,
    ) -> MountAuth {
        MountAuth {
            chain,
            identity,
            deadline,
            base: tokio::sync::OnceCell::new(),
        }
    }

    /// What the Mount brought (pod, tokens, nodePublishSecretRef).
    pub fn identity(&self) -> &OwnedMountIdentity {
        &self.identity
    }

    /// Why pod identity, asked for, was skipped for the Mount's credentials
    /// (policy `upstream`, as upstream skips it), once they are resolved.
    pub fn fallback(&self) -> Option<&str> {
        match self.base.get() {
            Some(Ok(resolved)) => resolved.fallback.as_deref(),
            _ => None,
        }
    }

    /// A non-secret name of the Mount's resolved identity, equal for two
    /// Mounts only if the backend would answer them alike: the credential
    /// cache's key for temporary credentials, else a digest of the static
    /// access key with its secret and token (a Mount that names someone
    /// else's key id without its secret gets a different name).
    pub async fn identity_key(&self) -> Result<String, CredentialError> {
        let base = self.base().await?;
        Ok(match &base.key {
            Some(key) => format!("{key:?}"),
            None => {
                let c = &base.credentials;
                let material = format!(
                    "{}\0{}\0{}",
                    c.access_key_id,
                    c.access_key_secret.0,
                    c.security_token.as_ref().map_or("", |t| t.0.as_str())
                );
                format!(
                    "{}:{}",
                    c.source,
                    alibabacloud_signature::sha256_hex(material.as_bytes())
                )
            }
        })
    }

    /// The Mount's own credentials, resolved on first use (and counted by
    /// link in the metrics then).
    async fn base(&self) -> Result<Resolved, CredentialError> {
        self.base
            .get_or_init(|| async {
                let resolved = self
                    .chain
                    .resolve(self.identity.borrowed(), self.deadline)
                    .await;
                if let Ok(resolved) = &resolved {
                    self.chain.count_resolved(resolved);
                }
                resolved
            })
            .await
            .clone()
    }

    /// The credentials for a call: the Mount's own, or those of
    /// `cross_account` assumed from them.
    pub async fn credentials(
        &self,
        cross_account: Option<&str>,
    ) -> Result<std::sync::Arc<Credentials>, CredentialError> {
        let base = self.base().await?;
        match cross_account {
            None => Ok(base.credentials),
            Some(role) => {
                self.chain
                    .cross_account(&base, role, &self.identity.pod, self.deadline)
                    .await
            }
        }
    }
}
