//! Built-in backend for Alibaba Cloud OOS encrypted parameters (`objectType: oos`).
//!
//! One `GetSecretParameter` (API 2019-06-01, `WithDecryption=true`) per
//! object: an `objectVersion` that is a number selects the
//! `ParameterVersion`; the version returned is the response's
//! `ParameterVersion` (upstream always said "v1", so a changed parameter was
//! never seen as a new version).
//!
//! The fields the upstream provider ignored for OOS objects are ignored
//! here too, each with a warning in the log: `objectVersionLabel` (OOS has
//! no version stages), `kmsEndpoint` (a KMS endpoint), and an
//! `objectVersion` that is not a number (such as the "v1" upstream reported).

use plugin_sdk::cloud::{self, ApiError, ApiRequest};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo, content, log};
use serde_json::Value;

struct Oos;

impl Backend for Oos {
    fn describe() -> PluginInfo {
        PluginInfo::new("oos", env!("CARGO_PKG_VERSION"))
            .about("Alibaba Cloud OOS encrypted parameters (GetSecretParameter)")
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        request.expect_parameters(&[])?;
        let call = build_call(&request)?;
        for warning in &call.ignored {
            log::warn(warning);
        }
        let response = call.api.send().map_err(|e| map_error(&request.name, &e))?;
        parse_response(&request.name, &response.body)
    }
}

plugin_sdk::export_backend!(Oos);

/// The `GetSecretParameter` call for an object, and what of the object it
/// ignores (one warning each).
#[derive(Debug)]
pub struct Call {
    /// The API call.
    pub api: ApiRequest,
    /// The ignored fields, described for the log.
    pub ignored: Vec<String>,
}

/// Highest `ParameterVersion` an `objectVersion` may pin.
pub const MAX_PARAMETER_VERSION: u32 = 100;

/// The `GetSecretParameter` call for `request`.
pub fn build_call(request: &ObjectRequest) -> Result<Call, FetchError> {
    let name = &request.name;
    let mut ignored = Vec::new();
    if let Some(label) = &request.version_label {
        ignored.push(format!(
            "objectVersionLabel {label:?} is ignored for OOS parameter {name}: OOS parameters have no version stages (the upstream provider ignored it too); an objectVersion number pins a ParameterVersion"
        ));
    }
    if let Some(endpoint) = &request.endpoint {
        ignored.push(format!(
            "kmsEndpoint {endpoint:?} is ignored for OOS parameter {name}: it applies to KMS objects only (as in the upstream provider); OOS calls go to the OOS endpoint"
        ));
    }
    let version = match &request.version {
        None => None,
        Some(version) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => {
            match version.parse::<u32>() {
                Ok(n @ 1..=MAX_PARAMETER_VERSION) => Some(n.to_string()),
                _ => {
                    return Err(FetchError::InvalidRequest(format!(
                        "objectVersion {version:?} of OOS parameter {name} must be a ParameterVersion number from 1 to {MAX_PARAMETER_VERSION}"
                    )));
                }
            }
        }
        Some(version) => {
            ignored.push(format!(
                "objectVersion {version:?} is ignored for OOS parameter {name}: only a ParameterVersion number (1 to {MAX_PARAMETER_VERSION}) pins a version, so the latest is fetched, as the upstream provider always did"
            ));
            None
        }
    };
    let api = ApiRequest::new("oos", "GetSecretParameter", "2019-06-01")
        .param("Name", name.clone())
        .param("WithDecryption", "true")
        .param_opt("ParameterVersion", version)
        .param("RegionId", request.region.clone());
    Ok(Call { api, ignored })
}

/// Reads a `GetSecretParameter` response body into the value and version.
///
/// The body is read as a [`Value`] and its fields picked by hand: a typed
/// deserialization's error would quote a mistyped `Value` (or a `Parameter`
/// that is a string), and every error here reaches the pod's events. Errors
/// say what is wrong and where, never a character of the parameter.
pub fn parse_response(name: &str, body: &[u8]) -> Result<FetchedObject, FetchError> {
    let malformed = |why: String| {
        FetchError::Other(format!(
            "OOS GetSecretParameter for parameter {name:?} returned a response that is not the expected JSON: {why}"
        ))
    };
    let missing = |field: &str| {
        FetchError::Other(format!(
            "OOS GetSecretParameter for parameter {name:?} returned no {field}"
        ))
    };
    let response = content::json(body).map_err(malformed)?;
    let not_an_object = |what: &str, value: &Value| {
        malformed(format!(
            "{what} is {}, not an object",
            content::kind_of(value)
        ))
    };
    let Some(fields) = response.as_object() else {
        return Err(not_an_object("the body", &response));
    };
    let parameter = match fields.get("Parameter") {
        None | Some(Value::Null) => return Err(missing("Parameter")),
        Some(Value::Object(parameter)) => parameter,
        Some(other) => return Err(not_an_object("Parameter", other)),
    };
    let value = match parameter.get("Value") {
        None | Some(Value::Null) => return Err(missing("Parameter.Value")),
        Some(Value::String(value)) => value,
        Some(other) => {
            return Err(malformed(format!(
                "Parameter.Value is {}, not a string",
                content::kind_of(other)
            )));
        }
    };
    let version = match parameter.get("ParameterVersion") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(missing("Parameter.ParameterVersion"));
        }
        Some(other) => {
            return Err(malformed(format!(
                "Parameter.ParameterVersion is {}, not a number",
                content::kind_of(other)
            )));
        }
    };
    Ok(FetchedObject::new(value.clone().into_bytes(), version))
}

/// Maps an OOS error; a missing parameter is `EntityNotExists.Parameter`.
/// The message starts as upstream's did (for OOS too):
/// `failed fetching secret <name>: <error>`.
pub fn map_error(name: &str, error: &ApiError) -> FetchError {
    let context = format!("failed fetching secret {name}");
    match error {
        ApiError::Service(e) if e.code.starts_with("EntityNotExists") => {
            FetchError::NotFound(format!("{context}: {}", cloud::describe(error)))
        }
        _ => cloud::default_fetch_error(&context, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::describe_fetch_error;

    fn request(version: Option<&str>, label: Option<&str>) -> ObjectRequest {
        ObjectRequest {
            name: "db/password".into(),
            object_type: "oos".into(),
            version: version.map(Into::into),
            version_label: label.map(Into::into),
            endpoint: None,
            region: "cn-beijing".into(),
            parameters: vec![],
            config: vec![],
        }
    }

    fn params(call: &Call) -> Vec<(&str, &str)> {
        call.api
            .parameters()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn call_asks_for_decryption_version_and_region() {
        let call = build_call(&request(Some("2"), None)).unwrap();
        assert_eq!(
            params(&call),
            [
                ("Name", "db/password"),
                ("WithDecryption", "true"),
                ("ParameterVersion", "2"),
                ("RegionId", "cn-beijing")
            ]
        );
        assert!(call.ignored.is_empty());
    }

    #[test]
    fn out_of_range_version_numbers_are_invalid_requests() {
        for version in ["0", "101", "99999999999"] {
            let err = build_call(&request(Some(version), None)).unwrap_err();
            assert_eq!(
                describe_fetch_error(&err),
                format!(
                    "invalid request: objectVersion {version:?} of OOS parameter db/password must be a ParameterVersion number from 1 to 100"
                )
            );
        }
    }

    // Upstream's getOOSSecret sent Name and WithDecryption only: the label,
    // the endpoint and a version that is not a number are ignored, with a
    // warning each.
    #[test]
    fn what_upstream_ignored_is_ignored_with_a_warning() {
        let mut ignoring = request(Some("v1"), Some("ACSCurrent"));
        ignoring.endpoint = Some("kst-hzz1.cryptoservice.kms.aliyuncs.com".into());
        let call = build_call(&ignoring).unwrap();
        assert_eq!(
            params(&call),
            [
                ("Name", "db/password"),
                ("WithDecryption", "true"),
                ("RegionId", "cn-beijing")
            ]
        );
        assert_eq!(
            call.ignored,
            [
                "objectVersionLabel \"ACSCurrent\" is ignored for OOS parameter db/password: OOS parameters have no version stages (the upstream provider ignored it too); an objectVersion number pins a ParameterVersion",
                "kmsEndpoint \"kst-hzz1.cryptoservice.kms.aliyuncs.com\" is ignored for OOS parameter db/password: it applies to KMS objects only (as in the upstream provider); OOS calls go to the OOS endpoint",
                "objectVersion \"v1\" is ignored for OOS parameter db/password: only a ParameterVersion number (1 to 100) pins a version, so the latest is fetched, as the upstream provider always did",
            ]
        );
        let call = build_call(&request(Some("latest"), None)).unwrap();
        assert_eq!(call.ignored.len(), 1);
        assert!(!params(&call).iter().any(|(k, _)| *k == "ParameterVersion"));
    }

    #[test]
    fn value_and_version_from_the_response() {
        let object = parse_response(
            "db/password",
            br#"{"RequestId":"r","Parameter":{"Name":"db/password","ParameterVersion":3,"Type":"Secret","Value":"s3cr3t"}}"#,
        )
        .unwrap();
        assert_eq!(object.contents, b"s3cr3t");
        assert_eq!(object.version, "3");
        let err = parse_response("p", br#"{"Parameter":{"ParameterVersion":1}}"#).unwrap_err();
        assert!(describe_fetch_error(&err).contains("no Parameter.Value"));
    }

    /// Every character of these values is one no legitimate message has.
    const MARKS: &[char] = &['§', '¤', 'Ж', '¶'];

    #[test]
    fn unexpected_answers_name_the_field_not_the_value() {
        let prefix = "error: OOS GetSecretParameter for parameter \"p\" returned ";
        for (body, want) in [
            (
                r#"{"Parameter":"§¤Ж¶"}"#,
                "a response that is not the expected JSON: Parameter is a string, not an object",
            ),
            (
                r#"{"Parameter":["§¤Ж¶"]}"#,
                "a response that is not the expected JSON: Parameter is an array, not an object",
            ),
            (
                r#"{"Parameter":{"ParameterVersion":1,"Value":4242424242}}"#,
                "a response that is not the expected JSON: Parameter.Value is a number, not a string",
            ),
            (
                r#"{"Parameter":{"ParameterVersion":1,"Value":{"§":"¤Ж¶"}}}"#,
                "a response that is not the expected JSON: Parameter.Value is an object, not a string",
            ),
            (
                r#"{"Parameter":{"ParameterVersion":true,"Value":"§¤Ж¶"}}"#,
                "a response that is not the expected JSON: Parameter.ParameterVersion is a boolean, not a number",
            ),
            (
                r#"{"Parameter":{"ParameterVersion":"","Value":"§¤Ж¶"}}"#,
                "no Parameter.ParameterVersion",
            ),
            (r#"{"RequestId":"r"}"#, "no Parameter"),
            (
                r#"["§¤Ж¶"]"#,
                "a response that is not the expected JSON: the body is an array, not an object",
            ),
            (
                r#"{"Parameter":{"Value":"§¤Ж¶" ]"#,
                "a response that is not the expected JSON: not valid JSON: expected ',' or '}' at line 1, column 34",
            ),
        ] {
            let message = describe_fetch_error(&parse_response("p", body.as_bytes()).unwrap_err());
            assert!(
                !message.contains(MARKS) && !message.contains("4242424242"),
                "the value leaked: {message}"
            );
            assert_eq!(message, format!("{prefix}{want}"), "{body}");
        }
    }

    #[test]
    fn missing_parameter_is_not_found() {
        let error = ApiError::Service(plugin_sdk::cloud::ServiceError {
            http_status: 404,
            code: "EntityNotExists.Parameter".into(),
            message: "The Parameter does not exist.".into(),
            request_id: "r".into(),
        });
        assert!(
            describe_fetch_error(&map_error("p", &error))
                .starts_with("not found: failed fetching secret p: EntityNotExists.Parameter")
        );
    }
}
