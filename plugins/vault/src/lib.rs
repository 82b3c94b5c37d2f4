//! Example custom backend: HashiCorp Vault KV v2 secrets.
//!
//! `objectName` is the secret's path in the KV v2 mount (`app/db`),
//! `objectVersion` a KV version, and the `field` parameter picks one string
//! of the secret's data (default: all of `data` as JSON). The Vault token is
//! the nodePublishSecretRef's `vault_token` when the operator grants that key
//! and the volume has it; otherwise the plugin logs in with the pod's
//! service-account token through Vault's Kubernetes auth.
//!
//! ```toml
//! [plugins.vault]
//! path = "/etc/csi-secrets-store-provider-alibabacloud/plugins/vault_plugin.wasm"
//! config = { address = "https://vault.internal:8200", role = "app" }
//! capabilities = { http = ["https://vault.internal:8200"], service_account_audiences = ["vault"] }
//! ```

use plugin_sdk::http::{self, Response};
use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo, identity};
use serde_json::{Value, json};

struct Vault;

impl Backend for Vault {
    #[rustfmt::skip]
    fn describe() -> PluginInfo {
        PluginInfo::new("vault-kv2", env!("CARGO_PKG_VERSION"))
            .about("HashiCorp Vault KV v2 secrets, by path (objectName) and version")
            .config("address", "Vault's URL, e.g. https://vault.internal:8200", true)
            .config("role", "Kubernetes auth role (unless volumes pass vault_token)", false)
            .config("auth_mount", "Kubernetes auth path (default kubernetes)", false)
            .config("kv_mount", "KV v2 secrets engine path (default secret)", false)
            .config("audience", "the pod's token audience (default vault)", false)
            .parameter("field", "a key of the secret (default: all keys, JSON)", false)
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        request.expect_parameters(&["field"])?;
        let address = request.require_config("address")?.trim_end_matches('/');
        let (url, what) = read_url(&request, address)?;
        let token = token(&request, address, &what)?;
        let answer = http::get(&url).header("x-vault-token", &token).send();
        let answer = answer.map_err(|e| http::fetch_error(&what, &e))?;
        let body = vault_json(answer, &what, &[&token])?;
        secret_file(&body["data"], request.parameter("field"), &what)
    }
}

plugin_sdk::export_backend!(Vault);

/// The nodePublishSecretRef's `vault_token`, else a Kubernetes-auth login
/// with the pod's service-account token.
fn token(request: &ObjectRequest, address: &str, what: &str) -> Result<String, FetchError> {
    if let Some(token) = identity::node_publish_secret("vault_token").ok().flatten() {
        return Ok(token);
    }
    let role = request.require_config("role")?;
    let jwt = identity::service_account_token(request.config("audience").unwrap_or("vault"))?;
    let mount = request.config("auth_mount").unwrap_or("kubernetes");
    let context = format!("{what}: login with role {role:?} at auth/{mount}");
    let login = http::post(&format!("{address}/v1/auth/{mount}/login"))
        .json(&json!({ "role": role, "jwt": jwt }))
        .send()
        .map_err(|e| http::fetch_error(&context, &e))?;
    // Vault answers 400 (or 403) to a role or service account it refuses.
    let body = match vault_json(login, &context, &[&jwt]) {
        Err(FetchError::InvalidRequest(m)) => return Err(FetchError::PermissionDenied(m)),
        body => body?,
    };
    let token = body["auth"]["client_token"].as_str().map(String::from);
    token.ok_or_else(|| FetchError::Other(format!("{context}: no auth.client_token in the answer")))
}

/// `{address}/v1/{kv_mount}/data/{path}[?version=N]` for a path that stays in
/// the mount, and how messages name the secret.
fn read_url(request: &ObjectRequest, address: &str) -> Result<(String, String), FetchError> {
    let path = &request.name;
    let mount = request.config("kv_mount").unwrap_or("secret");
    let what = format!("Vault secret {:?}", format!("{mount}/{path}"));
    let invalid = |m: &str| Err(FetchError::InvalidRequest(format!("{what}: {m}")));
    let bad = |s: &str| matches!(s, "" | "." | "..") || s.contains(['?', '#', '%', '\\']);
    if path.split('/').any(bad) {
        return invalid("objectName must be /-separated names without ., .., ?, #, % or \\");
    }
    let url = format!("{address}/v1/{mount}/data/{path}");
    match request.version.as_deref() {
        None => Ok((url, what)),
        Some(v) if v.parse::<u64>().is_ok() => Ok((format!("{url}?version={v}"), what)),
        Some(v) => invalid(&format!("objectVersion {v:?} is not a KV version number")),
    }
}

/// The JSON of a 2xx answer; else the error its status means, with Vault's
/// `errors` in the message: shortened, and without `sent` (the token or JWT
/// the request carried), should Vault echo it.
fn vault_json(answer: Response, context: &str, sent: &[&str]) -> Result<Value, FetchError> {
    let body = answer.json(context);
    let errors = body.as_ref().ok().and_then(|b| b["errors"].as_array());
    let context = match errors.filter(|e| !e.is_empty()) {
        Some(e) => format!(
            "{context}: Vault says {}",
            vault_errors(&Value::from(e.clone()).to_string(), sent)
        ),
        None => context.to_string(),
    };
    answer.error_for_status(&context)?;
    body
}

/// Vault's `errors` as shown in a message: what the request sent removed,
/// control characters dropped, at most 300 characters.
fn vault_errors(text: &str, sent: &[&str]) -> String {
    let redacted = sent
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_string(), |text, s| text.replace(s, "<redacted>"));
    let clean: Vec<char> = redacted.chars().filter(|c| !c.is_control()).collect();
    let mut shown: String = clean.iter().take(300).collect();
    if clean.len() > 300 {
        shown.push('…');
    }
    shown
}

/// The file of a KV v2 read's `data`: `{"data": {...}, "metadata": {"version": N}}`.
fn secret_file(data: &Value, field: Option<&str>, what: &str) -> Result<FetchedObject, FetchError> {
    let version = data["metadata"]["version"].as_u64();
    let version = version.ok_or_else(|| FetchError::Other(format!("{what}: no version")))?;
    let contents = match field {
        None => data["data"].to_string(),
        Some(f) => data["data"][f].as_str().map(String::from).ok_or_else(|| {
            FetchError::NotFound(format!("{what} has no field {f:?} with a string value"))
        })?,
    };
    Ok(FetchedObject::new(contents, version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::describe_fetch_error;

    fn request(name: &str, version: Option<&str>, config: &[(&str, &str)]) -> ObjectRequest {
        ObjectRequest {
            name: name.into(),
            object_type: "vault".into(),
            version: version.map(String::from),
            version_label: None,
            endpoint: None,
            region: "cn-hangzhou".into(),
            parameters: vec![],
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn answer(status: u16, body: &str) -> Response {
        Response(
            plugin_sdk::bindings::alibabacloud_csi::plugin::http::Response {
                status,
                headers: vec![],
                body: body.as_bytes().to_vec(),
            },
        )
    }

    fn error<T: std::fmt::Debug>(result: Result<T, FetchError>) -> String {
        describe_fetch_error(&result.unwrap_err())
    }

    #[test]
    fn urls_stay_inside_the_mount() {
        let (url, what) = read_url(&request("app/db", None, &[]), "https://v:8200").unwrap();
        assert_eq!(url, "https://v:8200/v1/secret/data/app/db");
        assert_eq!(what, r#"Vault secret "secret/app/db""#);
        let pinned = request("db", Some("3"), &[("kv_mount", "kv")]);
        let (url, _) = read_url(&pinned, "https://v").unwrap();
        assert_eq!(url, "https://v/v1/kv/data/db?version=3");
        for bad in [
            "../sys/seal",
            "app//db",
            "/app",
            "app/",
            "a/./b",
            "a?list=true",
            "a#b",
            "a%2e%2e",
            "a\\..\\b",
            "",
        ] {
            let e = error(read_url(&request(bad, None, &[]), "https://v"));
            assert!(
                e.contains("objectName must be /-separated names"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            error(read_url(&request("db", Some("latest"), &[]), "https://v")),
            r#"invalid request: Vault secret "secret/db": objectVersion "latest" is not a KV version number"#
        );
    }

    #[test]
    fn whole_secret_or_one_field() {
        let data = json!({"data": {"user": "u", "port": 5432}, "metadata": {"version": 4}});
        let whole = secret_file(&data, None, "s").unwrap();
        assert_eq!(whole.version, "4");
        let parsed: Value = serde_json::from_slice(&whole.contents).unwrap();
        assert_eq!(parsed, data["data"]);
        let user = secret_file(&data, Some("user"), "s").unwrap();
        assert_eq!(
            (user.contents, user.version),
            (b"u".to_vec(), "4".to_string())
        );
        for field in ["port", "nope"] {
            assert_eq!(
                error(secret_file(&data, Some(field), "s")),
                format!("not found: s has no field {field:?} with a string value")
            );
        }
        assert_eq!(
            error(secret_file(&json!({}), None, "s")),
            "error: s: no version"
        );
    }

    #[test]
    fn vault_errors_map_to_fetch_errors() {
        assert_eq!(
            vault_json(answer(200, r#"{"a":1}"#), "c", &[]).unwrap()["a"],
            1
        );
        assert_eq!(
            error(vault_json(
                answer(403, r#"{"errors":["permission denied"]}"#),
                "c",
                &[]
            )),
            r#"permission denied: c: Vault says ["permission denied"]: HTTP 403"#
        );
        assert_eq!(
            error(vault_json(answer(404, r#"{"errors":[]}"#), "c", &[])),
            "not found: c: HTTP 404"
        );
        assert_eq!(
            error(vault_json(
                answer(400, r#"{"errors":["invalid role name \"x\""]}"#),
                "c",
                &[]
            )),
            r#"invalid request: c: Vault says ["invalid role name \"x\""]: HTTP 400"#
        );
        assert_eq!(
            error(vault_json(answer(503, "<html>"), "c", &[])),
            "unavailable: c: HTTP 503"
        );
        assert_eq!(
            error(vault_json(answer(200, "<html>§"), "c", &[])),
            "error: c: the answer is not valid JSON: expected a value at line 1, column 1"
        );
    }

    #[test]
    fn what_the_request_sent_is_not_echoed() {
        let echoed = r#"{"errors":["token hvs.SECRET-TOKEN-1 is invalid\n"]}"#;
        assert_eq!(
            error(vault_json(
                answer(403, echoed),
                "c",
                &["hvs.SECRET-TOKEN-1"]
            )),
            r#"permission denied: c: Vault says ["token <redacted> is invalid\n"]: HTTP 403"#
        );
        let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(1000));
        assert!(error(vault_json(answer(400, &long), "c", &[])).len() < 400);
    }
}
