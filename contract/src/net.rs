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

/// Why a text is not an endpoint URL ([`parse_endpoint_url`]). Each message
/// quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointUrlError {
    /// Not a URL at all.
    #[error(
        "{text:?} is not a URL ({reason}); write e.g. \"https://kms.cn-hangzhou.aliyuncs.com\""
    )]
    NotUrl {
        /// The text.
        text: String,
        /// What the URL parser said.
        reason: url::ParseError,
    },
    /// Another scheme than `http` or `https`.
    #[error("{text:?} has scheme {scheme:?}; use http:// or https://")]
    Scheme {
        /// The text.
        text: String,
        /// Its scheme.
        scheme: String,
    },
    /// A path, query or fragment.
    #[error("{text:?} must be scheme://host[:port] with no path or query")]
    Shape {
        /// The text.
        text: String,
    },
    /// A user or password.
    #[error("{text:?} must not contain credentials")]
    Credentials {
        /// The text.
        text: String,
    },
    /// No host.
    #[error("{text:?} has no host")]
    NoHost {
        /// The text.
        text: String,
    },
}

/// Parses a configured endpoint URL (`https://kms.cn-hangzhou.aliyuncs.com`,
/// `http://127.0.0.1:8765`): `http(s)://host[:port]`, with no path, query,
/// fragment or credentials. The one shape rule of endpoints, base URLs
/// ([`BaseUrl`]) and allowed origins ([`parse_origin`]).
pub fn parse_endpoint_url(text: &str) -> Result<Endpoint, EndpointUrlError> {
    let url = Url::parse(text).map_err(|reason| EndpointUrlError::NotUrl {
        text: text.to_string(),
        reason,
    })?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(EndpointUrlError::Scheme {
                text: text.to_string(),
                scheme: other.to_string(),
            });
        }
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(EndpointUrlError::Shape {
            text: text.to_string(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointUrlError::Credentials {
            text: text.to_string(),
        });
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| EndpointUrlError::NoHost {
            text: text.to_string(),
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok(Endpoint {
        scheme,
        host,
        port: url.port(),
    })
}

/// Whether a [`BaseUrl`] may be plain `http://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearText {
    /// `http://` to any host (the ECS metadata server is plain HTTP).
    Allowed,
    /// `http://` only to `localhost` or a loopback address: a secret (the
    /// Kubernetes API's bearer token) is sent, and must not cross a network
    /// in clear text.
    LoopbackOnly,
}

/// The base URL of a server the host calls (`identity.metadata_url`,
/// `identity.kubernetes_url`, the in-cluster API server):
/// `http(s)://host[:port]`, parsed by [`parse_endpoint_url`] and checked
/// against a [`ClearText`] policy, written without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    endpoint: Endpoint,
    text: String,
}

/// Why a text is not a [`BaseUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Not `http(s)://host[:port]`.
    #[error(transparent)]
    Endpoint(#[from] EndpointUrlError),
    /// Plain `http://` to a host that is not loopback, under
    /// [`ClearText::LoopbackOnly`].
    #[error(
        "{text:?}: plain http is allowed only to a loopback address (a bearer token is sent); use https://"
    )]
    ClearText {
        /// The text.
        text: String,
    },
}

impl BaseUrl {
    /// Parses `http(s)://host[:port]` (a trailing `/` is allowed), with
    /// plain HTTP as `clear_text` says.
    pub fn parse(text: &str, clear_text: ClearText) -> Result<BaseUrl, BaseUrlError> {
        let endpoint = parse_endpoint_url(text)?;
        if endpoint.scheme == Scheme::Http
            && clear_text == ClearText::LoopbackOnly
            && !is_loopback_host(&endpoint.host)
        {
            return Err(BaseUrlError::ClearText {
                text: text.to_string(),
            });
        }
        let text = endpoint.base_url().trim_end_matches('/').to_string();
        Ok(BaseUrl { endpoint, text })
    }

    /// `scheme://host[:port]`, without a trailing slash (the port only when
    /// it is not the scheme's default).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme, host and port.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// `localhost`, or a loopback IP address.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<str> for BaseUrl {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for BaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
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

/// Why a text is not an allowed origin ([`parse_origin`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{endpoint}; an allowed origin is scheme://host[:port], e.g. \"https://vault.internal:8200\""
)]
pub struct OriginError {
    /// Why it is not `http(s)://host[:port]`.
    pub endpoint: EndpointUrlError,
}

/// Parses an allowlist entry: `https://host[:port]` (the port defaults from
/// the scheme; `http://` must be written out to allow plain HTTP).
pub fn parse_origin(text: &str) -> Result<Origin, OriginError> {
    let endpoint = parse_endpoint_url(text).map_err(|endpoint| OriginError { endpoint })?;
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

/// Why a URL has no origin a policy can judge ([`origin_of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlOriginError {
    /// Not `http` or `https`.
    #[error("scheme {0:?} is not HTTP(S)")]
    Scheme(String),
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// No port, and none known for the scheme.
    #[error("the URL has no port")]
    NoPort,
}

/// The origin of a URL (a request's, which may have a path and a query).
pub fn origin_of(url: &url::Url) -> Result<Origin, UrlOriginError> {
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(UrlOriginError::Scheme(other.to_string())),
    };
    let host = url
        .host_str()
        .ok_or(UrlOriginError::NoHost)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().ok_or(UrlOriginError::NoPort)?;
    Ok(Origin { scheme, host, port })
}

const NOT_GLOBAL_UNICAST: &str =
    "reserved or unassigned: outside 2000::/3, the global unicast space, RFC 4291";

/// What the special-purpose address ranges are: where a request from the
/// provider's network position must not go unless the operator says so.
/// Checked in order, so a more specific range comes before the range that
/// holds it.
const INTERNAL_RANGES: &[(&str, Range)] = &[
    // IPv4 (IANA IPv4 Special-Purpose Address Registry, RFC 6890 and later)
    ("0.0.0.0/8", Range::Internal("\"this network\", RFC 1122")),
    ("10.0.0.0/8", Range::Internal("private, RFC 1918")),
    (
        "100.100.100.200/32",
        Range::Internal("the Alibaba Cloud ECS metadata server"),
    ),
    (
        "100.64.0.0/10",
        Range::Internal("shared address space, RFC 6598; also Alibaba Cloud internal services"),
    ),
    ("127.0.0.0/8", Range::Internal("loopback, RFC 1122")),
    (
        "169.254.0.0/16",
        Range::Internal("link-local, RFC 3927; cloud metadata servers"),
    ),
    ("172.16.0.0/12", Range::Internal("private, RFC 1918")),
    (
        "192.0.0.0/24",
        Range::Internal("IETF protocol assignments, RFC 6890"),
    ),
    ("192.0.2.0/24", Range::Internal("documentation, RFC 5737")),
    (
        "192.88.99.0/24",
        Range::Internal("6to4 relay anycast, deprecated, RFC 7526"),
    ),
    ("192.168.0.0/16", Range::Internal("private, RFC 1918")),
    ("198.18.0.0/15", Range::Internal("benchmarking, RFC 2544")),
    (
        "198.51.100.0/24",
        Range::Internal("documentation, RFC 5737"),
    ),
    ("203.0.113.0/24", Range::Internal("documentation, RFC 5737")),
    ("224.0.0.0/4", Range::Internal("multicast, RFC 5771")),
    (
        "255.255.255.255/32",
        Range::Internal("limited broadcast, RFC 919"),
    ),
    ("240.0.0.0/4", Range::Internal("reserved, RFC 1112")),
    // IPv6 (IANA IPv6 Special-Purpose Address Registry)
    ("::/128", Range::Internal("unspecified, RFC 4291")),
    ("::1/128", Range::Internal("loopback, RFC 4291")),
    (
        "::ffff:0:0/96",
        Range::EmbedsV4("IPv4-mapped, RFC 4291", Embedded::Last32),
    ),
    (
        "::/96",
        Range::EmbedsV4("IPv4-compatible, deprecated, RFC 4291", Embedded::Last32),
    ),
    (
        "64:ff9b::/96",
        Range::EmbedsV4("NAT64 well-known prefix, RFC 6052", Embedded::Last32),
    ),
    (
        "64:ff9b:1::/48",
        Range::Internal("NAT64 local-use prefix, RFC 8215"),
    ),
    (
        "::/8",
        Range::Internal("reserved by the IETF, RFC 4291; holds IPv4-translated addresses"),
    ),
    ("100::/64", Range::Internal("discard-only, RFC 6666")),
    ("2001::/32", Range::Internal("Teredo, RFC 4380")),
    ("2001:2::/48", Range::Internal("benchmarking, RFC 5180")),
    ("2001:db8::/32", Range::Internal("documentation, RFC 3849")),
    (
        "2001::/23",
        Range::Internal("IETF protocol assignments, RFC 2928"),
    ),
    (
        "2002::/16",
        Range::EmbedsV4("6to4, RFC 3056", Embedded::Bits16To48),
    ),
    ("3fff::/20", Range::Internal("documentation, RFC 9637")),
    (
        "5f00::/16",
        Range::Internal("segment routing (SRv6) SIDs, RFC 9602"),
    ),
    ("fc00::/7", Range::Internal("unique local, RFC 4193")),
    ("fe80::/10", Range::Internal("link-local, RFC 4291")),
    (
        "fec0::/10",
        Range::Internal("site-local, deprecated, RFC 3879"),
    ),
    ("ff00::/8", Range::Internal("multicast, RFC 4291")),
    // Everything else outside 2000::/3, the global unicast space.
    ("::/3", Range::Internal(NOT_GLOBAL_UNICAST)),
    ("4000::/2", Range::Internal(NOT_GLOBAL_UNICAST)),
    ("8000::/1", Range::Internal(NOT_GLOBAL_UNICAST)),
];

/// What a range of [`INTERNAL_RANGES`] means.
#[derive(Debug, Clone, Copy)]
enum Range {
    /// Internal: refused.
    Internal(&'static str),
    /// An IPv6 range that carries an IPv4 address: judged by that address.
    EmbedsV4(&'static str, Embedded),
}

/// Where an IPv6 address of a range carries its IPv4 address.
#[derive(Debug, Clone, Copy)]
enum Embedded {
    /// The last 32 bits (`::ffff:a.b.c.d`, `::a.b.c.d`, `64:ff9b::a.b.c.d`).
    Last32,
    /// Bits 16 to 48 (6to4, `2002:aabb:ccdd::/48`).
    Bits16To48,
}

/// An address the provider refuses to reach unless allowed, and why: the
/// range it is in (and, for an IPv6 address that carries an IPv4 address,
/// the range of that one). Its `Display` is the reason, e.g. `10.1.2.3 is in
/// 10.0.0.0/8 (private, RFC 1918)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalAddress {
    /// The address.
    pub ip: IpAddr,
    /// The range, e.g. `10.0.0.0/8`.
    pub range: &'static str,
    /// What the range is, e.g. `private, RFC 1918`.
    pub what: &'static str,
    /// For an IPv6 address that carries an internal IPv4 address: that
    /// address's reason.
    pub embedded: Option<Box<InternalAddress>>,
}

impl std::fmt::Display for InternalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is in {} ({})", self.ip, self.range, self.what)?;
        if let Some(inner) = &self.embedded {
            write!(f, ", whose IPv4 address {inner}")?;
        }
        Ok(())
    }
}

fn parse_cidr(cidr: &str) -> (IpAddr, u8) {
    let (addr, len) = cidr.split_once('/').expect("a CIDR range");
    (
        addr.parse().expect("a CIDR address"),
        len.parse().expect("a CIDR prefix length"),
    )
}

fn in_range(ip: IpAddr, cidr: &str) -> bool {
    let (net, len) = parse_cidr(cidr);
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Why `ip` is internal — private, shared, loopback, link-local, unique
/// local, site-local, multicast, unspecified, reserved, documentation,
/// benchmarking, the metadata server, Teredo or NAT64 local-use, an IPv6
/// address outside global unicast, or an IPv4-mapped, IPv4-compatible, NAT64
/// or 6to4 address that carries an internal IPv4 address — or `None` for an
/// address on the internet.
pub fn internal_range(ip: IpAddr) -> Option<InternalAddress> {
    let (range, kind) = INTERNAL_RANGES
        .iter()
        .find(|(cidr, _)| in_range(ip, cidr))?;
    let (what, embedded) = match *kind {
        Range::Internal(what) => (what, None),
        Range::EmbedsV4(what, at) => {
            let IpAddr::V6(v6) = ip else {
                unreachable!("IPv6 ranges hold IPv6 addresses")
            };
            let bits = u128::from(v6);
            let v4 = match at {
                Embedded::Last32 => bits as u32,
                Embedded::Bits16To48 => (bits >> 80) as u32,
            };
            let inner = internal_range(IpAddr::V4(std::net::Ipv4Addr::from(v4)))?;
            (what, Some(Box::new(inner)))
        }
    };
    Some(InternalAddress {
        ip,
        range,
        what,
        embedded,
    })
}

/// Whether the provider refuses to reach `ip` unless allowed (see
/// [`internal_range`]).
pub fn is_internal(ip: IpAddr) -> bool {
    internal_range(ip).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_a_canonical_cidr() {
        for (cidr, _) in INTERNAL_RANGES {
            let (net, len) = parse_cidr(cidr);
            let bits = match net {
                IpAddr::V4(v4) => {
                    assert!(len <= 32, "{cidr}");
                    u128::from(u32::from(v4)) << 96
                }
                IpAddr::V6(v6) => {
                    assert!(len <= 128, "{cidr}");
                    u128::from(v6)
                }
            };
            let host_bits = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let host_bits = match net {
                IpAddr::V4(_) => host_bits & (u128::from(u32::MAX) << 96),
                IpAddr::V6(_) => host_bits,
            };
            assert_eq!(bits & host_bits, 0, "{cidr} has host bits set");
        }
    }

    /// (address, the range that refuses it) for each range, at its first
    /// and last address, and the addresses just outside, which are allowed.
    #[test]
    fn internal_ranges_and_their_edges() {
        let refused = [
            // IPv4
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.255.255.255", "0.0.0.0/8"),
            ("10.0.0.0", "10.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("10.255.255.255", "10.0.0.0/8"),
            ("100.64.0.0", "100.64.0.0/10"),
            ("100.100.100.201", "100.64.0.0/10"),
            ("100.100.0.1", "100.64.0.0/10"),
            ("100.127.255.255", "100.64.0.0/10"),
            ("100.100.100.200", "100.100.100.200/32"),
            ("127.0.0.0", "127.0.0.0/8"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.255.255", "127.0.0.0/8"),
            ("169.254.0.0", "169.254.0.0/16"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("169.254.255.255", "169.254.0.0/16"),
            ("172.16.0.0", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.0", "192.0.0.0/24"),
            ("192.0.0.255", "192.0.0.0/24"),
            ("192.0.2.0", "192.0.2.0/24"),
            ("192.0.2.255", "192.0.2.0/24"),
            ("192.88.99.0", "192.88.99.0/24"),
            ("192.88.99.255", "192.88.99.0/24"),
            ("192.168.0.0", "192.168.0.0/16"),
            ("192.168.255.255", "192.168.0.0/16"),
            ("198.18.0.0", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.0", "198.51.100.0/24"),
            ("198.51.100.255", "198.51.100.0/24"),
            ("203.0.113.0", "203.0.113.0/24"),
            ("203.0.113.255", "203.0.113.0/24"),
            ("224.0.0.0", "224.0.0.0/4"),
            ("239.255.255.255", "224.0.0.0/4"),
            ("240.0.0.0", "240.0.0.0/4"),
            ("255.255.255.254", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
            // IPv6
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("::ffff:10.1.2.3", "::ffff:0:0/96"),
            ("::ffff:127.0.0.1", "::ffff:0:0/96"),
            ("::ffff:169.254.1.1", "::ffff:0:0/96"),
            ("::ffff:100.100.100.200", "::ffff:0:0/96"),
            ("::10.1.2.3", "::/96"),
            ("::127.0.0.1", "::/96"),
            ("::2", "::/96"),
            ("::ffff:0:10.1.2.3", "::/8"),
            ("0:0:0:1::", "::/8"),
            ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/8"),
            ("64:ff9b::10.1.2.3", "64:ff9b::/96"),
            ("64:ff9b::192.168.0.1", "64:ff9b::/96"),
            ("64:ff9b::100.100.100.200", "64:ff9b::/96"),
            ("64:ff9b::1:0:0", "::/8"),
            ("64:ff9b:1::", "64:ff9b:1::/48"),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::/48"),
            ("100::", "100::/64"),
            ("100::ffff:ffff:ffff:ffff", "100::/64"),
            ("2001::", "2001::/32"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/32"),
            ("2001:2::", "2001:2::/48"),
            ("2001:2:0:ffff:ffff:ffff:ffff:ffff", "2001:2::/48"),
            ("2001:db8::", "2001:db8::/32"),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32"),
            ("2001:1::1", "2001::/23"),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23"),
            ("2002:a01:203::", "2002::/16"),
            ("2002:7f00:1::1", "2002::/16"),
            ("2002:a9fe:a9fe:ffff:ffff:ffff:ffff:ffff", "2002::/16"),
            ("3fff::", "3fff::/20"),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("fc00::", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7"),
            ("fe80::", "fe80::/10"),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10"),
            ("fec0::", "fec0::/10"),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::/10"),
            ("ff00::", "ff00::/8"),
            ("ff02::1", "ff00::/8"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8"),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/3"),
            ("400::", "::/3"),
            ("4000::", "4000::/2"),
            ("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "4000::/2"),
            ("8000::", "8000::/1"),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::/1"),
        ];
        for (ip, want) in refused {
            let reason = internal_range(ip.parse().unwrap())
                .unwrap_or_else(|| panic!("{ip} should be internal (in {want})"));
            assert_eq!(reason.range, want, "{ip}: {reason}");
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        let allowed = [
            // just outside each IPv4 range
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "191.255.255.255",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "8.8.8.8",
            "47.96.0.1",
            // IPv6 global unicast, and carriers of a public IPv4 address
            "2000::",
            "2001:200::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2001:4860:4860::8888",
            "2400:3200::1",
            "2002:808:808::1",
            "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff:1000::",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
        ];
        for ip in allowed {
            assert_eq!(internal_range(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_reason_names_the_address_and_the_ranges() {
        let reason = |ip: &str| internal_range(ip.parse().unwrap()).unwrap().to_string();
        assert_eq!(
            reason("10.1.2.3"),
            "10.1.2.3 is in 10.0.0.0/8 (private, RFC 1918)"
        );
        assert_eq!(
            reason("100.100.100.200"),
            "100.100.100.200 is in 100.100.100.200/32 (the Alibaba Cloud ECS metadata server)"
        );
        assert_eq!(
            reason("::ffff:10.1.2.3"),
            "::ffff:10.1.2.3 is in ::ffff:0:0/96 (IPv4-mapped, RFC 4291), whose IPv4 address 10.1.2.3 is in 10.0.0.0/8 (private, RFC 1918)"
        );
        assert_eq!(
            reason("2002:a9fe:a9fe::1"),
            "2002:a9fe:a9fe::1 is in 2002::/16 (6to4, RFC 3056), whose IPv4 address 169.254.169.254 is in 169.254.0.0/16 (link-local, RFC 3927; cloud metadata servers)"
        );
        assert!(reason("64:ff9b::6464:64c8").contains("100.100.100.200 is in"));
        assert!(reason("fd00::1").contains("unique local"));
    }

    #[test]
    fn endpoint_urls_have_one_shape() {
        let e = parse_endpoint_url("HTTP://[::1]:8080/").unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Http, "::1", Some(8080))
        );
        for (bad, want) in [
            (
                "100.100.100.200",
                "\"100.100.100.200\" is not a URL (relative URL without a base); write e.g. \"https://kms.cn-hangzhou.aliyuncs.com\"",
            ),
            (
                "ftp://x",
                "\"ftp://x\" has scheme \"ftp\"; use http:// or https://",
            ),
            (
                "http://x/latest",
                "\"http://x/latest\" must be scheme://host[:port] with no path or query",
            ),
            (
                "http://x/?a=b",
                "\"http://x/?a=b\" must be scheme://host[:port] with no path or query",
            ),
            (
                "http://x#f",
                "must be scheme://host[:port] with no path or query",
            ),
            (
                "http://u:p@x",
                "\"http://u:p@x\" must not contain credentials",
            ),
            ("https://u@h", "must not contain credentials"),
        ] {
            let e = parse_endpoint_url(bad).unwrap_err();
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn base_urls_follow_one_rule_with_a_clear_text_policy() {
        use ClearText::{Allowed, LoopbackOnly};
        for (text, policy, want) in [
            ("http://100.100.100.200", Allowed, "http://100.100.100.200"),
            ("http://127.0.0.1:8080/", Allowed, "http://127.0.0.1:8080"),
            (
                "http://Metadata.Internal:80",
                Allowed,
                "http://metadata.internal",
            ),
            (
                "https://10.0.0.1:6443/",
                LoopbackOnly,
                "https://10.0.0.1:6443",
            ),
            ("https://10.0.0.1:443", LoopbackOnly, "https://10.0.0.1"),
            (
                "https://[fd00::1]:6443",
                LoopbackOnly,
                "https://[fd00::1]:6443",
            ),
            (
                "http://127.0.0.1:8080",
                LoopbackOnly,
                "http://127.0.0.1:8080",
            ),
            ("http://[::1]:8080", LoopbackOnly, "http://[::1]:8080"),
            (
                "http://localhost:8080",
                LoopbackOnly,
                "http://localhost:8080",
            ),
            // the metadata server is plain HTTP to a non-loopback address
            ("http://10.0.0.1", Allowed, "http://10.0.0.1"),
        ] {
            let url = BaseUrl::parse(text, policy).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.as_str(), want, "{text}");
            assert_eq!(url.to_string(), want, "{text}");
            // what it writes parses back to itself
            assert_eq!(BaseUrl::parse(url.as_str(), policy), Ok(url.clone()));
        }
        for (text, policy, want) in [
            // a bearer token must not cross a network in clear text
            (
                "http://10.0.0.1",
                LoopbackOnly,
                "\"http://10.0.0.1\": plain http is allowed only to a loopback address",
            ),
            (
                "http://kubernetes.default.svc",
                LoopbackOnly,
                "plain http is allowed only to a loopback address",
            ),
            (
                "http://[::ffff:127.0.0.1]",
                LoopbackOnly,
                "plain http is allowed only to a loopback address",
            ),
            ("100.100.100.200", Allowed, "is not a URL"),
            ("h:443", LoopbackOnly, "has scheme \"h\""),
            ("ftp://x", Allowed, "has scheme \"ftp\""),
            ("http://x/latest", Allowed, "with no path or query"),
            ("https://h/api", LoopbackOnly, "with no path or query"),
            ("http://u:p@x", Allowed, "must not contain credentials"),
            ("https://u@h", LoopbackOnly, "must not contain credentials"),
            ("http://x/?a=b", Allowed, "with no path or query"),
        ] {
            let e = BaseUrl::parse(text, policy).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn origins_are_endpoint_urls_with_a_port() {
        let o = parse_origin("https://Vault.Internal:8200").unwrap();
        assert_eq!(o.to_string(), "https://vault.internal:8200");
        assert_eq!(parse_origin("http://x").unwrap().port, 80);
        let e = parse_origin("https://v/p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"https://v/p\" must be scheme://host[:port] with no path or query; an allowed origin is scheme://host[:port], e.g. \"https://vault.internal:8200\""
        );
        let url = Url::parse("ftp://x/").unwrap();
        assert_eq!(
            origin_of(&url).unwrap_err().to_string(),
            "scheme \"ftp\" is not HTTP(S)"
        );
        let url = Url::parse("https://X:8443/a/b?c").unwrap();
        assert_eq!(origin_of(&url).unwrap().to_string(), "https://x:8443");
    }

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
