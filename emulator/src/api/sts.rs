//! STS (API 2015-04-01): `AssumeRole` (signed) and `AssumeRoleWithOIDC`
//! (anonymous). Both issue temporary credentials that KMS and OOS then
//! accept with the role's permissions.

use std::time::Duration;

use alibabacloud_signature::sha256_hex;
use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Api, Call, Product, format_time};
use crate::error::ApiError;
use crate::iam::{CredentialSource, IssueRequest, IssuedCredential, trusts_caller, trusts_subject};
use crate::jwt::{self, SignatureCheck};
use crate::request::ApiRequest;
use crate::seed::{
    DEFAULT_MAX_SESSION_DURATION, MAX_SESSION_DURATION_LIMIT, MIN_SESSION_DURATION, Role,
    parse_oidc_provider_arn, parse_role_arn, valid_external_id,
};

pub(crate) const VERSION: &str = "2015-04-01";

/// Longest `Policy` STS accepts, in characters.
const MAX_POLICY_CHARS: usize = 2048;

/// `OIDCToken` length limits, in characters.
const OIDC_TOKEN_CHARS: std::ops::RangeInclusive<usize> = 4..=20_000;

pub(crate) static ASSUME_ROLE: Api = Api {
    action: "AssumeRole",
    version: VERSION,
    product: Product::Sts,
    anonymous: false,
    object: role_arn,
    handler: assume_role,
};

pub(crate) static ASSUME_ROLE_WITH_OIDC: Api = Api {
    action: "AssumeRoleWithOIDC",
    version: VERSION,
    product: Product::Sts,
    anonymous: true,
    object: role_arn,
    handler: assume_role_with_oidc,
};

fn role_arn(request: &ApiRequest) -> Option<&str> {
    request.param("RoleArn")
}

fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn role_not_found(arn: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "EntityNotExist.Role",
        format!("The role not exists: {arn}."),
    )
}

fn no_permission() -> ApiError {
    Product::Sts.permission_denied()
}

fn authentication_fail(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn oidc_invalid(message: impl Into<String>) -> ApiError {
    authentication_fail("AuthenticationFail.OIDCToken.Invalid", message)
}

fn duration_error(max: u32) -> ApiError {
    let max = if max.is_multiple_of(3600) {
        format!("{}hr", max / 3600)
    } else {
        format!("{max}s")
    };
    bad_request(
        "InvalidParameter.DurationSeconds",
        format!("The Min/Max value of DurationSeconds is 15min/{max}."),
    )
}

/// The parameters both actions share, checked for form.
struct Common<'a> {
    role_arn: &'a str,
    session_name: Option<&'a str>,
    duration: Option<u32>,
    policy: Option<&'a str>,
}

fn common<'a>(call: &Call<'a>, session_required: bool) -> Result<Common<'a>, ApiError> {
    let role_arn = call.required("RoleArn")?;
    let session_name = if session_required {
        Some(call.required("RoleSessionName")?)
    } else {
        call.param("RoleSessionName")
    };
    if parse_role_arn(role_arn).is_none() {
        return Err(bad_request(
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is wrongly formed.",
        ));
    }
    if let Some(name) = session_name
        && !valid_session_name(name)
    {
        return Err(bad_request(
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    let duration = call
        .param("DurationSeconds")
        .map(|text| {
            text.parse::<u32>()
                .ok()
                .filter(|d| (MIN_SESSION_DURATION..=MAX_SESSION_DURATION_LIMIT).contains(d))
                .ok_or_else(|| duration_error(MAX_SESSION_DURATION_LIMIT))
        })
        .transpose()?;
    let policy = call.param("Policy");
    if let Some(policy) = policy {
        if policy.chars().count() > MAX_POLICY_CHARS {
            return Err(bad_request(
                "InvalidParameter.PolicySize",
                format!("The parameter Policy is longer than {MAX_POLICY_CHARS} characters."),
            ));
        }
        if !serde_json::from_str::<Value>(policy).is_ok_and(|v| v.is_object()) {
            return Err(bad_request(
                "InvalidParameter.PolicyGrammar",
                "The parameter Policy has not passed grammar check.",
            ));
        }
    }
    Ok(Common {
        role_arn,
        session_name,
        duration,
        policy,
    })
}

/// `RoleSessionName`: 2 to 64 characters of `[A-Za-z0-9.@_-]`.
pub(crate) fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b))
}

/// The requested duration checked against the role's `MaxSessionDuration`.
fn duration_for(role: &Role, requested: Option<u32>) -> Result<Duration, ApiError> {
    let seconds =
        requested.unwrap_or_else(|| DEFAULT_MAX_SESSION_DURATION.min(role.max_session_duration));
    if seconds > role.max_session_duration {
        return Err(duration_error(role.max_session_duration));
    }
    Ok(Duration::from_secs(seconds.into()))
}

/// `Credentials` and `AssumedRoleUser`, as both actions answer.
fn credentials_body(role: &Role, issued: &IssuedCredential) -> Value {
    // RAM shows role names lower-cased in assumed-role ARNs; the role id is
    // a stable 17-digit number derived from the ARN.
    let digits: String = sha256_hex(role.arn.to_ascii_lowercase().as_bytes())
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(17)
        .collect();
    let role_id = format!("3{}", &digits[1..]);
    json!({
        "Credentials": {
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "SecurityToken": issued.security_token,
            "Expiration": format_time(issued.expires_at),
        },
        "AssumedRoleUser": {
            "Arn": format!(
                "acs:ram::{}:role/{}/{}",
                role.account(),
                role.name().to_ascii_lowercase(),
                issued.session_name
            ),
            "AssumedRoleId": format!("{role_id}:{}", issued.session_name),
        },
    })
}

fn assume_role(call: &mut Call<'_>) -> Result<Value, ApiError> {
    let params = common(call, true)?;
    let external_id = call.param("ExternalId");
    if let Some(external_id) = external_id
        && !valid_external_id(external_id)
    {
        return Err(bad_request(
            "InvalidParameter.ExternalId",
            "The parameter ExternalId is wrongly formed.",
        ));
    }
    let caller = call.principal.ok_or_else(no_permission)?;
    let role = call
        .iam
        .role(params.role_arn)
        .ok_or_else(|| role_not_found(params.role_arn))?;
    if !trusts_caller(&role, caller) {
        tracing::info!(caller = %caller.name, role = %role.arn, "AssumeRole refused: not trusted");
        return Err(no_permission());
    }
    if let Some(want) = &role.external_id
        && external_id != Some(want.as_str())
    {
        tracing::info!(caller = %caller.name, role = %role.arn, "AssumeRole refused: ExternalId");
        return Err(no_permission());
    }
    let requested = duration_for(&role, params.duration)?;
    let issued = call.iam.issue(
        IssueRequest {
            role: &role,
            session_name: params.session_name.unwrap_or_default().to_string(),
            requested,
            source: CredentialSource::AssumeRole,
            caller: Some(caller.name.clone()),
            external_id: external_id.map(str::to_string),
            policy: params.policy.map(str::to_string),
        },
        call.now,
    );
    let mut body = credentials_body(&role, &issued);
    if let Some(source) = call.param("SourceIdentity") {
        body["SourceIdentity"] = Value::String(source.to_string());
    }
    Ok(body)
}

fn assume_role_with_oidc(call: &mut Call<'_>) -> Result<Value, ApiError> {
    let params = common(call, false)?;
    let provider_arn = call.required("OIDCProviderArn")?;
    let token = call
        .param("OIDCToken")
        .ok_or_else(|| oidc_invalid("The OIDCToken can not empty."))?;
    if !OIDC_TOKEN_CHARS.contains(&token.chars().count()) {
        return Err(oidc_invalid(
            "The OIDCToken must be 4 to 20000 characters long.",
        ));
    }
    let provider = parse_oidc_provider_arn(provider_arn)
        .and_then(|_| call.iam.oidc_provider(provider_arn))
        .ok_or_else(|| {
            authentication_fail(
                "AuthenticationFail.NoPermission",
                "Parameter OIDCProviderArn is not valid",
            )
        })?;

    let (header, claims) = jwt::decode(token).map_err(|e| oidc_invalid(e.to_string()))?;
    if let Some(key) = &provider.hmac_key {
        match jwt::verify_hs256(token, &header, key) {
            SignatureCheck::Valid => {}
            SignatureCheck::WrongAlgorithm => {
                let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
                return Err(oidc_invalid(format!(
                    "The algorithm {alg} that be specified in Jwt header is unknown."
                )));
            }
            SignatureCheck::Invalid => {
                return Err(authentication_fail(
                    "AuthenticationFail.OIDCToken.InvalidSignature",
                    "OIDC token validate failed: invalid signature.",
                ));
            }
        }
    }
    if claims.iss != provider.issuer {
        return Err(oidc_invalid(
            "The issuer of the OIDCToken does not match the OIDC provider.",
        ));
    }
    if !claims.aud.iter().any(|a| provider.audiences.contains(a)) {
        return Err(authentication_fail(
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
            "Invalid audience.",
        ));
    }
    let now = call.now.unix_timestamp();
    if claims.exp <= now {
        return Err(authentication_fail(
            "AuthenticationFail.OIDCToken.Expired",
            "This JsonWebToken is expired.",
        ));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(oidc_invalid("The OIDCToken is not valid yet (nbf)."));
    }
    if claims.sub.is_empty() {
        return Err(oidc_invalid(
            "The Jwt content is invalid that cannot be recognized.",
        ));
    }

    let role = call
        .iam
        .role(params.role_arn)
        .ok_or_else(|| role_not_found(params.role_arn))?;
    if !trusts_subject(&role, &provider.arn, &claims.sub) {
        tracing::info!(subject = %claims.sub, role = %role.arn,
            "AssumeRoleWithOIDC refused: subject not trusted");
        return Err(authentication_fail(
            "AuthenticationFail.NoPermission",
            "There is no permission",
        ));
    }
    let requested = duration_for(&role, params.duration)?;
    let session_name = match params.session_name {
        Some(name) => name.to_string(),
        None => format!("oidc-{}", call.now.unix_timestamp()),
    };
    let issued = call.iam.issue(
        IssueRequest {
            role: &role,
            session_name,
            requested,
            source: CredentialSource::AssumeRoleWithOIDC,
            caller: Some(claims.sub.clone()),
            external_id: None,
            policy: params.policy.map(str::to_string),
        },
        call.now,
    );
    let at = |seconds: i64| {
        OffsetDateTime::from_unix_timestamp(seconds).map_or_else(|_| String::new(), format_time)
    };
    let mut body = credentials_body(&role, &issued);
    body["OIDCTokenInfo"] = json!({
        "Subject": claims.sub,
        "Issuer": claims.iss,
        "ClientIds": claims.aud.join(","),
        "ExpirationTime": at(claims.exp),
        "IssuanceTime": at(claims.iat.unwrap_or(now)),
        "VerificationInfo": "Success",
    });
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_the_documented_alphabet() {
        for good in ["ab", "pod.team-a@ns_1", &"x".repeat(64)] {
            assert!(valid_session_name(good), "{good}");
        }
        for bad in ["a", "has space", "中文名字", "a/b", &"x".repeat(65)] {
            assert!(!valid_session_name(bad), "{bad}");
        }
    }

    #[test]
    fn duration_errors_name_the_limit() {
        assert!(duration_error(3600).message.ends_with("15min/1hr."));
        assert!(duration_error(1000).message.ends_with("15min/1000s."));
        let role = Role::new("acs:ram::1:role/r").with_max_session_duration(7200);
        assert_eq!(duration_for(&role, None).unwrap().as_secs(), 3600);
        let short = Role::new("acs:ram::1:role/r").with_max_session_duration(900);
        assert_eq!(duration_for(&short, None).unwrap().as_secs(), 900);
        assert_eq!(duration_for(&role, Some(7200)).unwrap().as_secs(), 7200);
        assert_eq!(
            duration_for(&role, Some(7201)).unwrap_err().code,
            "InvalidParameter.DurationSeconds"
        );
    }
}
