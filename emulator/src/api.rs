//! The API table (action, version, product, handler) and what handlers get.
//!
//! A product is a module under `api/` exporting one [`Api`] per action; adding
//! an action means adding its module entry to [`APIS`].

pub(crate) mod kms;
pub(crate) mod oos;
pub(crate) mod sts;

use std::collections::HashMap;

use axum::http::StatusCode;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::iam::{Iam, Principal};
use crate::request::ApiRequest;
use crate::seed::{KmsSecret, OosParameter, Seed};

/// Every action the emulator serves.
pub(crate) static APIS: &[&Api] = &[
    &kms::GET_SECRET_VALUE,
    &oos::GET_SECRET_PARAMETER,
    &sts::ASSUME_ROLE,
    &sts::ASSUME_ROLE_WITH_OIDC,
];

/// Looks an action up by name.
pub(crate) fn find(action: &str) -> Option<&'static Api> {
    APIS.iter().copied().find(|api| api.action == action)
}

/// One action of one product.
pub(crate) struct Api {
    pub action: &'static str,
    pub version: &'static str,
    pub product: Product,
    /// Served without a signature (STS `AssumeRoleWithOIDC` is).
    pub anonymous: bool,
    /// The object a request is about (for fault matching), from its parameters.
    pub object: fn(&ApiRequest) -> Option<&str>,
    /// Builds the response body (without `RequestId`).
    pub handler: fn(&mut Call<'_>) -> Result<serde_json::Value, ApiError>,
}

/// The cloud product an action belongs to; it decides product-specific error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Product {
    Kms,
    Oos,
    Sts,
}

impl Product {
    /// The product code in `Recommend` links.
    pub fn code(self) -> &'static str {
        match self {
            Product::Kms => "Kms",
            Product::Oos => "Oos",
            Product::Sts => "Sts",
        }
    }

    fn permission_denied(self) -> ApiError {
        match self {
            Product::Kms => ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden.NoPermission",
                "This operation is forbidden by permission system.",
            ),
            Product::Oos => ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden.RAM",
                "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
            ),
            Product::Sts => ApiError::new(
                StatusCode::FORBIDDEN,
                "NoPermission",
                "You are not authorized to do this action. You should be authorized by RAM.",
            ),
        }
    }
}

/// The content served: KMS secrets and OOS parameters by name.
pub(crate) struct Store {
    pub region: String,
    pub account_id: Option<String>,
    /// Default for creation and update times the seed leaves out.
    pub started_at: OffsetDateTime,
    pub kms: HashMap<String, KmsSecret>,
    pub oos: HashMap<String, OosParameter>,
}

impl Store {
    pub fn from_seed(seed: &Seed, now: OffsetDateTime) -> Self {
        Store {
            region: seed.region.clone(),
            account_id: seed.account_id.clone(),
            started_at: now.replace_nanosecond(0).expect("0 is valid"),
            kms: seed
                .kms
                .secrets
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            oos: seed
                .oos
                .parameters
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
        }
    }
}

/// What a handler gets: the request, the content, the identities and the caller.
pub(crate) struct Call<'a> {
    pub request: &'a ApiRequest,
    pub store: &'a Store,
    pub iam: &'a mut Iam,
    pub product: Product,
    /// `None` for anonymous actions.
    pub principal: Option<&'a Principal>,
    /// The server clock when the request was processed.
    pub now: OffsetDateTime,
}

impl<'a> Call<'a> {
    /// A non-empty parameter.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.request.param(name).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&'a str, ApiError> {
        self.param(name)
            .ok_or_else(|| ApiError::missing_parameter(name))
    }

    /// A boolean parameter: the Python SDK sends `True`/`False`, others `true`/`false`.
    pub fn bool_param(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.param(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_parameter(name, "expected true or false")),
        }
    }

    /// Fails with the product's permission error unless the caller may read `resource`.
    pub fn authorize(&self, resource: &str) -> Result<(), ApiError> {
        match self.principal {
            Some(p) if !self.iam.allows(p, resource) => Err(self.product.permission_denied()),
            _ => Ok(()),
        }
    }
}

/// `2024-01-02T03:04:05Z`, the API's time format.
pub(crate) fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_without_fractions_in_utc() {
        let at = time::macros::datetime!(2024-01-02 11:04:05.678 +8);
        assert_eq!(format_time(at), "2024-01-02T03:04:05Z");
    }

    #[test]
    fn actions_are_unique() {
        for (i, a) in APIS.iter().enumerate() {
            assert!(APIS[i + 1..].iter().all(|b| b.action != a.action));
            assert!(std::ptr::eq(find(a.action).unwrap(), *a));
        }
        assert!(find("DescribeRegions").is_none());
    }
}
