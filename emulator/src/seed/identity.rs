//! The identity part of the seed: RAM roles, OIDC providers, the ECS
//! metadata server and the Kubernetes service accounts.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SeedError, invalid};

/// Default and largest `DurationSeconds` STS accepts for a role (`MaxSessionDuration`).
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;

/// The smallest `DurationSeconds` STS accepts.
pub const MIN_SESSION_DURATION: u32 = 900;

/// The largest `MaxSessionDuration` a role can have.
pub const MAX_SESSION_DURATION_LIMIT: u32 = 43200;

/// The audience Alibaba Cloud STS expects in OIDC tokens by default.
pub const STS_AUDIENCE: &str = "sts.aliyuncs.com";

/// The ServiceAccount annotation ACK RRSA reads the role from.
pub const ROLE_ARN_ANNOTATION: &str = "ack.alibabacloud.com/role-arn";

/// A RAM role that STS `AssumeRole`, `AssumeRoleWithOIDC` and the metadata
/// server issue credentials for.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// `acs:ram::<account>:role/<name>` (the name is matched case-insensitively).
    pub arn: String,
    /// Resources the role's credentials may read (`kms:secret/<name>`,
    /// `oos:parameter/<name>`, `*` globs). Default: nothing, as a role
    /// without policies.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Access key ids that may `AssumeRole` it (`*` globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_access_keys: Vec<String>,
    /// Role ARNs whose credentials may `AssumeRole` it (role chaining,
    /// cross-account; `*` globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_roles: Vec<String>,
    /// OIDC federation: which provider's tokens, with which subjects, may
    /// `AssumeRoleWithOIDC` it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_trust: Vec<OidcTrust>,
    /// When set, `AssumeRole` must pass this `ExternalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The largest `DurationSeconds` (900 to 43200; default 3600).
    #[serde(default = "default_max_session_duration")]
    pub max_session_duration: u32,
    /// Emulator knob: credentials issued for this role (by STS or the
    /// metadata server) last this long, whatever `DurationSeconds` asked
    /// (e.g. `"5s"`), so that tests can watch them expire.
    #[serde(
        default,
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub credential_lifetime: Option<Duration>,
}

fn default_max_session_duration() -> u32 {
    DEFAULT_MAX_SESSION_DURATION
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .field("allow", &self.allow)
            .field("trusted_access_keys", &self.trusted_access_keys)
            .field("trusted_roles", &self.trusted_roles)
            .field("oidc_trust", &self.oidc_trust)
            .field("external_id", &self.external_id.as_ref().map(|_| "<set>"))
            .field("max_session_duration", &self.max_session_duration)
            .field("credential_lifetime", &self.credential_lifetime)
            .finish()
    }
}

impl Role {
    /// A role nobody may assume yet and that may read nothing.
    pub fn new(arn: impl Into<String>) -> Self {
        Role {
            arn: arn.into(),
            allow: Vec::new(),
            trusted_access_keys: Vec::new(),
            trusted_roles: Vec::new(),
            oidc_trust: Vec::new(),
            external_id: None,
            max_session_duration: DEFAULT_MAX_SESSION_DURATION,
            credential_lifetime: None,
        }
    }

    /// Replaces the allow list (resource patterns such as `kms:secret/app/*`).
    pub fn allowing<S: Into<String>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        self.allow = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Lets these access keys `AssumeRole` it.
    pub fn trusting_access_keys<S: Into<String>>(
        mut self,
        ids: impl IntoIterator<Item = S>,
    ) -> Self {
        self.trusted_access_keys
            .extend(ids.into_iter().map(Into::into));
        self
    }

    /// Lets credentials of these roles `AssumeRole` it.
    pub fn trusting_roles<S: Into<String>>(mut self, arns: impl IntoIterator<Item = S>) -> Self {
        self.trusted_roles.extend(arns.into_iter().map(Into::into));
        self
    }

    /// Lets tokens of `provider_arn` whose `sub` matches one of `subjects`
    /// (`*` globs, e.g. `system:serviceaccount:team-a:*`) `AssumeRoleWithOIDC` it.
    pub fn trusting_oidc<S: Into<String>>(
        mut self,
        provider_arn: impl Into<String>,
        subjects: impl IntoIterator<Item = S>,
    ) -> Self {
        self.oidc_trust.push(OidcTrust {
            provider_arn: provider_arn.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Requires this `ExternalId` from `AssumeRole` callers.
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Sets `MaxSessionDuration` (seconds).
    pub fn with_max_session_duration(mut self, seconds: u32) -> Self {
        self.max_session_duration = seconds;
        self
    }

    /// Makes every credential issued for the role last `lifetime`.
    pub fn with_credential_lifetime(mut self, lifetime: Duration) -> Self {
        self.credential_lifetime = Some(lifetime);
        self
    }

    /// The role name from the ARN (`acs:ram::1:role/name` → `name`).
    pub fn name(&self) -> &str {
        parse_role_arn(&self.arn).map_or("", |(_, name)| name)
    }

    /// The account from the ARN.
    pub fn account(&self) -> &str {
        parse_role_arn(&self.arn).map_or("", |(account, _)| account)
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        if parse_role_arn(&self.arn).is_none() {
            return invalid(format!(
                "role {:?}: the ARN must look like acs:ram::<account>:role/<name>",
                self.arn
            ));
        }
        if !(MIN_SESSION_DURATION..=MAX_SESSION_DURATION_LIMIT).contains(&self.max_session_duration)
        {
            return invalid(format!(
                "role {:?}: max_session_duration must be {MIN_SESSION_DURATION} to {MAX_SESSION_DURATION_LIMIT} seconds",
                self.arn
            ));
        }
        if self.credential_lifetime.is_some_and(|d| d.as_secs() == 0) {
            return invalid(format!(
                "role {:?}: credential_lifetime must be at least 1s",
                self.arn
            ));
        }
        if let Some(external_id) = &self.external_id
            && !valid_external_id(external_id)
        {
            return invalid(format!(
                "role {:?}: external_id must be 2 to 1224 characters of [A-Za-z0-9_+=,.@:/-]",
                self.arn
            ));
        }
        for trust in &self.oidc_trust {
            if parse_oidc_provider_arn(&trust.provider_arn).is_none() {
                return invalid(format!(
                    "role {:?}: oidc_trust provider_arn {:?} must look like acs:ram::<account>:oidc-provider/<name>",
                    self.arn, trust.provider_arn
                ));
            }
            if trust.subjects.is_empty() {
                return invalid(format!(
                    "role {:?}: oidc_trust for {:?} lists no subjects",
                    self.arn, trust.provider_arn
                ));
            }
        }
        Ok(())
    }
}

/// Which OIDC tokens may assume a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcTrust {
    /// The provider whose tokens are trusted.
    pub provider_arn: String,
    /// Allowed `sub` claims, e.g. `system:serviceaccount:team-a:app` (`*` globs).
    pub subjects: Vec<String>,
}

/// An OIDC identity provider registered in RAM (an ACK cluster's RRSA issuer).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// `acs:ram::<account>:oidc-provider/<name>`.
    pub arn: String,
    /// The `iss` claim tokens must carry.
    pub issuer: String,
    /// Client ids: a token's `aud` must contain one. Default `["sts.aliyuncs.com"]`.
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
    /// When set, tokens must be HS256-signed with this key (UTF-8 bytes).
    /// When absent the token signature is not checked at all (any `alg`,
    /// including `none` and real RS256 kubelet tokens), only its claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<String>,
}

fn default_audiences() -> Vec<String> {
    vec![STS_AUDIENCE.to_string()]
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("arn", &self.arn)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl OidcProvider {
    /// A provider accepting audience `sts.aliyuncs.com`, signatures unchecked.
    pub fn new(arn: impl Into<String>, issuer: impl Into<String>) -> Self {
        OidcProvider {
            arn: arn.into(),
            issuer: issuer.into(),
            audiences: default_audiences(),
            hmac_key: None,
        }
    }

    /// Replaces the accepted audiences (client ids).
    pub fn with_audiences<S: Into<String>>(
        mut self,
        audiences: impl IntoIterator<Item = S>,
    ) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Requires HS256 signatures with `key`.
    pub fn with_hmac_key(mut self, key: impl Into<String>) -> Self {
        self.hmac_key = Some(key.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        if parse_oidc_provider_arn(&self.arn).is_none() {
            return invalid(format!(
                "OIDC provider {:?}: the ARN must look like acs:ram::<account>:oidc-provider/<name>",
                self.arn
            ));
        }
        if self.issuer.is_empty() {
            return invalid(format!("OIDC provider {:?} needs an issuer", self.arn));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return invalid(format!(
                "OIDC provider {:?} needs non-empty audiences",
                self.arn
            ));
        }
        if self.hmac_key.as_deref() == Some("") {
            return invalid(format!(
                "OIDC provider {:?} has an empty hmac_key",
                self.arn
            ));
        }
        Ok(())
    }
}

/// The ECS instance metadata server (`100.100.100.200`) the emulator plays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImdsSeed {
    /// The instance's RAM role (a role of the seed); none: no role attached
    /// (`ram/security-credentials/` answers 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `region-id`; default: the seed's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `instance-id`; default `i-emulator000000000001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `zone-id`; default `<region>-a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// Hardened (IMDSv2-only) mode: GETs without a token get 403.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hardened: bool,
    /// `true`: `PUT /latest/api/token` answers 404, as a metadata server
    /// without IMDSv2 would (clients must fall back to v1).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tokens_unavailable: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ImdsSeed {
    /// A metadata server whose instance has `role_arn` attached.
    pub fn with_role(role_arn: impl Into<String>) -> Self {
        ImdsSeed {
            role_arn: Some(role_arn.into()),
            ..ImdsSeed::default()
        }
    }

    /// Sets `region-id`.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets `instance-id`.
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Sets `zone-id`.
    pub fn with_zone_id(mut self, zone: impl Into<String>) -> Self {
        self.zone_id = Some(zone.into());
        self
    }

    /// Hardened mode (token-less GETs get 403).
    pub fn hardened(mut self) -> Self {
        self.hardened = true;
        self
    }

    /// No token endpoint (IMDSv1 only).
    pub fn without_tokens(mut self) -> Self {
        self.tokens_unavailable = true;
        self
    }
}

/// The Kubernetes API the emulator plays.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSeed {
    /// The bearer token requests must carry; none: any non-empty bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
}

impl fmt::Debug for KubernetesSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesSeed")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A Kubernetes ServiceAccount served by `GET /api/v1/namespaces/{ns}/serviceaccounts/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.annotations`, e.g. `ack.alibabacloud.com/role-arn`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ServiceAccount {
    /// A service account without annotations.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
            annotations: BTreeMap::new(),
        }
    }

    /// Adds an annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Annotates it with `ack.alibabacloud.com/role-arn: <arn>`.
    pub fn with_role_arn(self, arn: impl Into<String>) -> Self {
        self.with_annotation(ROLE_ARN_ANNOTATION, arn)
    }

    /// `system:serviceaccount:<namespace>:<name>`, the `sub` of its tokens.
    pub fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        let ok = |s: &str| !s.is_empty() && !s.contains('/');
        if !ok(&self.namespace) || !ok(&self.name) {
            return invalid(format!(
                "service account {:?}/{:?}: namespace and name must be non-empty and without '/'",
                self.namespace, self.name
            ));
        }
        Ok(())
    }
}

/// `(account, name)` of `acs:ram::<account>:role/<name>`.
pub(crate) fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    parse_ram_arn(arn, "role/")
}

/// `(account, name)` of `acs:ram::<account>:oidc-provider/<name>`.
pub(crate) fn parse_oidc_provider_arn(arn: &str) -> Option<(&str, &str)> {
    parse_ram_arn(arn, "oidc-provider/")
}

fn parse_ram_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix(kind)?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    let account_ok = !account.is_empty() && account.bytes().all(|b| b.is_ascii_digit());
    (name_ok && account_ok).then_some((account, name))
}

/// `ExternalId`: 2 to 1224 characters of `[\w+=,.@:/-]`.
pub(crate) fn valid_external_id(value: &str) -> bool {
    (2..=1224).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

/// Checks the identity tables of a seed against each other.
pub(crate) fn validate(
    roles: &[Role],
    providers: &[OidcProvider],
    imds: &ImdsSeed,
    service_accounts: &[ServiceAccount],
) -> Result<(), SeedError> {
    let mut arns = HashSet::new();
    for provider in providers {
        provider.validate()?;
        if !arns.insert(provider.arn.to_ascii_lowercase()) {
            return invalid(format!("OIDC provider {:?} is listed twice", provider.arn));
        }
    }
    let provider_arns = arns;
    let mut arns = HashSet::new();
    for role in roles {
        role.validate()?;
        if !arns.insert(role.arn.to_ascii_lowercase()) {
            return invalid(format!("role {:?} is listed twice", role.arn));
        }
        for trust in &role.oidc_trust {
            if !provider_arns.contains(&trust.provider_arn.to_ascii_lowercase()) {
                return invalid(format!(
                    "role {:?} trusts OIDC provider {:?}, which is not in oidc_providers",
                    role.arn, trust.provider_arn
                ));
            }
        }
    }
    if let Some(role_arn) = &imds.role_arn
        && !arns.contains(&role_arn.to_ascii_lowercase())
    {
        return invalid(format!(
            "imds.role_arn {role_arn:?} is not one of the seed's roles"
        ));
    }
    for (name, value) in [
        ("region", &imds.region),
        ("instance_id", &imds.instance_id),
        ("zone_id", &imds.zone_id),
    ] {
        if value.as_deref() == Some("") {
            return invalid(format!("imds.{name} must not be empty"));
        }
    }
    let mut names = HashSet::new();
    for account in service_accounts {
        account.validate()?;
        if !names.insert((account.namespace.as_str(), account.name.as_str())) {
            return invalid(format!(
                "service account {}/{} is listed twice",
                account.namespace, account.name
            ));
        }
    }
    Ok(())
}

/// Durations written as text (`"30s"`, `"1h 5m"`), as `humantime` reads them.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim())
            .map_err(|e| format!("invalid duration {text:?}: {e}"))
    }

    pub fn format(duration: Duration) -> String {
        humantime::format_duration(duration).to_string()
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(d) => serializer.serialize_str(&super::format(*d)),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(deserializer)?;
            text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_parsed_strictly() {
        assert_eq!(
            parse_role_arn("acs:ram::1234567890123456:role/team-a-app"),
            Some(("1234567890123456", "team-a-app"))
        );
        assert_eq!(
            parse_oidc_provider_arn("acs:ram::1:oidc-provider/ack-rrsa-c0ffee"),
            Some(("1", "ack-rrsa-c0ffee"))
        );
        for bad in [
            "acs:ram::1:user/x",
            "acs:ram:cn-hangzhou:1:role/x",
            "acs:ram::abc:role/x",
            "acs:ram::1:role/",
            "acs:ram::1:role/a b",
            "role/x",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn external_ids_follow_the_documented_alphabet() {
        assert!(valid_external_id("abc-123:/=+,.@_"));
        assert!(!valid_external_id("a"));
        assert!(!valid_external_id("has space"));
        assert!(!valid_external_id(&"x".repeat(1225)));
    }

    #[test]
    fn role_names_and_accounts_come_from_the_arn() {
        let role = Role::new("acs:ram::42:role/node");
        assert_eq!((role.account(), role.name()), ("42", "node"));
    }

    #[test]
    fn durations_read_as_text() {
        assert_eq!(duration_text::parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            duration_text::parse("1h 30m"),
            Ok(Duration::from_secs(5400))
        );
        assert!(duration_text::parse("soon").is_err());
        assert_eq!(duration_text::format(Duration::from_secs(90)), "1m 30s");
    }
}
