//! Built-in backend for Alibaba Cloud KMS Secrets Manager (`objectType: kms`).
//!
//! One `GetSecretValue` (API 2016-01-20) per object: `objectVersion` selects
//! the `VersionId`, `objectVersionLabel` the `VersionStage`, `kmsEndpoint`
//! the endpoint. `binary` secrets are base64-decoded, as the upstream provider
//! does; the version is the response's `VersionId`.

use plugin_sdk::cloud::{self, ApiError, ApiRequest};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo, content};
use serde_json::Value;

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

/// Reads a `GetSecretValue` response body into the object's bytes and version.
///
/// The body is read as a [`Value`] and its fields picked by hand: a typed
/// deserialization's error would quote a mistyped `SecretData`, and every
/// error here reaches the pod's events. Errors say what is wrong and where,
/// never a character of the secret.
pub fn parse_response(name: &str, body: &[u8]) -> Result<FetchedObject, FetchError> {
    let malformed = |why: String| {
        FetchError::Other(format!(
            "KMS GetSecretValue for secret {name:?} returned a response that is not the expected JSON: {why}"
        ))
    };
    let response = content::json(body).map_err(malformed)?;
    let Some(fields) = response.as_object() else {
        return Err(malformed(format!(
            "the body is {}, not an object",
            content::kind_of(&response)
        )));
    };
    let string = |field: &str| match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(format!(
            "{field} is {}, not a string",
            content::kind_of(other)
        ))),
    };
    let missing = |field: &str| {
        FetchError::Other(format!(
            "KMS GetSecretValue for secret {name:?} returned no {field}"
        ))
    };
    let data = string("SecretData")?.ok_or_else(|| missing("SecretData"))?;
    let version = string("VersionId")?.ok_or_else(|| missing("VersionId"))?;
    let contents = if string("SecretDataType")?.map(String::as_str) == Some("binary") {
        content::base64(data).map_err(|e| {
            FetchError::Other(format!(
                "decode binary data error: {e}, key: {name} (a binary KMS secret must hold base64 text)"
            ))
        })?
    } else {
        data.clone().into_bytes()
    };
    Ok(FetchedObject {
        contents,
        version: version.clone(),
    })
}

/// Maps a KMS error: KMS reports a missing secret or version as
/// `Forbidden.ResourceNotFound`, which is not a permission problem. The
/// message starts as upstream's did: `failed fetching secret <name>: <error>`.
pub fn map_error(name: &str, error: &ApiError) -> FetchError {
    let context = format!("failed fetching secret {name}");
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

    /// Every character of these secrets is one no legitimate message has.
    const MARKS: &[char] = &['§', '¤', 'Ж', '¶', '#', '~'];

    fn error_of(body: &str) -> String {
        let message = describe_fetch_error(&parse_response("db", body.as_bytes()).unwrap_err());
        assert!(
            !message.contains(MARKS) && !message.contains("4242424242"),
            "the secret leaked: {message}"
        );
        message
    }

    #[test]
    fn invalid_base64_is_located_not_quoted() {
        // base64's own error said "Invalid symbol 35, offset 4": the byte.
        assert_eq!(
            error_of(r#"{"VersionId":"v1","SecretData":"QUJD#RUZH","SecretDataType":"binary"}"#),
            "error: decode binary data error: not valid base64: invalid character at byte offset 4 of 9, key: db (a binary KMS secret must hold base64 text)"
        );
        assert!(
            error_of(r#"{"VersionId":"v1","SecretData":"§¤Ж¶","SecretDataType":"binary"}"#)
                .contains("invalid character at byte offset 0 of 8")
        );
        assert!(
            error_of(r#"{"VersionId":"v1","SecretData":"QUJ=","SecretDataType":"binary"}"#)
                .contains("the last character, at byte offset 2 of 4, has bits set")
        );
        assert!(
            error_of(r#"{"VersionId":"v1","SecretData":"QUJDR","SecretDataType":"binary"}"#)
                .contains("not valid base64: invalid length")
        );
        assert!(
            error_of(r#"{"VersionId":"v1","SecretData":"QUI","SecretDataType":"binary"}"#)
                .contains("not valid base64: invalid padding")
        );
    }

    #[test]
    fn mistyped_and_broken_answers_name_the_field_not_the_value() {
        let prefix = "error: KMS GetSecretValue for secret \"db\" returned a response that is not the expected JSON: ";
        for (body, want) in [
            (
                r#"{"VersionId":"v1","SecretData":4242424242}"#,
                "SecretData is a number, not a string",
            ),
            (
                r#"{"VersionId":"v1","SecretData":{"§¤":"Ж¶"}}"#,
                "SecretData is an object, not a string",
            ),
            (
                r#"{"VersionId":"v1","SecretData":["§¤Ж¶"]}"#,
                "SecretData is an array, not a string",
            ),
            (
                r#"{"VersionId":7,"SecretData":"§¤Ж¶"}"#,
                "VersionId is a number, not a string",
            ),
            (
                r#"{"VersionId":"v1","SecretData":"§¤Ж¶","SecretDataType":true}"#,
                "SecretDataType is a boolean, not a string",
            ),
            (r#""§¤Ж¶""#, "the body is a string, not an object"),
            (
                r#"{"VersionId":"v1","SecretData":"§¤Ж¶"#,
                "not valid JSON: unexpected end inside a string at line 1, column 40",
            ),
            (
                r#"{"VersionId":"v1","SecretData":"§¤\Ж¶"}"#,
                "not valid JSON: invalid escape in a string at line 1, column 38",
            ),
        ] {
            assert_eq!(error_of(body), format!("{prefix}{want}"), "{body}");
        }
        let not_utf8 = b"{\"VersionId\":\"v1\",\"SecretData\":\"\xa7\xa4\"}";
        let message = describe_fetch_error(&parse_response("db", not_utf8).unwrap_err());
        assert!(
            message
                .ends_with("it is not UTF-8 text (invalid byte sequence at byte offset 32 of 36)"),
            "{message}"
        );
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
            "not found: failed fetching secret db: Forbidden.ResourceNotFound: Resource not found. (request id r-9)"
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
