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

    /// The `ETag` header without quotes: a backend's version of a document.
    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(|v| v.trim_matches('"').to_string())
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
