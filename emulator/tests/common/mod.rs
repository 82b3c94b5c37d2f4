//! A small signing HTTP client for the emulator tests, built on the project's
//! signature crate: requests are signed as the SDKs sign them (V3 or V1), and
//! can be tampered with afterwards.
//!
//! Shared by several test crates, each of which uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use alibabacloud_signature::{percent_encode, sha256_hex, v1, v3};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::{self, HeaderMap};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;

/// The keys of `examples/emulator-seed.toml`.
pub const AK: (&str, &str) = ("testid", "testsecret");
pub const STS_AK: (&str, &str, &str) = ("STS.testid", "stssecret", "CAIS-test-token/+=");
pub const LIMITED_AK: (&str, &str) = ("limitedid", "limitedsecret");

/// `2024-01-02T03:04:05Z` for `at`.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap()
}

fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A request before signing.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub action: String,
    pub version: String,
    pub params: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Headers sent but left out of the V3 signature.
    pub unsigned: Vec<String>,
    /// V1 common parameters left out of the request.
    pub dropped: Vec<String>,
    pub date: String,
    pub nonce: String,
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Req {
    pub fn new(action: &str, version: &str) -> Self {
        Req {
            method: "POST",
            action: action.into(),
            version: version.into(),
            params: Vec::new(),
            form: Vec::new(),
            headers: Vec::new(),
            unsigned: Vec::new(),
            dropped: Vec::new(),
            date: timestamp(OffsetDateTime::now_utc()),
            nonce: fresh_nonce(),
            access_key_id: AK.0.into(),
            secret: AK.1.into(),
            token: None,
        }
    }

    /// KMS `GetSecretValue` for `name`.
    pub fn kms(name: &str) -> Self {
        Req::new("GetSecretValue", "2016-01-20").param("SecretName", name)
    }

    /// OOS `GetSecretParameter` for `name`.
    pub fn oos(name: &str) -> Self {
        Req::new("GetSecretParameter", "2019-06-01")
            .param("Name", name)
            .param("RegionId", "cn-hangzhou")
    }

    pub fn param(mut self, k: &str, v: &str) -> Self {
        self.params.push((k.into(), v.into()));
        self
    }

    pub fn without_param(mut self, k: &str) -> Self {
        self.params.retain(|(name, _)| name != k);
        self
    }

    pub fn form(mut self, k: &str, v: &str) -> Self {
        self.form.push((k.into(), v.into()));
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn unsigned(mut self, header: &str) -> Self {
        self.unsigned.push(header.into());
        self
    }

    pub fn drop_common(mut self, param: &str) -> Self {
        self.dropped.push(param.into());
        self
    }

    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    pub fn at(mut self, date: &str) -> Self {
        self.date = date.into();
        self
    }

    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.into();
        self
    }

    pub fn key(mut self, id: &str, secret: &str) -> Self {
        self.access_key_id = id.into();
        self.secret = secret.into();
        self
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn sts(self) -> Self {
        self.key(STS_AK.0, STS_AK.1).token(STS_AK.2)
    }

    fn form_body(&self) -> Vec<u8> {
        if self.form.is_empty() {
            return Vec::new();
        }
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.form)
            .finish()
            .into_bytes()
    }

    /// Signs with V3 the way the Python SDK does: the query is built with a
    /// form encoder (space as `+`), every sent header is signed.
    pub fn v3(&self, host: &str) -> Raw {
        let body = self.form_body();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("x-acs-action".into(), self.action.clone()),
            ("x-acs-version".into(), self.version.clone()),
            ("x-acs-date".into(), self.date.clone()),
            ("x-acs-signature-nonce".into(), self.nonce.clone()),
            ("x-acs-content-sha256".into(), sha256_hex(&body)),
        ];
        if let Some(token) = &self.token {
            headers.push(("x-acs-security-token".into(), token.clone()));
            headers.push(("x-acs-accesskey-id".into(), self.access_key_id.clone()));
        }
        if !body.is_empty() {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        headers.extend(self.headers.iter().cloned());
        let signed: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| !self.unsigned.contains(k))
            .cloned()
            .collect();
        let input = v3::CanonicalInput {
            method: self.method,
            uri: "/",
            query: &self.params,
            headers: &signed,
            payload_sha256: &sha256_hex(&body),
        };
        let authorization = v3::authorization(&input, &self.access_key_id, &self.secret);
        headers.push(("authorization".into(), authorization));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish();
        Raw {
            method: self.method,
            path_and_query: if query.is_empty() {
                "/".into()
            } else {
                format!("/?{query}")
            },
            headers,
            body,
        }
    }

    /// Signs with V1 (HMAC-SHA1): common parameters in the query (all of them
    /// for GET), `form` in the body, the signature over both.
    pub fn v1(&self) -> Raw {
        let mut query: Vec<(String, String)> = [
            ("AccessKeyId", self.access_key_id.as_str()),
            ("Action", &self.action),
            ("Version", &self.version),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", &self.nonce),
            ("Timestamp", &self.date),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(token) = &self.token {
            query.push(("SecurityToken".into(), token.clone()));
        }
        query.extend(self.params.iter().cloned());
        let (mut query, body, form) = if self.method == "GET" {
            query.extend(self.form.iter().cloned());
            (query, Vec::new(), false)
        } else {
            (query, self.form_body(), !self.form.is_empty())
        };
        query.retain(|(k, _)| !self.dropped.contains(k));
        let all: Vec<(String, String)> = query
            .iter()
            .chain(if form { self.form.iter() } else { [].iter() })
            .cloned()
            .collect();
        let signature = v1::sign(self.method, &all, &self.secret);
        query.push(("Signature".into(), signature));
        let encoded = query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = vec![("host".to_string(), "127.0.0.1".to_string())];
        if form {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        headers.extend(self.headers.iter().cloned());
        Raw {
            method: self.method,
            path_and_query: format!("/?{encoded}"),
            headers,
            body,
        }
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Raw {
    pub method: &'static str,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    pub async fn send(&self, addr: SocketAddr) -> Reply {
        send(
            addr,
            self.method,
            &self.path_and_query,
            &self.headers,
            self.body.clone(),
        )
        .await
    }
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["Code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.json["Message"].as_str().unwrap_or("")
    }

    /// Asserts an error reply with this code and status, in the full envelope.
    #[track_caller]
    pub fn assert_error(&self, code: &str, status: u16) {
        assert_eq!(
            (self.code(), self.status),
            (code, status),
            "unexpected reply: {}",
            self.text
        );
        for field in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
            assert!(
                self.json[field].is_string(),
                "{field} missing in {}",
                self.text
            );
        }
        assert_eq!(
            self.headers["x-acs-request-id"].to_str().unwrap(),
            self.json["RequestId"].as_str().unwrap()
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &serde_json::Value {
        assert_eq!(self.status, 200, "unexpected reply: {}", self.text);
        assert_eq!(
            self.headers["x-acs-request-id"].to_str().unwrap(),
            self.json["RequestId"].as_str().unwrap()
        );
        &self.json
    }
}

/// One HTTP/1.1 exchange on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder().method(method).uri(path_and_query);
    if !headers.iter().any(|(k, _)| k == "host") {
        request = request.header("host", addr.to_string());
    }
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

/// A JSON admin call (`body` `None` sends no body).
pub async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    let (headers, body) = match body {
        Some(json) => (
            vec![("content-type".to_string(), "application/json".to_string())],
            json.to_string().into_bytes(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    send(addr, method, path, &headers, body).await
}
