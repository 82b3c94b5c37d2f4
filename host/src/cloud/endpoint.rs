//! Endpoints: defaults by product and region, operator overrides, and the
//! network policy for endpoints a SecretProviderClass or plugin asks for.
//!
//! Signed requests carry the access key id and, for STS credentials, the
//! security token; a replayed request can be re-sent to the real service. So
//! an endpoint a tenant names (`kmsEndpoint`) must be one the operator trusts.

use std::collections::BTreeMap;

pub use contract::net::{
    Endpoint, Pattern, Scheme, is_host_name, is_valid_product, parse_endpoint_url, parse_pattern,
    split_host_port,
};

/// A setting that cannot make an endpoint (start-up).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingError {
    /// The config key or environment variable.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a call has no endpoint: what the tenant (or plugin) asked for is
/// refused, or a setting cannot make one. The texts reach pod events, so they
/// name the request and the config key, never the operator's patterns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The product code is malformed.
    #[error("{0:?} is not a product code (lowercase letters, digits and '-')")]
    NotAProduct(String),
    /// The requested endpoint does not parse (the contract's message).
    #[error("{0}")]
    Malformed(String),
    /// The requested endpoint is neither a host name nor an address.
    #[error("endpoint {0:?} is not a host name")]
    NotAHostName(String),
    /// Plain HTTP to an endpoint that is not configured.
    #[error(
        "endpoint {0:?} uses plain HTTP, which the provider allows only for endpoints configured in [cloud.endpoints]"
    )]
    PlainHttp(String),
    /// No pattern of `cloud.allowed_endpoints` matches.
    #[error(
        "endpoint {0:?} is not allowed by the provider's network policy (config key cloud.allowed_endpoints)"
    )]
    NotAllowed(String),
    /// `ALIBABA_CLOUD_STS_REGION` is not a region id.
    #[error(
        "ALIBABA_CLOUD_STS_REGION={0:?} is not a region id, so no STS endpoint can be built from it; set a region id (e.g. cn-hangzhou), unset it, or set ALIBABACLOUD_STS_ENDPOINT"
    )]
    StsRegion(String),
}

/// Resolves the endpoint of each call.
#[derive(Debug, Clone)]
pub struct EndpointResolver {
    vpc: bool,
    /// The STS endpoint, or why `ALIBABA_CLOUD_STS_REGION` cannot make one.
    sts: Result<Endpoint, EndpointError>,
    overrides: BTreeMap<String, Endpoint>,
    allowed: Vec<Pattern>,
}

impl EndpointResolver {
    /// Builds the resolver from `[cloud]` and the environment
    /// (`ALIBABACLOUD_<PRODUCT>_ENDPOINT`, which wins over the config).
    pub fn new(
        cloud: &crate::config::Cloud,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<EndpointResolver, SettingError> {
        let setting = |key: String| move |message: String| SettingError { key, message };
        let mut overrides = BTreeMap::new();
        for (product, url) in &cloud.endpoints {
            let endpoint = parse_endpoint_url(url)
                .map_err(|e| e.to_string())
                .map_err(setting(format!("cloud.endpoints.{product}")))?;
            overrides.insert(product.to_ascii_lowercase(), endpoint);
        }
        let mut sts_region = None;
        let mut sts_vpc = false;
        for (name, value) in env {
            match name.as_str() {
                "ALIBABA_CLOUD_STS_REGION" if !value.is_empty() => {
                    sts_region = Some(value.clone());
                }
                "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED" => {
                    sts_vpc = value.eq_ignore_ascii_case("true")
                }
                _ => {}
            }
            let Some(product) = name
                .strip_prefix("ALIBABACLOUD_")
                .and_then(|rest| rest.strip_suffix("_ENDPOINT"))
            else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let endpoint = parse_endpoint_url(&value)
                .map_err(|e| e.to_string())
                .map_err(setting(name.clone()))?;
            overrides.insert(product.to_ascii_lowercase().replace('_', "-"), endpoint);
        }
        let allowed = cloud
            .allowed_endpoints
            .iter()
            .map(|p| parse_pattern(p))
            .collect::<Result<_, _>>()
            .map_err(setting("cloud.allowed_endpoints".into()))?;
        // STS as the official credentials tools choose it: regional (and VPC)
        // only when ALIBABA_CLOUD_STS_REGION says which region, else global.
        // A value that is not a region id fails every STS call (upstream's
        // SDK built a host name of it and failed there), not start-up.
        let sts_host = match sts_region {
            Some(region) if crate::region::Region::parse(&region).is_err() => {
                Err(EndpointError::StsRegion(region))
            }
            Some(region) if sts_vpc => Ok(format!("sts-vpc.{region}.aliyuncs.com")),
            Some(region) => Ok(format!("sts.{region}.aliyuncs.com")),
            None => Ok("sts.aliyuncs.com".to_string()),
        };
        Ok(EndpointResolver {
            vpc: cloud.network == crate::config::Network::Vpc,
            sts: sts_host.map(|host| Endpoint {
                scheme: Scheme::Https,
                host,
                port: None,
            }),
            overrides,
            allowed,
        })
    }

    /// The endpoint for a call of `product` in `region`, or the reason a
    /// `requested` endpoint is refused.
    pub fn resolve(
        &self,
        product: &str,
        region: &str,
        requested: Option<&str>,
    ) -> Result<Endpoint, EndpointError> {
        if !is_valid_product(product) {
            return Err(EndpointError::NotAProduct(product.to_string()));
        }
        match requested.map(str::trim).filter(|r| !r.is_empty()) {
            Some(requested) => self.check_requested(requested),
            None => self.default_for(product, region),
        }
    }

    /// A setting that makes every call of a product fail (start-up warning).
    pub fn problem(&self) -> Option<&EndpointError> {
        match &self.sts {
            Err(problem) if !self.overrides.contains_key("sts") => Some(problem),
            _ => None,
        }
    }

    fn default_for(&self, product: &str, region: &str) -> Result<Endpoint, EndpointError> {
        if let Some(endpoint) = self.overrides.get(product) {
            return Ok(endpoint.clone());
        }
        if product == "sts" {
            return self.sts.clone();
        }
        let network = if self.vpc { "-vpc" } else { "" };
        Ok(Endpoint {
            scheme: Scheme::Https,
            host: format!("{product}{network}.{region}.aliyuncs.com"),
            port: None,
        })
    }

    fn check_requested(&self, requested: &str) -> Result<Endpoint, EndpointError> {
        let endpoint = if requested.contains("://") {
            parse_endpoint_url(requested).map_err(|e| EndpointError::Malformed(e.to_string()))?
        } else {
            let (host, port) = split_host_port(requested).map_err(EndpointError::Malformed)?;
            if !is_host_name(&host) && host.parse::<std::net::IpAddr>().is_err() {
                return Err(EndpointError::NotAHostName(requested.to_string()));
            }
            Endpoint {
                scheme: Scheme::Https,
                host,
                port: port.filter(|p| *p != 443),
            }
        };
        // Configured endpoints are trusted as written, HTTP included.
        if self.overrides.values().any(|o| {
            o.scheme == endpoint.scheme
                && o.host == endpoint.host
                && o.effective_port() == endpoint.effective_port()
        }) {
            return Ok(endpoint);
        }
        if endpoint.scheme == Scheme::Http {
            return Err(EndpointError::PlainHttp(requested.to_string()));
        }
        let port = endpoint.effective_port();
        if self
            .allowed
            .iter()
            .any(|pattern| pattern.matches(&endpoint.host, port))
        {
            Ok(endpoint)
        } else {
            // The patterns are not listed: this reaches the tenant's pod
            // events, and they may name the operator's internal hosts.
            Err(EndpointError::NotAllowed(requested.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cloud, Network};

    fn resolver(cloud: Cloud, env: &[(&str, &str)]) -> EndpointResolver {
        EndpointResolver::new(
            &cloud,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    #[test]
    fn defaults_follow_upstream_and_the_network_setting() {
        let r = resolver(Cloud::default(), &[]);
        assert_eq!(
            r.resolve("kms", "cn-hangzhou", None).unwrap().base_url(),
            "https://kms-vpc.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            r.resolve("oos", "ap-southeast-1", None)
                .unwrap()
                .authority(),
            "oos-vpc.ap-southeast-1.aliyuncs.com"
        );
        let public = resolver(
            Cloud {
                network: Network::Public,
                ..Cloud::default()
            },
            &[],
        );
        assert_eq!(
            public
                .resolve("kms", "cn-beijing", None)
                .unwrap()
                .authority(),
            "kms.cn-beijing.aliyuncs.com"
        );
        assert!(r.resolve("KMS;evil", "cn-hangzhou", None).is_err());
    }

    #[test]
    fn env_overrides_win_over_config() {
        let mut cloud = Cloud::default();
        cloud
            .endpoints
            .insert("kms".into(), "https://kms.internal:8443".into());
        cloud
            .endpoints
            .insert("oos".into(), "https://oos.internal".into());
        let r = resolver(
            cloud,
            &[
                ("ALIBABACLOUD_KMS_ENDPOINT", "http://127.0.0.1:8765"),
                ("UNRELATED", "x"),
            ],
        );
        let kms = r.resolve("kms", "cn-hangzhou", None).unwrap();
        assert_eq!(kms.base_url(), "http://127.0.0.1:8765/");
        assert_eq!(kms.authority(), "127.0.0.1:8765");
        assert_eq!(
            r.resolve("oos", "cn-hangzhou", None).unwrap().base_url(),
            "https://oos.internal/"
        );
        // a configured endpoint may be requested explicitly, even over HTTP
        assert!(r.resolve("kms", "x", Some("http://127.0.0.1:8765")).is_ok());
        assert!(
            r.resolve("kms", "x", Some("http://127.0.0.1:8766"))
                .is_err()
        );
    }

    #[test]
    fn requested_endpoints_must_be_allowed() {
        let r = resolver(Cloud::default(), &[]);
        for ok in [
            "kst-hzz62ee.cryptoservice.kms.aliyuncs.com",
            "kst-hzz62ee817bvyyr5x1234.cryptoservice.kms.aliyuncs.com:443",
            "https://kst-hzz62ee817bvyyr5x1234.cryptoservice.kms.aliyuncs.com",
            "kms.cn-hangzhou.aliyuncs.com",
            "kms-vpc.cn-hangzhou.aliyuncs.com",
            "https://kms-vpc.cn-shanghai.aliyuncs.com",
            "kms.cn-hangzhou.aliyuncs.com:443",
            "KMS.CN-HANGZHOU.ALIYUNCS.COM",
            "oos.cn-hangzhou.aliyuncs.com",
            "oos-vpc.ap-southeast-1.aliyuncs.com",
            "sts.aliyuncs.com",
            "sts.cn-hangzhou.aliyuncs.com",
            "sts-vpc.cn-hangzhou.aliyuncs.com",
        ] {
            assert!(r.resolve("kms", "cn-hangzhou", Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            // hosts that tenants own under aliyuncs.com (the old default let them through)
            "my-bucket.oss-cn-hangzhou.aliyuncs.com",
            "https://my-bucket.oss-cn-hangzhou-internal.aliyuncs.com",
            "my-app.cn-hangzhou.fcapp.run",
            // the region is exactly one label
            "kms.evil.com.cn-hangzhou.aliyuncs.com",
            "a.b.cryptoservice.kms.aliyuncs.com",
            "cryptoservice.kms.aliyuncs.com",
            "kms.aliyuncs.com",
            "ecs.cn-hangzhou.aliyuncs.com",
            "attacker.example.com",
            "aliyuncs.com.evil.io",
            "kms.cn-hangzhou.aliyuncs.com.evil.io",
            "evilaliyuncs.com",
            "http://kms.cn-hangzhou.aliyuncs.com",
            "kms.cn-hangzhou.aliyuncs.com:8443",
            "100.100.100.200",
            "https://kms.cn-hangzhou.aliyuncs.com/path",
            "user@kms.aliyuncs.com",
        ] {
            let e = r.resolve("kms", "cn-hangzhou", Some(bad)).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        for refused in [
            "attacker.example.com",
            "my-bucket.oss-cn-hangzhou.aliyuncs.com",
            "kms.evil.com.cn-hangzhou.aliyuncs.com",
        ] {
            let e = r.resolve("kms", "cn-hangzhou", Some(refused)).unwrap_err();
            assert!(matches!(e, EndpointError::NotAllowed(_)), "{e}");
            assert!(e.to_string().contains("cloud.allowed_endpoints"), "{e}");
        }
    }

    #[test]
    fn operator_patterns() {
        let r = resolver(
            Cloud {
                allowed_endpoints: vec![
                    "kms.internal:8443".into(),
                    "*.kms.example.com".into(),
                    "secrets.*.corp.example".into(),
                ],
                ..Cloud::default()
            },
            &[],
        );
        for ok in [
            "kms.internal:8443",
            "https://kms.internal:8443",
            "a.kms.example.com",
            "secrets.eu.corp.example",
        ] {
            assert!(r.resolve("kms", "x", Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "kms.internal",
            "a.b.kms.example.com",
            "kms.example.com",
            "secrets.corp.example",
            "kms.cn-hangzhou.aliyuncs.com",
        ] {
            assert!(r.resolve("kms", "x", Some(bad)).is_err(), "{bad}");
        }
        // the old default stops start-up, saying what to write now
        let e = EndpointResolver::new(
            &Cloud {
                allowed_endpoints: vec!["*.aliyuncs.com".into()],
                ..Cloud::default()
            },
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cloud.allowed_endpoints: "), "{e}");
        assert!(e.contains("\"kms.*.aliyuncs.com\""), "{e}");
    }

    #[test]
    fn sts_endpoints_follow_the_credentials_tools() {
        let sts = |env: &[(&str, &str)]| {
            resolver(Cloud::default(), env)
                .resolve("sts", "cn-hangzhou", None)
                .unwrap()
                .authority()
        };
        assert_eq!(sts(&[]), "sts.aliyuncs.com");
        assert_eq!(
            sts(&[("ALIBABA_CLOUD_STS_REGION", "cn-shanghai")]),
            "sts.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            sts(&[
                ("ALIBABA_CLOUD_STS_REGION", "cn-shanghai"),
                ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true")
            ]),
            "sts-vpc.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            sts(&[("ALIBABACLOUD_STS_ENDPOINT", "http://127.0.0.1:9")]),
            "127.0.0.1:9"
        );
        // not a region id: a warning and failed STS calls, not start-up
        let bad = resolver(Cloud::default(), &[("ALIBABA_CLOUD_STS_REGION", "x y")]);
        let problem = bad.problem().unwrap().to_string();
        assert!(problem.contains("ALIBABA_CLOUD_STS_REGION=\"x y\" is not a region id"));
        assert_eq!(
            bad.resolve("sts", "cn-hangzhou", None)
                .unwrap_err()
                .to_string(),
            problem
        );
        assert!(bad.resolve("kms", "cn-hangzhou", None).is_ok());
        let overridden = resolver(
            Cloud::default(),
            &[
                ("ALIBABA_CLOUD_STS_REGION", "x y"),
                ("ALIBABACLOUD_STS_ENDPOINT", "http://127.0.0.1:9"),
            ],
        );
        assert_eq!(overridden.problem(), None);
        assert!(overridden.resolve("sts", "cn-hangzhou", None).is_ok());
    }

    #[test]
    fn patterns_and_urls() {
        for ok in [
            "kms.*.aliyuncs.com",
            "*.cryptoservice.kms.aliyuncs.com",
            "kms.internal",
            "kms.internal:8443",
        ] {
            assert!(contract::net::validate_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "*",
            "*.com",
            "*.aliyuncs.com",
            "kms*.aliyuncs.com",
            "https://x.com",
            "x.com/p",
            "bad host",
            "h:port",
        ] {
            assert!(contract::net::validate_pattern(bad).is_err(), "{bad}");
        }
        for bad in [
            "ftp://x",
            "https://x/path",
            "https://u:p@x",
            "kms.aliyuncs.com",
        ] {
            assert!(parse_endpoint_url(bad).is_err(), "{bad}");
        }
    }
}
