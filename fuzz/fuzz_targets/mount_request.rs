//! The whole Mount request through `spc::parse`, with the default limits and
//! with small ones.
//!
//! Input, first byte even ("raw"): the rest is `attributes \0 secrets \0
//! permission \0 target_path`, each handed over as is.
//!
//! First byte odd ("structured"): bytes 1..=4 choose `pathTranslation`,
//! `region`, `usePodServiceAccountToken` and the permission/podRoleArn from
//! small tables, and the rest is the `objects` YAML, put into attributes that
//! carry a valid pod, so every execution reaches YAML and object validation.
//! The secrets are values carrying a marker.
//!
//! Invariants: see `check` (accepted output is well-formed and collision-free,
//! small limits only ever refuse more, errors and Debug output never carry a
//! secret, errors stay proportionate to the input).
#![no_main]

use std::collections::BTreeMap;

use contract::paths;
use contract::region::Region;
use contract::spc::{self, MountSpec, RawMount, RequestLimits, SpcError};
use libfuzzer_sys::fuzz_target;
use provider_fuzz::{pick, split_fields, text};

/// Put in every secret value; must never surface.
const MARK: &str = "SeCrEt-MaRk-";

const SMALL: RequestLimits = RequestLimits {
    max_objects: 2,
    max_objects_bytes: 512,
};

const PATH_TRANSLATION: &[Option<&str>] = &[
    None,
    Some(""),
    Some("_"),
    Some("-"),
    Some("false"),
    Some("False"),
    Some("FALSE"),
    Some("/"),
    Some("."),
    Some("\0"),
    Some("ab"),
    Some("é"),
    Some(" "),
    Some("\\"),
];
const REGION: &[Option<&str>] = &[
    None,
    Some(""),
    Some("cn-hangzhou"),
    Some(" cn-beijing "),
    Some("CN-HANGZHOU"),
    Some("-cn"),
    Some("cn/hangzhou"),
    Some("ap-southeast-1"),
];
const USE_POD_SA: &[Option<&str>] = &[
    None,
    Some(""),
    Some("true"),
    Some("TRUE"),
    Some(" false "),
    Some("yes"),
    Some("1"),
];
const PERMISSION: &[&str] = &[
    "", "420", "384", "511", "512", "-1", "0644", "\"420\"", "4.2",
];
const ROLE_ARN: &[Option<&str>] = &[
    None,
    Some(""),
    Some("acs:ram::123456789012:role/app"),
    Some("  "),
];

fn attributes(objects: &str, selectors: [u8; 4]) -> String {
    let mut map: BTreeMap<&str, &str> = BTreeMap::from([
        (spc::ATTR_POD_NAME, "app-7d9c"),
        (spc::ATTR_POD_NAMESPACE, "team-a"),
        (spc::ATTR_POD_UID, "0b6c-1"),
        (spc::ATTR_SERVICE_ACCOUNT, "app"),
        (spc::ATTR_OBJECTS, objects),
    ]);
    let mut set = |key, value: Option<&'static str>| {
        if let Some(v) = value {
            map.insert(key, v);
        }
    };
    set(
        spc::ATTR_PATH_TRANSLATION,
        pick(PATH_TRANSLATION, selectors[0]),
    );
    set(spc::ATTR_REGION, pick(REGION, selectors[1]));
    set(spc::ATTR_USE_POD_SA_TOKEN, pick(USE_POD_SA, selectors[2]));
    set(spc::ATTR_POD_ROLE_ARN, pick(ROLE_ARN, selectors[3] >> 4));
    serde_json::to_string(&map).expect("a map of strings serialises")
}

/// The secrets map with every value replaced by a marked one.
fn marked_secrets(secrets: &BTreeMap<String, String>) -> String {
    let marked: BTreeMap<&str, String> = secrets
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), format!("{MARK}{i}")))
        .collect();
    serde_json::to_string(&marked).expect("a map of strings serialises")
}

fn parse_both(raw: RawMount<'_>) -> [Result<MountSpec, SpcError>; 2] {
    [
        spc::parse(raw, &RequestLimits::default()),
        spc::parse(raw, &SMALL),
    ]
}

/// `translation`: the pathTranslation character when the target knows it.
/// `marked`: the secrets carry `MARK` and no other field does.
fn check(raw: RawMount<'_>, translation: Option<char>, marked: bool) {
    let results = parse_both(raw);
    let input_len =
        raw.attributes.len() + raw.secrets.len() + raw.permission.len() + raw.target_path.len();
    for (result, limits) in results.iter().zip([RequestLimits::default(), SMALL]) {
        match result {
            Ok(spec) => check_spec(spec, raw, &limits, translation),
            Err(SpcError(message)) => {
                assert!(
                    message.len() <= 4 * input_len + 4096,
                    "an error of {} bytes for {input_len} bytes of input",
                    message.len()
                );
                if marked {
                    assert!(!message.contains(MARK), "a secret in an error: {message}");
                }
            }
        }
        if marked && let Ok(spec) = result {
            assert!(!format!("{spec:?}").contains(MARK), "a secret in Debug");
        }
    }
    // Smaller limits only ever refuse more.
    if let [full, Ok(small)] = &results {
        let full = full
            .as_ref()
            .expect("accepted with small limits, refused with the defaults");
        assert_eq!(format!("{full:?}"), format!("{small:?}"));
    }
}

fn check_spec(
    spec: &MountSpec,
    raw: RawMount<'_>,
    limits: &RequestLimits,
    translation: Option<char>,
) {
    assert!(!spec.objects.is_empty() && spec.objects.len() <= limits.max_objects);
    assert!(spec.default_mode <= 0o777);
    assert_eq!(spec.target_path, raw.target_path);
    for field in [
        &spec.pod.namespace,
        &spec.pod.name,
        &spec.pod.uid,
        &spec.pod.service_account,
    ] {
        assert!(!field.is_empty() && field.len() <= spc::MAX_FIELD_BYTES);
        assert_eq!(field.trim(), field);
    }
    // The fair-share key read before parsing is the namespace parsing finds.
    assert_eq!(
        spc::pod_namespace(raw.attributes).as_deref(),
        Some(spec.pod.namespace.as_str()),
        "pod_namespace disagrees with parse"
    );
    if let Some(region) = &spec.region {
        assert_eq!(
            Region::parse(region.as_str()).as_ref(),
            Ok(region),
            "{region:?}"
        );
    }
    if let Some(arn) = &spec.pod_role_arn {
        assert!(!arn.is_empty() && arn.len() <= spc::MAX_FIELD_BYTES);
    }
    assert!(!spec.node_publish_secrets.contains_key(spc::SA_TOKENS_KEY));

    let mut outputs: Vec<(&str, String)> = Vec::new();
    for (i, object) in spec.objects.iter().enumerate() {
        assert_eq!(object.index, i);
        assert!(!object.name.is_empty() && object.name.len() <= spc::MAX_FIELD_BYTES);
        assert!(!object.object_type.is_empty());
        assert!(!object.object_type.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(object.file_permission.is_none_or(|m| m <= 0o777));
        assert!(object.jmes_path.len() <= spc::MAX_JMES_PER_OBJECT);
        assert!(object.parameters.len() <= spc::MAX_PARAMETERS_PER_OBJECT);
        outputs.push((object.file_path.as_str(), object.label()));
        for (j, jmes) in object.jmes_path.iter().enumerate() {
            assert!(!jmes.path.is_empty() && !jmes.alias.is_empty());
            outputs.push((jmes.file_path.as_str(), format!("{}#{j}", object.label())));
        }
    }
    for (path, owner) in &outputs {
        if let Err(e) = paths::validate(path) {
            panic!("{owner} writes {path:?}, which paths::validate refuses: {e}");
        }
        if let Some(c) = translation
            && c != '/'
        {
            assert!(
                !path.contains('/'),
                "{path:?} kept a '/' with pathTranslation {c:?}"
            );
        }
    }
    assert_eq!(paths::find_collision(&outputs), None);
}

fn raw_mode(data: &[u8]) {
    let fields = split_fields(data, 4);
    let [attributes, secrets, permission, target_path] =
        [fields[0], fields[1], fields[2], fields[3]].map(text);
    let raw = RawMount {
        attributes: &attributes,
        secrets: &secrets,
        permission: &permission,
        target_path: &target_path,
    };
    check(raw, None, false);
    // Again with the secrets' values marked, when they are a map of strings
    // and nothing else carries the marker.
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(&secrets)
        && ![&attributes, &permission, &target_path]
            .iter()
            .any(|f| f.contains(MARK))
        && !map.keys().any(|k| k.contains(MARK))
    {
        let secrets = marked_secrets(&map);
        check(
            RawMount {
                secrets: &secrets,
                ..raw
            },
            None,
            true,
        );
    }
}

fn structured_mode(data: &[u8]) {
    let mut selectors = [0u8; 4];
    let n = data.len().min(4);
    selectors[..n].copy_from_slice(&data[..n]);
    let objects = text(&data[n..]);
    let attributes = attributes(&objects, selectors);
    let translation = match pick(PATH_TRANSLATION, selectors[0]) {
        None | Some("") => Some('_'),
        Some(t) => {
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c != '\0' => Some(c),
                _ => None,
            }
        }
    };
    let secrets = BTreeMap::from([
        ("username".to_string(), String::new()),
        ("password".to_string(), String::new()),
        (spc::SA_TOKENS_KEY.to_string(), String::new()),
    ]);
    let secrets = marked_secrets(&secrets);
    let raw = RawMount {
        attributes: &attributes,
        secrets: &secrets,
        permission: pick(PERMISSION, selectors[3] & 0x0f),
        target_path: "/var/lib/kubelet/pods/0b6c-1/volumes/kubernetes.io~csi/secrets/mount",
    };
    check(raw, translation, !objects.contains(MARK));
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        None => {}
        Some((mode, rest)) if mode % 2 == 0 => raw_mode(rest),
        Some((_, rest)) => structured_mode(rest),
    }
});
