//! The credential chain: which identity serves a Mount, in the upstream
//! provider's order and with its environment variables, filtered by the
//! identity policy, with every temporary credential cached per identity.
//!
//! Links: (1) pod identity (`usePodServiceAccountToken`: the pod's token →
//! STS `AssumeRoleWithOIDC`), (2) provider RRSA (the provider's projected
//! token), (3) access key + `AssumeRole`, (4) the volume's
//! nodePublishSecretRef, (5) access key from the environment, (6) the ECS
//! worker's RAM role. Under `identity.policy = "strict"` only (1) and (4).
//!
//! Pod identity that was asked for falls back to the next links only where
//! upstream's did (no token sent, no role annotation, the ServiceAccount
//! cannot be read), only under `"upstream"` (where a Mount that does not ask
//! gets those links anyway), and with a warning; anything else that stops it
//! (a token for another audience or account, a bad role, no OIDC provider,
//! STS refusing) fails the Mount, as upstream's did.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Credentials;
use super::cache::{
    CacheError, CacheKey, CacheSettings, CredentialCache, ExpiringCredentials,
    expiry_from_expiration,
};
use super::imds::ImdsClient;
use super::kube::RoleArnLookup;
use super::sts::{RoleRequest, StsClient, StsError, session_name};
use super::tokens::{STS_AUDIENCE, subject_for, token_for_audience};
use crate::config::{Identity, IdentityPolicy};
use crate::metrics::{CredentialLink, Metrics};
use crate::spc::{PodInfo, Sensitive};

/// The provider RRSA token file the upstream chart projects.
pub const DEFAULT_PROVIDER_TOKEN_FILE: &str =
    "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud";
/// Upstream's default `RoleSessionName`.
pub const DEFAULT_SESSION_NAME: &str = "csi-secrets-store-provider-alibaba";

/// Names of the nodePublishSecretRef keys, matched case-insensitively.
pub const NODE_PUBLISH_ACCESS_KEY: &str = "access_key";
/// The secret key of the access key in the nodePublishSecretRef.
pub const NODE_PUBLISH_ACCESS_SECRET: &str = "access_secret";
/// An optional STS token in the nodePublishSecretRef.
pub const NODE_PUBLISH_SECURITY_TOKEN: &str = "security_token";

/// The link named in a [`CredentialError::Failed`] of an object's
/// `crossAccountRoleArn`.
pub const CROSS_ACCOUNT_LINK: &str = "crossAccountRoleArn";

/// Why no credentials could be obtained. Messages name the link and the
/// cause, never a secret or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No link of the chain applied; what each one lacked.
    #[error("no Alibaba Cloud credentials for this Mount: {}", .0.join("; "))]
    NoneFound(Vec<String>),
    /// A link applied and failed; the chain stops there (never falls through
    /// to a broader identity).
    #[error("{link}: {message}")]
    Failed {
        /// The link.
        link: &'static str,
        /// What went wrong.
        message: String,
        /// Retrying later may succeed (throttling, timeout, network).
        retryable: bool,
    },
    /// Pod identity was asked for and cannot be honoured.
    #[error(
        "pod identity (usePodServiceAccountToken): {message}; no other identity is used for this Mount"
    )]
    PodIdentity {
        /// What is missing or failed.
        message: String,
        /// Retrying later may succeed.
        retryable: bool,
    },
}

impl CredentialError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CredentialError::NoneFound(_) => false,
            CredentialError::Failed { retryable, .. }
            | CredentialError::PodIdentity { retryable, .. } => *retryable,
        }
    }
}

/// What a Mount brings to credential resolution.
#[derive(Debug, Clone, Copy)]
pub struct MountIdentity<'a> {
    /// The pod.
    pub pod: &'a PodInfo,
    /// The nodePublishSecretRef data.
    pub node_publish_secrets: &'a BTreeMap<String, Sensitive<String>>,
    /// `usePodServiceAccountToken: "true"`.
    pub use_pod_service_account_token: bool,
    /// The service-account tokens JSON kubelet sent.
    pub service_account_tokens: Option<&'a Sensitive<String>>,
    /// `podRoleArn` from the SecretProviderClass.
    pub pod_role_arn: Option<&'a str>,
}

/// [`MountIdentity`] owned, for a session that outlives the parsed request.
#[derive(Debug, Clone, Default)]
pub struct OwnedMountIdentity {
    /// The pod.
    pub pod: PodInfo,
    /// The nodePublishSecretRef data.
    pub node_publish_secrets: BTreeMap<String, Sensitive<String>>,
    /// `usePodServiceAccountToken: "true"`.
    pub use_pod_service_account_token: bool,
    /// The service-account tokens JSON.
    pub service_account_tokens: Option<Sensitive<String>>,
    /// `podRoleArn`.
    pub pod_role_arn: Option<String>,
}

impl OwnedMountIdentity {
    /// Borrows it.
    pub fn borrowed(&self) -> MountIdentity<'_> {
        MountIdentity {
            pod: &self.pod,
            node_publish_secrets: &self.node_publish_secrets,
            use_pod_service_account_token: self.use_pod_service_account_token,
            service_account_tokens: self.service_account_tokens.as_ref(),
            pod_role_arn: self.pod_role_arn.as_deref(),
        }
    }
}

/// Credentials a Mount resolved, and the cache identity they came from (for
/// cross-account sessions built on them).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The credentials.
    pub credentials: Arc<Credentials>,
    /// Their cache key, for temporary credentials.
    pub key: Option<CacheKey>,
    /// Why pod identity, asked for, was skipped for them (policy
    /// `upstream`), for the Mount's error if it fails.
    pub fallback: Option<String>,
}

/// Provider RRSA: the provider's own projected token → `AssumeRoleWithOIDC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRrsa {
    /// `ALICLOUD_ROLE_ARN`.
    pub role_arn: String,
    /// The token file (re-read at every refresh).
    pub token_file: PathBuf,
}

/// Access key + `AssumeRole`.
#[derive(Debug, Clone)]
pub struct RamRole {
    /// `ACCESS_KEY_ID` / `SECRET_ACCESS_KEY`.
    pub base: Credentials,
    /// `ALICLOUD_ROLE_ARN`.
    pub role_arn: String,
    /// `ALICLOUD_ROLE_SESSION_EXPIRATION`.
    pub duration_seconds: Option<u32>,
    /// Why `ALICLOUD_ROLE_SESSION_EXPIRATION` makes this link fail on every
    /// Mount (below 900 s: upstream's SDK refused to build the credential).
    pub duration_problem: Option<String>,
}

/// Why the identity settings stop start-up ([`IdentitySettings::new`]): only
/// config.toml values do (a bad variable is a warning, as upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `identity.oidc_provider_arn` is not an OIDC provider ARN.
    #[error(
        "identity.oidc_provider_arn: {0:?} must look like acs:ram::<account-id>:oidc-provider/<name>"
    )]
    OidcProviderArn(String),
}

/// A RAM role ARN that is not one ([`check_role_arn`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{arn:?} is not a RAM role ARN (acs:ram::<account-id>:role/<name>)")]
pub struct InvalidRoleArn {
    /// The value given.
    pub arn: String,
}

/// The provider's own service-account token (provider RRSA) cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the provider's service account token {}: {source} (chart value rrsa.enable projects it; ALICLOUD_OIDC_TOKEN_FILE moves it)",
    path.display()
)]
struct ProviderTokenError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What the environment and config.toml configure, read once at start-up.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Which links may serve Mounts that do not ask for pod identity.
    pub policy: IdentityPolicy,
    /// The cluster's OIDC provider ARN.
    pub oidc_provider_arn: Option<String>,
    /// Link 2.
    pub provider_rrsa: Option<ProviderRrsa>,
    /// Link 3.
    pub ram_role: Option<RamRole>,
    /// Link 5.
    pub env_key: Option<Arc<Credentials>>,
    /// Why link 5 does not apply, when half-configured.
    pub env_problem: Option<String>,
    /// `RoleSessionName` of the provider's own sessions:
    /// `ALICLOUD_ROLE_SESSION_NAME`, else upstream's default.
    pub session_name: String,
    /// Whether `ALICLOUD_ROLE_SESSION_NAME` (or
    /// `ALIBABA_CLOUD_ROLE_SESSION_NAME`) is set: then every session is named
    /// as upstream names it (see [`IdentitySettings::pod_session_name`]).
    pub session_name_set: bool,
    /// `DurationSeconds` for pod identity, provider RRSA and cross-account.
    pub session_duration: u32,
    /// `ExternalId` for cross-account roles.
    pub cross_account_external_id: Option<String>,
    /// Settings that upstream started with and that fail (or may fail) on
    /// the Mounts they affect: logged at start-up, never fatal.
    pub warnings: Vec<String>,
}

/// Upstream's `RoleSessionName` of `crossAccountRoleArn` sessions (it does
/// not follow `ALICLOUD_ROLE_SESSION_NAME`).
pub const CROSS_ACCOUNT_SESSION_NAME: &str = "csi-secrets-store-cross-account";

impl IdentitySettings {
    /// Reads the upstream and official SDK variables through `lookup` and the
    /// `[identity]` table. A variable upstream read is never a start-up
    /// error: upstream started with any value and failed (or not) per Mount,
    /// so a bad one is a warning ([`IdentitySettings::warnings`]) and the
    /// Mounts that use it fail as upstream's did. Only config.toml values
    /// (ours) stop start-up.
    pub fn new(
        lookup: impl Fn(&str) -> Option<String>,
        config: &Identity,
    ) -> Result<IdentitySettings, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let first =
            |names: &[&'static str]| names.iter().find_map(|n| get(n).map(|value| (*n, value)));
        let mut warnings = Vec::new();

        // Upstream's order: ALICLOUD_OIDC_PROVIDER_ARN, else built from
        // ALICLOUD_ACCOUNT_ID + ALICLOUD_CLUSTER_ID (one without the other
        // builds nothing); the SDK's own variable and config.toml after.
        let built = match (get("ALICLOUD_ACCOUNT_ID"), get("ALICLOUD_CLUSTER_ID")) {
            (Some(account), Some(cluster)) => Some((
                "ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID",
                format!("acs:ram::{account}:oidc-provider/ack-rrsa-{cluster}"),
            )),
            (Some(_), None) | (None, Some(_)) => {
                warnings.push(
                    "only one of ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID is set (chart values rrsa.accountId, rrsa.clusterId): both are needed to build the OIDC provider ARN, so they are ignored, as upstream ignores them; without another OIDC provider ARN, pod identity fails and provider RRSA does not apply".to_string(),
                );
                None
            }
            (None, None) => None,
        };
        let oidc_provider_arn = match get("ALICLOUD_OIDC_PROVIDER_ARN")
            .map(|arn| ("ALICLOUD_OIDC_PROVIDER_ARN", arn))
            .or(built)
            .or_else(|| first(&["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"]))
        {
            Some((source, arn)) => {
                if !arn.starts_with("acs:ram::") {
                    warnings.push(format!(
                        "{source}: the OIDC provider ARN {arn:?} does not look like acs:ram::<account-id>:oidc-provider/<name>; STS will refuse it on every Mount that uses pod identity or provider RRSA"
                    ));
                }
                Some(arn)
            }
            None if config.oidc_provider_arn.is_empty() => None,
            None => {
                let arn = config.oidc_provider_arn.clone();
                if !arn.starts_with("acs:ram::") {
                    return Err(SettingsError::OidcProviderArn(arn));
                }
                Some(arn)
            }
        };
        let role_arn = first(&["ALICLOUD_ROLE_ARN", "ALIBABA_CLOUD_ROLE_ARN"]).map(|(name, arn)| {
            if let Err(e) = check_role_arn(&arn) {
                warnings.push(format!(
                    "{name}: {e}; provider RRSA or access key + AssumeRole sends it to STS, which refuses it, on every Mount they serve"
                ));
            }
            arn
        });
        let configured_session_name = first(&[
            "ALICLOUD_ROLE_SESSION_NAME",
            "ALIBABA_CLOUD_ROLE_SESSION_NAME",
        ])
        .map(|(_, name)| name);
        let session_name_set = configured_session_name.is_some();
        let session_name =
            configured_session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
        let (duration_seconds, duration_problem) =
            session_expiration(get("ALICLOUD_ROLE_SESSION_EXPIRATION"), &mut warnings);
        let token_file = first(&["ALICLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"])
            .map(|(_, file)| PathBuf::from(file))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROVIDER_TOKEN_FILE));

        let upstream_key = match (get("ACCESS_KEY_ID"), get("SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Credentials {
                access_key_id: id,
                access_key_secret: Sensitive(secret),
                security_token: None,
                source: "environment access key",
            }),
            _ => None,
        };
        let provider_rrsa = match (&role_arn, &oidc_provider_arn) {
            (Some(role), Some(_)) => Some(ProviderRrsa {
                role_arn: role.clone(),
                token_file,
            }),
            _ => None,
        };
        let ram_role = match (&role_arn, &upstream_key) {
            (Some(role), Some(base)) if provider_rrsa.is_none() => Some(RamRole {
                base: Credentials {
                    source: "access key + AssumeRole",
                    ..base.clone()
                },
                role_arn: role.clone(),
                duration_seconds,
                duration_problem,
            }),
            _ => None,
        };

        let (env_key, env_problem) = env_access_key(&get);
        Ok(IdentitySettings {
            policy: config.policy,
            oidc_provider_arn,
            provider_rrsa,
            ram_role,
            env_key,
            env_problem,
            session_name,
            session_name_set,
            session_duration: config.session_duration.as_secs() as u32,
            cross_account_external_id: Some(config.cross_account_external_id.clone())
                .filter(|e| !e.is_empty()),
            warnings,
        })
    }

    /// `RoleSessionName` of pod identity: `<namespace>.<serviceaccount>`,
    /// so that audit logs tell workloads apart, unless
    /// `ALICLOUD_ROLE_SESSION_NAME` is set: then that name, as upstream
    /// (policies and audit queries may be keyed on it).
    pub fn pod_session_name(&self, pod: &PodInfo) -> String {
        if self.session_name_set {
            self.session_name.clone()
        } else {
            session_name(&[&pod.namespace, &pod.service_account])
        }
    }

    /// `RoleSessionName` of a `crossAccountRoleArn` session:
    /// `<namespace>.<pod>`, unless `ALICLOUD_ROLE_SESSION_NAME` is set: then
    /// upstream's fixed [`CROSS_ACCOUNT_SESSION_NAME`].
    pub fn cross_account_session_name(&self, pod: &PodInfo) -> String {
        if self.session_name_set {
            CROSS_ACCOUNT_SESSION_NAME.to_string()
        } else {
            session_name(&[&pod.namespace, &pod.name])
        }
    }
}

/// `ALICLOUD_ROLE_SESSION_EXPIRATION` as upstream read it: not a whole
/// number → ignored (logged); below 900 → access key + AssumeRole fails on
/// every Mount (the SDK refused it); above STS's 43200 → sent, STS refuses.
fn session_expiration(
    text: Option<String>,
    warnings: &mut Vec<String>,
) -> (Option<u32>, Option<String>) {
    let Some(text) = text else {
        return (None, None);
    };
    match text.parse::<i64>() {
        Err(_) => {
            warnings.push(format!(
                "ALICLOUD_ROLE_SESSION_EXPIRATION={text:?} is not a whole number of seconds: ignored, as upstream ignores it (access key + AssumeRole asks for STS's default duration)"
            ));
            (None, None)
        }
        Ok(n) if n < 900 => {
            let problem = format!(
                "ALICLOUD_ROLE_SESSION_EXPIRATION={text:?} is below 900 seconds, the shortest STS session"
            );
            warnings.push(format!(
                "{problem}: access key + AssumeRole fails on every Mount it serves, as upstream's did"
            ));
            (None, Some(problem))
        }
        Ok(n) => match u32::try_from(n) {
            Ok(seconds) => {
                if seconds > 43200 {
                    warnings.push(format!(
                        "ALICLOUD_ROLE_SESSION_EXPIRATION={text:?} is above 43200 seconds, the longest STS session: STS refuses it on every Mount that access key + AssumeRole serves"
                    ));
                }
                (Some(seconds), None)
            }
            Err(_) => {
                let problem = format!(
                    "ALICLOUD_ROLE_SESSION_EXPIRATION={text:?} is far above 43200 seconds, the longest STS session"
                );
                warnings.push(format!(
                    "{problem}: access key + AssumeRole fails on every Mount it serves"
                ));
                (None, Some(problem))
            }
        },
    }
}

fn env_access_key(
    get: &impl Fn(&str) -> Option<String>,
) -> (Option<Arc<Credentials>>, Option<String>) {
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
                let credentials = Credentials {
                    access_key_id: id,
                    access_key_secret: Sensitive(secret),
                    security_token: token_var.and_then(get).map(Sensitive),
                    source: "environment access key",
                };
                return (Some(Arc::new(credentials)), None);
            }
            (Some(_), None) => {
                return (
                    None,
                    Some(format!(
                        "environment access key: {id_var} is set but {secret_var} is not"
                    )),
                );
            }
            (None, Some(_)) => {
                return (
                    None,
                    Some(format!(
                        "environment access key: {secret_var} is set but {id_var} is not"
                    )),
                );
            }
            (None, None) => {}
        }
    }
    (None, None)
}

/// Checks the shape of a RAM role ARN (`acs:ram::<account-id>:role/<name>`).
pub fn check_role_arn(arn: &str) -> Result<(), InvalidRoleArn> {
    let ok = arn
        .strip_prefix("acs:ram::")
        .and_then(|rest| rest.split_once(":role/"))
        .is_some_and(|(account, name)| {
            !account.is_empty()
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
                && !name.contains(char::is_whitespace)
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidRoleArn {
            arn: arn.to_string(),
        })
    }
}

/// What pod identity came to, when it raised no error.
enum PodIdentity {
    /// Credentials.
    Resolved(Resolved),
    /// Not applied, where upstream skips its pod identity link.
    Skipped(Skipped),
}

/// Why pod identity was asked for and not applied, in the cases where the
/// upstream provider skips its pod identity link and goes on down the chain
/// (under `identity.policy = "upstream"` this provider does too, with a
/// warning; under `"strict"` the Mount fails).
#[derive(Debug, Clone)]
enum Skipped {
    /// No service account tokens in the request.
    NoToken,
    /// The ServiceAccount has no (or an empty) role annotation, or does not
    /// exist.
    NoAnnotation {
        namespace: String,
        service_account: String,
    },
    /// The ServiceAccount could not be read.
    LookupFailed {
        namespace: String,
        service_account: String,
        error: String,
    },
}

impl Skipped {
    /// The reason, short (the warning's `reason` field).
    fn reason(&self) -> &'static str {
        match self {
            Skipped::NoToken => "no token",
            Skipped::NoAnnotation { .. } => "no annotation",
            Skipped::LookupFailed { .. } => "lookup failed",
        }
    }

    fn is_retryable(&self) -> bool {
        matches!(self, Skipped::LookupFailed { .. })
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::NoToken => write!(
                f,
                "the driver sent no service account token; add {{audience: {STS_AUDIENCE}}} to tokenRequests of the CSIDriver secrets-store.csi.k8s.io (chart value secrets-store-csi-driver.tokenRequests)"
            ),
            Skipped::NoAnnotation {
                namespace,
                service_account,
            } => write!(
                f,
                "service account {namespace}/{service_account} has no ack.alibabacloud.com/role-arn annotation and the SecretProviderClass sets no podRoleArn"
            ),
            Skipped::LookupFailed {
                namespace,
                service_account,
                error,
            } => write!(
                f,
                "reading the role of service account {namespace}/{service_account}: {error}"
            ),
        }
    }
}

/// The chain, its clients and its cache; one per process.
pub struct CredentialChain {
    settings: IdentitySettings,
    sts: StsClient,
    cache: CredentialCache,
    roles: RoleArnLookup,
    imds: Arc<ImdsClient>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialChain")
            .field("policy", &self.settings.policy)
            .finish_non_exhaustive()
    }
}

impl CredentialChain {
    /// Assembles the chain.
    pub fn new(
        settings: IdentitySettings,
        sts: StsClient,
        cache: CacheSettings,
        roles: RoleArnLookup,
        imds: Arc<ImdsClient>,
    ) -> CredentialChain {
        CredentialChain {
            settings,
            sts,
            cache: CredentialCache::new(cache),
            roles,
            imds,
            metrics: None,
        }
    }

    /// Counts the cache's lookups and loads and the Mounts' resolved links
    /// into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> CredentialChain {
        self.cache = self.cache.with_metrics(metrics.clone());
        self.metrics = Some(metrics);
        self
    }

    /// Counts a Mount's resolved identity by the link that gave it.
    pub(crate) fn count_resolved(&self, resolved: &Resolved) {
        if let (Some(metrics), Some(link)) = (&self.metrics, link_of(resolved.credentials.source)) {
            metrics.credential_resolved(link);
        }
    }

    /// The credential cache (for its counters).
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// Picks the credentials for one Mount.
    pub async fn resolve(
        &self,
        mount: MountIdentity<'_>,
        deadline: Instant,
    ) -> Result<Resolved, CredentialError> {
        let strict = self.settings.policy == IdentityPolicy::Strict;
        let mut missing = Vec::new();
        if mount.use_pod_service_account_token {
            let skipped = match self.pod_identity(mount, deadline).await? {
                PodIdentity::Resolved(resolved) => return Ok(resolved),
                PodIdentity::Skipped(skipped) => skipped,
            };
            if strict {
                return Err(CredentialError::PodIdentity {
                    message: format!(
                        "{skipped} (identity.policy = \"strict\" does not fall back to the provider's identity)"
                    ),
                    retryable: skipped.is_retryable(),
                });
            }
            // Upstream skips its pod identity link in these cases and goes
            // on down the chain; a Mount that does not ask for pod identity
            // gets the same identities under this policy, so this grants
            // nothing new.
            tracing::warn!(
                namespace = %mount.pod.namespace,
                pod = %mount.pod.name,
                service_account = %mount.pod.service_account,
                reason = skipped.reason(),
                detail = %skipped,
                "pod identity (usePodServiceAccountToken) does not apply: falling back to the provider's identity, as the upstream provider does (identity.policy = \"upstream\"; \"strict\" fails the Mount instead)"
            );
            missing.push(format!(
                "pod identity: {skipped} (fell back to the provider's identities, as upstream)"
            ));
            let mut resolved = self.provider_identities(mount, deadline, missing).await?;
            resolved.fallback = Some(skipped.to_string());
            return Ok(resolved);
        }
        missing.push(
            "pod identity: not asked for (usePodServiceAccountToken is not \"true\")".to_string(),
        );
        self.provider_identities(mount, deadline, missing).await
    }

    /// The links after pod identity; `missing` says why earlier ones did not
    /// apply.
    async fn provider_identities(
        &self,
        mount: MountIdentity<'_>,
        deadline: Instant,
        mut missing: Vec<String>,
    ) -> Result<Resolved, CredentialError> {
        let strict = self.settings.policy == IdentityPolicy::Strict;
        let not_allowed = "not allowed by identity.policy = \"strict\"";

        if strict {
            missing.push(format!(
                "provider RRSA, access key + AssumeRole: {not_allowed}"
            ));
        } else if let Some(rrsa) = &self.settings.provider_rrsa {
            return self.provider_rrsa(rrsa, deadline).await;
        } else if let Some(ram) = &self.settings.ram_role {
            return self.ram_role(ram, deadline).await;
        } else {
            missing.push("provider RRSA: ALICLOUD_ROLE_ARN and an OIDC provider ARN (ALICLOUD_OIDC_PROVIDER_ARN, or ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID) are not both set".into());
            missing.push("access key + AssumeRole: ACCESS_KEY_ID, SECRET_ACCESS_KEY and ALICLOUD_ROLE_ARN are not all set".into());
        }

        match node_publish_credentials(mount.node_publish_secrets) {
            NodePublish::Found(credentials) => {
                return Ok(Resolved {
                    credentials: Arc::new(credentials),
                    key: None,
                    fallback: None,
                });
            }
            NodePublish::Absent => missing.push(format!(
                "nodePublishSecretRef: no Secret with {NODE_PUBLISH_ACCESS_KEY} and {NODE_PUBLISH_ACCESS_SECRET} keys"
            )),
            NodePublish::Half { present, absent } => {
                // Upstream skips such a Secret; name the key, never a value.
                tracing::warn!(
                    namespace = %mount.pod.namespace,
                    pod = %mount.pod.name,
                    present,
                    missing = absent,
                    "the nodePublishSecretRef Secret has {present} but no (or an empty) {absent}: skipped, as the upstream provider skips it; the next identity of the chain is used"
                );
                missing.push(format!(
                    "nodePublishSecretRef: the Secret has {present} but no (or an empty) {absent}, so it was skipped"
                ));
            }
        }

        if strict {
            missing.push(format!(
                "environment access key, ECS RAM role: {not_allowed}"
            ));
            return Err(CredentialError::NoneFound(missing));
        }
        if let Some(key) = &self.settings.env_key {
            return Ok(Resolved {
                credentials: key.clone(),
                key: None,
                fallback: None,
            });
        }
        missing.push(self.settings.env_problem.clone().unwrap_or_else(|| {
            "environment access key: neither ACCESS_KEY_ID/SECRET_ACCESS_KEY nor ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET is set".into()
        }));
        match self.ecs_role(deadline).await {
            Ok(resolved) => Ok(resolved),
            Err(error) => {
                missing.push(format!("ECS RAM role: {error}"));
                Err(CredentialError::NoneFound(missing))
            }
        }
    }

    /// Pod identity: the pod's token for STS, the role of its
    /// ServiceAccount (or `podRoleArn`) → `AssumeRoleWithOIDC`. Where the
    /// upstream provider skips this link (no token sent, no role annotation,
    /// the ServiceAccount cannot be read) it says so with
    /// [`PodIdentity::Skipped`]; every other problem is an error. With
    /// `podRoleArn` (ours, not upstream's) nothing is skipped: the Mount
    /// named its role.
    async fn pod_identity(
        &self,
        mount: MountIdentity<'_>,
        deadline: Instant,
    ) -> Result<PodIdentity, CredentialError> {
        let fail =
            |message: String, retryable: bool| CredentialError::PodIdentity { message, retryable };
        let pod = mount.pod;
        let Some(tokens) = mount.service_account_tokens else {
            return match mount.pod_role_arn {
                Some(_) => Err(fail(Skipped::NoToken.to_string(), false)),
                None => Ok(PodIdentity::Skipped(Skipped::NoToken)),
            };
        };
        let role_arn = match mount.pod_role_arn {
            Some(role) => {
                check_role_arn(role).map_err(|e| fail(format!("podRoleArn: {e}"), false))?;
                role.to_string()
            }
            None => match self
                .roles
                .role_arn(&pod.namespace, &pod.service_account)
                .await
            {
                Ok(Some(role)) => {
                    check_role_arn(&role).map_err(|e| {
                        fail(format!("the annotation ack.alibabacloud.com/role-arn of service account {}/{}: {e}", pod.namespace, pod.service_account), false)
                    })?;
                    role
                }
                Ok(None) => {
                    return Ok(PodIdentity::Skipped(Skipped::NoAnnotation {
                        namespace: pod.namespace.clone(),
                        service_account: pod.service_account.clone(),
                    }));
                }
                Err(e) => {
                    return Ok(PodIdentity::Skipped(Skipped::LookupFailed {
                        namespace: pod.namespace.clone(),
                        service_account: pod.service_account.clone(),
                        error: e.to_string(),
                    }));
                }
            },
        };
        let token = token_for_audience(&tokens.0, STS_AUDIENCE, unix_now())
            .map_err(|e| fail(e.0, false))?;
        // The cache is keyed by the token's subject, and a cache hit skips
        // STS's check of the token: accept only a token of this pod's own
        // service account (kubelet sets the pod's namespace and account; a
        // volume attribute cannot).
        let expected = subject_for(&pod.namespace, &pod.service_account);
        if token.subject != expected {
            return Err(fail(
                format!(
                    "the service account token is for {:?}, not for this pod's service account {expected:?}",
                    token.subject
                ),
                false,
            ));
        }
        let provider = self.settings.oidc_provider_arn.as_deref().ok_or_else(|| {
            fail(
                "the cluster's OIDC provider ARN is not configured: set ALICLOUD_OIDC_PROVIDER_ARN, or ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID (chart values rrsa.accountId and rrsa.clusterId), or identity.oidc_provider_arn".into(),
                false,
            )
        })?;
        let key = CacheKey::oidc(&role_arn, provider, &token.subject);
        let session = self.settings.pod_session_name(pod);
        let duration = self.settings.session_duration;
        // The load is shared with the Mounts that wait for it and outlives
        // this one if it goes away: it owns what it uses.
        let (sts, provider, oidc_token) =
            (self.sts.clone(), provider.to_string(), token.token.clone());
        let loaded = self
            .cache
            .get_or_load_for(
                Some(CredentialLink::PodIdentity),
                &key,
                move || async move {
                    let request = RoleRequest {
                        role_arn: &role_arn,
                        session_name: &session,
                        duration_seconds: Some(duration),
                        external_id: None,
                    };
                    let assumed = sts
                        .assume_role_with_oidc(
                            &request,
                            &provider,
                            &oidc_token,
                            "pod identity (RRSA)",
                            deadline,
                        )
                        .await?;
                    expiring(assumed.credentials, &assumed.expiration)
                },
            )
            .await
            .map_err(|e| fail(e.to_string(), is_temporary(&e)))?;
        Ok(PodIdentity::Resolved(Resolved {
            credentials: loaded.credentials,
            key: Some(key),
            fallback: None,
        }))
    }

    async fn provider_rrsa(
        &self,
        rrsa: &ProviderRrsa,
        deadline: Instant,
    ) -> Result<Resolved, CredentialError> {
        const LINK: &str = "provider RRSA";
        let provider = self.settings.oidc_provider_arn.clone().unwrap_or_default();
        let key = CacheKey::oidc(&rrsa.role_arn, &provider, "the provider's service account");
        let (sts, rrsa, session, duration) = (
            self.sts.clone(),
            rrsa.clone(),
            self.settings.session_name.clone(),
            self.settings.session_duration,
        );
        let loaded =
            self.cache
                .get_or_load_for(
                    Some(CredentialLink::ProviderRrsa),
                    &key,
                    move || async move {
                        let request = RoleRequest {
                            role_arn: &rrsa.role_arn,
                            session_name: &session,
                            duration_seconds: Some(duration),
                            external_id: None,
                        };
                        // Read at every refresh: kubelet rotates the projected token.
                        let token = tokio::fs::read_to_string(&rrsa.token_file).await.map_err(
                            |source| ProviderTokenError {
                                path: rrsa.token_file.clone(),
                                source,
                            },
                        )?;
                        let token = Sensitive(token.trim().to_string());
                        let assumed = sts
                            .assume_role_with_oidc(
                                &request,
                                &provider,
                                &token,
                                "provider RRSA",
                                deadline,
                            )
                            .await?;
                        expiring(assumed.credentials, &assumed.expiration)
                    },
                )
                .await
                .map_err(|e| failed(LINK, e))?;
        Ok(Resolved {
            credentials: loaded.credentials,
            key: Some(key),
            fallback: None,
        })
    }

    async fn ram_role(
        &self,
        ram: &RamRole,
        deadline: Instant,
    ) -> Result<Resolved, CredentialError> {
        const LINK: &str = "access key + AssumeRole";
        if let Some(problem) = &ram.duration_problem {
            return Err(CredentialError::Failed {
                link: LINK,
                message: problem.clone(),
                retryable: false,
            });
        }
        let key = CacheKey::assume_role(&ram.base, &ram.role_arn)
            .with_session_name(&self.settings.session_name);
        let request = RoleRequest {
            role_arn: &ram.role_arn,
            session_name: &self.settings.session_name,
            duration_seconds: ram.duration_seconds,
            external_id: None,
        };
        let credentials = self
            .assume_role_cached(&key, &ram.base, &request, (LINK, LINK), deadline)
            .await?;
        Ok(Resolved {
            credentials,
            key: Some(key),
            fallback: None,
        })
    }

    async fn ecs_role(&self, _deadline: Instant) -> Result<Resolved, CacheError> {
        let role = self
            .imds
            .settings()
            .role_name
            .clone()
            .unwrap_or_else(|| "the instance's role".into());
        let key = CacheKey::ecs_ram_role(role);
        let loaded = self
            .cache
            .get_or_load_for(Some(CredentialLink::EcsRamRole), &key, {
                let imds = self.imds.clone();
                move || async move {
                    let fetched = imds.role_credentials().await?;
                    expiring(fetched.credentials, &fetched.expiration)
                }
            })
            .await?;
        Ok(Resolved {
            credentials: loaded.credentials,
            key: Some(key),
            fallback: None,
        })
    }

    /// Credentials for an object's `crossAccountRoleArn`: `AssumeRole` from
    /// the Mount's identity, with a session name that identifies the pod.
    pub async fn cross_account(
        &self,
        base: &Resolved,
        role_arn: &str,
        pod: &PodInfo,
        deadline: Instant,
    ) -> Result<Arc<Credentials>, CredentialError> {
        const LINK: &str = CROSS_ACCOUNT_LINK;
        check_role_arn(role_arn).map_err(|e| CredentialError::Failed {
            link: LINK,
            message: e.to_string(),
            retryable: false,
        })?;
        let session = self.settings.cross_account_session_name(pod);
        let mut key = match &base.key {
            Some(base_key) => CacheKey::assume_role_from(base_key, role_arn),
            None => CacheKey::assume_role(&base.credentials, role_arn),
        }
        .with_session_name(&session);
        let external_id = self.settings.cross_account_external_id.as_deref();
        if let Some(id) = external_id {
            key = key.with_external_id(id);
        }
        let request = RoleRequest {
            role_arn,
            session_name: &session,
            duration_seconds: Some(self.settings.session_duration),
            external_id,
        };
        self.assume_role_cached(
            &key,
            &base.credentials,
            &request,
            (LINK, "cross-account role"),
            deadline,
        )
        .await
    }

    /// `AssumeRole` from `base` for `request`, through the cache under `key`;
    /// `(link, source)` name the step in errors and the credentials' source.
    async fn assume_role_cached(
        &self,
        key: &CacheKey,
        base: &Credentials,
        request: &RoleRequest<'_>,
        (link, source): (&'static str, &'static str),
        deadline: Instant,
    ) -> Result<Arc<Credentials>, CredentialError> {
        let link_label = if link == CROSS_ACCOUNT_LINK {
            CredentialLink::CrossAccount
        } else {
            CredentialLink::RamRole
        };
        let loaded = self
            .cache
            .get_or_load_for(Some(link_label), key, {
                let (sts, base) = (self.sts.clone(), base.clone());
                let (role_arn, session_name) = (
                    request.role_arn.to_string(),
                    request.session_name.to_string(),
                );
                let (duration_seconds, external_id) = (
                    request.duration_seconds,
                    request.external_id.map(str::to_string),
                );
                move || async move {
                    let request = RoleRequest {
                        role_arn: &role_arn,
                        session_name: &session_name,
                        duration_seconds,
                        external_id: external_id.as_deref(),
                    };
                    let assumed = sts.assume_role(&base, &request, source, deadline).await?;
                    expiring(assumed.credentials, &assumed.expiration)
                }
            })
            .await
            .map_err(|e| failed(link, e))?;
        Ok(loaded.credentials)
    }
}

/// The chain link of credentials, from their `source`.
fn link_of(source: &str) -> Option<CredentialLink> {
    Some(match source {
        "pod identity (RRSA)" => CredentialLink::PodIdentity,
        "provider RRSA" => CredentialLink::ProviderRrsa,
        "access key + AssumeRole" => CredentialLink::RamRole,
        "cross-account role" => CredentialLink::CrossAccount,
        "ECS RAM role" => CredentialLink::EcsRamRole,
        "nodePublishSecretRef" => CredentialLink::NodePublishSecret,
        "environment access key" => CredentialLink::EnvironmentAccessKey,
        _ => return None,
    })
}

/// What a credential loader fails with: an [`StsError`] (which knows whether
/// it is temporary), an [`ImdsError`](super::imds::ImdsError), an
/// unreadable token file or an unusable `Expiration`.
type LoadError = Box<dyn std::error::Error + Send + Sync>;

fn expiring(credentials: Credentials, expiration: &str) -> Result<ExpiringCredentials, LoadError> {
    let expires_at = expiry_from_expiration(expiration)?;
    Ok(ExpiringCredentials::new(credentials, expires_at))
}

fn failed(link: &'static str, error: CacheError) -> CredentialError {
    CredentialError::Failed {
        link,
        retryable: is_temporary(&error),
        message: error.to_string(),
    }
}

/// Whether a failed load may succeed on a later Mount, as the STS client
/// judged it.
fn is_temporary(error: &CacheError) -> bool {
    match error {
        CacheError::Load(inner) => inner
            .downcast_ref::<StsError>()
            .is_some_and(StsError::is_retryable),
        CacheError::ExpiredOnArrival { .. } => false,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// What the nodePublishSecretRef holds.
enum NodePublish {
    /// An access key.
    Found(Credentials),
    /// Neither key.
    Absent,
    /// One key without the other (or with an empty value): upstream skips it.
    Half {
        present: &'static str,
        absent: &'static str,
    },
}

fn node_publish_credentials(secrets: &BTreeMap<String, Sensitive<String>>) -> NodePublish {
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
        (Some(id), Some(secret)) => NodePublish::Found(Credentials {
            access_key_id: id.to_string(),
            access_key_secret: Sensitive(secret.to_string()),
            security_token: get(NODE_PUBLISH_SECURITY_TOKEN).map(|t| Sensitive(t.to_string())),
            source: "nodePublishSecretRef",
        }),
        (Some(_), None) => NodePublish::Half {
            present: NODE_PUBLISH_ACCESS_KEY,
            absent: NODE_PUBLISH_ACCESS_SECRET,
        },
        (None, Some(_)) => NodePublish::Half {
            present: NODE_PUBLISH_ACCESS_SECRET,
            absent: NODE_PUBLISH_ACCESS_KEY,
        },
        (None, None) => NodePublish::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        pairs: &[(&str, &str)],
        config: &Identity,
    ) -> Result<IdentitySettings, SettingsError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        IdentitySettings::new(|k| map.get(k).cloned(), config)
    }

    #[test]
    fn environment_links_as_upstream() {
        let c = Identity::default();
        let s = settings(&[], &c).unwrap();
        assert!(s.provider_rrsa.is_none() && s.ram_role.is_none() && s.env_key.is_none());
        assert_eq!(s.session_name, DEFAULT_SESSION_NAME);

        // RRSA wins over AK + AssumeRole when both could apply
        let s = settings(
            &[
                ("ALICLOUD_ROLE_ARN", "acs:ram::123:role/provider"),
                ("ALICLOUD_ACCOUNT_ID", "123"),
                ("ALICLOUD_CLUSTER_ID", "c0ffee"),
                ("ACCESS_KEY_ID", "id"),
                ("SECRET_ACCESS_KEY", "secret"),
            ],
            &c,
        )
        .unwrap();
        assert_eq!(
            s.oidc_provider_arn.as_deref(),
            Some("acs:ram::123:oidc-provider/ack-rrsa-c0ffee")
        );
        let rrsa = s.provider_rrsa.unwrap();
        assert_eq!(rrsa.token_file, PathBuf::from(DEFAULT_PROVIDER_TOKEN_FILE));
        assert!(s.ram_role.is_none());
        assert!(s.env_key.is_some());

        let s = settings(
            &[
                ("ALICLOUD_ROLE_ARN", "acs:ram::123:role/provider"),
                ("ACCESS_KEY_ID", "id"),
                ("SECRET_ACCESS_KEY", "secret"),
                ("ALICLOUD_ROLE_SESSION_EXPIRATION", "1800"),
                ("ALICLOUD_ROLE_SESSION_NAME", "mine"),
            ],
            &c,
        )
        .unwrap();
        let ram = s.ram_role.unwrap();
        assert_eq!(ram.duration_seconds, Some(1800));
        assert_eq!(s.session_name, "mine");

        // the documented-but-ignored upstream variable is honoured, and the SDK names work
        let s = settings(
            &[
                ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
                (
                    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                    "acs:ram::1:oidc-provider/p",
                ),
                ("ALICLOUD_OIDC_TOKEN_FILE", "/run/token"),
            ],
            &c,
        )
        .unwrap();
        assert_eq!(
            s.provider_rrsa.unwrap().token_file,
            PathBuf::from("/run/token")
        );
    }

    #[test]
    fn upstream_variables_never_stop_start_up() {
        // Upstream started with each of these and failed (or not) per Mount:
        // here a warning, and the value kept or ignored as upstream did.
        let c = Identity::default();
        let ram = [("ACCESS_KEY_ID", "id"), ("SECRET_ACCESS_KEY", "secret")];
        let with_ram = |extra: (&'static str, &'static str)| {
            let mut pairs = ram.to_vec();
            pairs.push(("ALICLOUD_ROLE_ARN", "acs:ram::1:role/r"));
            pairs.push(extra);
            pairs
        };

        // a role ARN that is not one: kept (STS refuses it per Mount)
        let s = settings(&[("ALICLOUD_ROLE_ARN", "my-role")], &c).unwrap();
        assert!(s.warnings[0].contains("ALICLOUD_ROLE_ARN: \"my-role\" is not a RAM role ARN"));
        let s = settings(&[("ALICLOUD_ROLE_ARN", "my-role"), ram[0], ram[1]], &c).unwrap();
        assert_eq!(s.ram_role.unwrap().role_arn, "my-role");

        // an OIDC provider ARN that is not one: kept
        let s = settings(
            &[
                ("ALICLOUD_OIDC_PROVIDER_ARN", "provider"),
                ("ALICLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            ],
            &c,
        )
        .unwrap();
        assert_eq!(s.oidc_provider_arn.as_deref(), Some("provider"));
        assert!(s.provider_rrsa.is_some());
        assert!(
            s.warnings[0].contains("does not look like acs:ram::"),
            "{:?}",
            s.warnings
        );

        // one of ALICLOUD_ACCOUNT_ID / ALICLOUD_CLUSTER_ID: ignored, as upstream
        for half in [("ALICLOUD_ACCOUNT_ID", "1"), ("ALICLOUD_CLUSTER_ID", "c1")] {
            let s = settings(
                &[
                    half,
                    ("ALICLOUD_ROLE_ARN", "acs:ram::1:role/r"),
                    ram[0],
                    ram[1],
                ],
                &c,
            )
            .unwrap();
            assert_eq!(s.oidc_provider_arn, None, "{half:?}");
            assert!(s.provider_rrsa.is_none(), "{half:?}");
            assert!(s.ram_role.is_some(), "upstream then used AK + AssumeRole");
            assert!(
                s.warnings[0].contains("only one of ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID")
            );
        }

        // ALICLOUD_ROLE_SESSION_EXPIRATION: not a number → ignored; < 900 →
        // the link fails per Mount; > 43200 → sent (STS refuses)
        let s = settings(&with_ram(("ALICLOUD_ROLE_SESSION_EXPIRATION", "1h")), &c).unwrap();
        let r = s.ram_role.unwrap();
        assert_eq!((r.duration_seconds, r.duration_problem), (None, None));
        assert!(s.warnings[0].contains("not a whole number of seconds: ignored"));
        for short in ["60", "-5", "0"] {
            let s = settings(&with_ram(("ALICLOUD_ROLE_SESSION_EXPIRATION", short)), &c).unwrap();
            let r = s.ram_role.unwrap();
            assert!(
                r.duration_problem.unwrap().contains("below 900 seconds"),
                "{short}"
            );
            assert!(s.warnings[0].contains("fails on every Mount"), "{short}");
        }
        let s = settings(&with_ram(("ALICLOUD_ROLE_SESSION_EXPIRATION", "86400")), &c).unwrap();
        assert_eq!(s.ram_role.unwrap().duration_seconds, Some(86400));
        assert!(s.warnings[0].contains("above 43200"));
        let s = settings(&with_ram(("ALICLOUD_ROLE_SESSION_EXPIRATION", "1800")), &c).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);

        // upstream's precedence: ALICLOUD_OIDC_PROVIDER_ARN, then account +
        // cluster, then the SDK's variable
        let s = settings(
            &[
                (
                    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                    "acs:ram::9:oidc-provider/sdk",
                ),
                ("ALICLOUD_ACCOUNT_ID", "1"),
                ("ALICLOUD_CLUSTER_ID", "c1"),
            ],
            &c,
        )
        .unwrap();
        assert_eq!(
            s.oidc_provider_arn.as_deref(),
            Some("acs:ram::1:oidc-provider/ack-rrsa-c1")
        );
    }

    #[test]
    fn our_own_config_still_stops_start_up() {
        let c = Identity {
            oidc_provider_arn: "provider".into(),
            ..Identity::default()
        };
        let e = settings(&[], &c).unwrap_err();
        assert!(e.to_string().contains("identity.oidc_provider_arn"), "{e}");
        // a variable wins over it, as documented, and is only warned about
        let s = settings(
            &[("ALICLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p")],
            &c,
        )
        .unwrap();
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn session_names_are_upstreams_once_alicloud_role_session_name_is_set() {
        let pod = PodInfo {
            namespace: "team-a".into(),
            name: "app-7d9c".into(),
            uid: "u".into(),
            service_account: "app".into(),
        };
        let c = Identity::default();
        let s = settings(&[], &c).unwrap();
        assert!(!s.session_name_set);
        assert_eq!(s.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(s.pod_session_name(&pod), "team-a.app");
        assert_eq!(s.cross_account_session_name(&pod), "team-a.app-7d9c");

        let s = settings(&[("ALICLOUD_ROLE_SESSION_NAME", "audit-key")], &c).unwrap();
        assert_eq!(s.session_name, "audit-key");
        assert_eq!(s.pod_session_name(&pod), "audit-key");
        // upstream named cross-account sessions with a constant of its own
        assert_eq!(
            s.cross_account_session_name(&pod),
            CROSS_ACCOUNT_SESSION_NAME
        );
        assert_eq!(
            CROSS_ACCOUNT_SESSION_NAME,
            "csi-secrets-store-cross-account"
        );
    }

    #[test]
    fn node_publish_secrets_with_one_key_are_skipped_and_named() {
        let secrets = |pairs: &[(&str, &str)]| -> BTreeMap<String, Sensitive<String>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Sensitive(v.to_string())))
                .collect()
        };
        assert!(matches!(
            node_publish_credentials(&secrets(&[("Access_Key", "id"), ("ACCESS_SECRET", "s")])),
            NodePublish::Found(c) if c.access_key_id == "id" && c.security_token.is_none()
        ));
        assert!(matches!(
            node_publish_credentials(&secrets(&[("access_key", "id")])),
            NodePublish::Half {
                present: "access_key",
                absent: "access_secret"
            }
        ));
        assert!(matches!(
            node_publish_credentials(&secrets(&[("access_secret", "s"), ("access_key", " ")])),
            NodePublish::Half {
                present: "access_secret",
                absent: "access_key"
            }
        ));
        assert!(matches!(
            node_publish_credentials(&secrets(&[("other", "x")])),
            NodePublish::Absent
        ));
    }

    #[test]
    fn role_arns() {
        assert!(check_role_arn("acs:ram::1234567890123456:role/team-a-app").is_ok());
        for bad in [
            "role/x",
            "acs:ram::abc:role/x",
            "acs:ram::1:role/",
            "acs:ram::1:user/x",
            "acs:ram::1:role/a b",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }
}
