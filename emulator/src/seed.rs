//! The seed: the access keys, KMS secrets and OOS parameters an emulator
//! serves, and the identities around them (roles, OIDC providers, the
//! metadata server, Kubernetes service accounts).

mod identity;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use identity::{
    DEFAULT_MAX_SESSION_DURATION, ImdsSeed, KubernetesSeed, MAX_SESSION_DURATION_LIMIT,
    MIN_SESSION_DURATION, OidcProvider, OidcTrust, ROLE_ARN_ANNOTATION, Role, STS_AUDIENCE,
    ServiceAccount,
};
pub(crate) use identity::{
    duration_text, parse_oidc_provider_arn, parse_role_arn, valid_external_id,
};

/// Region the emulator claims to be in when the seed names none.
pub const DEFAULT_REGION: &str = "cn-hangzhou";

/// The stage KMS returns when a request names neither a version nor a stage.
pub const ACS_CURRENT: &str = "ACSCurrent";

/// The stage KMS gives the version that was current before the last rotation.
pub const ACS_PREVIOUS: &str = "ACSPrevious";

/// Everything the emulator serves, usually read from a TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Region of the emulated endpoints, checked against KMS secret ARNs.
    #[serde(default = "default_region")]
    pub region: String,
    /// Account id checked against KMS secret ARNs; `None` accepts any account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Access keys that may sign requests.
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
    /// KMS (Secrets Manager) content.
    #[serde(default)]
    pub kms: KmsSeed,
    /// OOS (parameter store) content.
    #[serde(default)]
    pub oos: OosSeed,
    /// RAM roles for STS and the metadata server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// OIDC identity providers for `AssumeRoleWithOIDC`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_providers: Vec<OidcProvider>,
    /// The ECS metadata server.
    #[serde(default, skip_serializing_if = "is_default")]
    pub imds: ImdsSeed,
    /// The Kubernetes API.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kubernetes: KubernetesSeed,
    /// ServiceAccounts served by the Kubernetes API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccount>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_region() -> String {
    DEFAULT_REGION.to_string()
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            region: default_region(),
            account_id: None,
            access_keys: Vec::new(),
            kms: KmsSeed::default(),
            oos: OosSeed::default(),
            roles: Vec::new(),
            oidc_providers: Vec::new(),
            imds: ImdsSeed::default(),
            kubernetes: KubernetesSeed::default(),
            service_accounts: Vec::new(),
        }
    }
}

/// Why a seed could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The seed file could not be read.
    #[error("cannot read seed file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid seed document.
    #[error("invalid seed TOML")]
    Parse(#[from] toml::de::Error),
    /// The document parses but is inconsistent (duplicates, bad base64...).
    #[error("invalid seed: {0}")]
    Invalid(String),
}

impl Seed {
    /// Parses and validates a TOML seed document.
    pub fn from_toml_str(text: &str) -> Result<Seed, SeedError> {
        let seed: Seed = toml::from_str(text)?;
        seed.validate()?;
        Ok(seed)
    }

    /// Reads, parses and validates a TOML seed file.
    pub fn load(path: impl AsRef<Path>) -> Result<Seed, SeedError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Seed::from_toml_str(&text)
    }

    /// Renders the seed as TOML (secrets included: it is test data).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a seed always serialises")
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the account id that KMS secret ARNs must carry.
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }

    /// Adds an access key.
    pub fn with_access_key(mut self, key: AccessKey) -> Self {
        self.access_keys.push(key);
        self
    }

    /// Adds a KMS secret.
    pub fn with_kms_secret(mut self, secret: KmsSecret) -> Self {
        self.kms.secrets.push(secret);
        self
    }

    /// Adds an OOS secret parameter.
    pub fn with_oos_parameter(mut self, parameter: OosParameter) -> Self {
        self.oos.parameters.push(parameter);
        self
    }

    /// Adds a RAM role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    /// Adds an OIDC identity provider.
    pub fn with_oidc_provider(mut self, provider: OidcProvider) -> Self {
        self.oidc_providers.push(provider);
        self
    }

    /// Configures the metadata server.
    pub fn with_imds(mut self, imds: ImdsSeed) -> Self {
        self.imds = imds;
        self
    }

    /// Sets the bearer token the Kubernetes API requires.
    pub fn with_kubernetes_token(mut self, token: impl Into<String>) -> Self {
        self.kubernetes.bearer_token = Some(token.into());
        self
    }

    /// Adds a Kubernetes ServiceAccount.
    pub fn with_service_account(mut self, account: ServiceAccount) -> Self {
        self.service_accounts.push(account);
        self
    }

    /// Checks what TOML types cannot: unique names, one owner per stage,
    /// decodable binary data, well-formed ARNs, roles that trust known
    /// OIDC providers, a metadata-server role that exists.
    pub fn validate(&self) -> Result<(), SeedError> {
        if self.region.is_empty() {
            return invalid("region must not be empty".into());
        }
        let mut ids = HashSet::new();
        for key in &self.access_keys {
            key.validate()?;
            if !ids.insert(key.id.as_str()) {
                return invalid(format!("access key {:?} is listed twice", key.id));
            }
        }
        let mut names = HashSet::new();
        for secret in &self.kms.secrets {
            secret.validate()?;
            if !names.insert(secret.name.as_str()) {
                return invalid(format!("KMS secret {:?} is listed twice", secret.name));
            }
        }
        let mut names = HashSet::new();
        for parameter in &self.oos.parameters {
            parameter.validate()?;
            if !names.insert(parameter.name.as_str()) {
                return invalid(format!(
                    "OOS parameter {:?} is listed twice",
                    parameter.name
                ));
            }
        }
        identity::validate(
            &self.roles,
            &self.oidc_providers,
            &self.imds,
            &self.service_accounts,
        )
    }
}

fn invalid<T>(message: String) -> Result<T, SeedError> {
    Err(SeedError::Invalid(message))
}

/// An access key pair, optionally an STS one (with a security token).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    /// The AccessKeyId.
    pub id: String,
    /// The AccessKeySecret.
    pub secret: String,
    /// For STS credentials: the token every request must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_token: Option<String>,
    /// When the key stops working (RFC 3339 string, e.g. `"2030-01-01T00:00:00Z"`).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Resources the key may read, e.g. `kms:secret/app/*`, `oos:parameter/db/password`;
    /// `*` matches any run of characters. Default: everything.
    #[serde(default = "allow_everything")]
    pub allow: Vec<String>,
}

fn allow_everything() -> Vec<String> {
    vec!["*".to_string()]
}

// Hand-written so that a stray `{:?}` never prints the secret or the token.
impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("allow", &self.allow)
            .finish()
    }
}

impl AccessKey {
    /// A long-term key allowed to read everything.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        AccessKey {
            id: id.into(),
            secret: secret.into(),
            security_token: None,
            expires_at: None,
            allow: allow_everything(),
        }
    }

    /// Makes it an STS key: requests must carry this token.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// Makes the key expire at `at`.
    pub fn expiring_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Replaces the allow list (resource patterns such as `kms:secret/app/*`).
    pub fn allowing<S: Into<String>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        self.allow = resources.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        if self.id.is_empty() || self.secret.is_empty() {
            return invalid("access keys need a non-empty id and secret".into());
        }
        if self.security_token.as_deref() == Some("") {
            return invalid(format!(
                "access key {:?} has an empty security_token",
                self.id
            ));
        }
        Ok(())
    }
}

/// The KMS part of the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSeed {
    /// Secrets served by `GetSecretValue`.
    #[serde(default)]
    pub secrets: Vec<KmsSecret>,
}

/// How a secret's data is kept (`SecretDataType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretDataType {
    /// Text, served as is.
    #[default]
    Text,
    /// Bytes: written as base64 in the seed and served as that base64 text.
    Binary,
}

impl SecretDataType {
    /// The wire spelling, `text` or `binary`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretDataType::Text => "text",
            SecretDataType::Binary => "binary",
        }
    }
}

/// One KMS secret with its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSecret {
    /// `SecretName`.
    pub name: String,
    /// `SecretDataType`.
    #[serde(default, rename = "type")]
    pub data_type: SecretDataType,
    /// `SecretType`: Generic, Rds, Redis, RAMCredentials, ECS, PolarDB.
    #[serde(default = "generic")]
    pub secret_type: String,
    /// `ExtendedConfig`, returned when `FetchExtendedConfig=true` (a JSON string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_config: Option<String>,
    /// The versions; at most one may carry a given stage.
    #[serde(default)]
    pub versions: Vec<KmsSecretVersion>,
}

fn generic() -> String {
    "Generic".to_string()
}

impl KmsSecret {
    /// A secret without versions yet.
    pub fn new(name: impl Into<String>, data_type: SecretDataType) -> Self {
        KmsSecret {
            name: name.into(),
            data_type,
            secret_type: generic(),
            extended_config: None,
            versions: Vec::new(),
        }
    }

    /// A text secret with one version `v1` at stage `ACSCurrent`.
    pub fn text(name: impl Into<String>, data: impl Into<String>) -> Self {
        KmsSecret::new(name, SecretDataType::Text)
            .with_version(KmsSecretVersion::current("v1", data))
    }

    /// A binary secret with one version `v1` at stage `ACSCurrent`; `bytes`
    /// are stored (and served) base64-encoded.
    pub fn binary(name: impl Into<String>, bytes: &[u8]) -> Self {
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        KmsSecret::new(name, SecretDataType::Binary)
            .with_version(KmsSecretVersion::current("v1", data))
    }

    /// Adds a version.
    pub fn with_version(mut self, version: KmsSecretVersion) -> Self {
        self.versions.push(version);
        self
    }

    /// Sets the `SecretType`.
    pub fn with_secret_type(mut self, secret_type: impl Into<String>) -> Self {
        self.secret_type = secret_type.into();
        self
    }

    /// Sets the `ExtendedConfig` JSON string.
    pub fn with_extended_config(mut self, config: impl Into<String>) -> Self {
        self.extended_config = Some(config.into());
        self
    }

    /// Adds `version` as KMS `PutSecretValue` does: it becomes `ACSCurrent`,
    /// the old current version becomes `ACSPrevious`, the old previous loses
    /// that stage.
    pub fn rotate(&mut self, version_id: impl Into<String>, data: impl Into<String>) {
        for version in &mut self.versions {
            version.stages.retain(|s| s != ACS_PREVIOUS);
            for stage in &mut version.stages {
                if stage == ACS_CURRENT {
                    *stage = ACS_PREVIOUS.to_string();
                }
            }
        }
        self.versions
            .push(KmsSecretVersion::current(version_id, data));
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        if self.name.is_empty() {
            return invalid("KMS secrets need a non-empty name".into());
        }
        if self.versions.is_empty() {
            return invalid(format!("KMS secret {:?} has no versions", self.name));
        }
        let mut ids = HashSet::new();
        let mut stages = HashSet::new();
        for version in &self.versions {
            if version.id.is_empty() || !ids.insert(version.id.as_str()) {
                return invalid(format!(
                    "KMS secret {:?}: version ids must be non-empty and unique ({:?})",
                    self.name, version.id
                ));
            }
            for stage in &version.stages {
                if !stages.insert(stage.as_str()) {
                    return invalid(format!(
                        "KMS secret {:?}: stage {stage:?} is on more than one version",
                        self.name
                    ));
                }
            }
            if self.data_type == SecretDataType::Binary
                && base64::engine::general_purpose::STANDARD
                    .decode(&version.data)
                    .is_err()
            {
                return invalid(format!(
                    "KMS secret {:?} version {:?}: binary data must be base64",
                    self.name, version.id
                ));
            }
        }
        Ok(())
    }
}

/// One version of a KMS secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSecretVersion {
    /// `VersionId`.
    pub id: String,
    /// `VersionStages`, e.g. `["ACSCurrent"]`.
    #[serde(default)]
    pub stages: Vec<String>,
    /// `SecretData` (base64 for binary secrets).
    pub data: String,
    /// `CreateTime`; default: when the emulator started.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<OffsetDateTime>,
}

impl fmt::Debug for KmsSecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSecretVersion")
            .field("id", &self.id)
            .field("stages", &self.stages)
            .field("data", &"<redacted>")
            .field("create_time", &self.create_time)
            .finish()
    }
}

impl KmsSecretVersion {
    /// A version without stages.
    pub fn new(id: impl Into<String>, data: impl Into<String>) -> Self {
        KmsSecretVersion {
            id: id.into(),
            stages: Vec::new(),
            data: data.into(),
            create_time: None,
        }
    }

    /// A version at stage `ACSCurrent`.
    pub fn current(id: impl Into<String>, data: impl Into<String>) -> Self {
        KmsSecretVersion::new(id, data).with_stages([ACS_CURRENT])
    }

    /// Replaces the stages.
    pub fn with_stages<S: Into<String>>(mut self, stages: impl IntoIterator<Item = S>) -> Self {
        self.stages = stages.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the `CreateTime`.
    pub fn created_at(mut self, at: OffsetDateTime) -> Self {
        self.create_time = Some(at);
        self
    }
}

/// The OOS part of the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OosSeed {
    /// Encrypted parameters served by `GetSecretParameter`.
    #[serde(default)]
    pub parameters: Vec<OosParameter>,
}

/// One OOS encrypted ("secret") parameter with its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OosParameter {
    /// `Name`; may contain `/`.
    pub name: String,
    /// `Description`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The versions; the highest number is the latest.
    #[serde(default)]
    pub versions: Vec<OosParameterVersion>,
}

impl OosParameter {
    /// A parameter whose version 1 holds `value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        OosParameter {
            name: name.into(),
            description: String::new(),
            versions: vec![OosParameterVersion::new(1, value)],
        }
    }

    /// Adds a version.
    pub fn with_version(mut self, version: u32, value: impl Into<String>) -> Self {
        self.versions.push(OosParameterVersion::new(version, value));
        self
    }

    /// The highest-numbered version.
    pub fn latest(&self) -> Option<&OosParameterVersion> {
        self.versions.iter().max_by_key(|v| v.version)
    }

    pub(crate) fn validate(&self) -> Result<(), SeedError> {
        if self.name.is_empty() {
            return invalid("OOS parameters need a non-empty name".into());
        }
        if self.versions.is_empty() {
            return invalid(format!("OOS parameter {:?} has no versions", self.name));
        }
        let mut seen = HashSet::new();
        for version in &self.versions {
            if version.version == 0 || !seen.insert(version.version) {
                return invalid(format!(
                    "OOS parameter {:?}: versions must be unique and start at 1 ({})",
                    self.name, version.version
                ));
            }
        }
        Ok(())
    }
}

/// One version of an OOS parameter.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OosParameterVersion {
    /// `ParameterVersion`, from 1.
    pub version: u32,
    /// The decrypted `Value`.
    pub value: String,
    /// `UpdatedDate` of this version; default: when the emulator started.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_date: Option<OffsetDateTime>,
}

impl fmt::Debug for OosParameterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OosParameterVersion")
            .field("version", &self.version)
            .field("value", &"<redacted>")
            .field("updated_date", &self.updated_date)
            .finish()
    }
}

impl OosParameterVersion {
    /// Version `version` holding `value`.
    pub fn new(version: u32, value: impl Into<String>) -> Self {
        OosParameterVersion {
            version,
            value: value.into(),
            updated_date: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_seed_parses_and_holds_the_documented_secret() {
        let seed = Seed::from_toml_str(include_str!("../../examples/emulator-seed.toml")).unwrap();
        assert_eq!(seed.region, DEFAULT_REGION);
        assert_eq!(seed.access_keys[0].id, "testid");
        assert_eq!(seed.access_keys[0].secret, "testsecret");
        let test = seed.kms.secrets.iter().find(|s| s.name == "test").unwrap();
        let current = test
            .versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == ACS_CURRENT))
            .unwrap();
        assert_eq!(current.id, "v1");
        let data: serde_json::Value = serde_json::from_str(&current.data).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"username": "testuser", "password": "testpassword"})
        );
        assert!(
            test.versions
                .iter()
                .any(|v| v.id == "v0" && v.stages == [ACS_PREVIOUS])
        );
        assert!(
            seed.kms
                .secrets
                .iter()
                .any(|s| s.data_type == SecretDataType::Binary)
        );
        let db = &seed.oos.parameters[0];
        assert_eq!(db.name, "db/password");
        assert_eq!(db.latest().unwrap().version, 2);

        // The identity half.
        assert_eq!(
            seed.oidc_providers[0].arn,
            "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee"
        );
        assert_eq!(seed.oidc_providers[0].audiences, [STS_AUDIENCE]);
        let role = |name: &str| {
            seed.roles
                .iter()
                .find(|r| r.name() == name)
                .unwrap_or_else(|| panic!("role {name}"))
        };
        for team in ["team-a", "team-b"] {
            let trust = &role(&format!("{team}-app")).oidc_trust[0];
            assert_eq!(trust.provider_arn, seed.oidc_providers[0].arn);
            assert_eq!(
                trust.subjects,
                [format!("system:serviceaccount:{team}:app")]
            );
        }
        assert_ne!(role("team-a-app").allow, role("team-b-app").allow);
        assert_eq!(
            role("csi-secrets-store-provider").trusted_access_keys,
            ["testid"]
        );
        assert!(role("shared-secrets-reader").external_id.is_some());
        assert_eq!(
            seed.imds.role_arn.as_deref(),
            Some(role("ack-worker-node").arn.as_str())
        );
        assert!(seed.kubernetes.bearer_token.is_some());
        let annotated: Vec<_> = seed
            .service_accounts
            .iter()
            .filter_map(|a| a.annotations.get(ROLE_ARN_ANNOTATION))
            .collect();
        assert_eq!(annotated.len(), 3);
        assert!(
            annotated
                .iter()
                .all(|arn| seed.roles.iter().any(|r| &&r.arn == arn))
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let seed = Seed::default()
            .with_account_id("123")
            .with_access_key(
                AccessKey::new("STS.a", "s")
                    .with_security_token("tok")
                    .expiring_at(time::macros::datetime!(2030-01-01 0:00 UTC))
                    .allowing(["kms:secret/x"]),
            )
            .with_kms_secret(KmsSecret::binary("bin", b"\x00\x01"))
            .with_oos_parameter(OosParameter::new("a/b", "v").with_version(2, "w"))
            .with_oidc_provider(
                OidcProvider::new("acs:ram::123:oidc-provider/p", "https://issuer")
                    .with_hmac_key("k"),
            )
            .with_role(
                Role::new("acs:ram::123:role/r")
                    .allowing(["kms:secret/x"])
                    .trusting_access_keys(["STS.a"])
                    .trusting_roles(["acs:ram::9:role/o"])
                    .trusting_oidc(
                        "acs:ram::123:oidc-provider/p",
                        ["system:serviceaccount:a:*"],
                    )
                    .with_external_id("ext-id")
                    .with_max_session_duration(7200)
                    .with_credential_lifetime(std::time::Duration::from_secs(90)),
            )
            .with_imds(
                ImdsSeed::with_role("acs:ram::123:role/r")
                    .in_region("cn-beijing")
                    .with_instance_id("i-1")
                    .with_zone_id("cn-beijing-k")
                    .hardened()
                    .without_tokens(),
            )
            .with_kubernetes_token("t")
            .with_service_account(
                ServiceAccount::new("a", "b").with_role_arn("acs:ram::123:role/r"),
            );
        let text = seed.to_toml_string();
        assert!(text.contains("credential_lifetime = \"1m 30s\""), "{text}");
        assert_eq!(Seed::from_toml_str(&text).unwrap(), seed);
    }

    #[test]
    fn rejects_inconsistent_seeds() {
        let cases = [
            (
                Seed::default().with_kms_secret(
                    KmsSecret::text("a", "x").with_version(KmsSecretVersion::current("v2", "y")),
                ),
                "stage \"ACSCurrent\" is on more than one version",
            ),
            (
                Seed::default().with_kms_secret(
                    KmsSecret::new("b", SecretDataType::Binary)
                        .with_version(KmsSecretVersion::current("v1", "not base64!")),
                ),
                "binary data must be base64",
            ),
            (
                Seed::default()
                    .with_access_key(AccessKey::new("a", "b"))
                    .with_access_key(AccessKey::new("a", "c")),
                "listed twice",
            ),
            (
                Seed::default()
                    .with_oos_parameter(OosParameter::new("p", "1").with_version(1, "2")),
                "versions must be unique",
            ),
            (
                Seed::default().with_kms_secret(KmsSecret::new("e", SecretDataType::Text)),
                "has no versions",
            ),
            (
                Seed::default().with_role(Role::new("acs:ram::1:user/x")),
                "the ARN must look like",
            ),
            (
                Seed::default()
                    .with_role(Role::new("acs:ram::1:role/x"))
                    .with_role(Role::new("acs:ram::1:role/X")),
                "listed twice",
            ),
            (
                Seed::default()
                    .with_role(Role::new("acs:ram::1:role/x").with_max_session_duration(600)),
                "max_session_duration",
            ),
            (
                Seed::default().with_role(
                    Role::new("acs:ram::1:role/x")
                        .trusting_oidc("acs:ram::1:oidc-provider/p", ["s"]),
                ),
                "which is not in oidc_providers",
            ),
            (
                Seed::default().with_role(Role::new("acs:ram::1:role/x").with_external_id("a b")),
                "external_id",
            ),
            (
                Seed::default().with_imds(ImdsSeed::with_role("acs:ram::1:role/missing")),
                "is not one of the seed's roles",
            ),
            (
                Seed::default().with_oidc_provider(
                    OidcProvider::new("acs:ram::1:oidc-provider/p", "i")
                        .with_audiences(Vec::<String>::new()),
                ),
                "audiences",
            ),
            (
                Seed::default()
                    .with_service_account(ServiceAccount::new("a", "b"))
                    .with_service_account(ServiceAccount::new("a", "b")),
                "listed twice",
            ),
        ];
        for (seed, want) in cases {
            let err = seed.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        for unknown in [
            "[[access_keys]]\nid='a'\nsecret='b'\nbogus=1\n",
            "[[roles]]\narn='acs:ram::1:role/r'\nallowed=['*']\n",
            "[imds]\nrole='x'\n",
            "[kubernetes]\ntoken='x'\n",
            "[[oidc_providers]]\narn='acs:ram::1:oidc-provider/p'\nissuer='i'\naudience='a'\n",
            "[[roles]]\narn='acs:ram::1:role/r'\ncredential_lifetime='soon'\n",
        ] {
            let err = Seed::from_toml_str(unknown).unwrap_err();
            assert!(matches!(err, SeedError::Parse(_)), "{unknown}: {err:?}");
        }
    }

    #[test]
    fn rotation_moves_the_stages() {
        let mut secret = KmsSecret::text("a", "one");
        secret.rotate("v2", "two");
        secret.rotate("v3", "three");
        let stages: Vec<_> = secret
            .versions
            .iter()
            .map(|v| (v.id.as_str(), v.stages.clone()))
            .collect();
        assert_eq!(
            stages,
            [
                ("v1", vec![]),
                ("v2", vec![ACS_PREVIOUS.to_string()]),
                ("v3", vec![ACS_CURRENT.to_string()]),
            ]
        );
        secret.validate().unwrap();
    }

    #[test]
    fn debug_output_hides_secrets() {
        let key = AccessKey::new("id", "topsecret").with_security_token("tokenvalue");
        let version = KmsSecretVersion::new("v", "hunter2");
        let text = format!(
            "{key:?} {version:?} {:?} {:?} {:?} {:?}",
            OosParameterVersion::new(1, "pw123"),
            OidcProvider::new("acs:ram::1:oidc-provider/p", "i").with_hmac_key("hmackey9"),
            Role::new("acs:ram::1:role/r").with_external_id("extid77"),
            Seed::default()
                .with_kubernetes_token("k8stoken5")
                .kubernetes,
        );
        for hidden in [
            "topsecret",
            "tokenvalue",
            "hunter2",
            "pw123",
            "hmackey9",
            "extid77",
            "k8stoken5",
        ] {
            assert!(!text.contains(hidden), "{text}");
        }
    }
}
