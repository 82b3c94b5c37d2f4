//! Outbound HTTP through the host, within the operator's allowlist for this
//! plugin (`[plugins.<type>.capabilities] http`).

use crate::bindings::alibabacloud_csi::plugin::http as wit;
use crate::{FetchError, content};

pub use wit::HttpError;

/// A request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

/// A `GET` of `url`.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// A `POST` to `url`.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            inner: wit::Request {
                method: method.to_string(),
                url: url.to_string(),
                headers: Vec::new(),
                body: None,
            },
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.inner
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.inner.body = Some(body.into());
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Request {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Sends it through the host.
    pub fn send(&self) -> Result<Response, HttpError> {
        wit::send(&self.inner).map(Response)
    }

    /// Sends it and turns a failure or a non-2xx status into the fetch
    /// error it means, naming the URL.
    pub fn fetch(&self) -> Result<Response, FetchError> {
        let url = &self.inner.url;
        self.send()
            .map_err(|e| fetch_error(url, &e))?
            .error_for_status(url)
    }
}

/// An answer, with any status.
#[derive(Debug, Clone)]
pub struct Response(pub wit::Response);

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.0.body
    }

    /// A header's value (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.0
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `ETag` header without quotes (and without a weak `W/` marker).
    ///
    /// Use it as an object's version only if the server does not derive it
    /// from the content: versions are stored in the pod's
    /// SecretProviderClassPodStatus, which more people can read than the
    /// secret, and many servers (S3-style stores, some web servers and
    /// frameworks) send a hash of the body, which gives away the secret's hash
    /// (short secrets can then be guessed offline). Prefer a version the API
    /// returns (a revision number, a version id), or a constant.
    pub fn etag(&self) -> Option<String> {
        self.header("etag")
            .map(|v| v.trim_start_matches("W/").trim_matches('"').to_string())
    }

    /// The string field `name` of a JSON body. Errors say what the field is
    /// (`a number`, ...), never its value.
    pub fn field(&self, name: &str) -> Result<String, FetchError> {
        match self.json("the answer")?.get(name) {
            Some(serde_json::Value::String(value)) => Ok(value.clone()),
            Some(other) => Err(FetchError::InvalidRequest(format!(
                "the field {name:?} is {}, not a string",
                content::kind_of(other)
            ))),
            None => Err(FetchError::NotFound(format!(
                "the answer has no field {name:?}"
            ))),
        }
    }

    /// The body as JSON; `context` names the call in the error, which gives
    /// the kind and position of the problem, never the body's content.
    pub fn json(&self, context: &str) -> Result<serde_json::Value, FetchError> {
        content::json(&self.0.body)
            .map_err(|e| FetchError::Other(format!("{context}: the answer is {e}")))
    }

    /// `Ok(self)` for a 2xx status, else the fetch error the status means
    /// (404 not found, 401/403 permission denied, 429/5xx unavailable, other
    /// 4xx invalid request).
    pub fn error_for_status(self, context: &str) -> Result<Response, FetchError> {
        let status = self.0.status;
        if (200..300).contains(&status) {
            return Ok(self);
        }
        let message = format!("{context}: HTTP {status}");
        Err(match status {
            404 => FetchError::NotFound(message),
            401 | 403 => FetchError::PermissionDenied(message),
            429 | 500..=599 => FetchError::Unavailable(message),
            400..=499 => FetchError::InvalidRequest(message),
            _ => FetchError::Other(message),
        })
    }
}

/// `base_url` followed by `path` as path segments: every `/`-separated
/// segment of `path` is percent-encoded (all bytes except the unreserved
/// `A-Z a-z 0-9 - . _ ~`), so a name taken from a SecretProviderClass stays
/// under `base_url`: `?`, `#`, `%2e%2e` or `\` in it are sent as data, never
/// as URL syntax. An empty path, an empty segment (`a//b`, a leading or
/// trailing `/`), and `.` or `..` segments are refused with `invalid-request`
/// (no server would see them as names). A `base_url` with a query or fragment
/// is refused too (the path would not be a path); a trailing `/` on it is
/// ignored.
///
/// ```
/// # use plugin_sdk::http::url_under;
/// assert_eq!(
///     url_under("https://config.internal/apps/", "team a/db?.json").unwrap(),
///     "https://config.internal/apps/team%20a/db%3F.json"
/// );
/// assert!(url_under("https://config.internal/apps", "../admin").is_err());
/// ```
pub fn url_under(base_url: &str, path: &str) -> Result<String, FetchError> {
    if base_url.contains(['?', '#']) {
        return Err(FetchError::Other(format!(
            "the base URL {base_url:?} has a query or fragment; a path cannot go under it"
        )));
    }
    let rule = "write /-separated names, none empty, \".\" or \"..\" (other characters are sent percent-encoded)";
    if path.is_empty() {
        return Err(FetchError::InvalidRequest(format!("\"\" is empty; {rule}")));
    }
    let mut url = base_url.trim_end_matches('/').to_string();
    for segment in path.split('/') {
        match segment {
            "" => {
                return Err(FetchError::InvalidRequest(format!(
                    "{path:?} has an empty segment (a leading, trailing or double \"/\"); {rule}"
                )));
            }
            "." | ".." => {
                return Err(FetchError::InvalidRequest(format!(
                    "{path:?} has a {segment:?} segment, which would leave the base URL; {rule}"
                )));
            }
            _ => {
                url.push('/');
                url.push_str(&encode_segment(segment));
            }
        }
    }
    Ok(url)
}

/// Percent-encodes every byte of `segment` except the unreserved characters
/// of RFC 3986 (`A-Z a-z 0-9 - . _ ~`): the result is one path segment (or
/// one query value) whatever `segment` holds. Note that `.` and `..` stay as
/// they are; [`url_under`] refuses them.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The fetch error an HTTP failure means; `context` starts the message.
pub fn fetch_error(context: &str, error: &HttpError) -> FetchError {
    match error {
        HttpError::Denied(m) => {
            FetchError::InvalidRequest(format!("{context}: refused by the provider: {m}"))
        }
        HttpError::Timeout(m) => FetchError::Unavailable(format!("{context}: timed out: {m}")),
        HttpError::Transport(m) => {
            FetchError::Unavailable(format!("{context}: connection failed: {m}"))
        }
        HttpError::TooLarge(m) => FetchError::Other(format!("{context}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16) -> Response {
        Response(wit::Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"a":1}"#.to_vec(),
        })
    }

    #[test]
    fn paths_stay_under_the_base_url() {
        let base = "https://config.internal:8443/apps";
        for (path, want) in [
            ("db.json", "/apps/db.json"),
            ("team-a/db.json", "/apps/team-a/db.json"),
            ("a_b~c.d-e", "/apps/a_b~c.d-e"),
            ("a b", "/apps/a%20b"),
            ("db?x=1", "/apps/db%3Fx%3D1"),
            ("db#frag", "/apps/db%23frag"),
            ("%2e%2e", "/apps/%252e%252e"),
            ("%2e%2e/admin", "/apps/%252e%252e/admin"),
            ("..%2fadmin", "/apps/..%252fadmin"),
            ("a\\..\\b", "/apps/a%5C..%5Cb"),
            ("...", "/apps/..."),
            (".hidden", "/apps/.hidden"),
            ("a;b,c=d&e+f@g:h", "/apps/a%3Bb%2Cc%3Dd%26e%2Bf%40g%3Ah"),
            ("é", "/apps/%C3%A9"),
            ("\u{0}\n", "/apps/%00%0A"),
        ] {
            assert_eq!(
                url_under(base, path).unwrap(),
                format!("https://config.internal:8443{want}"),
                "{path:?}"
            );
        }
        assert_eq!(
            url_under("https://h/apps/", "x").unwrap(),
            "https://h/apps/x"
        );
        assert_eq!(url_under("https://h", "x/y").unwrap(), "https://h/x/y");
        for (path, why) in [
            ("", "\"\" is empty"),
            ("..", "has a \"..\" segment"),
            ("../admin", "has a \"..\" segment"),
            ("a/../../admin", "has a \"..\" segment"),
            ("a/..", "has a \"..\" segment"),
            (".", "has a \".\" segment"),
            ("a/./b", "has a \".\" segment"),
            ("/etc/passwd", "empty segment"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
        ] {
            let e = url_under(base, path).unwrap_err();
            let FetchError::InvalidRequest(message) = &e else {
                panic!("{path:?}: {e:?}")
            };
            assert!(message.contains(why), "{path:?}: {message}");
            assert!(message.contains("write /-separated names"), "{message}");
        }
        assert!(matches!(
            url_under("https://h/x?a=1", "db"),
            Err(FetchError::Other(_))
        ));
        assert!(matches!(
            url_under("https://h/x#a", "db"),
            Err(FetchError::Other(_))
        ));
        assert_eq!(encode_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn statuses_map_to_fetch_errors() {
        assert!(response(200).error_for_status("x").is_ok());
        for (status, kind) in [
            (404, "not found"),
            (403, "permission denied"),
            (503, "unavailable"),
            (400, "invalid request"),
            (302, "error"),
        ] {
            let e = response(status).error_for_status("vault").unwrap_err();
            assert!(
                crate::describe_fetch_error(&e).starts_with(kind),
                "{status}"
            );
        }
        assert_eq!(
            response(200).header("Content-Type"),
            Some("application/json")
        );
        assert_eq!(response(200).json("x").unwrap()["a"], 1);
        let text = Response(wit::Response {
            status: 200,
            headers: vec![("etag".into(), "\"v7\"".into())],
            body: br#"{"user":"u","n":1}"#.to_vec(),
        });
        assert_eq!(text.etag().as_deref(), Some("v7"));
        let weak = Response(wit::Response {
            status: 200,
            headers: vec![("etag".into(), "W/\"v8\"".into())],
            body: Vec::new(),
        });
        assert_eq!(weak.etag().as_deref(), Some("v8"));
        assert_eq!(text.field("user").unwrap(), "u");
        assert_eq!(
            crate::describe_fetch_error(&text.field("n").unwrap_err()),
            "invalid request: the field \"n\" is a number, not a string"
        );
        assert!(
            crate::describe_fetch_error(&text.field("x").unwrap_err()).starts_with("not found")
        );
    }

    #[test]
    fn json_errors_do_not_quote_the_body() {
        let answer = |body: &[u8]| {
            Response(wit::Response {
                status: 200,
                headers: vec![],
                body: body.to_vec(),
            })
        };
        assert_eq!(
            crate::describe_fetch_error(
                &answer(b"{\"token\": s\xc2\xa7cret}")
                    .json("vault")
                    .unwrap_err()
            ),
            "error: vault: the answer is not valid JSON: expected a value at line 1, column 11"
        );
        assert_eq!(
            crate::describe_fetch_error(&answer(b"\xff\xfe").field("a").unwrap_err()),
            "error: the answer: the answer is not valid JSON: it is not UTF-8 text (invalid byte sequence at byte offset 0 of 2)"
        );
        assert_eq!(
            crate::describe_fetch_error(
                &answer("{\"a\": {\"§\": \"§\"}}".as_bytes())
                    .field("a")
                    .unwrap_err()
            ),
            "invalid request: the field \"a\" is an object, not a string"
        );
    }

    #[test]
    fn requests_are_built() {
        let r = post("https://v/login")
            .bearer("t")
            .json(&serde_json::json!({"role": "r"}));
        assert_eq!(r.inner.method, "POST");
        assert_eq!(
            r.inner.headers[0],
            ("authorization".to_string(), "Bearer t".to_string())
        );
        assert_eq!(r.inner.body.as_deref(), Some(br#"{"role":"r"}"#.as_slice()));
    }
}
