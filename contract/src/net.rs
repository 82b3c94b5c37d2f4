//! Network addresses the operator or a tenant writes: endpoint URLs,
//! `allowed_endpoints` patterns, plugin origins, and which IP addresses are
//! internal to the provider's network position. Pure parsing, no I/O.

use std::net::IpAddr;

use url::Url;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: only for endpoints the operator configured (emulators, proxies).
    Http,
    /// HTTPS.
    Https,
}

/// A resolved endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme.
    pub scheme: Scheme,
    /// Lowercase host name or IP address.
    pub host: String,
    /// Port, when not the scheme's default.
    pub port: Option<u16>,
}

impl Endpoint {
    /// `https://host[:port]/`.
    pub fn base_url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}/", self.authority())
    }

    /// `host[:port]`, as sent (and signed) in the Host header.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", bracket_ipv6(&self.host)),
            None => bracket_ipv6(&self.host),
        }
    }

    /// The port, or the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Parses a configured endpoint URL (`https://kms.cn-hangzhou.aliyuncs.com`,
/// `http://127.0.0.1:8765`).
pub fn parse_endpoint_url(text: &str) -> Result<Endpoint, String> {
    let url = Url::parse(text).map_err(|e| {
        format!("{text:?} is not a URL ({e}); write e.g. \"https://kms.cn-hangzhou.aliyuncs.com\"")
    })?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(format!(
                "{text:?} has scheme {other:?}; use http:// or https://"
            ));
        }
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?} must be scheme://host[:port] with no path or query"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not contain credentials"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{text:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok(Endpoint {
        scheme,
        host,
        port: url.port(),
    })
}

/// Checks an `allowed_endpoints` pattern.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    parse_pattern(pattern).map(|_| ())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*.suffix`: any host under suffix, default HTTPS port.
    Suffix(String),
    /// `host` or `host:port`.
    Exact(String, Option<u16>),
}

/// Parses an `allowed_endpoints` pattern.
pub fn parse_pattern(pattern: &str) -> Result<Pattern, String> {
    let fix = "write \"*.example.com\", \"host.example.com\" or \"host.example.com:8443\"";
    if pattern.contains("://") || pattern.contains('/') {
        return Err(format!(
            "{pattern:?} must be a host pattern without scheme or path; {fix}"
        ));
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        if !is_host_name(suffix) || !suffix.contains('.') {
            return Err(format!(
                "{pattern:?}: the suffix after \"*.\" must be a domain with at least two labels; {fix}"
            ));
        }
        return Ok(Pattern::Suffix(suffix.to_ascii_lowercase()));
    }
    let (host, port) = split_host_port(pattern).map_err(|e| format!("{pattern:?}: {e}; {fix}"))?;
    if !is_host_name(&host) {
        return Err(format!("{pattern:?} is not a host name; {fix}"));
    }
    Ok(Pattern::Exact(host, port))
}

/// Splits `host[:port]`.
pub fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("{port:?} is not a port"))?;
            Ok((host.to_ascii_lowercase(), Some(port)))
        }
        _ => Ok((text.to_ascii_lowercase(), None)),
    }
}

/// A DNS host name: dot-separated labels of letters, digits and `-`.
pub fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A product code as used in default endpoints: `kms`, `oos`, `sts`, ...
pub fn is_valid_product(product: &str) -> bool {
    !product.is_empty()
        && product.len() <= 32
        && product.starts_with(|c: char| c.is_ascii_lowercase())
        && product
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An allowed origin: scheme, host and port, matched exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Scheme.
    pub scheme: Scheme,
    /// Lowercase host name or IP address.
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Parses an allowlist entry: `https://host[:port]` (the port defaults from
/// the scheme; `http://` must be written out to allow plain HTTP).
pub fn parse_origin(text: &str) -> Result<Origin, String> {
    let endpoint = parse_endpoint_url(text).map_err(|e| {
        format!(
            "{e}; an allowed origin is scheme://host[:port], e.g. \"https://vault.internal:8200\""
        )
    })?;
    let port = endpoint.port.unwrap_or(match endpoint.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    Ok(Origin {
        scheme: endpoint.scheme,
        host: endpoint.host,
        port,
    })
}

/// The origin of a URL.
pub fn origin_of(url: &url::Url) -> Result<Origin, String> {
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("scheme {other:?} is not HTTP(S)")),
    };
    let host = url
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    Ok(Origin { scheme, host, port })
}

/// Loopback, link-local, unspecified, multicast, broadcast and the Alibaba
/// Cloud metadata address: where a request from the provider's network
/// position must not go unless the operator says so.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets() == [100, 100, 100, 200]
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}
