//! The upstream provider's fetch algorithm, reimplemented for side-by-side
//! figures (`mount-load --compare-upstream`): for every Mount a new
//! credential chain and an STS `AssumeRole` call with the access key, then
//! the objects one after another, each `GetSecretValue` behind one
//! process-wide token bucket of 10 requests/s with a burst of 1 (upstream's
//! `rate.NewLimiter(10, 1)`). It talks to the same emulator as the provider,
//! with the same signatures, so both sides pay the same backend latency.

use std::time::{Duration, Instant};

use alibabacloud_signature::v1;
use anyhow::Context as _;

/// Upstream's limiter: 10 requests per second, burst 1.
const INTERVAL: Duration = Duration::from_millis(100);

/// The upstream algorithm against one endpoint.
#[derive(Debug)]
pub struct UpstreamAlgorithm {
    client: reqwest::Client,
    url: String,
    access_key_id: String,
    access_key_secret: String,
    role_arn: String,
    next_slot: tokio::sync::Mutex<Instant>,
}

struct StsCredentials {
    id: String,
    secret: String,
    token: String,
}

impl UpstreamAlgorithm {
    /// Calls `url` (KMS and STS) with an access key that may assume `role_arn`.
    pub fn new(url: &str, access_key_id: &str, access_key_secret: &str, role_arn: &str) -> Self {
        provider::install_crypto_provider();
        UpstreamAlgorithm {
            client: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_string(),
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            role_arn: role_arn.into(),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// One Mount of `names`: their values, in order.
    pub async fn mount(&self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let credentials = self.assume_role().await?;
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            self.wait_for_token().await;
            let body = self
                .call(
                    &[
                        ("Action", "GetSecretValue"),
                        ("Version", "2016-01-20"),
                        ("SecretName", name),
                    ],
                    &credentials.id,
                    &credentials.secret,
                    Some(&credentials.token),
                )
                .await?;
            values.push(
                body["SecretData"]
                    .as_str()
                    .context("GetSecretValue without SecretData")?
                    .to_string(),
            );
        }
        Ok(values)
    }

    /// `rate.Limiter.Wait` with rate 10/s and burst 1: slots 100 ms apart,
    /// shared by every Mount of the process.
    async fn wait_for_token(&self) {
        let at = {
            let mut next = self.next_slot.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + INTERVAL;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    async fn assume_role(&self) -> anyhow::Result<StsCredentials> {
        let body = self
            .call(
                &[
                    ("Action", "AssumeRole"),
                    ("Version", "2015-04-01"),
                    ("RoleArn", &self.role_arn),
                    ("RoleSessionName", "csi-secrets-store-provider-alibaba"),
                    ("DurationSeconds", "3600"),
                ],
                &self.access_key_id,
                &self.access_key_secret,
                None,
            )
            .await?;
        let c = &body["Credentials"];
        let field = |name: &str| {
            c[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("AssumeRole without Credentials.{name}"))
        };
        Ok(StsCredentials {
            id: field("AccessKeyId")?,
            secret: field("AccessKeySecret")?,
            token: field("SecurityToken")?,
        })
    }

    async fn call(
        &self,
        params: &[(&str, &str)],
        key_id: &str,
        key_secret: &str,
        token: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let timestamp = time_now();
        let nonce = uuid::Uuid::new_v4().to_string();
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [
            ("Format", "JSON"),
            ("AccessKeyId", key_id),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", &nonce),
            ("Timestamp", &timestamp),
        ] {
            all.push((k.into(), v.into()));
        }
        if let Some(token) = token {
            all.push(("SecurityToken".into(), token.into()));
        }
        let signature = v1::sign("GET", &all, key_secret);
        all.push(("Signature".into(), signature));
        let query = alibabacloud_signature::canonical_query(&all);
        let response = self
            .client
            .get(format!("{}/?{query}", self.url))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
        anyhow::ensure!(status.is_success(), "{status}: {body}");
        Ok(body)
    }
}

/// `2026-12-03T10:04:47Z`.
fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map(|t| {
            // Second precision, as the SDKs send it.
            let (date, rest) = t.split_at(19);
            let _ = rest;
            format!("{date}Z")
        })
        .unwrap_or_default()
}
