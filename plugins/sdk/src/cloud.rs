//! Signed Alibaba Cloud API calls, made by the host with the Mount's credentials.

use crate::FetchError;
use crate::bindings::alibabacloud_csi::plugin::alibaba_cloud as wit;

pub use wit::{ApiError, ApiResponse, ServiceError};

/// An RPC-style API call, built step by step and sent with [`ApiRequest::send`].
#[derive(Debug, Clone)]
pub struct ApiRequest {
    inner: wit::ApiRequest,
}

impl ApiRequest {
    /// A call of `action` (API `version`) on `product` (`kms`, `oos`, ...).
    pub fn new(product: &str, action: &str, version: &str) -> Self {
        ApiRequest {
            inner: wit::ApiRequest {
                product: product.to_string(),
                action: action.to_string(),
                version: version.to_string(),
                parameters: Vec::new(),
                endpoint: None,
            },
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.inner.parameters.push((key.to_string(), value.into()));
        self
    }

    /// Adds a parameter when `value` is `Some`.
    pub fn param_opt(self, key: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(value) => self.param(key, value),
            None => self,
        }
    }

    /// Asks for an endpoint other than the product's default (the host checks
    /// it against its network policy).
    pub fn endpoint(mut self, endpoint: Option<String>) -> Self {
        self.inner.endpoint = endpoint;
        self
    }

    /// The parameters added so far.
    pub fn parameters(&self) -> &[(String, String)] {
        &self.inner.parameters
    }

    /// Signs and sends the call through the host.
    pub fn send(&self) -> Result<ApiResponse, ApiError> {
        wit::call(&self.inner)
    }
}

/// A one-line description of an API error, for fetch error messages.
pub fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Service(e) if e.request_id.is_empty() => format!("{}: {}", e.code, e.message),
        ApiError::Service(e) => format!("{}: {} (request id {})", e.code, e.message, e.request_id),
        ApiError::Denied(m) => format!("refused by the provider: {m}"),
        ApiError::Credentials(m) => format!("no credentials: {m}"),
        ApiError::Timeout(m) => format!("timed out: {m}"),
        ApiError::Transport(m) => format!("connection failed: {m}"),
    }
}

/// Maps an API error to a fetch error by the usual meaning of the service's
/// code and HTTP status; `context` (e.g. `KMS secret "db"`) starts the message.
///
/// Backends map their own not-found codes first and fall back to this.
pub fn default_fetch_error(context: &str, error: &ApiError) -> FetchError {
    let message = format!("{context}: {}", describe(error));
    match error {
        ApiError::Service(e) => classify_service_error(e, message),
        ApiError::Denied(_) => FetchError::InvalidRequest(message),
        ApiError::Credentials(_) => FetchError::PermissionDenied(message),
        ApiError::Timeout(_) | ApiError::Transport(_) => FetchError::Unavailable(message),
    }
}

fn classify_service_error(e: &ServiceError, message: String) -> FetchError {
    use alibabacloud_api_errors::Meaning;
    // The provider retries by the same rule before a plugin sees the error.
    match alibabacloud_api_errors::meaning(&e.code, e.http_status) {
        Meaning::Unavailable => FetchError::Unavailable(message),
        Meaning::PermissionDenied => FetchError::PermissionDenied(message),
        Meaning::NotFound => FetchError::NotFound(message),
        Meaning::InvalidRequest => FetchError::InvalidRequest(message),
        Meaning::Other => FetchError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> ApiError {
        ApiError::Service(ServiceError {
            http_status: status,
            code: code.into(),
            message: "m".into(),
            request_id: "r-1".into(),
        })
    }

    #[test]
    fn maps_codes_and_statuses() {
        let cases = [
            (
                service(404, "Forbidden.ResourceNotFound"),
                "permission denied",
            ),
            (service(404, "EntityNotExists.Parameter"), "not found"),
            (service(403, "Forbidden.NoPermission"), "permission denied"),
            (
                service(404, "InvalidAccessKeyId.NotFound"),
                "permission denied",
            ),
            (service(400, "SignatureDoesNotMatch"), "permission denied"),
            (service(429, "Rejected.Throttling"), "unavailable"),
            (service(400, "Throttling.User"), "unavailable"),
            (service(503, "ServiceUnavailableTemporary"), "unavailable"),
            (service(400, "InvalidParameter"), "invalid request"),
            (service(409, "Rejected.ResourceInDeleteWindow"), "error"),
            (ApiError::Timeout("t".into()), "unavailable"),
            (ApiError::Denied("d".into()), "invalid request"),
        ];
        for (error, kind) in cases {
            let got = crate::describe_fetch_error(&default_fetch_error("ctx", &error));
            assert!(got.starts_with(kind), "{error:?} gave {got}");
        }
        assert_eq!(
            crate::describe_fetch_error(&default_fetch_error(
                "KMS secret \"db\"",
                &service(400, "InvalidParameter")
            )),
            "invalid request: KMS secret \"db\": InvalidParameter: m (request id r-1)"
        );
    }
}
