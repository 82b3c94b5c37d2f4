//! STS: `AssumeRole` (signed with a base identity) and `AssumeRoleWithOIDC`
//! (anonymous, with a service-account token), through the shared client.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::Credentials;
use crate::cloud::{ApiCall, ApiError, Auth, CloudClient};
use crate::spc::Sensitive;

/// STS API version.
pub const STS_VERSION: &str = "2015-04-01";

/// Credentials from STS and their `Expiration` (UTC `yyyy-MM-ddTHH:mm:ssZ`).
#[derive(Debug, Clone)]
pub struct AssumedRole {
    /// The temporary credentials.
    pub credentials: Credentials,
    /// When they expire, as STS wrote it.
    pub expiration: String,
}

/// What to assume.
#[derive(Debug, Clone)]
pub struct RoleRequest<'a> {
    /// `acs:ram::<account>:role/<name>`.
    pub role_arn: &'a str,
    /// `RoleSessionName` (see [`session_name`]).
    pub session_name: &'a str,
    /// `DurationSeconds`, if not the default (3600).
    pub duration_seconds: Option<u32>,
    /// `ExternalId`, if the role requires one.
    pub external_id: Option<&'a str>,
}

/// A failed STS call. Messages name the action and the role, never a
/// credential or the OIDC token.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// The call failed (after the cloud client's retries).
    #[error("STS {action} of {role_arn} failed: {source}")]
    Call {
        /// `AssumeRole` or `AssumeRoleWithOIDC`.
        action: &'static str,
        /// The role asked for.
        role_arn: String,
        /// Why.
        #[source]
        source: ApiError,
    },
    /// STS answered without usable credentials.
    #[error("STS {action} of {role_arn}: {source}")]
    Answer {
        /// `AssumeRole` or `AssumeRoleWithOIDC`.
        action: &'static str,
        /// The role asked for.
        role_arn: String,
        /// What is wrong with the answer.
        #[source]
        source: StsAnswerError,
    },
}

impl StsError {
    fn call(action: &'static str, role_arn: &str, source: ApiError) -> StsError {
        StsError::Call {
            action,
            role_arn: role_arn.to_string(),
            source,
        }
    }

    fn answer(action: &'static str, role_arn: &str, source: StsAnswerError) -> StsError {
        StsError::Answer {
            action,
            role_arn: role_arn.to_string(),
            source,
        }
    }

    /// Whether a later Mount may succeed where this one failed: throttling,
    /// an unavailable service, a broken connection, a timeout.
    pub fn is_retryable(&self) -> bool {
        match self {
            StsError::Call { source, .. } => {
                source.is_retryable() || matches!(source, ApiError::Timeout(_))
            }
            StsError::Answer { .. } => false,
        }
    }
}

/// An STS answer without usable credentials. The JSON parser's error is not
/// kept: it can quote a value of the body, which holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StsAnswerError {
    /// Not the JSON of an STS answer.
    #[error("the response is not the expected JSON")]
    NotJson,
    /// No `Credentials` object.
    #[error("the response has no Credentials")]
    NoCredentials,
}

/// The STS client.
#[derive(Debug, Clone)]
pub struct StsClient {
    cloud: Arc<CloudClient>,
}

impl StsClient {
    /// A client over the shared cloud client (endpoint: product `sts`).
    pub fn new(cloud: Arc<CloudClient>) -> StsClient {
        StsClient { cloud }
    }

    /// `AssumeRole` signed with `base`; `source` names the result's origin.
    pub async fn assume_role(
        &self,
        base: &Credentials,
        request: &RoleRequest<'_>,
        source: &'static str,
        deadline: Instant,
    ) -> Result<AssumedRole, StsError> {
        let call = ApiCall {
            product: "sts".into(),
            action: "AssumeRole".into(),
            version: STS_VERSION.into(),
            parameters: parameters(request),
            endpoint: None,
        };
        let response = self
            .cloud
            .call_as(&call, Auth::Signed(base), "", deadline)
            .await
            .map_err(|e| StsError::call("AssumeRole", request.role_arn, e))?;
        parse(&response.body, source)
            .map_err(|e| StsError::answer("AssumeRole", request.role_arn, e))
    }

    /// `AssumeRoleWithOIDC` with a service-account `token` (anonymous call).
    pub async fn assume_role_with_oidc(
        &self,
        request: &RoleRequest<'_>,
        oidc_provider_arn: &str,
        token: &Sensitive<String>,
        source: &'static str,
        deadline: Instant,
    ) -> Result<AssumedRole, StsError> {
        let mut parameters = parameters(request);
        parameters.push(("OIDCProviderArn".into(), oidc_provider_arn.into()));
        parameters.push(("OIDCToken".into(), token.0.clone()));
        let call = ApiCall {
            product: "sts".into(),
            action: "AssumeRoleWithOIDC".into(),
            version: STS_VERSION.into(),
            parameters,
            endpoint: None,
        };
        let redact = [token.0.as_str()];
        let response = self
            .cloud
            .call_as(&call, Auth::Anonymous { redact: &redact }, "", deadline)
            .await
            .map_err(|e| StsError::call("AssumeRoleWithOIDC", request.role_arn, e))?;
        parse(&response.body, source)
            .map_err(|e| StsError::answer("AssumeRoleWithOIDC", request.role_arn, e))
    }
}

fn parameters(request: &RoleRequest<'_>) -> Vec<(String, String)> {
    let mut p = vec![
        ("RoleArn".to_string(), request.role_arn.to_string()),
        (
            "RoleSessionName".to_string(),
            request.session_name.to_string(),
        ),
    ];
    if let Some(d) = request.duration_seconds {
        p.push(("DurationSeconds".into(), d.to_string()));
    }
    if let Some(id) = request.external_id {
        p.push(("ExternalId".into(), id.to_string()));
    }
    p
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    credentials: Option<StsCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

fn parse(body: &[u8], source: &'static str) -> Result<AssumedRole, StsAnswerError> {
    let response: Response = serde_json::from_slice(body).map_err(|_| StsAnswerError::NotJson)?;
    let c = response.credentials.ok_or(StsAnswerError::NoCredentials)?;
    Ok(AssumedRole {
        credentials: Credentials {
            access_key_id: c.access_key_id,
            access_key_secret: Sensitive(c.access_key_secret),
            security_token: Some(Sensitive(c.security_token)),
            source,
        },
        expiration: c.expiration,
    })
}

/// A `RoleSessionName` from `parts` (e.g. namespace and pod): joined with
/// `.`, characters STS refuses replaced with `-`, 2 to 64 characters.
pub fn session_name(parts: &[&str]) -> String {
    let mut name: String = parts
        .join(".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    while name.len() < 2 {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_fit_sts_limits() {
        assert_eq!(session_name(&["team-a", "app-7d9c"]), "team-a.app-7d9c");
        assert_eq!(
            session_name(&["ns", "pod/with:odd chars"]),
            "ns.pod-with-odd-chars"
        );
        assert_eq!(session_name(&[&"x".repeat(100)]).len(), 64);
        assert_eq!(session_name(&["a"]), "a-");
    }

    #[test]
    fn parses_credentials_and_keeps_them_out_of_debug() {
        let body = br#"{"RequestId":"r","Credentials":{"AccessKeyId":"STS.id","AccessKeySecret":"s3cr3t-value","SecurityToken":"tok-value","Expiration":"2030-01-01T00:00:00Z"},"AssumedRoleUser":{"Arn":"a","AssumedRoleId":"b"}}"#;
        let role = parse(body, "test").unwrap();
        assert_eq!(role.credentials.access_key_id, "STS.id");
        assert_eq!(role.expiration, "2030-01-01T00:00:00Z");
        let debug = format!("{role:?}");
        assert!(
            !debug.contains("s3cr3t-value") && !debug.contains("tok-value"),
            "{debug}"
        );
        assert_eq!(
            parse(b"{}", "t").unwrap_err().to_string(),
            "the response has no Credentials"
        );
    }
}
