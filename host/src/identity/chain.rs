//! The credential chain: which identity serves a Mount.
//!
//! Sources, in the upstream provider's order for the links implemented so far:
//! the volume's nodePublishSecretRef (`access_key`/`access_secret`, optional
//! `security_token`), then access keys from the provider's environment
//! (`ACCESS_KEY_ID`/`SECRET_ACCESS_KEY`, or the official SDKs'
//! `ALIBABA_CLOUD_ACCESS_KEY_ID`/`ALIBABA_CLOUD_ACCESS_KEY_SECRET`/
//! `ALIBABA_CLOUD_SECURITY_TOKEN`). Pod identity (RRSA), provider RRSA, STS
//! AssumeRole and the ECS RAM role slot in as further links of [`CredentialChain`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Credentials;
use crate::config::IdentityPolicy;
use crate::spc::Sensitive;

/// Why no credentials could be found; lists what each link lacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No link of the chain applied.
    #[error("no Alibaba Cloud credentials for this Mount: {}", .0.join("; "))]
    NoneFound(Vec<String>),
    /// A link applied but its input is incomplete or wrong.
    #[error("{0}")]
    Invalid(String),
    /// The Mount asked for pod identity, which this build cannot provide.
    #[error(
        "usePodServiceAccountToken is \"true\" but pod identity (RRSA with the pod's service account) is not available in this version of the provider; remove the parameter or upgrade the provider. The provider never falls back to another identity when pod identity is asked for"
    )]
    PodIdentityUnavailable,
}

/// Names of the nodePublishSecretRef keys, matched case-insensitively.
pub const NODE_PUBLISH_ACCESS_KEY: &str = "access_key";
/// The secret key of the access key in the nodePublishSecretRef.
pub const NODE_PUBLISH_ACCESS_SECRET: &str = "access_secret";
/// An optional STS token in the nodePublishSecretRef.
pub const NODE_PUBLISH_SECURITY_TOKEN: &str = "security_token";

/// What a Mount brings to credential resolution.
#[derive(Debug, Clone, Copy)]
pub struct MountIdentity<'a> {
    /// The nodePublishSecretRef data.
    pub node_publish_secrets: &'a BTreeMap<String, Sensitive<String>>,
    /// `usePodServiceAccountToken: "true"`.
    pub use_pod_service_account_token: bool,
}

/// [`MountIdentity`] owned, for a session that outlives the parsed request.
#[derive(Debug, Clone, Default)]
pub struct OwnedMountIdentity {
    /// The nodePublishSecretRef data.
    pub node_publish_secrets: BTreeMap<String, Sensitive<String>>,
    /// `usePodServiceAccountToken: "true"`.
    pub use_pod_service_account_token: bool,
}

impl OwnedMountIdentity {
    /// Borrows it.
    pub fn borrowed(&self) -> MountIdentity<'_> {
        MountIdentity {
            node_publish_secrets: &self.node_publish_secrets,
            use_pod_service_account_token: self.use_pod_service_account_token,
        }
    }
}

/// The credential chain.
#[derive(Debug, Clone, Default)]
pub struct CredentialChain {
    env: Option<Arc<Credentials>>,
    env_problem: Option<String>,
    strict: bool,
}

impl CredentialChain {
    /// Reads the access-key variables once, through `lookup` (tests pass a
    /// map); `policy` says which links may serve a Mount.
    pub fn new(lookup: impl Fn(&str) -> Option<String>, policy: IdentityPolicy) -> CredentialChain {
        CredentialChain {
            strict: policy == IdentityPolicy::Strict,
            ..CredentialChain::from_env(lookup)
        }
    }

    fn from_env(lookup: impl Fn(&str) -> Option<String>) -> CredentialChain {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let pairs = [
            ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", None),
            (
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                Some("ALIBABA_CLOUD_SECURITY_TOKEN"),
            ),
        ];
        for (id_var, secret_var, token_var) in pairs {
            match (get(id_var), get(secret_var)) {
                (Some(id), Some(secret)) => {
                    return CredentialChain {
                        env: Some(Arc::new(Credentials {
                            access_key_id: id.trim().to_string(),
                            access_key_secret: Sensitive(secret.trim().to_string()),
                            security_token: token_var.and_then(get).map(Sensitive),
                            source: "environment access key",
                        })),
                        env_problem: None,
                        strict: false,
                    };
                }
                (Some(_), None) => {
                    return CredentialChain {
                        env: None,
                        env_problem: Some(format!(
                            "environment: {id_var} is set but {secret_var} is not"
                        )),
                        strict: false,
                    };
                }
                (None, Some(_)) => {
                    return CredentialChain {
                        env: None,
                        env_problem: Some(format!(
                            "environment: {secret_var} is set but {id_var} is not"
                        )),
                        strict: false,
                    };
                }
                (None, None) => {}
            }
        }
        CredentialChain::default()
    }

    /// Picks the credentials for one Mount.
    pub async fn resolve(
        &self,
        mount: MountIdentity<'_>,
    ) -> Result<Arc<Credentials>, CredentialError> {
        if mount.use_pod_service_account_token {
            return Err(CredentialError::PodIdentityUnavailable);
        }
        let mut missing = Vec::new();
        match node_publish_credentials(mount.node_publish_secrets)? {
            Some(credentials) => return Ok(Arc::new(credentials)),
            None => missing.push(format!(
                "nodePublishSecretRef: no Secret with {NODE_PUBLISH_ACCESS_KEY} and {NODE_PUBLISH_ACCESS_SECRET} keys"
            )),
        }
        if self.strict {
            missing.push("the provider's own identities: not allowed by identity.policy = \"strict\" (use usePodServiceAccountToken or a nodePublishSecretRef)".into());
            return Err(CredentialError::NoneFound(missing));
        }
        if let Some(env) = &self.env {
            return Ok(env.clone());
        }
        missing.push(self.env_problem.clone().unwrap_or_else(|| {
            "environment: neither ACCESS_KEY_ID/SECRET_ACCESS_KEY nor ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET is set".into()
        }));
        Err(CredentialError::NoneFound(missing))
    }
}

fn node_publish_credentials(
    secrets: &BTreeMap<String, Sensitive<String>>,
) -> Result<Option<Credentials>, CredentialError> {
    let get = |key: &str| {
        secrets
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.0.trim())
            .filter(|v| !v.is_empty())
    };
    match (
        get(NODE_PUBLISH_ACCESS_KEY),
        get(NODE_PUBLISH_ACCESS_SECRET),
    ) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.to_string(),
            access_key_secret: Sensitive(secret.to_string()),
            security_token: get(NODE_PUBLISH_SECURITY_TOKEN).map(|t| Sensitive(t.to_string())),
            source: "nodePublishSecretRef",
        })),
        (Some(_), None) => Err(CredentialError::Invalid(format!(
            "the nodePublishSecretRef Secret has {NODE_PUBLISH_ACCESS_KEY} but no {NODE_PUBLISH_ACCESS_SECRET}"
        ))),
        (None, Some(_)) => Err(CredentialError::Invalid(format!(
            "the nodePublishSecretRef Secret has {NODE_PUBLISH_ACCESS_SECRET} but no {NODE_PUBLISH_ACCESS_KEY}"
        ))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CredentialChain {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CredentialChain::new(|k| map.get(k).cloned(), IdentityPolicy::Upstream)
    }

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, Sensitive<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Sensitive(v.to_string())))
            .collect()
    }

    async fn resolve(
        chain: &CredentialChain,
        s: &BTreeMap<String, Sensitive<String>>,
    ) -> Result<Arc<Credentials>, CredentialError> {
        chain
            .resolve(MountIdentity {
                node_publish_secrets: s,
                use_pod_service_account_token: false,
            })
            .await
    }

    #[tokio::test]
    async fn node_publish_secret_comes_before_the_environment() {
        let chain = env(&[
            ("ACCESS_KEY_ID", "envid"),
            ("SECRET_ACCESS_KEY", "envsecret"),
        ]);
        let c = resolve(
            &chain,
            &secrets(&[("Access_Key", "npid"), ("access_secret", "npsecret")]),
        )
        .await
        .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.source),
            ("npid", "nodePublishSecretRef")
        );
        let c = resolve(&chain, &secrets(&[])).await.unwrap();
        assert_eq!(c.access_key_id, "envid");
        assert!(c.security_token.is_none());
    }

    #[tokio::test]
    async fn official_sdk_variables_with_a_security_token() {
        let chain = env(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
        ]);
        let c = resolve(&chain, &secrets(&[])).await.unwrap();
        assert_eq!(c.access_key_id, "STS.id");
        assert_eq!(c.security_token, Some(Sensitive("tok".into())));
        assert!(!format!("{c:?}").contains("tok\""));
    }

    #[tokio::test]
    async fn errors_list_what_each_link_lacked() {
        let e = resolve(&env(&[]), &secrets(&[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no Alibaba Cloud credentials for this Mount: nodePublishSecretRef: no Secret with access_key and access_secret keys; environment: neither"), "{e}");
        let e = resolve(&env(&[("ACCESS_KEY_ID", "x")]), &secrets(&[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ACCESS_KEY_ID is set but SECRET_ACCESS_KEY is not"),
            "{e}"
        );
        let e = resolve(&env(&[]), &secrets(&[("access_key", "x")]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("has access_key but no access_secret"), "{e}");
        let pod = env(&[("ACCESS_KEY_ID", "a"), ("SECRET_ACCESS_KEY", "b")])
            .resolve(MountIdentity {
                node_publish_secrets: &secrets(&[]),
                use_pod_service_account_token: true,
            })
            .await
            .unwrap_err();
        assert_eq!(pod, CredentialError::PodIdentityUnavailable);
    }

    #[tokio::test]
    async fn strict_policy_refuses_the_providers_own_keys() {
        let lookup = |k: &str| match k {
            "ACCESS_KEY_ID" => Some("envid".to_string()),
            "SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            _ => None,
        };
        let strict = CredentialChain::new(lookup, IdentityPolicy::Strict);
        let e = resolve(&strict, &secrets(&[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not allowed by identity.policy = \"strict\""),
            "{e}"
        );
        let c = resolve(
            &strict,
            &secrets(&[("access_key", "np"), ("access_secret", "s")]),
        )
        .await
        .unwrap();
        assert_eq!(c.source, "nodePublishSecretRef");
    }

    #[test]
    fn redact_removes_secret_and_token() {
        let c = Credentials {
            access_key_id: "id".into(),
            access_key_secret: Sensitive("s3cr3tkey".into()),
            security_token: Some(Sensitive("CAIStoken".into())),
            source: "test",
        };
        assert_eq!(
            c.redact("a s3cr3tkey b CAIStoken c"),
            "a <redacted> b <redacted> c"
        );
    }
}
