//! Who may sign requests, what each caller may read, and the credentials STS
//! and the metadata server issue.
//!
//! Resources are named `<product>:<type>/<name>` (`kms:secret/app/db`,
//! `oos:parameter/db/password`); a principal holds allow patterns where `*`
//! matches any run of characters. Principals are seed access keys (their own
//! allow list) and assumed roles (the role's current allow list, looked up at
//! request time, as RAM evaluates the role's policies).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::seed::{AccessKey, OidcProvider, Role, SeedError};

/// Expired temporary credentials are remembered this long, so that requests
/// signed with them get `InvalidSecurityToken.Expired` rather than
/// `InvalidAccessKeyId.NotFound`.
const EXPIRED_RETENTION: time::Duration = time::Duration::minutes(30);

/// Upper bound on live temporary credentials; beyond it the ones closest to
/// expiry are forgotten.
const MAX_TEMPORARY: usize = 100_000;

/// How many issued credentials [`Iam::issued`] remembers.
const ISSUED_LOG_CAPACITY: usize = 10_000;

/// What a principal may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Permissions {
    allow: Vec<String>,
}

impl Permissions {
    pub fn allowing(patterns: Vec<String>) -> Self {
        Permissions { allow: patterns }
    }

    pub fn allows(&self, resource: &str) -> bool {
        self.allow.iter().any(|p| glob_match(p, resource))
    }
}

/// What kind of identity signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalKind {
    /// A seed access key, with its own allow list.
    AccessKey {
        id: String,
        permissions: Permissions,
    },
    /// Temporary credentials of an assumed role.
    Role { arn: String },
}

/// The identity a verified request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// For logs: `access-key/testid` or `assumed-role/<role>/<session>`.
    pub name: String,
    pub kind: PrincipalKind,
}

/// A signing key and the principal it authenticates.
#[derive(Clone)]
pub(crate) struct Credential {
    pub access_key_id: String,
    pub secret: String,
    pub security_token: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    /// Issued by STS or the metadata server (not from the seed).
    pub temporary: bool,
    pub principal: Arc<Principal>,
}

impl From<&AccessKey> for Credential {
    fn from(key: &AccessKey) -> Self {
        Credential {
            access_key_id: key.id.clone(),
            secret: key.secret.clone(),
            security_token: key.security_token.clone(),
            expires_at: key.expires_at,
            temporary: false,
            principal: Arc::new(Principal {
                name: format!("access-key/{}", key.id),
                kind: PrincipalKind::AccessKey {
                    id: key.id.clone(),
                    permissions: Permissions::allowing(key.allow.clone()),
                },
            }),
        }
    }
}

/// The credentials the emulator accepts, by AccessKeyId.
#[derive(Default)]
pub(crate) struct Identities {
    keys: HashMap<String, Arc<Credential>>,
}

impl Identities {
    pub fn from_access_keys(keys: &[AccessKey]) -> Self {
        let mut identities = Identities::default();
        for key in keys {
            identities.insert(Credential::from(key));
        }
        identities
    }

    pub fn get(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        self.keys.get(access_key_id).cloned()
    }

    /// Adds or replaces a credential.
    pub fn insert(&mut self, credential: Credential) {
        self.keys
            .insert(credential.access_key_id.clone(), Arc::new(credential));
    }

    /// Forgets temporary credentials expired before `cutoff`, then, if more
    /// than `cap` remain, those closest to expiry.
    fn prune(&mut self, cutoff: OffsetDateTime, cap: usize) {
        let keys = &mut self.keys;
        keys.retain(|_, c| !c.temporary || c.expires_at.is_none_or(|at| at >= cutoff));
        let mut temporary: Vec<(OffsetDateTime, String)> = keys
            .values()
            .filter(|c| c.temporary)
            .map(|c| (c.expires_at.unwrap_or(cutoff), c.access_key_id.clone()))
            .collect();
        if temporary.len() > cap {
            temporary.sort();
            for (_, id) in &temporary[..temporary.len() - cap] {
                keys.remove(id);
            }
        }
    }

    /// Makes matching temporary credentials expire at `now`; returns how many.
    fn expire(
        &mut self,
        now: OffsetDateTime,
        matches: impl Fn(&Credential) -> bool,
    ) -> Vec<String> {
        let mut expired = Vec::new();
        for credential in self.keys.values_mut() {
            if credential.temporary
                && credential.expires_at.is_none_or(|at| at > now)
                && matches(credential)
            {
                let mut updated = (**credential).clone();
                updated.expires_at = Some(now);
                expired.push(updated.access_key_id.clone());
                *credential = Arc::new(updated);
            }
        }
        expired
    }
}

/// Who issued a temporary credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialSource {
    /// STS `AssumeRole`.
    AssumeRole,
    /// STS `AssumeRoleWithOIDC`.
    AssumeRoleWithOIDC,
    /// The ECS metadata server.
    Imds,
}

/// A credential issued by STS or the metadata server, for tests to inspect
/// (admin listings leave out the secret and the token).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCredential {
    /// `STS.…`.
    pub access_key_id: String,
    /// The AccessKeySecret (test data).
    #[serde(skip)]
    pub access_key_secret: String,
    /// The SecurityToken (test data).
    #[serde(skip)]
    pub security_token: String,
    /// The role the credential acts as (as configured).
    pub role_arn: String,
    /// `RoleSessionName` (for the metadata server: the instance id).
    pub session_name: String,
    /// Which API issued it.
    pub source: CredentialSource,
    /// Who asked: `access-key/<id>`, `assumed-role/<role>/<session>`, the
    /// OIDC token's `sub`, or `None` for the metadata server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The `ExternalId` sent with `AssumeRole`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The `Policy` sent (accepted, not enforced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it expires (earlier if it was expired on purpose).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("source", &self.source)
            .field("caller", &self.caller)
            .field("external_id", &self.external_id.as_ref().map(|_| "<set>"))
            .field("policy", &self.policy.as_ref().map(|_| "<set>"))
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What to issue a credential for.
pub(crate) struct IssueRequest<'a> {
    pub role: &'a Role,
    pub session_name: String,
    /// `DurationSeconds` (or the metadata server's default).
    pub requested: Duration,
    pub source: CredentialSource,
    pub caller: Option<String>,
    pub external_id: Option<String>,
    pub policy: Option<String>,
}

/// Roles, OIDC providers and every credential the emulator accepts.
pub(crate) struct Iam {
    pub identities: Identities,
    roles: HashMap<String, Role>,
    providers: HashMap<String, OidcProvider>,
    lifetime_override: Option<Duration>,
    issued: VecDeque<IssuedCredential>,
    issued_count: u64,
}

/// Roles and providers are looked up by lower-cased ARN: RAM names are
/// case-insensitive.
fn key(arn: &str) -> String {
    arn.to_ascii_lowercase()
}

impl Iam {
    pub fn new(access_keys: &[AccessKey], roles: &[Role], providers: &[OidcProvider]) -> Self {
        Iam {
            identities: Identities::from_access_keys(access_keys),
            roles: roles.iter().map(|r| (key(&r.arn), r.clone())).collect(),
            providers: providers.iter().map(|p| (key(&p.arn), p.clone())).collect(),
            lifetime_override: None,
            issued: VecDeque::new(),
            issued_count: 0,
        }
    }

    pub fn role(&self, arn: &str) -> Option<Role> {
        self.roles.get(&key(arn)).cloned()
    }

    pub fn oidc_provider(&self, arn: &str) -> Option<OidcProvider> {
        self.providers.get(&key(arn)).cloned()
    }

    /// The OIDC providers, in no particular order.
    pub fn oidc_providers(&self) -> Vec<OidcProvider> {
        self.providers.values().cloned().collect()
    }

    /// Adds or replaces a role; the OIDC providers it trusts must exist.
    pub fn put_role(&mut self, role: Role) -> Result<(), SeedError> {
        role.validate()?;
        for trust in &role.oidc_trust {
            if self.oidc_provider(&trust.provider_arn).is_none() {
                return Err(SeedError::Invalid(format!(
                    "role {:?} trusts OIDC provider {:?}, which does not exist",
                    role.arn, trust.provider_arn
                )));
            }
        }
        self.roles.insert(key(&role.arn), role);
        Ok(())
    }

    /// Adds or replaces an OIDC provider.
    pub fn put_oidc_provider(&mut self, provider: OidcProvider) -> Result<(), SeedError> {
        provider.validate()?;
        self.providers.insert(key(&provider.arn), provider);
        Ok(())
    }

    /// Whether `principal` may read `resource` now.
    pub fn allows(&self, principal: &Principal, resource: &str) -> bool {
        match &principal.kind {
            PrincipalKind::AccessKey { permissions, .. } => permissions.allows(resource),
            PrincipalKind::Role { arn, .. } => self
                .role(arn)
                .is_some_and(|role| role.allow.iter().any(|p| glob_match(p, resource))),
        }
    }

    /// Overrides the lifetime of every credential issued from now on.
    pub fn set_lifetime_override(&mut self, lifetime: Option<Duration>) {
        self.lifetime_override = lifetime;
    }

    pub fn lifetime_override(&self) -> Option<Duration> {
        self.lifetime_override
    }

    /// How long a credential for `role` asked to last `requested` will last:
    /// the override, else the role's `credential_lifetime`, else `requested`;
    /// whole seconds, at least one.
    pub fn lifetime_for(&self, role: &Role, requested: Duration) -> Duration {
        let lifetime = self
            .lifetime_override()
            .or(role.credential_lifetime)
            .unwrap_or(requested);
        Duration::from_secs(lifetime.as_secs().max(1))
    }

    /// Issues and registers a temporary credential acting as `request.role`.
    pub fn issue(&mut self, request: IssueRequest<'_>, now: OffsetDateTime) -> IssuedCredential {
        let issued_at = now.replace_nanosecond(0).expect("0 is valid");
        let lifetime = self.lifetime_for(request.role, request.requested);
        let expires_at = issued_at + lifetime;
        let issued = IssuedCredential {
            access_key_id: format!("STS.{}", random_alphanumeric(24)),
            access_key_secret: random_alphanumeric(44),
            security_token: format!(
                "CAIS{}",
                base64::engine::general_purpose::STANDARD.encode(random_bytes(100))
            ),
            role_arn: request.role.arn.clone(),
            session_name: request.session_name,
            source: request.source,
            caller: request.caller,
            external_id: request.external_id,
            policy: request.policy,
            issued_at,
            expires_at,
        };
        let role_name = request.role.name();
        self.identities.insert(Credential {
            access_key_id: issued.access_key_id.clone(),
            secret: issued.access_key_secret.clone(),
            security_token: Some(issued.security_token.clone()),
            expires_at: Some(expires_at),
            temporary: true,
            principal: Arc::new(Principal {
                name: format!("assumed-role/{role_name}/{}", issued.session_name),
                kind: PrincipalKind::Role {
                    arn: request.role.arn.clone(),
                },
            }),
        });
        if self.issued.len() == ISSUED_LOG_CAPACITY {
            self.issued.pop_front();
        }
        self.issued.push_back(issued.clone());
        self.issued_count += 1;
        if self.issued_count.is_multiple_of(1024) {
            self.identities
                .prune(now - EXPIRED_RETENTION, MAX_TEMPORARY);
        }
        tracing::info!(access_key_id = %issued.access_key_id, role = %issued.role_arn,
            session = %issued.session_name, source = ?issued.source,
            lifetime_s = lifetime.as_secs(), "issued temporary credentials");
        issued
    }

    /// The credentials issued so far (the most recent 10,000), oldest first.
    pub fn issued(&self) -> Vec<IssuedCredential> {
        self.issued.iter().cloned().collect()
    }

    /// Makes every live temporary credential (of `role_arn`, if given)
    /// expire now; returns how many were affected.
    pub fn expire(&mut self, role_arn: Option<&str>, now: OffsetDateTime) -> usize {
        let wanted = role_arn.map(key);
        let expired = self
            .identities
            .expire(now, |credential| match &credential.principal.kind {
                PrincipalKind::Role { arn, .. } => wanted.as_deref().is_none_or(|w| key(arn) == w),
                PrincipalKind::AccessKey { .. } => false,
            });
        for entry in self.issued.iter_mut() {
            if expired.contains(&entry.access_key_id) {
                entry.expires_at = now;
            }
        }
        expired.len()
    }
}

/// Whether a role trusts `caller` for `AssumeRole`.
pub(crate) fn trusts_caller(role: &Role, caller: &Principal) -> bool {
    match &caller.kind {
        PrincipalKind::AccessKey { id, .. } => {
            role.trusted_access_keys.iter().any(|p| glob_match(p, id))
        }
        PrincipalKind::Role { arn, .. } => {
            let arn = key(arn);
            role.trusted_roles.iter().any(|p| glob_match(&key(p), &arn))
        }
    }
}

/// Whether a role trusts tokens of `provider_arn` with subject `sub`.
pub(crate) fn trusts_subject(role: &Role, provider_arn: &str, sub: &str) -> bool {
    let provider = key(provider_arn);
    role.oidc_trust.iter().any(|trust| {
        key(&trust.provider_arn) == provider && trust.subjects.iter().any(|s| glob_match(s, sub))
    })
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Matches `text` against `pattern`, where `*` stands for any run of
/// characters (including `/` and nothing) and everything else is literal.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much of `text` it has swallowed so far:
    // on a mismatch we let it swallow one more byte and retry.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_ram_resource_patterns() {
        for (pattern, text, want) in [
            ("*", "kms:secret/a", true),
            ("*", "", true),
            ("kms:secret/*", "kms:secret/app/db", true),
            ("kms:secret/*", "oos:parameter/a", false),
            ("kms:secret/test", "kms:secret/test", true),
            ("kms:secret/test", "kms:secret/test2", false),
            ("kms:secret/te*t", "kms:secret/test", true),
            ("kms:secret/te*t", "kms:secret/tesx", false),
            ("*/db/*", "oos:parameter/db/password", true),
            ("*a*b*c", "xxaxxbxxbxc", true),
            ("a**", "a", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    fn iam() -> Iam {
        Iam::new(
            &[
                AccessKey::new("a", "b"),
                AccessKey::new("n", "m").allowing(["kms:secret/app/*"]),
            ],
            &[Role::new("acs:ram::1:role/Reader")
                .allowing(["kms:secret/team-a/*"])
                .trusting_access_keys(["a"])
                .trusting_roles(["acs:ram::1:role/other"])],
            &[],
        )
    }

    fn principal(iam: &Iam, id: &str) -> Arc<Principal> {
        iam.identities.get(id).unwrap().principal.clone()
    }

    #[test]
    fn access_keys_default_to_everything_and_can_be_narrowed() {
        let iam = iam();
        assert!(iam.allows(&principal(&iam, "a"), "oos:parameter/x"));
        let narrow = principal(&iam, "n");
        assert!(iam.allows(&narrow, "kms:secret/app/x"));
        assert!(!iam.allows(&narrow, "kms:secret/other"));
        assert!(!Permissions::allowing(Vec::new()).allows("kms:secret/x"));
    }

    fn issue(iam: &mut Iam, arn: &str, requested: u64, now: OffsetDateTime) -> IssuedCredential {
        let role = iam.role(arn).unwrap();
        iam.issue(
            IssueRequest {
                role: &role,
                session_name: "s".into(),
                requested: Duration::from_secs(requested),
                source: CredentialSource::AssumeRole,
                caller: None,
                external_id: None,
                policy: None,
            },
            now,
        )
    }

    #[test]
    fn issued_credentials_act_as_the_role_with_its_current_permissions() {
        let mut iam = iam();
        let now = OffsetDateTime::now_utc();
        // Looked up case-insensitively, as RAM role names are.
        let issued = issue(&mut iam, "acs:ram::1:role/reader", 900, now);
        assert!(issued.access_key_id.starts_with("STS."));
        assert!(issued.security_token.starts_with("CAIS"));
        assert_eq!(
            issued.expires_at - issued.issued_at,
            time::Duration::seconds(900)
        );
        let credential = iam.identities.get(&issued.access_key_id).unwrap();
        assert_eq!(
            credential.security_token.as_deref(),
            Some(&*issued.security_token)
        );
        assert!(credential.temporary);
        let p = credential.principal.clone();
        assert_eq!(p.name, "assumed-role/Reader/s");
        assert!(iam.allows(&p, "kms:secret/team-a/db"));
        assert!(!iam.allows(&p, "kms:secret/team-b/db"));
        iam.put_role(Role::new("acs:ram::1:role/Reader").allowing(["kms:secret/team-b/*"]))
            .unwrap();
        assert!(!iam.allows(&p, "kms:secret/team-a/db"));
        assert!(iam.allows(&p, "kms:secret/team-b/db"));
    }

    #[test]
    fn lifetimes_come_from_the_override_then_the_role_then_the_request() {
        let mut iam = iam();
        let role = iam.role("acs:ram::1:role/Reader").unwrap();
        assert_eq!(
            iam.lifetime_for(&role, Duration::from_secs(1800)).as_secs(),
            1800
        );
        let short = role
            .clone()
            .with_credential_lifetime(Duration::from_secs(5));
        assert_eq!(
            iam.lifetime_for(&short, Duration::from_secs(1800))
                .as_secs(),
            5
        );
        iam.set_lifetime_override(Some(Duration::from_millis(2500)));
        assert_eq!(
            iam.lifetime_for(&short, Duration::from_secs(1800))
                .as_secs(),
            2
        );
        iam.set_lifetime_override(Some(Duration::from_millis(10)));
        assert_eq!(
            iam.lifetime_for(&role, Duration::from_secs(1800)).as_secs(),
            1
        );
    }

    #[test]
    fn credentials_can_be_expired_now_per_role() {
        let mut iam = iam();
        iam.put_role(Role::new("acs:ram::1:role/other")).unwrap();
        let now = OffsetDateTime::now_utc();
        let a = issue(&mut iam, "acs:ram::1:role/Reader", 3600, now);
        let b = issue(&mut iam, "acs:ram::1:role/other", 3600, now);
        assert_eq!(iam.expire(Some("acs:ram::1:role/READER"), now), 1);
        assert_eq!(
            iam.identities.get(&a.access_key_id).unwrap().expires_at,
            Some(now)
        );
        assert!(iam.identities.get(&b.access_key_id).unwrap().expires_at > Some(now));
        assert_eq!(iam.expire(None, now), 1, "only b was still live");
        assert!(iam.issued().iter().all(|c| c.expires_at == now));
        assert!(
            iam.identities.get("a").unwrap().expires_at.is_none(),
            "seed keys stay"
        );
    }

    #[test]
    fn expired_and_excess_temporaries_are_pruned() {
        let mut iam = iam();
        let now = OffsetDateTime::now_utc();
        let old = issue(
            &mut iam,
            "acs:ram::1:role/Reader",
            900,
            now - time::Duration::hours(2),
        );
        let fresh: Vec<_> = (0..3)
            .map(|i| issue(&mut iam, "acs:ram::1:role/Reader", 900 + i, now))
            .collect();
        iam.identities.prune(now - EXPIRED_RETENTION, 2);
        assert!(iam.identities.get(&old.access_key_id).is_none());
        assert!(
            iam.identities.get(&fresh[0].access_key_id).is_none(),
            "closest to expiry"
        );
        assert!(iam.identities.get(&fresh[2].access_key_id).is_some());
        assert!(iam.identities.get("a").is_some());
    }

    #[test]
    fn trust_lists_name_keys_and_roles() {
        let iam = iam();
        let role = iam.role("acs:ram::1:role/Reader").unwrap();
        assert!(trusts_caller(&role, &principal(&iam, "a")));
        assert!(!trusts_caller(&role, &principal(&iam, "n")));
        let chained = Principal {
            name: "x".into(),
            kind: PrincipalKind::Role {
                arn: "acs:ram::1:role/OTHER".into(),
            },
        };
        assert!(trusts_caller(&role, &chained));
        let oidc = Role::new("acs:ram::1:role/x").trusting_oidc(
            "acs:ram::1:oidc-provider/p",
            ["system:serviceaccount:team-a:*"],
        );
        assert!(trusts_subject(
            &oidc,
            "acs:ram::1:oidc-provider/P",
            "system:serviceaccount:team-a:app"
        ));
        assert!(!trusts_subject(
            &oidc,
            "acs:ram::1:oidc-provider/p",
            "system:serviceaccount:team-b:app"
        ));
        assert!(!trusts_subject(
            &oidc,
            "acs:ram::1:oidc-provider/q",
            "system:serviceaccount:team-a:app"
        ));
    }
}
