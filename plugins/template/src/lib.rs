//! A backend that reads JSON documents over HTTPS: `GET <base_url>/<objectName>`
//! (or `GET <objectName>`, a whole URL, without `base_url`), and writes the
//! document or one of its string fields. Start a backend from it with
//! `csi-secrets-store-provider-alibabacloud plugin new <name>`.
//!
//! `objectName` comes from a SecretProviderClass, which a namespace user
//! writes: it must not steer the request elsewhere. Under `base_url` it is
//! sent as path segments, each percent-encoded (`plugin_sdk::http::url_under`),
//! so `?`, `#`, `%2e%2e` or `\` stay in the name; `.`, `..` and empty
//! segments are refused. Without `base_url` the name is the URL, and only the
//! route's allowed origins (`capabilities.http`) bound it.
//!
//! The version goes into the pod's SecretProviderClassPodStatus, which more
//! people can read than the secret: it must never be derived from the
//! content. So it is the `version_header` the operator names, when the server
//! sends one that is not a hash of the body (a revision number, a version id;
//! an `ETag` only if the server does not compute it from the content, which
//! many do), else the constant "1": the files are still rewritten on every
//! refresh, only the status does not show the change.

use plugin_sdk::{Backend, Config, FetchError, FetchedObject, ObjectRequest, PluginInfo, http};

struct JsonBackend;

impl Backend for JsonBackend {
    fn describe() -> PluginInfo {
        PluginInfo::new("https-json", env!("CARGO_PKG_VERSION"))
            .about("JSON documents over HTTPS: GET <base_url>/<objectName>")
            .config(
                "base_url",
                "objectName is a path under it (else a whole URL)",
                false,
            )
            .config(
                "version_header",
                "answer header with a version not derived from the content",
                false,
            )
            .parameter("field", "write only this string field", false)
    }

    fn validate(config: &Config) -> Result<(), String> {
        config.check(&Self::describe())?;
        match config.get("base_url") {
            Some(base) if !base.starts_with("https://") && !base.starts_with("http://") => Err(
                format!("base_url {base:?} must start with https:// (or http://)"),
            ),
            Some(base) if base.contains(['?', '#']) => {
                Err(format!("base_url {base:?} must have no query or fragment"))
            }
            _ => Ok(()),
        }
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        let url = object_url(request.config("base_url"), &request.name)?;
        let response = http::get(&url).fetch()?;
        let version = match request.config("version_header") {
            Some(name) => response.header(name).map(str::to_string).ok_or_else(|| {
                FetchError::Other(format!("{url}: the answer has no {name} header"))
            })?,
            None => "1".to_string(),
        };
        match request.parameter("field") {
            Some(field) => Ok(FetchedObject::new(response.field(field)?, version)),
            None => Ok(FetchedObject::new(response.body(), version)),
        }
    }
}

/// The URL of `name`: its segments under `base_url`, or `name` itself.
fn object_url(base_url: Option<&str>, name: &str) -> Result<String, FetchError> {
    match base_url {
        Some(base) => http::url_under(base, name).map_err(|e| match e {
            FetchError::InvalidRequest(m) => FetchError::InvalidRequest(format!("objectName {m}")),
            other => other,
        }),
        None => Ok(name.to_string()),
    }
}

plugin_sdk::export_backend!(JsonBackend);

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Option<&str> = Some("https://config.internal/apps/");

    #[test]
    fn object_names_stay_under_base_url() {
        for (name, want) in [
            ("db.json", "https://config.internal/apps/db.json"),
            (
                "team-a/db.json",
                "https://config.internal/apps/team-a/db.json",
            ),
            (
                "db.json?raw=1",
                "https://config.internal/apps/db.json%3Fraw%3D1",
            ),
            ("db.json#x", "https://config.internal/apps/db.json%23x"),
            (
                "%2e%2e/admin",
                "https://config.internal/apps/%252e%252e/admin",
            ),
            ("a b/ü", "https://config.internal/apps/a%20b/%C3%BC"),
        ] {
            assert_eq!(object_url(BASE, name).unwrap(), want, "{name:?}");
        }
        for name in [
            "../admin",
            "a/../../admin",
            "./db",
            "/etc/passwd",
            "a//b",
            "a/",
            "",
        ] {
            match object_url(BASE, name) {
                Err(FetchError::InvalidRequest(m)) => {
                    assert!(m.starts_with("objectName "), "{m}");
                    assert!(m.contains("write /-separated names"), "{m}");
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn without_base_url_the_name_is_the_url() {
        assert_eq!(
            object_url(None, "https://config.internal/apps/db.json").unwrap(),
            "https://config.internal/apps/db.json"
        );
    }

    #[test]
    fn base_url_is_checked_at_start_up() {
        let config = |pairs: &[(&str, &str)]| {
            Config(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert!(JsonBackend::validate(&config(&[("base_url", "https://c.internal/apps")])).is_ok());
        assert!(JsonBackend::validate(&config(&[("version_header", "x-revision")])).is_ok());
        for bad in [
            "c.internal/apps",
            "https://c.internal/apps?x=1",
            "https://c.internal/#a",
        ] {
            assert!(
                JsonBackend::validate(&config(&[("base_url", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(JsonBackend::validate(&config(&[("etag", "yes")])).is_err());
    }
}
