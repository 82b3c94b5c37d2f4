//! Built-in backend for Alibaba Cloud OOS encrypted parameters (`objectType: oos`).
//!
//! One `GetSecretParameter` (API 2019-06-01, `WithDecryption=true`) per
//! object: `objectVersion` selects the `ParameterVersion`; the version
//! returned is the response's `ParameterVersion` (upstream always said "v1",
//! so a changed parameter was never seen as a new version).

use plugin_sdk::cloud::{self, ApiError, ApiRequest};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo};
use serde::Deserialize;

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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretParameterResponse {
    parameter: Option<Parameter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Parameter {
    value: Option<String>,
    parameter_version: Option<serde_json::Value>,
}

/// Reads a `GetSecretParameter` response body into the value and version.
pub fn parse_response(name: &str, body: &[u8]) -> Result<FetchedObject, FetchError> {
    let response: GetSecretParameterResponse = serde_json::from_slice(body).map_err(|e| {
        FetchError::Other(format!(
            "OOS GetSecretParameter for parameter {name:?} returned a response that is not the expected JSON: {e}"
        ))
    })?;
    let missing = |field: &str| {
        FetchError::Other(format!(
            "OOS GetSecretParameter for parameter {name:?} returned no {field}"
        ))
    };
    let parameter = response.parameter.ok_or_else(|| missing("Parameter"))?;
    let value = parameter.value.ok_or_else(|| missing("Parameter.Value"))?;
    let version = match parameter.parameter_version {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err(missing("Parameter.ParameterVersion")),
    };
    Ok(FetchedObject::new(value.into_bytes(), version))
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
