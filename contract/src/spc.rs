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

use crate::config::is_valid_region;
use crate::jmes::JmesQuery;
use crate::paths;

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
    pub region: Option<String>,
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

/// Parses and validates a Mount request. Errors never quote `secrets` or the
/// tokens.
pub fn parse(raw: RawMount<'_>) -> Result<MountSpec, SpcError> {
    let attributes = parse_string_map(raw.attributes, "attributes")?;
    let mut secrets = parse_string_map(raw.secrets, "secrets")?;
    if raw.target_path.is_empty() {
        return err("missing mount path: the Mount request has no target_path");
    }
    let default_mode = parse_permission(raw.permission)?;

    let required = |key: &str| match attributes.get(key).map(|v| v.trim()) {
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
        Some(r) if is_valid_region(r) => Some(r.to_string()),
        Some(r) => {
            return err(format!(
                "region {r:?} is not an Alibaba Cloud region id (lowercase letters, digits and '-', e.g. \"cn-hangzhou\")"
            ));
        }
    };
    let use_pod_service_account_token = match attributes
        .get(ATTR_USE_POD_SA_TOKEN)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return err(format!(
                "usePodServiceAccountToken must be \"true\" or \"false\", not {other:?}"
            ));
        }
    };
    let pod_role_arn = attributes
        .get(ATTR_POD_ROLE_ARN)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let translation = parse_path_translation(attributes.get(ATTR_PATH_TRANSLATION))?;

    let objects_yaml = attributes
        .get(ATTR_OBJECTS)
        .map(String::as_str)
        .unwrap_or("");
    let objects = parse_objects(objects_yaml, translation)?;

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
    })
}

/// Parses a JSON object of strings. The error gives the position only: the
/// text may hold tokens or keys.
fn parse_string_map(text: &str, field: &str) -> Result<BTreeMap<String, String>, SpcError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(text).map_err(|e| {
        SpcError(format!(
            "failed to unmarshal {field}: the Mount request's {field} must be a JSON object of strings ({:?} error at line {}, column {})",
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
                "failed to unmarshal file permission: {n} is not a file mode (0 to 511, e.g. 420 for 0644)"
            )),
        },
        _ => err(format!(
            "failed to unmarshal file permission: {text:?} is not a decimal file mode such as \"420\""
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

fn parse_objects(text: &str, translation: Option<char>) -> Result<Vec<ObjectSpec>, SpcError> {
    if text.trim().is_empty() {
        return err(
            "the SecretProviderClass has no objects: parameters.objects must list at least one object, e.g. \"- objectName: my-secret\"",
        );
    }
    let value: Value = serde_yaml::from_str(text)
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
    )?;

    let file_permission = optional_string(&fields, "filePermission", &what)?
        .map(|p| parse_octal_mode(&p, &what))
        .transpose()?;

    let mut jmes_path = Vec::new();
    match fields.get("jmesPath") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(entries)) => {
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
                check_path(&jmes_file, &entry_what, "objectAlias")?;
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
            for (k, v) in map {
                match (scalar_text(k), scalar_text(v)) {
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
            "{what}: invalid service in ARN: {name} (only acs:kms: ARNs are supported)"
        ));
    }
    Ok(())
}

fn check_path(path: &str, what: &str, field: &str) -> Result<(), SpcError> {
    paths::validate(path).map_err(|reason| {
        SpcError(format!(
            "{what}: {field} gives an invalid file path: {reason}"
        ))
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
    let mut outputs: Vec<(&str, String)> = Vec::new();
    for object in objects {
        outputs.push((object.file_path.as_str(), object.label()));
        for (j, jmes) in object.jmes_path.iter().enumerate() {
            outputs.push((
                jmes.file_path.as_str(),
                format!(
                    "{} jmesPath[{j}] (objectAlias {:?})",
                    object.label(),
                    jmes.alias
                ),
            ));
        }
    }
    if let Some(c) = paths::find_collision(&outputs) {
        if c.first_path == c.second_path {
            return err(format!(
                "file name collision: {} and {} both write the file {:?}; give one of them a different objectAlias",
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

    fn parse_with(extra: &[(&str, &str)]) -> Result<MountSpec, SpcError> {
        let attrs = attributes(extra);
        parse(RawMount {
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
                "invalid service in ARN: acs:ecs:",
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
            e.contains("jmesPath[0]: objectAlias gives an invalid file path"),
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
            (ATTR_USE_POD_SA_TOKEN, "TRUE"),
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

        let e = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n"),
            (ATTR_USE_POD_SA_TOKEN, "yes"),
        ])
        .unwrap_err();
        assert!(e.0.contains("usePodServiceAccountToken must be"), "{e}");
        let e = parse_with(&[
            (ATTR_OBJECTS, "- objectName: a\n"),
            (ATTR_REGION, "cn-hangzhou.evil.com"),
        ])
        .unwrap_err();
        assert!(e.0.contains("is not an Alibaba Cloud region id"), "{e}");
    }

    #[test]
    fn request_envelope_errors_do_not_quote_the_input() {
        let bad = parse(RawMount {
            attributes: "{\"objects\": 5, \"token\": \"eyJsecret\"}",
            secrets: "{}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(bad.0.starts_with("failed to unmarshal attributes"), "{bad}");
        assert!(!bad.0.contains("eyJ"), "{bad}");
        let bad = parse(RawMount {
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
            let got = parse(RawMount {
                attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
                secrets: "{}",
                permission,
                target_path: "/t",
            })
            .map(|s| s.default_mode)
            .ok();
            assert_eq!(got, ok, "{permission}");
        }
        let missing_pod = parse(RawMount {
            attributes: "{\"objects\":\"- objectName: a\"}",
            secrets: "{}",
            permission: "420",
            target_path: "/t",
        })
        .unwrap_err();
        assert!(missing_pod.0.contains("podInfoOnMount"), "{missing_pod}");
        let no_target = parse(RawMount {
            attributes: &attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]),
            secrets: "{}",
            permission: "420",
            target_path: "",
        })
        .unwrap_err();
        assert!(no_target.0.starts_with("missing mount path"));
    }

    #[test]
    fn tokens_from_secrets_are_taken_out_of_the_node_publish_secrets() {
        let attrs = attributes(&[(ATTR_OBJECTS, "- objectName: a\n")]);
        let spec = parse(RawMount {
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
