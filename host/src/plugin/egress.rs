//! Outbound HTTP for plugins, made by the host: only to the origins the
//! operator allowed for the plugin, redirects re-checked against the same
//! allowlist, internal addresses (private, shared, loopback, link-local,
//! unique-local, cloud metadata, reserved, … see
//! [`contract::net::internal_range`]) refused at every hop — also when a name
//! resolves to one (DNS rebinding) — unless the operator allows them, with
//! timeouts and a response size cap.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::net::{
    InternalAddress, Origin, OriginError, UrlOriginError, internal_range, origin_of, parse_origin,
};

use crate::http::BodyError;

/// Methods a plugin may use.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// Headers the host sets itself.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// The egress policy and client of one plugin.
#[derive(Debug, Clone)]
pub(crate) struct Egress {
    client: reqwest::Client,
    policy: Arc<Policy>,
    timeout: Duration,
    max_response_bytes: usize,
}

#[derive(Debug)]
struct Policy {
    origins: Vec<Origin>,
    allow_internal: bool,
    /// `plugins.<type>.capabilities.allow_internal_addresses`, for messages.
    grant_key: String,
}

/// Why the policy refuses a URL or a resolved name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The URL has no origin the policy can judge (`contract::net::origin_of`).
    #[error(transparent)]
    Url(UrlOriginError),
    /// Not one of the allowed origins.
    #[error(
        "{origin} is not an allowed origin of this plugin (capabilities.http: {})",
        listed(.allowed)
    )]
    Origin {
        /// The URL's origin.
        origin: Origin,
        /// The allowed ones.
        allowed: Vec<Origin>,
    },
    /// An internal address, and internal addresses are not allowed.
    #[error("{0}; {1} is false")]
    Internal(InternalAddress, String),
    /// The name resolves to nothing.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// The name resolves to internal addresses only.
    #[error(
        "{host} resolves to no address the plugin may reach: {}; {grant_key} is false",
        reasons_text(.reasons)
    )]
    OnlyInternal {
        /// The name.
        host: String,
        /// The ranges of its addresses, each once.
        reasons: Vec<InternalAddress>,
        /// `plugins.<type>.capabilities.allow_internal_addresses`.
        grant_key: String,
    },
}

fn listed(origins: &[Origin]) -> String {
    if origins.is_empty() {
        "none".into()
    } else {
        origins
            .iter()
            .map(Origin::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reasons listed at most in one refusal.
const MAX_REASONS: usize = 4;

fn reasons_text(refused: &[InternalAddress]) -> String {
    let mut reasons: Vec<String> = refused
        .iter()
        .take(MAX_REASONS)
        .map(ToString::to_string)
        .collect();
    if refused.len() > MAX_REASONS {
        reasons.push(format!("and {} more", refused.len() - MAX_REASONS));
    }
    reasons.join("; ")
}

impl Policy {
    fn check(&self, url: &url::Url) -> Result<(), Refused> {
        let origin = origin_of(url).map_err(Refused::Url)?;
        if !self.origins.contains(&origin) {
            return Err(Refused::Origin {
                origin,
                allowed: self.origins.clone(),
            });
        }
        if let Ok(ip) = origin.host.parse::<IpAddr>()
            && !self.allow_internal
            && let Some(reason) = internal_range(ip)
        {
            return Err(Refused::Internal(reason, self.grant_key.clone()));
        }
        Ok(())
    }
}

/// Resolves names, then drops internal addresses (unless allowed), so an
/// allowed name that resolves to the metadata server goes nowhere.
struct FilteringResolver {
    policy: Arc<Policy>,
}

impl Policy {
    /// The addresses of `host` the plugin may reach, or why there is none.
    fn filter_resolved(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let mut reachable = Vec::new();
        let mut refused = Vec::new();
        for addr in resolved {
            match internal_range(addr.ip()) {
                Some(reason) if !self.allow_internal => {
                    if !refused.contains(&reason) {
                        refused.push(reason);
                    }
                }
                _ => reachable.push(addr),
            }
        }
        if !reachable.is_empty() {
            return Ok(reachable);
        }
        if refused.is_empty() {
            return Err(Refused::NoAddress(host.to_string()));
        }
        Err(Refused::OnlyInternal {
            host: host.to_string(),
            reasons: refused,
            grant_key: self.grant_key.clone(),
        })
    }
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs = policy.filter_resolved(&host, resolved)?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Why a route's egress cannot be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// An allowed origin is not one (`contract::net::parse_origin`).
    #[error(transparent)]
    Origin(OriginError),
    /// The route's `http_ca_file` cannot be used.
    #[error("http_ca_file: {0}")]
    CaFile(#[source] crate::http::CaBundleError),
    /// reqwest refused the client's settings.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl Egress {
    /// The egress of the plugin routed as `object_type`, allowed `origins`.
    pub(crate) fn new(
        object_type: &str,
        origins: &[String],
        allow_internal: bool,
        timeout: Duration,
        max_response_bytes: usize,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Egress, SetupError> {
        let origins = origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SetupError::Origin)?;
        let policy = Arc::new(Policy {
            origins,
            allow_internal,
            grant_key: format!("plugins.{object_type}.capabilities.allow_internal_addresses"),
        });
        let redirect_policy = policy.clone();
        let mut builder = crate::http::client_builder();
        if let Some(ca_file) = ca_file {
            for cert in crate::http::read_ca_bundle(ca_file).map_err(SetupError::CaFile)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        // No proxy from the environment: a proxy would resolve names itself,
        // beyond the internal-address check of the resolver below.
        let client = builder
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(FilteringResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirect_policy.check(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("a redirect leaves the allowlist: {why}")),
                }
            }))
            .user_agent(concat!(
                "csi-secrets-store-provider-alibabacloud/",
                env!("CARGO_PKG_VERSION"),
                " (plugin)"
            ))
            .build()
            .map_err(SetupError::Client)?;
        Ok(Egress {
            client,
            policy,
            timeout,
            max_response_bytes,
        })
    }

    /// Sends one request for a plugin, within `deadline`.
    pub(crate) async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Response, EgressError> {
        let method = method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(EgressError::Denied(format!(
                "method {method:?} is not allowed; use one of {}",
                METHODS.join(", ")
            )));
        }
        let parsed =
            url::Url::parse(url).map_err(|e| EgressError::Denied(format!("bad URL: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(EgressError::Denied(
                "credentials in the URL are not allowed".into(),
            ));
        }
        self.policy
            .check(&parsed)
            .map_err(|refused| EgressError::Denied(refused.to_string()))?;
        let mut request = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("checked above"),
            parsed,
        );
        for (name, value) in headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(EgressError::Denied(format!(
                    "the header {name:?} is set by the host"
                )));
            }
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let budget = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        if budget.is_zero() {
            return Err(EgressError::Timeout(
                "the Mount's deadline has passed".into(),
            ));
        }
        let exchange = async {
            let response = request.send().await.map_err(|e| {
                if e.is_redirect() || e.is_builder() {
                    EgressError::Denied(crate::http::transport_cause(&e))
                } else {
                    EgressError::Transport(
                        crate::http::transport_cause(&e)
                            + &crate::http::certificate_hint(
                                &e,
                                "this plugin route's http_ca_file",
                            ),
                    )
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let body = crate::http::read_capped(response, self.max_response_bytes)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge { .. } => EgressError::TooLarge(format!(
                        "{e} (capabilities limit http_max_response_bytes)"
                    )),
                    BodyError::TimedOut | BodyError::Read(_) => {
                        EgressError::Transport(e.to_string())
                    }
                })?;
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or_else(|_| Err(EgressError::Timeout(format!("no answer within {budget:?}"))))
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// Status.
    pub(crate) status: u16,
    /// Headers.
    pub(crate) headers: Vec<(String, String)>,
    /// Body.
    pub(crate) body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EgressError {
    /// Refused by the policy.
    #[error("denied: {0}")]
    Denied(String),
    /// Timed out.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer is too large.
    #[error("too large: {0}")]
    TooLarge(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::net::is_internal;

    #[test]
    fn origins_and_internal_addresses() {
        let o = parse_origin("https://Vault.Internal:8200").unwrap();
        assert_eq!(o.to_string(), "https://vault.internal:8200");
        assert_eq!(parse_origin("https://x").unwrap().port, 443);
        assert_eq!(parse_origin("http://x").unwrap().port, 80);
        for bad in [
            "vault.internal",
            "ftp://x",
            "https://x/path",
            "https://u:p@x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        // every range and its edges: contract::net's tests
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "100.100.100.200",
            "100.100.100.201",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:169.254.1.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "47.96.0.1", "2400:3200::1", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    fn policy(origins: &[&str], allow_internal: bool) -> Policy {
        Policy {
            origins: origins.iter().map(|o| parse_origin(o).unwrap()).collect(),
            allow_internal,
            grant_key: "plugins.vault.capabilities.allow_internal_addresses".into(),
        }
    }

    #[test]
    fn the_policy_matches_origins_exactly() {
        let policy = policy(
            &[
                "https://vault.internal:8200",
                "https://127.0.0.1",
                "https://10.1.2.3",
                "https://[::ffff:a01:203]",
            ],
            false,
        );
        let check = |u: &str| {
            policy
                .check(&url::Url::parse(u).unwrap())
                .map_err(|e| e.to_string())
        };
        assert!(check("https://vault.internal:8200/v1/secret").is_ok());
        assert!(check("https://VAULT.internal:8200/x?y").is_ok());
        for bad in [
            "http://vault.internal:8200/",
            "https://vault.internal/",
            "https://vault.internal:8201/",
            "https://evil.example/",
        ] {
            assert!(
                check(bad).unwrap_err().contains("not an allowed origin"),
                "{bad}"
            );
        }
        assert_eq!(
            check("https://10.1.2.3/").unwrap_err(),
            "10.1.2.3 is in 10.0.0.0/8 (private, RFC 1918); plugins.vault.capabilities.allow_internal_addresses is false"
        );
        assert!(
            check("https://127.0.0.1/")
                .unwrap_err()
                .starts_with("127.0.0.1 is in 127.0.0.0/8 (loopback")
        );
        let mapped = check("https://[::ffff:a01:203]/").unwrap_err();
        assert!(
            mapped.contains("::ffff:0:0/96") && mapped.contains("10.1.2.3 is in 10.0.0.0/8"),
            "{mapped}"
        );
    }

    #[test]
    fn resolved_addresses_are_filtered_and_refusals_name_the_ranges() {
        let addr = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 0);
        let strict = policy(&[], false);
        // an internal address among public ones is dropped
        assert_eq!(
            strict
                .filter_resolved("vault.example", [addr("10.0.0.1"), addr("8.8.8.8")])
                .unwrap(),
            [addr("8.8.8.8")]
        );
        let e = strict
            .filter_resolved(
                "vault.example",
                [addr("10.0.0.1"), addr("fd00::1"), addr("10.0.0.1")],
            )
            .unwrap_err();
        assert!(matches!(&e, Refused::OnlyInternal { reasons, .. } if reasons.len() == 2));
        let e = e.to_string();
        assert_eq!(
            e,
            "vault.example resolves to no address the plugin may reach: 10.0.0.1 is in 10.0.0.0/8 (private, RFC 1918); fd00::1 is in fc00::/7 (unique local, RFC 4193); plugins.vault.capabilities.allow_internal_addresses is false"
        );
        let many = [
            "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
        ];
        let e = strict
            .filter_resolved("x", many.iter().map(|ip| addr(ip)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.0.0.4 is in") && !e.contains("10.0.0.5"),
            "{e}"
        );
        assert!(e.contains("and 2 more"), "{e}");
        assert_eq!(
            strict.filter_resolved("x", []).unwrap_err(),
            Refused::NoAddress("x".into())
        );
        assert_eq!(
            strict.filter_resolved("x", []).unwrap_err().to_string(),
            "x resolves to no address"
        );
        // granted: everything is kept
        let granted = policy(&[], true);
        assert_eq!(
            granted
                .filter_resolved("localhost", [addr("127.0.0.1"), addr("::1")])
                .unwrap()
                .len(),
            2
        );
    }

    /// A server on 127.0.0.1 that answers every request with `response`.
    async fn server(response: &'static [u8]) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response).await;
                let _ = socket.shutdown().await;
            }
        });
        port
    }

    #[tokio::test]
    async fn an_answer_past_the_cap_is_too_large_not_a_transport_failure() {
        let deadline = Instant::now() + Duration::from_secs(30);
        for response in [
            // announced
            &b"HTTP/1.1 200 OK\r\ncontent-length: 64\r\nconnection: close\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..],
            // found while reading
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"[..],
        ] {
            let port = server(response).await;
            let origin = format!("http://127.0.0.1:{port}");
            let egress = Egress::new(
                "vault",
                std::slice::from_ref(&origin),
                true,
                Duration::from_secs(10),
                16,
                None,
            )
            .unwrap();
            let error = egress
                .send("GET", &format!("{origin}/x"), &[], None, deadline)
                .await
                .unwrap_err();
            assert_eq!(
                error,
                EgressError::TooLarge(
                    "the answer is larger than 16 bytes (capabilities limit http_max_response_bytes)"
                        .into()
                )
            );
        }
        // within the cap
        let port =
            server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        let origin = format!("http://127.0.0.1:{port}");
        let egress = Egress::new(
            "vault",
            std::slice::from_ref(&origin),
            true,
            Duration::from_secs(10),
            16,
            None,
        )
        .unwrap();
        let answer = egress
            .send("GET", &format!("{origin}/x"), &[], None, deadline)
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body), (200, b"ok".to_vec()));
    }

    #[test]
    fn bad_settings_are_typed() {
        let bad = Egress::new(
            "vault",
            &["ftp://x".into()],
            false,
            Duration::from_secs(1),
            1,
            None,
        )
        .unwrap_err();
        assert!(matches!(bad, SetupError::Origin(_)), "{bad}");
        let ca = Egress::new(
            "vault",
            &["https://x".into()],
            false,
            Duration::from_secs(1),
            1,
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        )
        .unwrap_err();
        assert!(matches!(ca, SetupError::CaFile(_)), "{ca}");
        assert!(
            ca.to_string()
                .starts_with("http_ca_file: cannot read /nonexistent/ca.pem"),
            "{ca}"
        );
    }
}
