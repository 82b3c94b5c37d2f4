//! Built-in backend for Alibaba Cloud KMS Secrets Manager (`objectType: kms`).
//!
//! One `GetSecretValue` (API 2016-01-20) per object: `objectVersion` selects
//! the `VersionId`, `objectVersionLabel` the `VersionStage`, `kmsEndpoint`
//! the endpoint. `binary` secrets are base64-decoded, as the upstream provider
//! does; the version is the response's `VersionId`.

use base64::Engine as _;
use plugin_sdk::cloud::{self, ApiError, ApiRequest};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo};
use serde::Deserialize;

struct Kms;

impl Backend for Kms {
    fn describe() -> PluginInfo {
        PluginInfo::new("kms", env!("CARGO_PKG_VERSION"))
            .about("Alibaba Cloud KMS Secrets Manager secrets (GetSecretValue)")
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        request.expect_parameters(&[])?;
        let call = build_call(&request);
        let response = call.send().map_err(|e| map_error(&request.name, &e))?;
        parse_response(&request.name, &response.body)
    }
}

plugin_sdk::export_backend!(Kms);

/// The `GetSecretValue` call for `request`.
pub fn build_call(request: &ObjectRequest) -> ApiRequest {
    ApiRequest::new("kms", "GetSecretValue", "2016-01-20")
        .param("SecretName", request.name.clone())
        .param_opt("VersionId", request.version.clone())
        .param_opt("VersionStage", request.version_label.clone())
        .endpoint(request.endpoint.clone())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueResponse {
    secret_data: Option<String>,
    secret_data_type: Option<String>,
    version_id: Option<String>,
}

/// Reads a `GetSecretValue` response body into the object's bytes and version.
pub fn parse_response(name: &str, body: &[u8]) -> Result<FetchedObject, FetchError> {
    let response: GetSecretValueResponse = serde_json::from_slice(body).map_err(|e| {
        FetchError::Other(format!(
            "KMS GetSecretValue for secret {name:?} returned a response that is not the expected JSON: {e}"
        ))
    })?;
    let missing = |field: &str| {
        FetchError::Other(format!(
            "KMS GetSecretValue for secret {name:?} returned no {field}"
        ))
    };
    let data = response.secret_data.ok_or_else(|| missing("SecretData"))?;
    let version = response.version_id.ok_or_else(|| missing("VersionId"))?;
    let contents = if response.secret_data_type.as_deref() == Some("binary") {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| {
                FetchError::Other(format!(
                    "decode binary data error: {e}, key: {name} (a binary KMS secret must hold base64 text)"
                ))
            })?
    } else {
        data.into_bytes()
    };
    Ok(FetchedObject { contents, version })
}

/// Maps a KMS error: KMS reports a missing secret or version as
/// `Forbidden.ResourceNotFound`, which is not a permission problem.
pub fn map_error(name: &str, error: &ApiError) -> FetchError {
    let context = format!("failed fetching secret {name} from KMS");
    match error {
        ApiError::Service(e) if e.code == "Forbidden.ResourceNotFound" => {
            FetchError::NotFound(format!("{context}: {}", cloud::describe(error)))
        }
        _ => cloud::default_fetch_error(&context, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::cloud::ServiceError;
    use plugin_sdk::describe_fetch_error;

    fn request() -> ObjectRequest {
        ObjectRequest {
            name: "db".into(),
            object_type: "kms".into(),
            version: Some("v2".into()),
            version_label: Some("ACSPrevious".into()),
            endpoint: Some("kst-1.cryptoservice.kms.aliyuncs.com".into()),
            region: "cn-hangzhou".into(),
            parameters: vec![],
            config: vec![],
        }
    }

    #[test]
    fn call_carries_name_version_stage_and_endpoint() {
        let call = build_call(&request());
        let params: Vec<(&str, &str)> = call
            .parameters()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("SecretName", "db"),
                ("VersionId", "v2"),
                ("VersionStage", "ACSPrevious")
            ]
        );
        let mut plain = request();
        plain.version = None;
        plain.version_label = None;
        assert_eq!(build_call(&plain).parameters().len(), 1);
    }

    #[test]
    fn text_and_binary_values() {
        let text = parse_response(
            "db",
            br#"{"SecretName":"db","VersionId":"v1","SecretData":"{\"a\":1}","SecretDataType":"text","RequestId":"r"}"#,
        )
        .unwrap();
        assert_eq!(text.contents, br#"{"a":1}"#);
        assert_eq!(text.version, "v1");

        let binary = parse_response(
            "db",
            br#"{"VersionId":"v3","SecretData":"AAEC/w==","SecretDataType":"binary"}"#,
        )
        .unwrap();
        assert_eq!(binary.contents, [0u8, 1, 2, 255]);
        assert_eq!(binary.version, "v3");
    }

    #[test]
    fn malformed_responses_are_errors() {
        let err = parse_response("db", br#"{"VersionId":"v1"}"#).unwrap_err();
        assert!(describe_fetch_error(&err).contains("returned no SecretData"));
        let err = parse_response("db", b"<xml/>").unwrap_err();
        assert!(describe_fetch_error(&err).contains("not the expected JSON"));
        let err = parse_response(
            "db",
            br#"{"VersionId":"v1","SecretData":"%%%","SecretDataType":"binary"}"#,
        )
        .unwrap_err();
        assert!(describe_fetch_error(&err).starts_with("error: decode binary data error"));
    }

    #[test]
    fn resource_not_found_is_not_found() {
        let error = ApiError::Service(ServiceError {
            http_status: 404,
            code: "Forbidden.ResourceNotFound".into(),
            message: "Resource not found.".into(),
            request_id: "r-9".into(),
        });
        assert_eq!(
            describe_fetch_error(&map_error("db", &error)),
            "not found: failed fetching secret db from KMS: Forbidden.ResourceNotFound: Resource not found. (request id r-9)"
        );
        let denied = ApiError::Service(ServiceError {
            http_status: 403,
            code: "Forbidden.NoPermission".into(),
            message: "This operation is forbidden by permission system.".into(),
            request_id: String::new(),
        });
        assert!(describe_fetch_error(&map_error("db", &denied)).starts_with("permission denied"));
    }
}
