//! The upstream Go provider's own parsing inputs, run through our parser:
//! its unit tests' objects, the YAML forms its SecretProviderClasses use, and
//! the YAML behaviours of the go-yaml v2 it parsed them with
//! (`sigs.k8s.io/yaml`: YAML to JSON, then `encoding/json`). Each case is
//! named after its source in upstream's repository
//! (`AliyunContainerService/secrets-store-csi-driver-provider-alibaba-cloud`,
//! v0.6.0) and either reads as upstream read it or fails with the deliberate
//! difference the README's "What changed, on purpose" table lists.
//!
//! Whole Mounts of upstream's SecretProviderClasses (files, modes, versions,
//! credentials) are in `tests/tests/e2e/upstream_compat.rs`.

use std::collections::BTreeMap;

use contract::spc::{self, MountSpec, RawMount, RequestLimits, SpcError};

/// A Mount request's attributes with kubelet's pod info and `parameters`.
fn parse(parameters: &[(&str, &str)]) -> Result<MountSpec, SpcError> {
    let mut attributes: BTreeMap<&str, &str> = BTreeMap::from([
        (spc::ATTR_POD_NAMESPACE, "default"),
        (spc::ATTR_POD_NAME, "app"),
        (spc::ATTR_POD_UID, "9b1c"),
        (spc::ATTR_SERVICE_ACCOUNT, "default"),
    ]);
    attributes.extend(parameters.iter().copied());
    let attributes = serde_json::to_string(&attributes).unwrap();
    spc::parse(
        RawMount {
            attributes: &attributes,
            secrets: "{}",
            permission: "420",
            target_path: "/var/lib/kubelet/pods/9b1c/volumes/kubernetes.io~csi/secrets/mount",
        },
        &RequestLimits::default(),
    )
}

fn objects(yaml: &str) -> Result<MountSpec, SpcError> {
    parse(&[(spc::ATTR_OBJECTS, yaml)])
}

/// The file paths of a parsed Mount: each object's, then its jmesPath ones.
fn files(spec: &MountSpec) -> Vec<&str> {
    spec.objects
        .iter()
        .flat_map(|o| {
            std::iter::once(o.file_path.as_str())
                .chain(o.jmes_path.iter().map(|j| j.file_path.as_str()))
        })
        .collect()
}

#[track_caller]
fn fails_with(result: Result<MountSpec, SpcError>, upstream_text: &str) -> String {
    let message = result.expect_err("upstream refused this too").0;
    assert!(
        message.contains(upstream_text),
        "upstream's {upstream_text:?} is not in: {message}"
    );
    message
}

// provider/secert_object_test.go, TestSecretObject_validateSecretObject:
// validateSecretObject with translation off (its `translate` field empty).
#[test]
fn upstream_unit_test_validate_secret_object() {
    let off = |yaml: &str| {
        parse(&[
            (spc::ATTR_OBJECTS, yaml),
            (spc::ATTR_PATH_TRANSLATION, "False"),
        ])
    };
    // validate-secret-obj-1: name MySecret, alias test
    let spec = off("- objectName: MySecret\n  objectAlias: test\n").unwrap();
    assert_eq!(files(&spec), ["test"]);
    // validate-secret-obj-2..4: a ".." element in the alias or the name
    for (yaml, name) in [
        (
            "- objectName: MySecret\n  objectAlias: a/../bad\n",
            "MySecret",
        ),
        ("- objectName: ../Bad\n", "../Bad"),
        ("- objectName: test/..\n", "test/.."),
    ] {
        fails_with(off(yaml), &format!("path can not contain ../: {name}"));
    }
}

// Upstream's badPathRE lost its escapes ("(/../)|(^../)|(/..$)"), so with
// translation off it refused every 2-character path element; the driver's
// own rules are applied instead (README: "What changed, on purpose").
#[test]
fn upstream_regex_bug_two_character_elements_are_accepted() {
    let spec = parse(&[
        (
            spc::ATTR_OBJECTS,
            "- objectName: app/db/password\n- objectName: ab/x\n",
        ),
        (spc::ATTR_PATH_TRANSLATION, "False"),
    ])
    .unwrap();
    assert_eq!(files(&spec), ["app/db/password", "ab/x"]);
}

// README.md "SecretProviderClass Options": objectName may be the full ARN;
// pathTranslation replaces "/" (default "_"), "False" turns it off.
#[test]
fn upstream_readme_arn_names_and_path_translation() {
    let arn = "acs:kms:cn-hangzhou:123456789012:secret/My/Path/Secret";
    let yaml = format!("- objectName: {arn}\n- objectName: My/Path/Secret\n  objectAlias: a\n");
    let spec = objects(&yaml).unwrap();
    assert_eq!(
        files(&spec),
        [
            "acs:kms:cn-hangzhou:123456789012:secret_My_Path_Secret",
            "a"
        ]
    );
    let spec = parse(&[
        (spc::ATTR_OBJECTS, "- objectName: My/Path/Secret\n"),
        (spc::ATTR_PATH_TRANSLATION, "-"),
    ])
    .unwrap();
    assert_eq!(files(&spec), ["My-Path-Secret"]);
    let spec = parse(&[
        (spc::ATTR_OBJECTS, "- objectName: /My/Path/Secret\n"),
        (spc::ATTR_PATH_TRANSLATION, "false"),
    ])
    .unwrap();
    assert_eq!(
        files(&spec),
        ["My/Path/Secret"],
        "leading '/' stripped, as upstream"
    );
    fails_with(
        parse(&[
            (spc::ATTR_OBJECTS, "- objectName: a\n"),
            (spc::ATTR_PATH_TRANSLATION, "__"),
        ]),
        "pathTranslation must be either 'False' or a single character string",
    );
}

// utils/arn.go ParseARN and secret_object.go validateSecretObject: an
// "acs:" name must have 5 sections and the service kms, whatever the type.
#[test]
fn upstream_arn_checks() {
    fails_with(
        objects("- objectName: acs:kms:cn-hangzhou:123\n"),
        "invalid ARN format in object name: acs:kms:cn-hangzhou:123",
    );
    let message = fails_with(
        objects("- objectName: acs:oos:cn-hangzhou:123:secretparameter/p\n  objectType: oos\n"),
        "invalid service in ARN: oos",
    );
    assert!(
        message.starts_with("objects[0] (objectName \"acs:oos:cn-hangzhou:123:secretparameter/p\"): invalid service in ARN: oos ("),
        "{message}"
    );
}

// The seed document (Alibaba Cloud's ACK guide to upstream) and README.md
// describe jmesPath's objectAlias as optional, but upstream's
// validateSecretObject requires both fields.
#[test]
fn seed_document_jmes_path_fields_are_both_required() {
    fails_with(
        objects("- objectName: test\n  jmesPath:\n    - path: username\n"),
        "object alias must be specified for JMES object",
    );
    fails_with(
        objects("- objectName: test\n  jmesPath:\n    - objectAlias: username\n"),
        "path must be specified for JMES object",
    );
}

// The seed document's "Configuration example" puts objectType in a second
// list item: an object without a name, which upstream refused too.
#[test]
fn seed_document_configuration_example_fails_as_upstream() {
    let message = fails_with(
        objects("- objectName: \"test\"\n- objectType: \"kms\"\n"),
        "object name must be specified",
    );
    assert!(message.starts_with("objects[1]:"), "{message}");
}

// secret_object.go processSecretObject: the duplicate checks upstream had.
#[test]
fn upstream_duplicate_checks() {
    fails_with(
        objects("- objectName: a\n- objectName: a\n"),
        "duplicate object name: a (type: kms)",
    );
    // objectType "" is kms, so these are the same object
    fails_with(
        objects("- objectName: a\n- objectName: a\n  objectType: kms\n"),
        "duplicate object name: a (type: kms)",
    );
    fails_with(
        objects("- objectName: a\n  objectAlias: x\n- objectName: b\n  objectAlias: x\n"),
        "duplicate object alias: x",
    );
    fails_with(
        objects(
            "- objectName: a\n  jmesPath:\n    - {path: u, objectAlias: user}\n- objectName: b\n  jmesPath:\n    - {path: u, objectAlias: user}\n",
        ),
        "duplicate JMES path object alias: user",
    );
}

// README.md "Tips": the same objectName for kms and oos needs different
// aliases, "otherwise ... overridden by the last one". Here that is an error
// naming both objects instead of a silently lost file.
#[test]
fn upstream_readme_tips_same_name_for_kms_and_oos() {
    let spec = objects(
        "- objectName: \"MySecret\"\n  objectType: \"kms\"\n  objectAlias: \"MySecretKMS\"\n- objectName: \"MySecret\"\n  objectType: \"oos\"\n  objectAlias: \"MySecretOOS\"\n",
    )
    .unwrap();
    assert_eq!(files(&spec), ["MySecretKMS", "MySecretOOS"]);
    let message = objects(
        "- objectName: \"MySecret\"\n  objectType: \"kms\"\n- objectName: \"MySecret\"\n  objectType: \"oos\"\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(
        message,
        "file name collision: objects[0] (objectName \"MySecret\") and objects[1] (objectName \"MySecret\") both write the file \"MySecret\"; give one of them a different objectAlias"
    );
}

// usePodServiceAccountToken (server/server.go): the exact string "true"
// turns pod identity on; anything else is off, never an error. Values
// other than "true"/"false" leave a warning for the log.
#[test]
fn upstream_use_pod_service_account_token_values() {
    for (value, on) in [
        ("true", true),
        ("false", false),
        ("True", false),
        ("TRUE", false),
        ("yes", false),
        ("1", false),
        ("on", false),
    ] {
        let spec = parse(&[
            (spc::ATTR_OBJECTS, "- objectName: a\n"),
            (spc::ATTR_USE_POD_SA_TOKEN, value),
        ])
        .unwrap();
        assert_eq!(spec.use_pod_service_account_token, on, "{value}");
        assert_eq!(
            spec.warnings.len(),
            usize::from(value != "true" && value != "false"),
            "{value}"
        );
    }
}

// tests/fixtures/spc/test-cross-account-spc.yaml and test-ak-sk-spc.yaml:
// an unknown top-level parameter (env_auth_mode) and YAML comments inside
// the objects text, as upstream's e2e fixtures have them.
#[test]
fn upstream_e2e_fixture_comments_and_unknown_parameters() {
    let spec = parse(&[
        ("env_auth_mode", "aksk"),
        (
            spc::ATTR_OBJECTS,
            "# Access target account's Secret\n- objectName: \"cross-account-test\"\n  objectType: \"kms\"\n  # Target account RAM Role ARN for cross-account access\n  crossAccountRoleArn: \"acs:ram::123456789012:role/target\"\n  # KMS Endpoint can be specified if target account KMS is in a different region\n  # kmsEndpoint: \"kms.cn-hangzhou.aliyuncs.com\"\n",
        ),
    ])
    .unwrap();
    assert_eq!(files(&spec), ["cross-account-test"]);
    assert_eq!(
        spec.objects[0].cross_account_role_arn.as_deref(),
        Some("acs:ram::123456789012:role/target")
    );
    assert_eq!(spec.objects[0].kms_endpoint, None);
}

// tests/BasicTestMountSPC.yaml (the bats suite before v0.6.0): items indented
// by 8 spaces after "objects: | " (a trailing space after the indicator).
#[test]
fn upstream_bats_basic_test_mount_spc() {
    let spec = objects(
        "        - objectName: testBasic\n        - objectName: testSync\n        - objectName: testRotation\n        - objectName: testJson\n          jmesPath:\n            - path: \"username\"\n              objectAlias: \"mySecretUsername\"\n            - path: \"password\"\n              objectAlias: \"mySecretPassword\"\n",
    )
    .unwrap();
    assert_eq!(
        files(&spec),
        [
            "testBasic",
            "testSync",
            "testRotation",
            "testJson",
            "mySecretUsername",
            "mySecretPassword"
        ]
    );
}

// go-yaml v2 applies merge keys (`<<: *anchor`); so do we, with the same
// result when the merge key comes first (the usual form) and for a list of
// merges (earlier mappings win).
#[test]
fn go_yaml_merge_keys_as_upstream() {
    let spec = objects(
        "- &common\n  objectName: base\n  objectType: kms\n  objectVersionLabel: ACSCurrent\n  crossAccountRoleArn: acs:ram::123456789012:role/reader\n- <<: *common\n  objectName: other\n- <<: [{objectAlias: first, objectVersion: v1}, {objectAlias: second, objectVersionLabel: ACSPrevious}]\n  objectName: third\n",
    )
    .unwrap();
    let [base, other, third] = &spec.objects[..] else {
        panic!("three objects");
    };
    assert_eq!(base.name, "base");
    assert_eq!(other.name, "other");
    assert_eq!(other.version_label.as_deref(), Some("ACSCurrent"));
    assert_eq!(
        other.cross_account_role_arn.as_deref(),
        Some("acs:ram::123456789012:role/reader")
    );
    assert_eq!(third.alias.as_deref(), Some("first"));
    assert_eq!(third.version.as_deref(), Some("v1"));
    assert_eq!(third.version_label.as_deref(), Some("ACSPrevious"));
}

// The one place go-yaml v2 differs: a key written before `<<` is overwritten
// by the merged value there (its decoder applies the merge where it stands);
// the YAML merge specification, go-yaml v3 and we keep the written key.
#[test]
fn go_yaml_v2_merge_after_a_key_keeps_the_key_here() {
    let spec = objects(
        "- &common {objectName: base, objectVersionLabel: ACSCurrent}\n- objectName: other\n  objectVersionLabel: ACSPrevious\n  <<: *common\n",
    )
    .unwrap();
    assert_eq!(
        spec.objects[1].name, "other",
        "go-yaml v2 would read \"base\""
    );
    assert_eq!(
        spec.objects[1].version_label.as_deref(),
        Some("ACSPrevious")
    );
}

// sigs.k8s.io/yaml turns YAML into JSON before encoding/json reads it into
// string fields, so upstream refused unquoted numbers and YAML 1.1 booleans
// (`objectVersion: 2`, `objectName: yes`) with "failed to load
// SecretProviderClass: error unmarshaling JSON: ... cannot unmarshal number
// into Go struct field". Here a scalar is read as its text.
#[test]
fn unquoted_scalars_are_read_as_text() {
    let spec =
        objects("- objectName: 2024\n  objectVersion: 2\n- objectName: yes\n  objectAlias: on\n")
            .unwrap();
    assert_eq!(spec.objects[0].name, "2024");
    assert_eq!(spec.objects[0].version.as_deref(), Some("2"));
    assert_eq!(
        (spec.objects[1].name.as_str(), files(&spec)[1]),
        ("yes", "on")
    );
    fails_with(
        objects("- objectName: 'a: b\n"),
        "failed to load SecretProviderClass: ",
    );
}
