//! The SecretProviderClass contract: a Mount request's `attributes`, `secrets`
//! and `permission` parsed into validated objects and output file paths.
//!
//! Compatible with the upstream Go provider's parameters, object fields,
//! defaults, file naming and error strings, with its bugs fixed: object keys
//! are case-insensitive as before but an unknown key is now an error; every
//! output path (object, alias, jmesPath alias) is checked against the driver's
//! rules; any two outputs that collide are an error naming both objects.

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml::Value;

use crate::jmes::JmesQuery;
use crate::paths;
use crate::region::{REGION_RULE, Region};

/// `parameters.objects`: the YAML list of objects.
pub const ATTR_OBJECTS: &str = "objects";
/// `parameters.region`.
pub const ATTR_REGION: &str = "region";
/// `parameters.pathTranslation`.
pub const ATTR_PATH_TRANSLATION: &str = "pathTranslation";
/// `parameters.podRoleArn`: the RAM role for pod identity, instead of the
/// ServiceAccount's `ack.alibabacloud.com/role-arn` annotation.
pub const ATTR_POD_ROLE_ARN: &str = "podRoleArn";
/// `parameters.usePodServiceAccountToken`.
pub const ATTR_USE_POD_SA_TOKEN: &str = "usePodServiceAccountToken";
/// Pod name, set by kubelet (podInfoOnMount).
pub const ATTR_POD_NAME: &str = "csi.storage.k8s.io/pod.name";
/// Pod namespace, set by kubelet.
pub const ATTR_POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
/// Pod UID, set by kubelet.
pub const ATTR_POD_UID: &str = "csi.storage.k8s.io/pod.uid";
/// The pod's service account, set by kubelet.
pub const ATTR_SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";
/// The pod's service account tokens (kubelet `tokenRequests`), in
/// `attributes` or, on Kubernetes >= 1.35, in `secrets`.
pub const SA_TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// The object fields a SecretProviderClass may use, in their canonical case.
pub const OBJECT_FIELDS: &[&str] = &[
    "objectName",
    "objectType",
    "objectAlias",
    "objectVersion",
    "objectVersionLabel",
    "jmesPath",
    "kmsEndpoint",
    "crossAccountRoleArn",
    "filePermission",
    "parameters",
];

/// The fields of a `jmesPath` entry.
pub const JMES_FIELDS: &[&str] = &["path", "objectAlias"];

/// The object type used when `objectType` is not set.
pub const DEFAULT_OBJECT_TYPE: &str = "kms";

/// Longest value of one object field (`objectName`, `objectAlias`, a version,
/// an endpoint, a role ARN, a jmesPath alias, a parameter) and of the pod
/// attributes. KMS secret names and ARNs are at most a few hundred bytes.
pub const MAX_FIELD_BYTES: usize = 4096;
/// Most `jmesPath` entries of one object.
pub const MAX_JMES_PER_OBJECT: usize = 64;
/// Most `parameters` entries of one object.
pub const MAX_PARAMETERS_PER_OBJECT: usize = 64;

/// Bounds on one Mount request that the operator sets in `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most objects in `parameters.objects` (`limits.max_objects`).
    pub max_objects: usize,
    /// Longest `parameters.objects` text (`limits.max_objects_bytes`).
    pub max_objects_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits::from(&crate::config::Limits::default())
    }
}

impl From<&crate::config::Limits> for RequestLimits {
    fn from(limits: &crate::config::Limits) -> Self {
        RequestLimits {
            max_objects: limits.max_objects,
            max_objects_bytes: limits.max_objects_bytes,
        }
    }
}

/// A value that must never be printed: Debug shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(pub T);

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A SecretProviderClass problem; always the caller's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpcError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, SpcError> {
    Err(SpcError(message.into()))
}

/// The pod a Mount is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Service account name.
    pub service_account: String,
}

impl fmt::Display for PodInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A parsed, validated Mount request.
#[derive(Debug)]
pub struct MountSpec {
    /// The pod.
    pub pod: PodInfo,
    /// `region`, if the SecretProviderClass sets it.
    pub region: Option<Region>,
    /// `usePodServiceAccountToken: "true"`.
    pub use_pod_service_account_token: bool,
    /// `podRoleArn`, if set.
    pub pod_role_arn: Option<String>,
    /// File mode for objects without `filePermission` (from `permission`).
    pub default_mode: u32,
    /// The objects, in SecretProviderClass order.
    pub objects: Vec<ObjectSpec>,
    /// The nodePublishSecretRef data (values redacted in Debug).
    pub node_publish_secrets: BTreeMap<String, Sensitive<String>>,
    /// The service-account tokens JSON, if kubelet sent it.
    pub service_account_tokens: Option<Sensitive<String>>,
    /// Where the driver publishes the volume.
    pub target_path: String,
    /// What the request set that the provider ignores, as the upstream
    /// provider did, for the log (never a secret: only SecretProviderClass
    /// parameters are quoted, shortened).
    pub warnings: Vec<String>,
}

/// One validated object.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    /// Position in `objects`.
    pub index: usize,
    /// `objectName`.
    pub name: String,
    /// `objectType`, lowercased; `kms` by default.
    pub object_type: String,
    /// `objectAlias`.
    pub alias: Option<String>,
    /// `objectVersion`.
    pub version: Option<String>,
    /// `objectVersionLabel`.
    pub version_label: Option<String>,
    /// `jmesPath` entries.
    pub jmes_path: Vec<JmesSpec>,
    /// `kmsEndpoint`.
    pub kms_endpoint: Option<String>,
    /// `crossAccountRoleArn`.
    pub cross_account_role_arn: Option<String>,
    /// `filePermission`, parsed from octal.
    pub file_permission: Option<u32>,
    /// `parameters`, for the plugin.
    pub parameters: Vec<(String, String)>,
    /// The path of the object's own file.
    pub file_path: String,
}

impl ObjectSpec {
    /// `objects[2] (objectName "db")`, for messages.
    pub fn label(&self) -> String {
        format!("objects[{}] (objectName {:?})", self.index, self.name)
    }
}

/// One `jmesPath` entry of an object.
#[derive(Debug, Clone)]
pub struct JmesSpec {
    /// The expression text.
    pub path: String,
    /// The entry's `objectAlias`.
    pub alias: String,
    /// The compiled expression.
    pub query: JmesQuery,
    /// The path of the extracted file.
    pub file_path: String,
}

/// The raw fields of a Mount request that carry the SecretProviderClass.
#[derive(Debug, Clone, Copy)]
pub struct RawMount<'a> {
    /// `MountRequest.attributes`.
    pub attributes: &'a str,
    /// `MountRequest.secrets`.
    pub secrets: &'a str,
    /// `MountRequest.permission`.
    pub permission: &'a str,
    /// `MountRequest.target_path`.
    pub target_path: &'a str,
}

/// Parses and validates a Mount request within `limits`. Errors never quote
/// `secrets` or the tokens.
pub fn parse(raw: RawMount<'_>, limits: &RequestLimits) -> Result<MountSpec, SpcError> {
    let attributes = parse_string_map(raw.attributes, "attributes")?;
    let mut secrets = parse_string_map(raw.secrets, "secrets")?;
    if raw.target_path.is_empty() {
        return err("missing mount path: the Mount request has no target_path");
    }
    if raw.target_path.len() > crate::paths::MAX_PATH_LEN {
        return err(format!(
            "the Mount request's target_path is {} bytes long; the limit is {}",
            raw.target_path.len(),
            crate::paths::MAX_PATH_LEN
        ));
    }
    let default_mode = parse_permission(raw.permission)?;

    let required = |key: &str| match attributes.get(key).map(|v| v.trim()) {
        Some(v) if v.len() > MAX_FIELD_BYTES => err(format!(
            "the Mount request's attribute {key} is {} bytes long; the limit is {MAX_FIELD_BYTES}",
            v.len()
        )),
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => err(format!(
            "the Mount request's attributes lack {key}: the CSIDriver secrets-store.csi.k8s.io must have podInfoOnMount: true"
        )),
    };
    let pod = PodInfo {
        namespace: required(ATTR_POD_NAMESPACE)?,
        name: required(ATTR_POD_NAME)?,
        uid: required(ATTR_POD_UID)?,
        service_account: required(ATTR_SERVICE_ACCOUNT)?,
    };

    let region = match attributes.get(ATTR_REGION).map(|r| r.trim()) {
        None | Some("") => None,
        Some(r) => match Region::parse(r) {
            Ok(region) => Some(region),
            Err(_) => {
                return err(format!(
                    "region {r:?} is not an Alibaba Cloud region id ({REGION_RULE}, e.g. \"cn-hangzhou\")"
                ));
            }
        },
    };
    // Upstream turns pod identity on for the exact string "true" and reads
    // anything else as off; so do we, and say so in the log when the value
    // looks like it meant something else ("True", "yes", "1").
    let mut warnings = Vec::new();
    let use_pod_sa = attributes
        .get(ATTR_USE_POD_SA_TOKEN)
        .map(String::as_str)
        .unwrap_or("");
    let use_pod_service_account_token = use_pod_sa == "true";
    if !matches!(use_pod_sa, "" | "true" | "false") {
        warnings.push(format!(
            "usePodServiceAccountToken is {}, not \"true\": pod identity is off (only the exact string \"true\" turns it on, as in the upstream provider)",
            shown(use_pod_sa)
        ));
    }
    let pod_role_arn = attributes
        .get(ATTR_POD_ROLE_ARN)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if let Some(arn) = &pod_role_arn
        && arn.len() > MAX_FIELD_BYTES
    {
        return err(format!(
            "podRoleArn is {} bytes long; the limit is {MAX_FIELD_BYTES}",
            arn.len()
        ));
    }
    let translation = parse_path_translation(attributes.get(ATTR_PATH_TRANSLATION))?;

    let objects_yaml = attributes
        .get(ATTR_OBJECTS)
        .map(String::as_str)
        .unwrap_or("");
    let objects = parse_objects(objects_yaml, translation, limits)?;

    let service_account_tokens = attributes
        .get(SA_TOKENS_KEY)
        .filter(|t| !t.is_empty())
        .cloned()
        .or_else(|| {
            secrets
                .get(SA_TOKENS_KEY)
                .filter(|t| !t.is_empty())
                .cloned()
        })
        .map(Sensitive);
    secrets.remove(SA_TOKENS_KEY);

    Ok(MountSpec {
        pod,
        region,
        use_pod_service_account_token,
        pod_role_arn,
        default_mode,
        objects,
        node_publish_secrets: secrets
            .into_iter()
            .map(|(k, v)| (k, Sensitive(v)))
            .collect(),
        service_account_tokens,
        target_path: raw.target_path.to_string(),
        warnings,
    })
}

/// A SecretProviderClass value quoted for a message, shortened to 64 bytes.
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &value[..end], value.len())
}

/// The pod's namespace from a Mount request's `attributes`, read without
/// parsing the rest (the tenant key for fair sharing, taken before the whole
/// request is parsed); `None` if the attributes are not valid or lack it.
pub fn pod_namespace(attributes: &str) -> Option<String> {
    /// The namespace entry of a JSON object, the last one if repeated (as
    /// [`parse`] reads it), other values skipped unread.
    struct Namespace;
    impl<'de> serde::de::Visitor<'de> for Namespace {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Option<String>, A::Error> {
            let mut namespace = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == ATTR_POD_NAMESPACE {
                    namespace = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(namespace)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(attributes);
    let namespace = serde::Deserializer::deserialize_map(&mut deserializer, Namespace).ok()?;
    deserializer.end().ok()?;
    namespace
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n.len() <= MAX_FIELD_BYTES)
}

/// Parses a JSON object of strings. The error gives the position only: the
/// text may hold tokens or keys.
fn parse_string_map(text: &str, field: &str) -> Result<BTreeMap<String, String>, SpcError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    // Upstream's texts: "failed to unmarshal attributes, error: ..." (server)
    // and "failed to unmarshal secrets: ..." (auth).
    let prefix = if field == "attributes" {
        "failed to unmarshal attributes, error:"
    } else {
        "failed to unmarshal secrets:"
    };
    serde_json::from_str(text).map_err(|e| {
        SpcError(format!(
            "{prefix} the Mount request's {field} must be a JSON object of strings ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn parse_permission(text: &str) -> Result<u32, SpcError> {
    if text.trim().is_empty() {
        return Ok(0o644);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(mode) if mode <= 0o777 => Ok(mode as u32),
            _ => err(format!(
                "failed to unmarshal file permission, error: {n} is not a file mode (0 to 511, e.g. 420 for 0644)"
            )),
        },
        _ => err(format!(
            "failed to unmarshal file permission, error: {text:?} is not a decimal file mode such as \"420\""
        )),
    }
}

/// `None`: translation off. `Some(c)`: replace `/` with `c`.
fn parse_path_translation(value: Option<&String>) -> Result<Option<char>, SpcError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Some('_'));
    };
    if value.eq_ignore_ascii_case("false") {
        return Ok(None);
    }
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '\0' => Ok(Some(c)),
        _ => err("pathTranslation must be either 'False' or a single character string"),
    }
}

/// Applies `pathTranslation` to a name, as upstream: replace every `/`, or,
/// with translation off, strip leading `/`.
pub fn translate(name: &str, translation: Option<char>) -> String {
    match translation {
        Some(c) => name.replace('/', &c.to_string()),
        None => name.trim_start_matches('/').to_string(),
    }
}

fn parse_objects(
    text: &str,
    translation: Option<char>,
    limits: &RequestLimits,
) -> Result<Vec<ObjectSpec>, SpcError> {
    if text.trim().is_empty() {
        return err(
            "the SecretProviderClass has no objects: parameters.objects must list at least one object, e.g. \"- objectName: my-secret\"",
        );
    }
    if text.len() > limits.max_objects_bytes {
        return err(format!(
            "parameters.objects is {} bytes long; the limit is {} (config key limits.max_objects_bytes); split the objects across several SecretProviderClasses",
            text.len(),
            limits.max_objects_bytes
        ));
    }
    let value = crate::yaml::parse(text, "parameters.objects")
        .map_err(|e| SpcError(format!("failed to load SecretProviderClass: {e}")))?;
    let Value::Sequence(items) = value else {
        return err(
            "failed to load SecretProviderClass: parameters.objects must be a YAML list of objects (each line starting with \"- objectName: ...\")",
        );
    };
    if items.is_empty() {
        return err(
            "the SecretProviderClass has no objects: parameters.objects must list at least one object",
        );
    }
    if items.len() > limits.max_objects {
        return err(format!(
            "the SecretProviderClass has {} objects; the limit is {} per Mount (config key limits.max_objects); split them across several SecretProviderClasses",
            items.len(),
            limits.max_objects
        ));
    }
    let mut objects = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        objects.push(parse_object(index, item, translation)?);
    }
    check_duplicates_and_collisions(&objects)?;
    Ok(objects)
}

/// Reads a mapping with case-insensitive keys into canonical names.
fn canonical_fields<'v>(
    map: &'v Value,
    known: &[&'static str],
    what: &str,
) -> Result<BTreeMap<&'static str, &'v Value>, SpcError> {
    let Value::Mapping(map) = map else {
        return err(format!(
            "{what} must be a mapping of fields such as {}",
            known.join(", ")
        ));
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key_text = scalar_text(key).unwrap_or_default();
        let Some(canonical) = known.iter().find(|k| k.eq_ignore_ascii_case(&key_text)) else {
            return err(format!(
                "{what} has an unknown field {key_text:?}; known fields: {}",
                known.join(", ")
            ));
        };
        if out.insert(*canonical, value).is_some() {
            return err(format!("{what} sets the field {canonical} twice"));
        }
    }
    Ok(out)
}

/// A YAML scalar as text; `None` for null, mappings and sequences.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn optional_string(
    fields: &BTreeMap<&'static str, &Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, SpcError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match scalar_text(v) {
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) if s.trim().len() > MAX_FIELD_BYTES => err(format!(
                "{what}: {key} is {} bytes long; the limit is {MAX_FIELD_BYTES}",
                s.trim().len()
            )),
            Some(s) => Ok(Some(s.trim().to_string())),
            None => err(format!("{what}: {key} must be a string")),
        },
    }
}

fn parse_object(
    index: usize,
    item: &Value,
    translation: Option<char>,
) -> Result<ObjectSpec, SpcError> {
    let what = format!("objects[{index}]");
    let fields = canonical_fields(item, OBJECT_FIELDS, &what)?;
    let Some(name) = optional_string(&fields, "objectName", &what)? else {
        return err(format!(
            "{what}: object name must be specified (objectName)"
        ));
    };
    let what = format!("objects[{index}] (objectName {name:?})");
    let object_type = optional_string(&fields, "objectType", &what)?
        .map(|t| t.to_ascii_lowercase())
        .unwrap_or_else(|| DEFAULT_OBJECT_TYPE.to_string());
    if object_type == "kms" || object_type == "oos" {
        check_arn(&name, &what)?;
    }
    let alias = optional_string(&fields, "objectAlias", &what)?;
    let file_path = translate(alias.as_deref().unwrap_or(&name), translation);
    check_path(
        &file_path,
        &what,
        if alias.is_some() {
            "objectAlias"
        } else {
            "objectName"
        },
        &name,
    )?;

    let file_permission = optional_string(&fields, "filePermission", &what)?
        .map(|p| parse_octal_mode(&p, &what))
        .transpose()?;

    let mut jmes_path = Vec::new();
    match fields.get("jmesPath") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(entries)) => {
            if entries.len() > MAX_JMES_PER_OBJECT {
                return err(format!(
                    "{what}: jmesPath has {} entries; the limit is {MAX_JMES_PER_OBJECT} per object",
                    entries.len()
                ));
            }
            for (j, entry) in entries.iter().enumerate() {
                let entry_what = format!("{what} jmesPath[{j}]");
                let entry_fields = canonical_fields(entry, JMES_FIELDS, &entry_what)?;
                let Some(path) = optional_string(&entry_fields, "path", &entry_what)? else {
                    return err(format!(
                        "{entry_what}: path must be specified for JMES object"
                    ));
                };
                let Some(entry_alias) = optional_string(&entry_fields, "objectAlias", &entry_what)?
                else {
                    return err(format!(
                        "{entry_what}: object alias must be specified for JMES object"
                    ));
                };
                let query = JmesQuery::compile(&path)
                    .map_err(|e| SpcError(format!("{entry_what}: {e}")))?;
                let jmes_file = translate(&entry_alias, translation);
                check_path(&jmes_file, &entry_what, "objectAlias", &name)?;
                jmes_path.push(JmesSpec {
                    path,
                    alias: entry_alias,
                    query,
                    file_path: jmes_file,
                });
            }
        }
        Some(_) => {
            return err(format!(
                "{what}: jmesPath must be a list of entries with path and objectAlias"
            ));
        }
    }

    let mut parameters = Vec::new();
    match fields.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            if map.len() > MAX_PARAMETERS_PER_OBJECT {
                return err(format!(
                    "{what}: parameters has {} entries; the limit is {MAX_PARAMETERS_PER_OBJECT} per object",
                    map.len()
                ));
            }
            for (k, v) in map {
                match (scalar_text(k), scalar_text(v)) {
                    (Some(k), Some(v)) if k.len().max(v.len()) > MAX_FIELD_BYTES => {
                        return err(format!(
                            "{what}: a parameters entry is longer than {MAX_FIELD_BYTES} bytes"
                        ));
                    }
                    (Some(k), Some(v)) => parameters.push((k, v)),
                    _ => {
                        return err(format!(
                            "{what}: parameters must map names to strings, numbers or booleans"
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return err(format!(
                "{what}: parameters must be a mapping of names to values"
            ));
        }
    }

    Ok(ObjectSpec {
        index,
        object_type,
        alias,
        version: optional_string(&fields, "objectVersion", &what)?,
        version_label: optional_string(&fields, "objectVersionLabel", &what)?,
        jmes_path,
        kms_endpoint: optional_string(&fields, "kmsEndpoint", &what)?,
        cross_account_role_arn: optional_string(&fields, "crossAccountRoleArn", &what)?,
        file_permission,
        parameters,
        file_path,
        name,
    })
}

/// Upstream accepts `acs:kms:<region>:<account>:<resource>` object names.
fn check_arn(name: &str, what: &str) -> Result<(), SpcError> {
    if !name.starts_with("acs:") {
        return Ok(());
    }
    let parts: Vec<&str> = name.splitn(5, ':').collect();
    if parts.len() != 5 {
        return err(format!(
            "{what}: invalid ARN format in object name: {name} (expected acs:kms:<region>:<account-id>:secret/<name>)"
        ));
    }
    if parts[1] != "kms" {
        return err(format!(
            "{what}: invalid service in ARN: {} (only acs:kms:<region>:<account-id>:secret/<name> ARNs are supported)",
            parts[1]
        ));
    }
    Ok(())
}

/// Checks an output path; a `..` element gets upstream's message
/// (`path can not contain ../: <objectName>`), which named the object.
fn check_path(path: &str, what: &str, field: &str, name: &str) -> Result<(), SpcError> {
    paths::validate(path).map_err(|reason| {
        if path.split('/').any(|element| element == "..") {
            SpcError(format!(
                "{what}: path can not contain ../: {name} ({field} gives an invalid file path: {reason})"
            ))
        } else {
            SpcError(format!(
                "{what}: {field} gives an invalid file path: {reason}"
            ))
        }
    })
}

fn parse_octal_mode(text: &str, what: &str) -> Result<u32, SpcError> {
    let digits = text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => err(format!(
            "{what}: filePermission {text:?} is not an octal file mode such as \"0640\""
        )),
    }
}

fn check_duplicates_and_collisions(objects: &[ObjectSpec]) -> Result<(), SpcError> {
    let mut triples = BTreeMap::new();
    for object in objects {
        let key = (&object.name, &object.alias, &object.object_type);
        if triples.insert(key, object.index).is_some() {
            return err(format!(
                "duplicate object name: {} (type: {}), at objects[{}]",
                object.name, object.object_type, object.index
            ));
        }
    }
    // What wrote each output, to give upstream's message when it had one:
    // two equal objectAliases, or two equal jmesPath objectAliases.
    enum Source<'a> {
        Name,
        Alias(&'a str),
        Jmes(&'a str),
    }
    let mut outputs: Vec<(&str, String)> = Vec::new();
    let mut sources: BTreeMap<String, Source<'_>> = BTreeMap::new();
    for object in objects {
        outputs.push((object.file_path.as_str(), object.label()));
        let source = match &object.alias {
            Some(alias) => Source::Alias(alias),
            None => Source::Name,
        };
        sources.insert(object.label(), source);
        for (j, jmes) in object.jmes_path.iter().enumerate() {
            let label = format!(
                "{} jmesPath[{j}] (objectAlias {:?})",
                object.label(),
                jmes.alias
            );
            sources.insert(label.clone(), Source::Jmes(&jmes.alias));
            outputs.push((jmes.file_path.as_str(), label));
        }
    }
    if let Some(c) = paths::find_collision(&outputs) {
        if c.first_path == c.second_path {
            let upstream = match (sources.get(&c.first), sources.get(&c.second)) {
                (Some(Source::Alias(a)), Some(Source::Alias(b))) if a == b => {
                    format!("duplicate object alias: {a} (")
                }
                (Some(Source::Jmes(a)), Some(Source::Jmes(b))) if a == b => {
                    format!("duplicate JMES path object alias: {a} (")
                }
                _ => String::new(),
            };
            let close = if upstream.is_empty() { "" } else { ")" };
            return err(format!(
                "{upstream}file name collision: {} and {} both write the file {:?}; give one of them a different objectAlias{close}",
                c.first, c.second, c.first_path
            ));
        }
        return err(format!(
            "file name collision: {} writes the file {:?} but {} needs it to be a directory for {:?}; give one of them a different objectAlias",
            c.first, c.first_path, c.second, c.second_path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &[(&str, &str)] = &[
        (ATTR_POD_NAME, "app-7d9c"),
        (ATTR_POD_NAMESPACE, "team-a"),
        (ATTR_POD_UID, "0b6c-1"),
        (ATTR_SERVICE_ACCOUNT, "app"),
    ];

    fn attributes(extra: &[(&str, &str)]) -> String {
        let map: BTreeMap<&str, &str> = POD.iter().chain(extra).copied().collect();
        serde_json::to_string(&map).unwrap()
    }

    fn parse_default(raw: RawMount<'_>) -> Result<MountSpec, SpcError> {
        parse(raw, &RequestLimits::default())
    }

    fn parse_with(extra: &[(&str, &str)]) -> Result<MountSpec, SpcError> {
        let attrs = attributes(extra);
        parse_default(RawMount {
            attributes: &attrs,
            secrets: "{}",
            permission: "420",
            target_path: "/var/lib/kubelet/pods/0b6c-1/volumes/kubernetes.io~csi/v/mount",
        })
    }

    fn objects(yaml: &str) -> Result<Vec<ObjectSpec>, SpcError> {
        parse_with(&[(ATTR_OBJECTS, yaml)]).map(|s| s.objects)
    }

    fn objects_with(yaml: &str, translation: &str) -> Result<Vec<ObjectSpec>, SpcError> {
        parse_with(&[(ATTR_OBJECTS, yaml), (ATTR_PATH_TRANSLATION, translation)]).map(|s| s.objects)
    }

    fn error(yaml: &str) -> String {
        objects(yaml).unwrap_err().0
    }

    #[test]
    fn the_seed_documents_example_with_jmespath_and_oos() {
        let spec = parse_with(&[
            (
                ATTR_OBJECTS,
                r#"
- objectName: "test"
  objectType: "kms"
  jmesPath:
    - path: username
      objectAlias: username
    - path: password
      objectAlias: password
- objectName: "db/password"
  objectType: oos
  objectVersion: 2
"#,
            ),
            (ATTR_REGION, "cn-hangzhou"),
            ("secretProviderClass", "test-secrets"),
            ("csi.storage.k8s.io/ephemeral", "true"),
        ])
        .unwrap();
        assert_eq!(spec.region.as_deref(), Some("cn-hangzhou"));
        assert_eq!(spec.pod.to_string(), "team-a/app-7d9c");
        assert_eq!(spec.default_mode, 0o644);
        assert!(!spec.use_pod_service_account_token);
        let [kms, oos] = &spec.objects[..] else {
            panic!("two objects")
        };
        assert_eq!(kms.file_path, "test");
        assert_eq!(kms.object_type, "kms");
        let jmes: Vec<_> = kms.jmes_path.iter().map(|j| j.file_path.as_str()).collect();
        assert_eq!(jmes, ["username", "password"]);
        assert_eq!(oos.file_path, "db_password");
        assert_eq!(oos.version.as_deref(), Some("2"));
        assert_eq!(oos.label(), "objects[1] (objectName \"db/password\")");
    }

    #[test]
    fn keys_are_case_insensitive_and_unknown_keys_are_named() {
        let objs = objects("- objectname: a\n  OBJECTTYPE: KMS\n  objectalias: b\n").unwrap();
        assert_eq!(
            (objs[0].name.as_str(), objs[0].object_type.as_str()),
            ("a", "kms")
        );
        assert_eq!(objs[0].file_path, "b");
        let e = error("- objectName: a\n  objectAlais: b\n");
        assert!(
            e.starts_with("objects[0] has an unknown field \"objectAlais\"; known fields: objectName, objectType"),
            "{e}"
        );
        let e = error("- objectName: a\n  objectname: b\n");
        assert!(e.contains("sets the field objectName twice"), "{e}");
        let e = error("- objectName: a\n  jmesPath:\n    - path: x\n      alias: y\n");
        assert!(
            e.contains(
                "jmesPath[0] has an unknown field \"alias\"; known fields: path, objectAlias"
            ),
            "{e}"
        );
    }

    #[test]
    fn upstream_validation_messages() {
        for (yaml, want) in [
            (
                "- objectAlias: x\n",
                "objects[0]: object name must be specified",
            ),
            // the seed document's example puts objectType in a second list item
            (
                "- objectName: test\n- objectType: kms\n",
                "objects[1]: object name must be specified",
            ),
            (
                "- objectName: acs:kms:cn-hangzhou:123\n",
                "invalid ARN format in object name: acs:kms:cn-hangzhou:123",
            ),
            (
                "- objectName: acs:ecs:cn-hangzhou:123:instance/i\n",
                "invalid service in ARN: ecs (only acs:kms:",
            ),
            (
                "- objectName: a\n  jmesPath:\n    - objectAlias: x\n",
                "path must be specified for JMES object",
            ),
            (
                "- objectName: a\n  jmesPath:\n    - path: x\n",
                "object alias must be specified for JMES object",
            ),
            (
                "- objectName: a\n- objectName: a\n",
                "duplicate object name: a (type: kms), at objects[1]",
            ),
            (
                "- objectName: ../etc/passwd\n  objectAlias: ../x\n",
                "objectAlias gives an invalid file path",
            ),
            (
                "- objectName: a\n  jmesPath:\n    - path: '.x'\n      objectAlias: y\n",
                "invalid JMES Path: .x",
            ),
            ("objectName: a\n", "must be a YAML list"),
            ("- [a]\n", "objects[0] must be a mapping of fields"),
            (
                "- objectName: a\n  filePermission: \"0999\"\n",
                "filePermission \"0999\" is not an octal file mode",
            ),
            (
                "- objectName: a\n  filePermission: \"1777\"\n",
                "is not an octal file mode",
            ),
            (
                "- objectName: a\n  objectVersion: [1]\n",
                "objectVersion must be a string",
            ),
            (
                "- objectName: a\n  parameters: [x]\n",
                "parameters must be a mapping",
            ),
            (
                "- objectName: a\n  jmesPath: x\n",
                "jmesPath must be a list",
            ),
            (
                "- objectName: 'a: b\n",
                "failed to load SecretProviderClass:",
            ),
        ] {
            let e = error(yaml);
            assert!(e.contains(want), "{yaml:?}: {e}");
        }
        assert!(objects("").unwrap_err().0.contains("has no objects"));
        assert!(objects("[]").unwrap_err().0.contains("has no objects"));
        // ARNs are checked for the built-in types only
        assert!(objects("- objectName: acs:x\n  objectType: custom\n").is_ok());
    }

    #[test]
    fn arn_names_become_file_names_as_upstream() {
        let objs = objects("- objectName: acs:kms:cn-hangzhou:123:secret/foo\n").unwrap();
        assert_eq!(objs[0].file_path, "acs:kms:cn-hangzhou:123:secret_foo");
    }

    #[test]
    fn path_translation() {
        let yaml = "- objectName: app/db/pass\n";
        assert_eq!(objects(yaml).unwrap()[0].file_path, "app_db_pass");
        assert_eq!(objects_with(yaml, "-").unwrap()[0].file_path, "app-db-pass");
        // upstream's broken regex rejected any 2-character segment here
        assert_eq!(
            objects_with(yaml, "False").unwrap()[0].file_path,
            "app/db/pass"
        );
        assert_eq!(
            objects_with("- objectName: /abs/name\n", "false").unwrap()[0].file_path,
            "abs/name"
        );
        assert_eq!(objects_with(yaml, "").unwrap()[0].file_path, "app_db_pass");
        for bad in ["__", "none", "\0"] {
            let e = objects_with(yaml, bad).unwrap_err().0;
            assert_eq!(
                e,
                "pathTranslation must be either 'False' or a single character string"
            );
        }
        let e = objects_with("- objectName: a//b\n", "False").unwrap_err().0;
        assert!(e.contains("not clean"), "{e}");
        let e = objects_with("- objectName: a/../../b\n", "False")
            .unwrap_err()
            .0;
        assert!(e.contains("contains '..'"), "{e}");
        // jmesPath aliases are checked and translated too
        let e = objects_with(
            "- objectName: a\n  jmesPath:\n    - path: x\n      objectAlias: ../../etc/cron.d/x\n",
            "False",
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains(
                "jmesPath[0]: path can not contain ../: a (objectAlias gives an invalid file path"
            ),
            "{e}"
        );
        let objs = objects("- objectName: a\n  jmesPath:\n    - path: x\n      objectAlias: d/x\n")
            .unwrap();
        assert_eq!(objs[0].jmes_path[0].file_path, "d_x");
    }

    #[test]
    fn collisions_name_both_objects() {
        for (yaml, translation, want) in [
            (
                "- objectName: a\n- objectName: b\n  objectAlias: a\n",
                "_",
                "objects[0] (objectName \"a\") and objects[1] (objectName \"b\") both write the file \"a\"",
            ),
            (
                "- objectName: a/b\n- objectName: a_b\n",
                "_",
                "objects[0] (objectName \"a/b\") and objects[1] (objectName \"a_b\") both write the file \"a_b\"",
            ),
            (
                "- objectName: a\n  jmesPath:\n    - path: x\n      objectAlias: a\n",
                "_",
                "objects[0] (objectName \"a\") and objects[0] (objectName \"a\") jmesPath[0] (objectAlias \"a\") both write",
            ),
            (
                "- objectName: a\n- objectName: a/b\n",
                "False",
                "objects[0] (objectName \"a\") writes the file \"a\" but objects[1] (objectName \"a/b\") needs it to be a directory",
            ),
            (
                "- objectName: x\n  objectType: kms\n- objectName: x\n  objectType: oos\n",
                "_",
                "both write the file \"x\"",
            ),
        ] {
            let e = objects_with(yaml, translation).unwrap_err().0;
            assert!(e.contains(want), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn mount_level_fields() {
        let spec = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n  filePermission: \"0600\"\n  parameters:\n    field: x\n    n: 3\n"),
            (ATTR_USE_POD_SA_TOKEN, "true"),
            (SA_TOKENS_KEY, "{\"sts.aliyuncs.com\":{\"token\":\"eyJhbGc\"}}"),
        ])
        .unwrap();
        assert!(spec.use_pod_service_account_token);
        assert_eq!(spec.objects[0].file_permission, Some(0o600));
        assert_eq!(
            spec.objects[0].parameters,
            [
                ("field".to_string(), "x".to_string()),
                ("n".to_string(), "3".to_string())
            ]
        );
        assert!(spec.service_account_tokens.is_some());
        let debug = format!("{spec:?}");
        assert!(!debug.contains("eyJhbGc"), "{debug}");

        // upstream: the exact string "true" turns it on, anything else is off
        for (value, on, warned) in [
            ("true", true, false),
            ("false", false, false),
            ("", false, false),
            ("True", false, true),
            ("TRUE", false, true),
            (" true", false, true),
            ("yes", false, true),
            ("1", false, true),
        ] {
            let spec = parse_with(&[
                (ATTR_OBJECTS, "- objectName: a\n"),
                (ATTR_USE_POD_SA_TOKEN, value),
            ])
            .unwrap();
            assert_eq!(spec.use_pod_service_account_token, on, "{value:?}");
            assert_eq!(!spec.warnings.is_empty(), warned, "{value:?}");
        }
        let spec = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n"),
            (ATTR_USE_POD_SA_TOKEN, "yes"),
        ])
        .unwrap();
        assert_eq!(
            spec.warnings,
            [
                "usePodServiceAccountToken is \"yes\", not \"true\": pod identity is off (only the exact string \"true\" turns it on, as in the upstream provider)"
            ]
        );
        let long = "y".repeat(100);
        let spec = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n"),
            (ATTR_USE_POD_SA_TOKEN, &long),
        ])
        .unwrap();
        assert!(
            spec.warnings[0].contains("… (100 bytes)"),
            "{:?}",
            spec.warnings
        );
        let e = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n"),
            (ATTR_REGION, "cn-hangzhou.evil.com"),
        ])
        .unwrap_err();
        assert!(e.0.contains("is not an Alibaba Cloud region id"), "{e}");
        // The one rule of `Region`: a leading digit (accepted here before)
        // and a trailing '-' are refused, as everywhere else.
        for bad in ["1a", "cn-"] {
            let e =
                parse_with(&[(ATTR_OBJECTS, "- objectName: a\n"), (ATTR_REGION, bad)]).unwrap_err();
            assert!(
                e.0.contains(&format!("region {bad:?} is not an Alibaba Cloud region id")),
                "{e}"
            );
        }
    }

    #[test]
    fn request_envelope_errors_do_not_quote_the_input() {
        let bad = parse_default(RawMount {
            attributes: "{\"objects\": 5, \"token\": \"eyJsecret\"}",
            secrets: "{}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(bad.0.starts_with("failed to unmarshal attributes"), "{bad}");
        assert!(!bad.0.contains("eyJ"), "{bad}");
        let bad = parse_default(RawMount {
            attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
            secrets: "{\"access_secret\": [\"AKSECRET\"]}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(bad.0.starts_with("failed to unmarshal secrets"), "{bad}");
        assert!(!bad.0.contains("AKSECRET"));
        for (permission, ok) in [
            ("420", Some(0o644)),
            ("384", Some(0o600)),
            ("", Some(0o644)),
            ("512", None),
            ("\"x\"", None),
            ("-1", None),
        ] {
            let got = parse_default(RawMount {
                attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
                secrets: "{}",
                permission,
                target_path: "/t",
            })
            .map(|s| s.default_mode)
            .ok();
            assert_eq!(got, ok, "{permission}");
        }
        let missing_pod = parse_default(RawMount {
            attributes: "{\"objects\":\"- objectName: a\"}",
            secrets: "{}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(missing_pod.0.contains("podInfoOnMount"), "{missing_pod}");
        let no_target = parse_default(RawMount {
            attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
            secrets: "{}",
            permission: "420",
            target_path: "",
        })
        .unwrap_err();
        assert!(no_target.0.starts_with("missing mount path"));
    }

    #[test]
    fn the_namespace_is_read_without_the_rest() {
        assert_eq!(
            pod_namespace(&attributes(&[(ATTR_OBJECTS, "- [unparsed")])).as_deref(),
            Some("team-a")
        );
        assert_eq!(pod_namespace("{\"objects\": \"x\"}"), None);
        assert_eq!(pod_namespace("not json"), None);
        assert_eq!(
            pod_namespace("{\"csi.storage.k8s.io/pod.namespace\": 5}"),
            None
        );
    }

    // Caught by the mount_request fuzz target's pod_namespace invariant (on a
    // hand-written input): with the namespace key repeated, parse took the
    // last value and pod_namespace refused the object, so the request was
    // shared fairly as namespace "" instead.
    #[test]
    fn a_repeated_namespace_key_reads_as_parse_reads_it() {
        let text = format!(
            "{{\"{ATTR_POD_NAMESPACE}\": \"victim\", {}",
            &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")])[1..]
        );
        let spec = parse_default(RawMount {
            attributes: &text,
            secrets: "",
            permission: "",
            target_path: "/t",
        })
        .unwrap();
        assert_eq!(spec.pod.namespace, "team-a");
        assert_eq!(pod_namespace(&text).as_deref(), Some("team-a"));
    }

    #[test]
    fn request_limits_are_named_when_exceeded() {
        let limits = RequestLimits {
            max_objects: 3,
            max_objects_bytes: 200,
        };
        let with = |yaml: &str| {
            let attrs = attributes(&[(ATTR_OBJECTS, yaml)]);
            parse(
                RawMount {
                    attributes: &attrs,
                    secrets: "{}",
                    permission: "420",
                    target_path: "/t",
                },
                &limits,
            )
            .map(|s| s.objects.len())
            .map_err(|e| e.0)
        };
        assert_eq!(
            with("- objectName: a\n- objectName: b\n- objectName: c\n"),
            Ok(3)
        );
        let e = with("- objectName: a\n- objectName: b\n- objectName: c\n- objectName: d\n")
            .unwrap_err();
        assert!(
            e.starts_with("the SecretProviderClass has 4 objects; the limit is 3 per Mount (config key limits.max_objects)"),
            "{e}"
        );
        let e = with(&format!("- objectName: {}\n", "a".repeat(300))).unwrap_err();
        assert!(
            e.starts_with("parameters.objects is 315 bytes long; the limit is 200 (config key limits.max_objects_bytes)"),
            "{e}"
        );

        let e = error(&format!(
            "- objectName: {}\n",
            "n".repeat(MAX_FIELD_BYTES + 1)
        ));
        assert!(
            e.contains("objectName is 4097 bytes long; the limit is 4096"),
            "{e}"
        );
        let e = error(&format!(
            "- objectName: a\n  kmsEndpoint: {}\n",
            "e".repeat(MAX_FIELD_BYTES + 1)
        ));
        assert!(e.contains("kmsEndpoint is 4097 bytes long"), "{e}");
        let entries: String = (0..=MAX_JMES_PER_OBJECT)
            .map(|i| format!("    - {{path: p{i}, objectAlias: a{i}}}\n"))
            .collect();
        let e = error(&format!("- objectName: a\n  jmesPath:\n{entries}"));
        assert!(
            e.contains("jmesPath has 65 entries; the limit is 64 per object"),
            "{e}"
        );
        let params: String = (0..=MAX_PARAMETERS_PER_OBJECT)
            .map(|i| format!("    k{i}: v\n"))
            .collect();
        let e = error(&format!("- objectName: a\n  parameters:\n{params}"));
        assert!(e.contains("parameters has 65 entries"), "{e}");
        let e = error(&format!(
            "- objectName: a\n  parameters:\n    k: {}\n",
            "v".repeat(MAX_FIELD_BYTES + 1)
        ));
        assert!(
            e.contains("a parameters entry is longer than 4096 bytes"),
            "{e}"
        );

        let long_pod = parse_default(RawMount {
            attributes: &attributes(&[
                (ATTR_OBJECTS, "- objectName: a\n"),
                (ATTR_POD_NAME, &"p".repeat(MAX_FIELD_BYTES + 1)),
            ]),
            secrets: "{}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(
            long_pod
                .0
                .contains("csi.storage.k8s.io/pod.name is 4097 bytes long"),
            "{long_pod}"
        );
        let long_target = parse_default(RawMount {
            attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
            secrets: "{}",
            permission: "420",
            target_path: &"/t".repeat(3000),
        })
        .unwrap_err();
        assert!(
            long_target.0.contains("target_path is 6000 bytes long"),
            "{long_target}"
        );
    }

    #[test]
    fn hostile_yaml_fails_with_the_limit_named() {
        let bomb = format!(
            "- &a [{}]\n- &b [{}]\n- [{}]\n",
            vec!["x"; 300].join(","),
            vec!["*a"; 300].join(","),
            vec!["*b"; 300].join(",")
        );
        assert!(error(&bomb).contains("expands to more than 65536 YAML nodes"));
        let nested = format!(
            "- objectName: {}a{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = objects_with_limits(&nested);
        assert!(e.contains("'[' and '{' characters"), "{e}");
        // merge keys work as they did upstream (go-yaml)
        let objs = objects(
            "- &kms {objectName: a, objectType: kms, objectVersionLabel: ACSCurrent}\n- <<: *kms\n  objectName: b\n",
        )
        .unwrap();
        assert_eq!(objs[1].name, "b");
        assert_eq!(objs[1].version_label.as_deref(), Some("ACSCurrent"));
    }

    /// `objects` with room for a large text, to reach the YAML bounds.
    fn objects_with_limits(yaml: &str) -> String {
        let attrs = attributes(&[(ATTR_OBJECTS, yaml)]);
        parse(
            RawMount {
                attributes: &attrs,
                secrets: "{}",
                permission: "420",
                target_path: "/t",
            },
            &RequestLimits {
                max_objects: 10,
                max_objects_bytes: 1 << 20,
            },
        )
        .unwrap_err()
        .0
    }

    #[test]
    fn tokens_from_secrets_are_taken_out_of_the_node_publish_secrets() {
        let attrs = attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]);
        let spec = parse_default(RawMount {
            attributes: &attrs,
            secrets: "{\"csi.storage.k8s.io/serviceAccount.tokens\":\"{}x\",\"access_key\":\"id\"}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap();
        assert_eq!(
            spec.service_account_tokens,
            Some(Sensitive("{}x".to_string()))
        );
        assert_eq!(
            spec.node_publish_secrets.keys().collect::<Vec<_>>(),
            ["access_key"]
        );
    }
}
