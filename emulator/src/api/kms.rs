//! KMS (API 2016-01-20): `GetSecretValue`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Api, Call, Product, format_time};
use crate::error::ApiError;
use crate::request::ApiRequest;
use crate::seed::{ACS_CURRENT, KmsSecretVersion};

pub(crate) const VERSION: &str = "2016-01-20";

pub(crate) static GET_SECRET_VALUE: Api = Api {
    action: "GetSecretValue",
    version: VERSION,
    product: Product::Kms,
    anonymous: false,
    object: secret_name,
    handler: get_secret_value,
};

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Forbidden.ResourceNotFound",
        "Resource not found.",
    )
}

fn secret_name(request: &ApiRequest) -> Option<&str> {
    request.param("SecretName").map(name_of)
}

/// The name inside an ARN `acs:kms:<region>:<account>:secret/<name>`, else the input.
fn name_of(secret_name: &str) -> &str {
    match parse_arn(secret_name) {
        Some((_, _, name)) => name,
        None => secret_name,
    }
}

/// `(region, account, name)` of a secret ARN.
fn parse_arn(value: &str) -> Option<(&str, &str, &str)> {
    let rest = value.strip_prefix("acs:kms:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, resource) = rest.split_once(':')?;
    Some((region, account, resource.strip_prefix("secret/")?))
}

fn get_secret_value(call: &mut Call<'_>) -> Result<Value, ApiError> {
    let requested = call.required("SecretName")?;
    let name = match parse_arn(requested) {
        Some((region, account, name)) => {
            let other_account = call
                .store
                .account_id
                .as_deref()
                .is_some_and(|a| a != account);
            if region != call.store.region || other_account || name.is_empty() {
                return Err(not_found());
            }
            name
        }
        None if requested.starts_with("acs:") => return Err(not_found()),
        None => requested,
    };
    let version_id = call.param("VersionId");
    let stage = call.param("VersionStage");
    let fetch_extended = call.bool_param("FetchExtendedConfig")?.unwrap_or(false);
    // Permission is evaluated before existence, so a denied caller cannot
    // probe which secrets exist.
    call.authorize(&format!("kms:secret/{name}"))?;

    let secrets = &call.store.kms;
    let secret = secrets.get(name).ok_or_else(not_found)?;
    let has_stage = |v: &KmsSecretVersion, stage: &str| v.stages.iter().any(|s| s == stage);
    let version = match version_id {
        Some(id) => secret
            .versions
            .iter()
            .find(|v| v.id == id && stage.is_none_or(|s| has_stage(v, s))),
        None => {
            let stage = stage.unwrap_or(ACS_CURRENT);
            secret.versions.iter().find(|v| has_stage(v, stage))
        }
    }
    .ok_or_else(not_found)?;

    let mut body = json!({
        "SecretName": secret.name,
        "VersionId": version.id,
        "SecretData": version.data,
        "SecretDataType": secret.data_type.as_str(),
        "SecretType": secret.secret_type,
        "VersionStages": { "VersionStage": version.stages },
        "CreateTime": format_time(version.create_time.unwrap_or(call.store.started_at)),
    });
    if fetch_extended && let Some(config) = &secret.extended_config {
        body["ExtendedConfig"] = Value::String(config.clone());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_split_into_region_account_and_name() {
        assert_eq!(
            parse_arn("acs:kms:cn-hangzhou:123:secret/app/db"),
            Some(("cn-hangzhou", "123", "app/db"))
        );
        assert_eq!(parse_arn("acs:kms:cn-hangzhou:123:key/abc"), None);
        assert_eq!(parse_arn("plain-name"), None);
        assert_eq!(name_of("acs:kms:r:1:secret/x"), "x");
        assert_eq!(name_of("x"), "x");
    }
}
