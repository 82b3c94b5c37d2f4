//! An incoming RPC request, decoded once: query and form parameters, headers, body.

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, header};

/// An RPC-style API request as the handlers and the verifiers see it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// URL query parameters, form-decoded (`+` is a space), in order.
    pub query: Vec<(String, String)>,
    /// Parameters of an `application/x-www-form-urlencoded` body.
    pub form: Vec<(String, String)>,
    pub body: Bytes,
    /// The authority from the request line (HTTP/2) when there is no `host` header.
    authority: Option<String>,
}

impl ApiRequest {
    pub fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Self {
        let query = uri.query().map(decode_form).unwrap_or_default();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let form = if is_form && !body.is_empty() {
            decode_form(&String::from_utf8_lossy(&body))
        } else {
            Vec::new()
        };
        ApiRequest {
            method,
            path: uri.path().to_string(),
            headers,
            query,
            form,
            body,
            authority: uri.authority().map(|a| a.to_string()),
        }
    }

    /// A parameter from the query, else from the form body.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(&self.form)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text; `None` if absent or not valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        if name == "host" && !self.headers.contains_key(header::HOST) {
            return self.authority.as_deref();
        }
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The API name: the V3 `x-acs-action` header, else the `Action` parameter.
    pub fn action(&self) -> Option<&str> {
        self.header("x-acs-action")
            .or_else(|| self.param("Action"))
            .filter(|a| !a.is_empty())
    }

    /// The API version: `x-acs-version`, else `Version`.
    pub fn version(&self) -> Option<&str> {
        self.header("x-acs-version")
            .or_else(|| self.param("Version"))
            .filter(|v| !v.is_empty())
    }

    /// What the error envelope reports as `HostId`.
    pub fn host_id(&self) -> &str {
        self.header("host").unwrap_or("localhost")
    }
}

pub(crate) fn decode_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, content_type: Option<&str>, body: &str) -> ApiRequest {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        ApiRequest::new(
            Method::POST,
            &uri.parse().unwrap(),
            headers,
            Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn query_is_form_decoded_and_form_bodies_are_read() {
        let req = request(
            "/?SecretName=my+secret%2B%2A~&Action=GetSecretValue",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "Recipient=a+b&Action=Ignored",
        );
        assert_eq!(req.param("SecretName"), Some("my secret+*~"));
        assert_eq!(req.param("Recipient"), Some("a b"));
        assert_eq!(req.action(), Some("GetSecretValue"));
        assert_eq!(req.form.len(), 2);
    }

    #[test]
    fn bodies_of_other_types_are_not_parameters() {
        let req = request("/", Some("application/json"), "a=b");
        assert!(req.form.is_empty());
        assert_eq!(req.param("a"), None);
        assert_eq!(req.action(), None);
    }
}
