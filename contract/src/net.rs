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

/// An `allowed_endpoints` pattern: DNS labels, each literal or `*` (exactly
/// one label), and a port (443 when not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    labels: Vec<PatternLabel>,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternLabel {
    Any,
    Literal(String),
}

/// The endpoints the provider itself calls, as `allowed_endpoints` patterns:
/// KMS (public, VPC, and KMS instances), OOS (public, VPC) and STS (global,
/// regional, VPC). The default of `cloud.allowed_endpoints`.
pub const ALIBABA_CLOUD_ENDPOINT_PATTERNS: &[&str] = &[
    "kms.*.aliyuncs.com",
    "kms-vpc.*.aliyuncs.com",
    "*.cryptoservice.kms.aliyuncs.com",
    "oos.*.aliyuncs.com",
    "oos-vpc.*.aliyuncs.com",
    "sts.aliyuncs.com",
    "sts.*.aliyuncs.com",
    "sts-vpc.*.aliyuncs.com",
];

const PATTERN_FORMS: &str = "write a host (\"kms.internal\"), a host and port (\"kms.internal:8443\"), or labels with \"*\" for exactly one label (\"kms.*.aliyuncs.com\", \"*.cryptoservice.kms.aliyuncs.com\")";

/// Parses an `allowed_endpoints` pattern.
///
/// A pattern is a host name, optionally with `:port` (443 when not written),
/// whose labels may be `*`; a `*` matches exactly one DNS label, in any
/// position: `kms.*.aliyuncs.com` matches `kms.cn-hangzhou.aliyuncs.com` but
/// not `kms.evil.com.cn-hangzhou.aliyuncs.com`. A `*` must be a whole label,
/// and at least two literal labels must follow the last one. `*.` directly
/// above a two-label domain (`*.aliyuncs.com`) is refused: earlier versions
/// read a leading `*.` as any host under the rest, at any depth, and a
/// configuration written so must not silently change meaning.
pub fn parse_pattern(pattern: &str) -> Result<Pattern, String> {
    if pattern.contains("://") || pattern.contains('/') {
        return Err(format!(
            "{pattern:?} must be a host pattern without scheme or path; {PATTERN_FORMS}"
        ));
    }
    let (host, port) =
        split_host_port(pattern).map_err(|e| format!("{pattern:?}: {e}; {PATTERN_FORMS}"))?;
    if host.is_empty() || host.len() > 253 {
        return Err(format!(
            "{pattern:?} is not a host pattern; {PATTERN_FORMS}"
        ));
    }
    let mut labels = Vec::new();
    for label in host.split('.') {
        if label == "*" {
            labels.push(PatternLabel::Any);
        } else if label.contains('*') {
            return Err(format!(
                "{pattern:?}: a \"*\" must be a whole label (\"{label}\" is not); {PATTERN_FORMS}"
            ));
        } else if is_host_name(label) {
            labels.push(PatternLabel::Literal(label.to_string()));
        } else {
            return Err(format!(
                "{pattern:?} is not a host pattern ({label:?} is not a DNS label: letters, digits and '-'); {PATTERN_FORMS}"
            ));
        }
    }
    let last_wildcard = labels.iter().rposition(|l| *l == PatternLabel::Any);
    if let Some(last) = last_wildcard {
        let literal_after = labels.len() - last - 1;
        if literal_after < 2 {
            return Err(format!(
                "{pattern:?}: at least two literal labels must follow the last \"*\" (a pattern must not match whole top-level domains); {PATTERN_FORMS}"
            ));
        }
        if labels.len() == 3 && last == 0 {
            return Err(legacy_wildcard_error(pattern, &host));
        }
        if let Some(PatternLabel::Literal(top)) = labels.last()
            && top.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!(
                "{pattern:?}: the last label is a number; a pattern with \"*\" names DNS hosts, never IP addresses; {PATTERN_FORMS}"
            ));
        }
    }
    Ok(Pattern { labels, port })
}

/// The refusal of `*.<domain>.<tld>`, with what to write now.
fn legacy_wildcard_error(pattern: &str, host: &str) -> String {
    let domain = &host[2..];
    let instead = if domain == "aliyuncs.com" {
        format!(
            "it included hosts that tenants own, such as OSS buckets (<bucket>.oss-<region>.aliyuncs.com), which would receive the provider's signed requests and security tokens. List the endpoints instead; the default is {}",
            ALIBABA_CLOUD_ENDPOINT_PATTERNS
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "list the hosts you trust instead (\"kms.{domain}\"), or use more labels (\"kms.*.{domain}\", \"*.kms.{domain}\")"
        )
    };
    format!(
        "{pattern:?}: a \"*\" matches exactly one DNS label, and a \"*\" directly above a two-label domain is refused: earlier versions read this pattern as every host under {domain}, at any depth; {instead}"
    )
}

impl Pattern {
    /// Whether `host` (lowercase, as parsed from an endpoint) on `port`
    /// matches. A pattern with `*` never matches an IP address.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.unwrap_or(443) != port {
            return false;
        }
        let wildcard = self.labels.contains(&PatternLabel::Any);
        if wildcard && host.parse::<IpAddr>().is_ok() {
            return false;
        }
        let mut labels = host.split('.');
        let matched = self.labels.iter().all(|want| match (want, labels.next()) {
            (_, None) => false,
            (PatternLabel::Any, Some(label)) => !label.is_empty(),
            (PatternLabel::Literal(literal), Some(label)) => literal.eq_ignore_ascii_case(label),
        });
        matched && labels.next().is_none()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match label {
                PatternLabel::Any => f.write_str("*")?,
                PatternLabel::Literal(l) => f.write_str(l)?,
            }
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_label_per_wildcard() {
        let allowed = |host: &str| {
            ALIBABA_CLOUD_ENDPOINT_PATTERNS
                .iter()
                .any(|p| parse_pattern(p).unwrap().matches(host, 443))
        };
        for host in [
            "kms.cn-hangzhou.aliyuncs.com",
            "kms-vpc.cn-hangzhou.aliyuncs.com",
            "kms.ap-southeast-1.aliyuncs.com",
            "kst-hzz62ee817bvyyr5x1234.cryptoservice.kms.aliyuncs.com",
            "oos.cn-beijing.aliyuncs.com",
            "oos-vpc.cn-beijing.aliyuncs.com",
            "sts.aliyuncs.com",
            "sts.cn-shanghai.aliyuncs.com",
            "sts-vpc.cn-shanghai.aliyuncs.com",
            "KMS.CN-HANGZHOU.ALIYUNCS.COM",
        ] {
            assert!(allowed(host), "{host}");
        }
        for host in [
            // tenant-owned names under aliyuncs.com
            "my-bucket.oss-cn-hangzhou.aliyuncs.com",
            "my-bucket.oss-cn-hangzhou-internal.aliyuncs.com",
            "attacker.fc.aliyuncs.com",
            // the region label is exactly one label
            "kms.evil.com.cn-hangzhou.aliyuncs.com",
            "kms..aliyuncs.com",
            "kms.aliyuncs.com",
            "a.b.cryptoservice.kms.aliyuncs.com",
            "cryptoservice.kms.aliyuncs.com",
            "sts.a.b.aliyuncs.com",
            "kms.cn-hangzhou.aliyuncs.com.evil.io",
            "evilkms.cn-hangzhou.aliyuncs.com",
            "ecs.cn-hangzhou.aliyuncs.com",
        ] {
            assert!(!allowed(host), "{host}");
        }
        let p = parse_pattern("kms.*.aliyuncs.com").unwrap();
        assert!(!p.matches("kms.cn-hangzhou.aliyuncs.com", 8443));
        let p = parse_pattern("kms.*.example.com:8443").unwrap();
        assert!(p.matches("kms.a.example.com", 8443));
        assert!(!p.matches("kms.a.example.com", 443));
        assert_eq!(p.to_string(), "kms.*.example.com:8443");
        let exact = parse_pattern("127.0.0.1:8765").unwrap();
        assert!(exact.matches("127.0.0.1", 8765));
        let wild = parse_pattern("*.0.0.1").unwrap_err();
        assert!(wild.contains("never IP addresses"), "{wild}");
        assert!(!parse_pattern("*.b.c.1a").unwrap().matches("a.b.c.1", 443));
    }

    #[test]
    fn patterns_are_validated_strictly() {
        for ok in [
            "kms.internal",
            "kms.internal:8443",
            "kms.*.aliyuncs.com",
            "*.cryptoservice.kms.aliyuncs.com",
            "*.*.example.com",
            "a.*.b.*.example.com",
            "*.kms.example.com:8443",
        ] {
            assert!(validate_pattern(ok).is_ok(), "{ok}");
        }
        for (bad, want) in [
            ("*", "at least two literal labels"),
            ("*.com", "at least two literal labels"),
            ("kms.*.com", "at least two literal labels"),
            ("kms.*", "at least two literal labels"),
            ("kms*.aliyuncs.com", "must be a whole label"),
            ("kms.cn-*.aliyuncs.com", "must be a whole label"),
            ("**.aliyuncs.com", "must be a whole label"),
            ("https://x.com", "without scheme or path"),
            ("x.com/p", "without scheme or path"),
            ("bad host", "not a DNS label"),
            ("a..b.com", "not a DNS label"),
            ("-a.b.com", "not a DNS label"),
            ("h:port", "is not a port"),
            ("", "not a host pattern"),
            ("*.aliyuncs.com", "OSS buckets"),
            (
                "*.example.com",
                "earlier versions read this pattern as every host under example.com",
            ),
            (
                "*.example.com:443",
                "a \"*\" directly above a two-label domain is refused",
            ),
        ] {
            let e = validate_pattern(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        // the refusal of the old default says what to write now
        let e = validate_pattern("*.aliyuncs.com").unwrap_err();
        for pattern in ALIBABA_CLOUD_ENDPOINT_PATTERNS {
            assert!(e.contains(&format!("{pattern:?}")), "{e}");
        }
    }
}
