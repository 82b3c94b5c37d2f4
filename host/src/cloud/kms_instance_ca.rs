//! The CA certificates of dedicated KMS instance endpoints
//! (`<kst-id>.cryptoservice.kms.aliyuncs.com`), one per region, built in as
//! the upstream provider ships them, and which roots a call trusts.
//!
//! Upstream (v0.6.0) sets the client's CA to the certificate of the Mount's
//! region whenever the endpoint contains `cryptoservice.kms.aliyuncs.com`,
//! and uses the system roots otherwise (also for a region it does not list).
//! Here the same, and `cloud.ca_file` adds to either set. Provenance of the
//! files: `host/ca/kms-instance/README.md`.

/// What an endpoint host of a KMS instance contains (upstream's test).
pub const KMS_INSTANCE_DOMAIN: &str = "cryptoservice.kms.aliyuncs.com";

/// `(region id, PEM certificate)`, sorted by region id.
pub const KMS_INSTANCE_CAS: &[(&str, &str)] = &[
    (
        "ap-northeast-1",
        include_str!("../../ca/kms-instance/ap-northeast-1.pem"),
    ),
    (
        "ap-southeast-1",
        include_str!("../../ca/kms-instance/ap-southeast-1.pem"),
    ),
    (
        "ap-southeast-3",
        include_str!("../../ca/kms-instance/ap-southeast-3.pem"),
    ),
    (
        "ap-southeast-5",
        include_str!("../../ca/kms-instance/ap-southeast-5.pem"),
    ),
    (
        "ap-southeast-6",
        include_str!("../../ca/kms-instance/ap-southeast-6.pem"),
    ),
    (
        "ap-southeast-7",
        include_str!("../../ca/kms-instance/ap-southeast-7.pem"),
    ),
    (
        "cn-beijing",
        include_str!("../../ca/kms-instance/cn-beijing.pem"),
    ),
    (
        "cn-beijing-finance-1",
        include_str!("../../ca/kms-instance/cn-beijing-finance-1.pem"),
    ),
    (
        "cn-chengdu",
        include_str!("../../ca/kms-instance/cn-chengdu.pem"),
    ),
    (
        "cn-guangzhou",
        include_str!("../../ca/kms-instance/cn-guangzhou.pem"),
    ),
    (
        "cn-hangzhou",
        include_str!("../../ca/kms-instance/cn-hangzhou.pem"),
    ),
    (
        "cn-heyuan",
        include_str!("../../ca/kms-instance/cn-heyuan.pem"),
    ),
    (
        "cn-heyuan-acdr-1",
        include_str!("../../ca/kms-instance/cn-heyuan-acdr-1.pem"),
    ),
    (
        "cn-hongkong",
        include_str!("../../ca/kms-instance/cn-hongkong.pem"),
    ),
    (
        "cn-huhehaote",
        include_str!("../../ca/kms-instance/cn-huhehaote.pem"),
    ),
    (
        "cn-qingdao",
        include_str!("../../ca/kms-instance/cn-qingdao.pem"),
    ),
    (
        "cn-shanghai",
        include_str!("../../ca/kms-instance/cn-shanghai.pem"),
    ),
    (
        "cn-shanghai-finance-1",
        include_str!("../../ca/kms-instance/cn-shanghai-finance-1.pem"),
    ),
    (
        "cn-shenzhen",
        include_str!("../../ca/kms-instance/cn-shenzhen.pem"),
    ),
    (
        "cn-wulanchabu",
        include_str!("../../ca/kms-instance/cn-wulanchabu.pem"),
    ),
    (
        "cn-zhangjiakou",
        include_str!("../../ca/kms-instance/cn-zhangjiakou.pem"),
    ),
    (
        "eu-central-1",
        include_str!("../../ca/kms-instance/eu-central-1.pem"),
    ),
    (
        "eu-west-1",
        include_str!("../../ca/kms-instance/eu-west-1.pem"),
    ),
    (
        "me-central-1",
        include_str!("../../ca/kms-instance/me-central-1.pem"),
    ),
    (
        "us-east-1",
        include_str!("../../ca/kms-instance/us-east-1.pem"),
    ),
    (
        "us-west-1",
        include_str!("../../ca/kms-instance/us-west-1.pem"),
    ),
];

/// The built-in CA certificate (PEM) of KMS instances in `region`.
#[cfg(test)]
fn kms_instance_ca(region: &str) -> Option<&'static str> {
    KMS_INSTANCE_CAS
        .binary_search_by(|(r, _)| (*r).cmp(region))
        .ok()
        .map(|i| KMS_INSTANCE_CAS[i].1)
}

/// Whether `host` is a KMS instance endpoint (upstream: the endpoint
/// contains [`KMS_INSTANCE_DOMAIN`]).
pub fn is_kms_instance_host(host: &str) -> bool {
    host.to_ascii_lowercase().contains(KMS_INSTANCE_DOMAIN)
}

/// The roots a call trusts, besides `cloud.ca_file` (always added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The system roots.
    System,
    /// Only the built-in CA of KMS instances in `region`.
    KmsInstance {
        /// The Mount's region.
        region: &'static str,
        /// Its CA certificate (PEM).
        pem: &'static str,
    },
}

/// Which roots a call to `host` for a Mount in `region` trusts.
pub fn trust_for(host: &str, region: &str) -> Trust {
    if !is_kms_instance_host(host) {
        return Trust::System;
    }
    match KMS_INSTANCE_CAS.binary_search_by(|(r, _)| (*r).cmp(region)) {
        Ok(i) => Trust::KmsInstance {
            region: KMS_INSTANCE_CAS[i].0,
            pem: KMS_INSTANCE_CAS[i].1,
        },
        Err(_) => Trust::System,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64 body")
    }

    #[test]
    fn the_26_upstream_regions_each_with_its_own_certificate() {
        assert_eq!(KMS_INSTANCE_CAS.len(), 26);
        assert!(
            KMS_INSTANCE_CAS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates (binary search)"
        );
        for (region, pem) in KMS_INSTANCE_CAS {
            assert!(crate::region::Region::parse(region).is_ok(), "{region}");
            assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{region}");
            let subject = format!("Private KMS {region} Second CA");
            let der = der(pem);
            assert!(
                der.windows(subject.len()).any(|w| w == subject.as_bytes()),
                "{region}.pem is not the CA of {region}"
            );
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).expect(region);
            crate::http::client_builder()
                .tls_certs_only([cert])
                .build()
                .unwrap_or_else(|e| panic!("{region}: {e}"));
        }
        for region in [
            "cn-hangzhou",
            "ap-southeast-1",
            "cn-heyuan-acdr-1",
            "us-west-1",
        ] {
            assert!(kms_instance_ca(region).is_some(), "{region}");
        }
        assert!(
            kms_instance_ca("pre-env").is_none(),
            "the staging CA is not shipped"
        );
        assert!(kms_instance_ca("xx-nowhere-1").is_none());
    }

    #[test]
    fn instance_endpoints_trust_the_ca_of_the_mounts_region() {
        let host = "kst-hzz65f0123456789.cryptoservice.kms.aliyuncs.com";
        match trust_for(host, "cn-hangzhou") {
            Trust::KmsInstance { region, pem } => {
                assert_eq!(region, "cn-hangzhou");
                assert_eq!(Some(pem), kms_instance_ca("cn-hangzhou"));
            }
            other => panic!("{other:?}"),
        }
        // the region is the Mount's, not one read from the host name
        match trust_for(host, "cn-shanghai") {
            Trust::KmsInstance { region, .. } => assert_eq!(region, "cn-shanghai"),
            other => panic!("{other:?}"),
        }
        assert_ne!(
            kms_instance_ca("cn-hangzhou"),
            kms_instance_ca("cn-shanghai")
        );
        // upstream's test is "contains", in any case
        assert!(matches!(
            trust_for("KST-1.CryptoService.KMS.aliyuncs.com", "cn-beijing"),
            Trust::KmsInstance {
                region: "cn-beijing",
                ..
            }
        ));
        // a region upstream does not list: the system roots, as upstream
        assert_eq!(trust_for(host, "xx-nowhere-1"), Trust::System);
        assert_eq!(trust_for(host, ""), Trust::System);
        // shared gateways and every other product: the system roots
        for other in [
            "kms.cn-hangzhou.aliyuncs.com",
            "kms-vpc.cn-hangzhou.aliyuncs.com",
            "oos-vpc.cn-hangzhou.aliyuncs.com",
            "sts.aliyuncs.com",
            "127.0.0.1",
        ] {
            assert_eq!(trust_for(other, "cn-hangzhou"), Trust::System, "{other}");
        }
    }
}
