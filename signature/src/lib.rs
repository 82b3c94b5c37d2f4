//! Alibaba Cloud OpenAPI request signatures, shared by the provider (which
//! signs) and the local emulator (which verifies).
//!
//! Two algorithms are implemented:
//! - [`v1`]: the RPC signature `SignatureVersion=1.0`, HMAC-SHA1 over the
//!   sorted query and form parameters. STS `AssumeRole` from the credentials
//!   tools and older SDKs use it.
//! - [`v3`]: `ACS3-HMAC-SHA256` over a canonical request with signed headers;
//!   the default of the current SDKs.
//!
//! Both are pinned by the published test vectors in the unit tests below.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Percent-encodes a string the way Alibaba Cloud canonicalises parameters:
/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, every other
/// UTF-8 byte becomes `%XY` with uppercase hex (so a space is `%20`, never `+`).
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    for &byte in input.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[(byte >> 4) as usize] as char);
            out.push(HEX_UPPER[(byte & 0x0f) as usize] as char);
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Joins parameters as `k=v&k=v`, each side percent-encoded, sorted by key
/// (byte order) and then by value so that repeated keys are deterministic.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The SHA-256 of an empty body, as sent in `x-acs-content-sha256`.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RPC signature V1 (`SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`).
pub mod v1 {
    use super::*;
    use base64::Engine as _;

    /// The string to sign: `METHOD&%2F&<percent-encoded canonical query>`.
    ///
    /// `params` are all query and form-body parameters except `Signature`.
    pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(method: &str, params: &[(K, V)]) -> String {
        format!(
            "{}&{}&{}",
            method.to_ascii_uppercase(),
            percent_encode("/"),
            percent_encode(&canonical_query(params))
        )
    }

    /// The base64 `Signature` value for `params` under `access_key_secret`.
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(
        method: &str,
        params: &[(K, V)],
        access_key_secret: &str,
    ) -> String {
        let key = format!("{access_key_secret}&");
        let mut mac =
            Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key size");
        mac.update(string_to_sign(method, params).as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// Signature V3 (`ACS3-HMAC-SHA256`).
pub mod v3 {
    use super::*;

    /// The algorithm name that starts the `Authorization` header.
    pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

    /// What a V3 signature covers.
    #[derive(Debug, Clone)]
    pub struct CanonicalInput<'a> {
        /// HTTP method, e.g. `POST`.
        pub method: &'a str,
        /// Canonical URI; `/` for RPC APIs.
        pub uri: &'a str,
        /// Query parameters (decoded).
        pub query: &'a [(String, String)],
        /// The headers to sign: names in any case, values as sent.
        pub headers: &'a [(String, String)],
        /// Lowercase hex SHA-256 of the body.
        pub payload_sha256: &'a str,
    }

    /// Builds the canonical request and the `SignedHeaders` list.
    pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
        let mut headers: Vec<(String, String)> = input
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        headers.sort();
        let mut canonical_headers = String::new();
        for (name, value) in &headers {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(value);
            canonical_headers.push('\n');
        }
        let signed_headers = headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            input.method.to_ascii_uppercase(),
            input.uri,
            canonical_query(input.query),
            canonical_headers,
            signed_headers,
            input.payload_sha256
        );
        (request, signed_headers)
    }

    /// `ACS3-HMAC-SHA256\n<hex sha256 of the canonical request>`.
    pub fn string_to_sign(canonical_request: &str) -> String {
        format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
    }

    /// Lowercase hex HMAC-SHA256 of the string to sign.
    pub fn signature(string_to_sign: &str, access_key_secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(access_key_secret.as_bytes())
            .expect("HMAC accepts any key size");
        mac.update(string_to_sign.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The full `Authorization` header value.
    pub fn authorization(
        input: &CanonicalInput<'_>,
        access_key_id: &str,
        access_key_secret: &str,
    ) -> String {
        let (request, signed_headers) = canonical_request(input);
        let sig = signature(&string_to_sign(&request), access_key_secret);
        format!(
            "{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={sig}"
        )
    }

    /// The parts of a V3 `Authorization` header.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Authorization {
        /// The access key id from `Credential=`.
        pub access_key_id: String,
        /// The lowercase header names from `SignedHeaders=`.
        pub signed_headers: Vec<String>,
        /// The hex signature.
        pub signature: String,
    }

    /// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
    pub fn parse_authorization(value: &str) -> Result<Authorization, String> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| format!("the Authorization header must start with {ALGORITHM}"))?
            .trim_start();
        let (mut credential, mut signed, mut sig) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(
                    v.split(';')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .collect(),
                );
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v.to_string());
            }
        }
        Ok(Authorization {
            access_key_id: credential.ok_or("the Authorization header has no Credential")?,
            signed_headers: signed.ok_or("the Authorization header has no SignedHeaders")?,
            signature: sig.ok_or("the Authorization header has no Signature")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_matches_the_documented_outputs() {
        for (input, want) in [
            ("a b", "a%20b"),
            ("a+b", "a%2Bb"),
            ("a*b", "a%2Ab"),
            ("a~b", "a~b"),
            ("a/b", "a%2Fb"),
            ("中文", "%E4%B8%AD%E6%96%87"),
            ("!'()", "%21%27%28%29"),
            ("a=b&c", "a%3Db%26c"),
            ("%7E", "%257E"),
        ] {
            assert_eq!(percent_encode(input), want, "input {input:?}");
        }
    }

    // Vector A: ECS "Request signature" document.
    #[test]
    fn v1_published_vector_a() {
        let params = [
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ];
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26"
        );
        assert_eq!(
            v1::string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1::sign("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        assert_eq!(
            v1::sign("POST", &params, "testsecret"),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    // Vector B: the RPC mechanism document.
    #[test]
    fn v1_published_vector_b() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeDedicatedHosts"),
            ("Format", "JSON"),
            ("RegionId", "cn-beijing"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2023-03-13T08:34:30Z"),
            ("Version", "2014-05-26"),
        ];
        assert_eq!(
            v1::sign("GET", &params, "testsecret"),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
    }

    // Vectors G1/G2: the Go SDK's own unit test (empty values, a space).
    #[test]
    fn v1_go_sdk_vectors_g1_g2() {
        let mut params = vec![
            ("AccessKeyId", "accessKeyId"),
            ("Action", ""),
            ("Format", "JSON"),
            ("RegionId", "regionId"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "MOCK_UUID"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "mock date"),
            ("Version", ""),
        ];
        assert_eq!(
            v1::string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3DaccessKeyId%26Action%3D%26Format%3DJSON%26RegionId%3DregionId%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3DMOCK_UUID%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3Dmock%2520date%26Version%3D"
        );
        assert_eq!(
            v1::sign("GET", &params, "accessKeySecret"),
            "7loPmFjvDnzOVnQeQNj85S6nFGY="
        );
        params.push(("SecurityToken", "accessKeyStsToken"));
        assert_eq!(
            v1::sign("GET", &params, "accessKeySecret"),
            "5Nxdcler+ihqWqv0Hr2On4PsBf4="
        );
        let query_and_form = [("q", "http://domain/?q=value&q2=value2"), ("key", "value")];
        assert_eq!(
            v1::string_to_sign("GET", &query_and_form),
            "GET&%2F&key%3Dvalue%26q%3Dhttp%253A%252F%252Fdomain%252F%253Fq%253Dvalue%2526q2%253Dvalue2"
        );
        let empty: [(&str, &str); 0] = [];
        assert_eq!(v1::string_to_sign("GET", &empty), "GET&%2F&");
    }

    fn computed_common() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", "testid"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("SignatureNonce", "fixed-nonce-0001"),
        ]
    }

    #[test]
    fn v1_computed_vectors_for_kms_oos_sts() {
        let mut kms = computed_common();
        kms.extend([
            ("Action", "GetSecretValue"),
            ("Version", "2016-01-20"),
            ("SecretName", "my-secret"),
            ("VersionStage", "ACSCurrent"),
        ]);
        assert_eq!(
            v1::sign("POST", &kms, "testsecret"),
            "YfEVqReMnw/UyNcWySIYts5jvbg="
        );

        let mut oos = computed_common();
        oos.extend([
            ("Action", "GetSecretParameter"),
            ("Version", "2019-06-01"),
            ("Name", "db/password"),
            ("WithDecryption", "true"),
            ("RegionId", "cn-hangzhou"),
        ]);
        assert_eq!(
            v1::string_to_sign("POST", &oos),
            "POST&%2F&AccessKeyId%3Dtestid%26Action%3DGetSecretParameter%26Format%3DJSON%26Name%3Ddb%252Fpassword%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dfixed-nonce-0001%26SignatureVersion%3D1.0%26Timestamp%3D2024-01-02T03%253A04%253A05Z%26Version%3D2019-06-01%26WithDecryption%3Dtrue"
        );
        assert_eq!(
            v1::sign("POST", &oos, "testsecret"),
            "5JEuj12QRMoIVV/1SL1qE/iSjfg="
        );

        let mut sts = computed_common();
        sts.extend([
            ("Action", "AssumeRole"),
            ("Version", "2015-04-01"),
            ("RoleArn", "acs:ram::123456789012:role/test-role"),
            ("RoleSessionName", "rust-sdk"),
            ("DurationSeconds", "3600"),
        ]);
        assert_eq!(
            v1::sign("POST", &sts, "testsecret"),
            "WrBCRSEDLC5fksQI5I2tua5LwLE="
        );

        let mut with_token: Vec<(&str, &str)> = computed_common()
            .into_iter()
            .filter(|(k, _)| *k != "AccessKeyId")
            .collect();
        with_token.extend([
            ("AccessKeyId", "STS.fakeid"),
            ("Action", "GetSecretValue"),
            ("Version", "2016-01-20"),
            ("SecretName", "my-secret"),
            ("SecurityToken", "CAIS-token/+="),
        ]);
        assert_eq!(
            v1::sign("POST", &with_token, "stssecret"),
            "oV4RNaApgo2j1+TaBCyAxMs3FD4="
        );
    }

    #[test]
    fn v1_special_characters_and_tea_openapi_vectors() {
        let special = [
            ("AccessKeyId", "testid"),
            ("Action", "GetSecretValue"),
            ("Format", "JSON"),
            ("Version", "2016-01-20"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "nonce-1"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("SecretName", "my secret+*~/中文"),
            ("SecurityToken", "tok/+="),
        ];
        assert_eq!(
            canonical_query(&special),
            "AccessKeyId=testid&Action=GetSecretValue&Format=JSON&SecretName=my%20secret%2B%2A~%2F%E4%B8%AD%E6%96%87&SecurityToken=tok%2F%2B%3D&SignatureMethod=HMAC-SHA1&SignatureNonce=nonce-1&SignatureVersion=1.0&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2016-01-20"
        );
        assert_eq!(
            v1::sign("POST", &special, "testsecret"),
            "vzfMkegBSYEzv0o7pM/ejchSt/s="
        );

        let tea = [
            ("AccessKeyId", "testid"),
            ("Action", "GetSecretValue"),
            ("Format", "json"),
            ("SecretName", "my-secret"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "fixed-nonce-0001"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("Version", "2016-01-20"),
            ("VersionStage", "ACSCurrent"),
        ];
        assert_eq!(
            v1::sign("POST", &tea, "testsecret"),
            "4S8S8tN9JJNz4ASyI6El3JGLzpA="
        );
    }

    fn v3_auth(
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        ak: &str,
        secret: &str,
    ) -> (String, String) {
        let query = owned(query);
        let headers = owned(headers);
        let input = v3::CanonicalInput {
            method: "POST",
            uri: "/",
            query: &query,
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        let (request, _) = v3::canonical_request(&input);
        (
            v3::string_to_sign(&request),
            v3::authorization(&input, ak, secret),
        )
    }

    // Vector V3-C: the V3 signature document.
    #[test]
    fn v3_published_vector_c() {
        let (sts, auth) = v3_auth(
            &[
                (
                    "ImageId",
                    "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                ),
                ("RegionId", "cn-shanghai"),
            ],
            &[
                ("host", "ecs.cn-shanghai.aliyuncs.com"),
                ("x-acs-action", "RunInstances"),
                ("x-acs-version", "2014-05-26"),
                ("x-acs-date", "2023-10-26T10:22:32Z"),
                ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
                ("x-acs-content-sha256", EMPTY_SHA256),
            ],
            "YourAccessKeyId",
            "YourAccessKeySecret",
        );
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_computed_vectors() {
        let base = |host: &'static str, action: &'static str, version: &'static str, nonce| {
            vec![
                ("host", host),
                ("x-acs-action", action),
                ("x-acs-version", version),
                ("x-acs-date", "2024-01-02T03:04:05Z"),
                ("x-acs-signature-nonce", nonce),
                ("x-acs-content-sha256", EMPTY_SHA256),
            ]
        };
        let (sts, auth) = v3_auth(
            &[("SecretName", "my-secret"), ("VersionStage", "ACSCurrent")],
            &base(
                "kms.cn-hangzhou.aliyuncs.com",
                "GetSecretValue",
                "2016-01-20",
                "fixed-nonce-0001",
            ),
            "testid",
            "testsecret",
        );
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\nf4270150a0ac6af828a045b07c1b93df9d4dd1d4827e167fc8b6866abaabecbe"
        );
        assert!(auth.ends_with(
            "Signature=95efe376ea8cb26d8e92a18098fe8711d7d6eedb1b1f048da559eff36eaf3c9c"
        ));

        let mut sts_headers = base(
            "kms.cn-hangzhou.aliyuncs.com",
            "GetSecretValue",
            "2016-01-20",
            "fixed-nonce-0001",
        );
        sts_headers.push(("x-acs-accesskey-id", "STS.fakeid"));
        sts_headers.push(("x-acs-security-token", "CAIS-token/+="));
        let (_, auth) = v3_auth(
            &[("SecretName", "my-secret")],
            &sts_headers,
            "STS.fakeid",
            "stssecret",
        );
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=STS.fakeid,SignedHeaders=host;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version,Signature=5429b5a17706e1f5d63d42726780faa1eeb3da8caab514d11037af06d1d75f0d"
        );

        let (sts, auth) = v3_auth(
            &[
                ("Name", "db/password"),
                ("RegionId", "cn-hangzhou"),
                ("WithDecryption", "true"),
            ],
            &base(
                "oos.cn-hangzhou.aliyuncs.com",
                "GetSecretParameter",
                "2019-06-01",
                "fixed-nonce-0002",
            ),
            "testid",
            "testsecret",
        );
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n8f2204a674455194419d403bd7ce350598723b2feb054cb99e17f38b588e36e2"
        );
        assert!(auth.ends_with(
            "Signature=ad3209eeea6d56f0f6163b0d5e8e7cb792d56b94f164fe859feb6be1dd03ab4a"
        ));
    }

    #[test]
    fn v3_python_sdk_full_header_vector() {
        let mut headers = vec![
            ("accept", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "kms.cn-hangzhou.aliyuncs.com"),
            ("user-agent", "rust-crosscheck/1.0"),
            ("x-acs-action", "GetSecretValue"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("x-acs-credentials-provider", "static_ak"),
            ("x-acs-date", "2024-01-02T03:04:05Z"),
            ("x-acs-signature-nonce", "fixed-nonce-0001"),
            ("x-acs-version", "2016-01-20"),
        ];
        headers.reverse(); // order of input must not matter
        let (sts, auth) = v3_auth(
            &[("SecretName", "my-secret"), ("VersionStage", "ACSCurrent")],
            &headers,
            "testid",
            "testsecret",
        );
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n0e39f6045181036e31f350bf867522fb4fd6d97588959aa90f776322d96d5f9c"
        );
        assert!(auth.ends_with(
            "Signature=0aa7571f33f4b4a3ae4ec741a2cfb0cbce9cd9550da22cc8c52b67c8cb169c36"
        ));
        let parsed = v3::parse_authorization(&auth).unwrap();
        assert_eq!(parsed.access_key_id, "testid");
        assert_eq!(parsed.signed_headers.len(), 10);
        assert_eq!(
            parsed.signature,
            "0aa7571f33f4b4a3ae4ec741a2cfb0cbce9cd9550da22cc8c52b67c8cb169c36"
        );
    }

    #[test]
    fn parse_authorization_rejects_other_schemes() {
        assert!(v3::parse_authorization("Bearer abc").is_err());
        assert!(v3::parse_authorization("ACS3-HMAC-SHA256 Credential=a").is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
