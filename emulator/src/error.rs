//! API errors with the codes, HTTP statuses and messages of the real service.

use http::StatusCode;

/// An error answered in the POP envelope (`RequestId`, `HostId`, `Code`,
/// `Message`, `Recommend`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for the `x-acs-retry-after` header (the SDKs then raise a
    /// throttling error carrying it).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        ApiError::bad_request(
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    pub fn invalid_parameter(name: &str, why: &str) -> Self {
        ApiError::bad_request(
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid: {why}."),
        )
    }

    pub fn action_not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )
    }

    pub fn invalid_version() -> Self {
        ApiError::bad_request(
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        )
    }

    pub fn incomplete_signature(detail: &str) -> Self {
        ApiError::bad_request(
            "IncompleteSignature",
            format!("The request signature does not conform to Aliyun standards. {detail}"),
        )
    }

    /// As the real service, the message carries the server's string to sign
    /// so that a client can diff it against its own.
    pub fn signature_does_not_match(string_to_sign: &str) -> Self {
        ApiError::bad_request(
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
        )
    }

    pub fn content_sha256_mismatch() -> Self {
        ApiError::bad_request(
            "SignatureDoesNotMatch",
            "The x-acs-content-sha256 header does not match the SHA-256 of the request body.",
        )
    }

    pub fn access_key_not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    }

    pub fn timestamp_expired(value: &str) -> Self {
        ApiError::bad_request(
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired. The time {value} is more than 15 minutes away from the server time."
            ),
        )
    }

    pub fn illegal_timestamp(name: &str, value: &str) -> Self {
        ApiError::bad_request(
            "IllegalTimestamp",
            format!(
                "The input parameter \"{name}\" is not well formatted: {value:?}; use yyyy-MM-ddTHH:mm:ssZ in UTC."
            ),
        )
    }

    pub fn nonce_used() -> Self {
        ApiError::bad_request(
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )
    }

    pub fn security_token_malformed() -> Self {
        ApiError::bad_request(
            "InvalidSecurityToken.Malformed",
            "Specified SecurityToken is malformed or missing.",
        )
    }

    pub fn security_token_mismatch() -> Self {
        ApiError::bad_request(
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )
    }

    pub fn security_token_expired() -> Self {
        ApiError::bad_request(
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired.",
        )
    }

    /// The message the real service gives for `code`, when it is one a fault
    /// is likely to use.
    pub fn default_message(code: &str) -> &'static str {
        match code {
            "Rejected.Throttling" => "QPS Limit Exceeded",
            "Throttling" | "Throttling.User" => "Request was denied due to user flow control.",
            "ServiceUnavailableTemporary" => {
                "Service is temporarily unavailable, please try again later."
            }
            "InternalFailure" => "Internal Failure",
            "InternalError" => "The request processing has failed due to some unknown error.",
            _ => "Injected fault.",
        }
    }

    /// The HTTP status the real service uses for `code`, when it is one a
    /// fault is likely to use (400 otherwise).
    pub fn default_status(code: &str) -> StatusCode {
        match code {
            "Rejected.Throttling" => StatusCode::TOO_MANY_REQUESTS,
            "ServiceUnavailableTemporary" => StatusCode::SERVICE_UNAVAILABLE,
            "InternalFailure" | "InternalError" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
