//! What an Alibaba Cloud API error means, from its code and HTTP status: one
//! rule, shared by the provider (which retries a call and counts throttling)
//! and the plugin SDK (which turns a failed call into a fetch error whose
//! gRPC code tells the driver whether to retry). No dependencies, so it
//! builds for the plugins' `wasm32-wasip2` target too.

/// Codes that mean "the service is busy or failing; the same call may work
/// later", other than throttling.
const UNAVAILABLE_CODES: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableTemporary",
    "InternalFailure",
    "InternalError",
];

/// HTTP statuses that mean the same whatever the code: too many requests, a
/// gateway or the service unavailable, a gateway timeout.
const RETRYABLE_STATUSES: &[u16] = &[429, 502, 503, 504];

/// Prefixes of codes that mean the credentials or the permissions are wrong.
const AUTH_FAILURE_PREFIXES: &[&str] = &[
    "Forbidden",
    "InvalidAccessKeyId",
    "InvalidSecurityToken",
    "SignatureDoesNotMatch",
    "NoPermission",
    "AccessDenied",
];

/// Whether the service throttled the call: HTTP 429, or a code of the
/// `Throttling` family (`Throttling`, `Throttling.User`, `Throttling.Api`,
/// `Throttling.Resource`, …) or ending in `.Throttling` (`Rejected.Throttling`).
pub fn is_throttling(code: &str, http_status: u16) -> bool {
    http_status == 429 || code.starts_with("Throttling") || code.contains(".Throttling")
}

/// Whether the same call may succeed later: throttling, the codes of a busy
/// or failing service (`ServiceUnavailable`, `ServiceUnavailableTemporary`,
/// `InternalFailure`, `InternalError`), or HTTP 429, 502, 503, 504.
pub fn is_retryable(code: &str, http_status: u16) -> bool {
    is_throttling(code, http_status)
        || UNAVAILABLE_CODES.contains(&code)
        || RETRYABLE_STATUSES.contains(&http_status)
}

/// What a failed call means for the object it was fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Try again later ([`is_retryable`], or any 5xx).
    Unavailable,
    /// The credentials or their permissions are wrong.
    PermissionDenied,
    /// The object (or its version) does not exist.
    NotFound,
    /// The request was malformed (HTTP 400).
    InvalidRequest,
    /// Anything else.
    Other,
}

/// The meaning of an error `code` with `http_status`, first match wins:
/// unavailable, permission denied, not found, invalid request, other.
pub fn meaning(code: &str, http_status: u16) -> Meaning {
    if is_retryable(code, http_status) || http_status >= 500 {
        Meaning::Unavailable
    } else if AUTH_FAILURE_PREFIXES.iter().any(|p| code.starts_with(p))
        || http_status == 401
        || http_status == 403
    {
        Meaning::PermissionDenied
    } else if http_status == 404 || code.contains("NotFound") || code.contains("NotExist") {
        Meaning::NotFound
    } else if http_status == 400 {
        Meaning::InvalidRequest
    } else {
        Meaning::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_retries() {
        for (code, status) in [
            ("Throttling", 400),
            ("Throttling.User", 400),
            ("Throttling.Api", 400),
            ("Throttling.Resource", 400),
            ("Rejected.Throttling", 429),
            ("Anything", 429),
        ] {
            assert!(is_throttling(code, status), "{code} {status}");
            assert!(is_retryable(code, status), "{code} {status}");
        }
        for (code, status) in [
            ("ServiceUnavailable", 503),
            ("ServiceUnavailableTemporary", 503),
            ("InternalFailure", 500),
            ("InternalError", 500),
            ("Gateway", 502),
            ("Gateway", 504),
        ] {
            assert!(!is_throttling(code, status), "{code} {status}");
            assert!(is_retryable(code, status), "{code} {status}");
        }
        for (code, status) in [
            ("Forbidden.ResourceNotFound", 404),
            ("InvalidParameter", 400),
            ("SignatureDoesNotMatch", 400),
            ("NotThrottlingReally", 400),
            ("Unknown", 500),
        ] {
            assert!(!is_retryable(code, status), "{code} {status}");
        }
    }

    #[test]
    fn meanings_in_order() {
        let cases = [
            ("Forbidden.ResourceNotFound", 404, Meaning::PermissionDenied),
            ("EntityNotExists.Parameter", 404, Meaning::NotFound),
            ("Forbidden.NoPermission", 403, Meaning::PermissionDenied),
            (
                "InvalidAccessKeyId.NotFound",
                404,
                Meaning::PermissionDenied,
            ),
            ("SignatureDoesNotMatch", 400, Meaning::PermissionDenied),
            ("Rejected.Throttling", 429, Meaning::Unavailable),
            ("Throttling.User", 400, Meaning::Unavailable),
            ("ServiceUnavailableTemporary", 503, Meaning::Unavailable),
            ("Unknown", 500, Meaning::Unavailable),
            ("InvalidParameter", 400, Meaning::InvalidRequest),
            ("Rejected.ResourceInDeleteWindow", 409, Meaning::Other),
        ];
        for (code, status, want) in cases {
            assert_eq!(meaning(code, status), want, "{code} {status}");
        }
    }
}
