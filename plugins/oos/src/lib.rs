//! Built-in backend for Alibaba Cloud OOS encrypted parameters (`objectType: oos`).
//!
//! One `GetSecretParameter` (API 2019-06-01, `WithDecryption=true`) per
//! object: `objectVersion` selects the `ParameterVersion`; the version
//! returned is the response's `ParameterVersion` (upstream always said "v1",
//! so a changed parameter was never seen as a new version).

use plugin_sdk::cloud::{self, ApiError, ApiRequest};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo, content};
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
        let response = call.send().map_err(|e| map_error(&request.name, &e))?;
        parse_response(&request.name, &response.body)
    }
}

plugin_sdk::export_backend!(Oos);

/// The `GetSecretParameter` call for `request`.
pub fn build_call(request: &ObjectRequest) -> Result<ApiRequest, FetchError> {
    if request.version_label.is_some() {
        return Err(FetchError::InvalidRequest(format!(
            "objectVersionLabel is not supported for OOS parameter {}: OOS parameters have numbered versions only; use objectVersion",
            request.name
        )));
    }
    if let Some(version) = &request.version {
        match version.parse::<u32>() {
            Ok(1..=100) => {}
            _ => {
                return Err(FetchError::InvalidRequest(format!(
                    "objectVersion {version:?} of OOS parameter {} must be a ParameterVersion number from 1 to 100",
                    request.name
                )));
            }
        }
    }
    Ok(ApiRequest::new("oos", "GetSecretParameter", "2019-06-01")
        .param("Name", request.name.clone())
        .param("WithDecryption", "true")
        .param_opt("ParameterVersion", request.version.clone())
        .param("RegionId", request.region.clone())
        .endpoint(request.endpoint.clone()))
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
pub fn map_error(name: &str, error: &ApiError) -> FetchError {
    let context = format!("failed fetching parameter {name} from OOS");
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

    #[test]
    fn call_asks_for_decryption_version_and_region() {
        let call = build_call(&request(Some("2"), None)).unwrap();
        let params: Vec<(&str, &str)> = call
            .parameters()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("Name", "db/password"),
                ("WithDecryption", "true"),
                ("ParameterVersion", "2"),
                ("RegionId", "cn-beijing")
            ]
        );
    }

    #[test]
    fn bad_selectors_are_invalid_requests() {
        for (version, label) in [
            (Some("latest"), None),
            (Some("0"), None),
            (None, Some("ACSCurrent")),
        ] {
            let err = build_call(&request(version, label)).unwrap_err();
            assert!(
                describe_fetch_error(&err).starts_with("invalid request"),
                "{version:?} {label:?}"
            );
        }
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
                .starts_with("not found: failed fetching parameter p from OOS")
        );
    }
}
