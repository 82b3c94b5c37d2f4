//! The pod's service-account tokens as kubelet sends them through the driver
//! (`csi.storage.k8s.io/serviceAccount.tokens`): pick the one for the STS
//! audience and read (not verify — STS does) its claims.

use base64::Engine as _;

use crate::spc::Sensitive;

/// The audience of tokens for STS `AssumeRoleWithOIDC`.
pub const STS_AUDIENCE: &str = "sts.aliyuncs.com";

/// A service-account token for one audience, with its unverified claims.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    /// The JWT.
    pub token: Sensitive<String>,
    /// Its `sub` claim, e.g. `system:serviceaccount:team-a:app`.
    pub subject: String,
    /// Its `exp` claim (Unix seconds), if any.
    pub expires: Option<i64>,
}

/// Why no usable token was found. Messages never contain a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Picks the token for `audience` from the tokens JSON
/// (`{"<audience>": {"token": "...", "expirationTimestamp": "..."}}`) and
/// reads its claims; `now` is Unix seconds.
pub fn token_for_audience(
    tokens_json: &str,
    audience: &str,
    now: i64,
) -> Result<ServiceAccountToken, TokenError> {
    let tokens: serde_json::Map<String, serde_json::Value> = serde_json::from_str(tokens_json)
        .map_err(|e| {
            TokenError(format!(
                "the service account tokens sent by the driver are not a JSON object ({:?} error at column {})",
                e.classify(),
                e.column()
            ))
        })?;
    let Some(entry) = tokens.get(audience) else {
        let mut present: Vec<&str> = tokens.keys().map(String::as_str).collect();
        present.sort();
        return Err(TokenError(format!(
            "the driver sent no service account token for audience {audience} (audiences present: {}); add {{audience: {audience}}} to tokenRequests of the CSIDriver secrets-store.csi.k8s.io (chart value secrets-store-csi-driver.tokenRequests)",
            if present.is_empty() {
                "none".to_string()
            } else {
                present.join(", ")
            }
        )));
    };
    let token = entry
        .get("token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            TokenError(format!(
                "the service account token entry for audience {audience} has no token"
            ))
        })?;
    let claims = claims(token)?;
    let subject = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(|| TokenError("the service account token has no sub claim".into()))?
        .to_string();
    let expires = claims.get("exp").and_then(|e| e.as_i64());
    if let Some(exp) = expires
        && exp <= now
    {
        return Err(TokenError(format!(
            "the service account token for audience {audience} expired {} s ago",
            now.saturating_sub(exp)
        )));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|a| a.as_str()).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&audience) {
        return Err(TokenError(format!(
            "the service account token sent for audience {audience} is issued for {}",
            if audiences.is_empty() {
                "no audience".to_string()
            } else {
                audiences.join(", ")
            }
        )));
    }
    Ok(ServiceAccountToken {
        token: Sensitive(token.to_string()),
        subject,
        expires,
    })
}

/// The JWT payload as JSON (no signature check).
fn claims(token: &str) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
    let malformed = || TokenError("the service account token is not a JWT".into());
    let payload = token.split('.').nth(1).ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// The `sub` a token of `namespace`'s service account `name` carries.
pub fn subject_for(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            enc(&serde_json::json!({"alg":"RS256"})),
            enc(&claims)
        )
    }

    fn tokens(token: &str) -> String {
        serde_json::json!({ STS_AUDIENCE: {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}, "vault": {"token": "x"} }).to_string()
    }

    #[test]
    fn picks_the_sts_token_and_reads_its_claims() {
        let token = jwt(
            serde_json::json!({"sub": "system:serviceaccount:team-a:app", "aud": ["sts.aliyuncs.com"], "exp": 2000}),
        );
        let t = token_for_audience(&tokens(&token), STS_AUDIENCE, 1000).unwrap();
        assert_eq!(t.subject, subject_for("team-a", "app"));
        assert_eq!(t.expires, Some(2000));
        assert_eq!(t.token.0, token);
        assert!(!format!("{t:?}").contains(&token));
    }

    #[test]
    fn problems_are_explained_without_the_token() {
        let token = jwt(serde_json::json!({"sub": "s", "aud": "sts.aliyuncs.com", "exp": 10}));
        let e = token_for_audience(&tokens(&token), STS_AUDIENCE, 1000)
            .unwrap_err()
            .0;
        assert!(e.contains("expired 990 s ago"), "{e}");
        assert!(!e.contains(&token));
        let e = token_for_audience("{\"vault\":{\"token\":\"x\"}}", STS_AUDIENCE, 0)
            .unwrap_err()
            .0;
        assert!(
            e.contains("audiences present: vault") && e.contains("tokenRequests"),
            "{e}"
        );
        let wrong_aud = jwt(serde_json::json!({"sub": "s", "aud": ["api"]}));
        let e = token_for_audience(&tokens(&wrong_aud), STS_AUDIENCE, 0)
            .unwrap_err()
            .0;
        assert!(e.contains("is issued for api"), "{e}");
        let e = token_for_audience(&tokens("not-a-jwt"), STS_AUDIENCE, 0)
            .unwrap_err()
            .0;
        assert_eq!(e, "the service account token is not a JWT");
        let e = token_for_audience("[1]", STS_AUDIENCE, 0).unwrap_err().0;
        assert!(e.contains("not a JSON object"), "{e}");
    }

    // Found while writing the `tokens` fuzz target: `exp` is the token's to
    // choose, and `now - exp` overflowed (a panic with overflow checks, a
    // wrapped, negative age without).
    #[test]
    fn an_extreme_expiry_is_not_an_overflow() {
        let token = jwt(serde_json::json!({"sub": "s", "aud": STS_AUDIENCE, "exp": i64::MIN}));
        let e = token_for_audience(&tokens(&token), STS_AUDIENCE, 1_700_000_000)
            .unwrap_err()
            .0;
        assert!(e.contains(&format!("expired {} s ago", i64::MAX)), "{e}");
    }
}
