//! The network policy parsers: endpoint URLs, `allowed_endpoints` patterns,
//! plugin origins, `host[:port]`, and `is_internal` on any IP address.
//!
//! Input: the text for the parsers; its first 4 and 16 bytes are also read as
//! an IPv4 and an IPv6 address.
//!
//! Invariants: no panic; what is accepted round-trips (an endpoint through
//! its base URL, a pattern through its written form (and one without `*`
//! matches its own host), an origin through
//! scheme://host:port); accepted hosts are lowercase; `is_internal` of an
//! IPv4 address equals that of its IPv4-mapped IPv6 form, and loopback,
//! link-local and the metadata address are internal.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use contract::net;
use libfuzzer_sys::fuzz_target;

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn check_text(text: &str) {
    if let Ok(endpoint) = net::parse_endpoint_url(text) {
        assert_eq!(endpoint.host, endpoint.host.to_ascii_lowercase());
        let again = net::parse_endpoint_url(&endpoint.base_url())
            .unwrap_or_else(|e| panic!("{text:?} -> {}: {e}", endpoint.base_url()));
        assert_eq!(again, endpoint, "{text:?}");
        assert!(endpoint.effective_port() > 0 || endpoint.port == Some(0));
    }
    match net::parse_pattern(text) {
        Ok(pattern) => {
            // The written form parses back to the same pattern.
            let written = pattern.to_string();
            assert_eq!(
                net::parse_pattern(&written).as_ref(),
                Ok(&pattern),
                "{text:?} -> {written:?}"
            );
            assert!(net::validate_pattern(text).is_ok());
            // A pattern without "*" matches its own host on its own port.
            if !written.contains('*') {
                let (host, port) = net::split_host_port(&written).unwrap();
                assert!(pattern.matches(&host, port.unwrap_or(443)), "{written:?}");
            }
        }
        Err(_) => assert!(net::validate_pattern(text).is_err()),
    }
    if let Ok(origin) = net::parse_origin(text) {
        let scheme = match origin.scheme {
            net::Scheme::Http => "http",
            net::Scheme::Https => "https",
        };
        let written = format!("{scheme}://{}:{}", bracketed(&origin.host), origin.port);
        assert_eq!(net::parse_origin(&written), Ok(origin.clone()), "{text:?}");
        if !origin.host.contains(':') {
            // Display writes scheme://host:port (IPv6 hosts unbracketed).
            assert_eq!(origin.to_string(), written);
        }
    }
    if let Ok(url) = url::Url::parse(text)
        && let Ok(origin) = net::origin_of(&url)
    {
        assert_eq!(origin.host, origin.host.to_ascii_lowercase());
    }
    if let Ok((host, Some(port))) = net::split_host_port(text) {
        assert_eq!(
            net::split_host_port(&format!("{host}:{port}")),
            Ok((host.clone(), Some(port)))
        );
    }
    if net::is_host_name(text) {
        assert!(text.len() <= 253 && !text.contains(':') && !text.contains('/'));
    }
    let _ = net::is_valid_product(text);
}

fn check_ip(data: &[u8]) {
    let mut v4 = [0u8; 4];
    let mut v6 = [0u8; 16];
    let n4 = data.len().min(4);
    let n6 = data.len().min(16);
    v4[..n4].copy_from_slice(&data[..n4]);
    v6[..n6].copy_from_slice(&data[..n6]);
    let v4 = Ipv4Addr::from(v4);
    let v6 = Ipv6Addr::from(v6);
    let internal = net::is_internal(IpAddr::V4(v4));
    assert_eq!(
        internal,
        net::is_internal(IpAddr::V6(v4.to_ipv6_mapped())),
        "{v4} and its IPv4-mapped form disagree"
    );
    if v4.is_loopback() || v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200) {
        assert!(internal, "{v4}");
    }
    if let Some(reason) = net::internal_range(IpAddr::V4(v4)) {
        assert!(reason.to_string().starts_with(&v4.to_string()));
    }
    if let Some(reason) = net::internal_range(IpAddr::V6(v6)) {
        assert!(reason.to_string().starts_with(&v6.to_string()));
    }
    let internal6 = net::is_internal(IpAddr::V6(v6));
    if v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80 {
        assert!(internal6, "{v6}");
    }
}

fuzz_target!(|data: &[u8]| {
    check_ip(data);
    check_text(&String::from_utf8_lossy(data));
});
