//! A minimal Kubernetes API on its own listener (plain HTTP): just
//! `GET /api/v1/namespaces/{ns}/serviceaccounts/{name}`, which the provider
//! uses to read a pod service account's `ack.alibabacloud.com/role-arn`
//! annotation. Point the provider's in-cluster configuration at
//! [`crate::Emulator::kubernetes_url`] with the seed's bearer token.
//!
//! Answers: the ServiceAccount JSON; `Status` JSON for 401 (missing or wrong
//! `Authorization: Bearer`), 403 (mode `forbidden`: the caller lacks `get
//! serviceaccounts`), 404 (no such account or path) and 503 (mode
//! `unavailable`). Counted per resource (`serviceaccounts`, `other`) with
//! outcomes `Success`, `Unauthorized`, `Forbidden`, `NotFound`,
//! `ServiceUnavailable`.

use std::collections::BTreeMap;
use std::sync::Arc;

use alibabacloud_signature::{constant_time_eq, sha256_hex};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::format_time;
use crate::seed::{Seed, SeedError, ServiceAccount};
use crate::server::AppState;
use crate::stats::{SUCCESS, StatsRecorder};

/// How the Kubernetes API behaves; changeable at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesMode {
    /// Every ServiceAccount GET is refused with 403, as when the provider's
    /// RBAC lacks `get serviceaccounts`.
    #[serde(default)]
    pub forbidden: bool,
    /// Every request gets 503, as when the API server is down.
    #[serde(default)]
    pub unavailable: bool,
}

struct Stored {
    account: ServiceAccount,
    resource_version: u64,
}

/// The Kubernetes API's state.
pub(crate) struct Kubernetes {
    bearer_token: Option<String>,
    accounts: BTreeMap<(String, String), Stored>,
    versions: u64,
    created: OffsetDateTime,
    mode: KubernetesMode,
    pub stats: StatsRecorder,
}

impl Kubernetes {
    pub fn from_seed(seed: &Seed, now: OffsetDateTime) -> Self {
        let mut kubernetes = Kubernetes {
            bearer_token: seed.kubernetes.bearer_token.clone(),
            accounts: BTreeMap::new(),
            versions: 0,
            created: now.replace_nanosecond(0).expect("0 is valid"),
            mode: KubernetesMode::default(),
            stats: StatsRecorder::default(),
        };
        for account in &seed.service_accounts {
            kubernetes.insert(account.clone());
        }
        kubernetes
    }

    fn insert(&mut self, account: ServiceAccount) {
        self.versions += 1;
        let resource_version = self.versions;
        self.accounts.insert(
            (account.namespace.clone(), account.name.clone()),
            Stored {
                account,
                resource_version,
            },
        );
    }

    /// Adds or replaces a service account.
    pub fn put(&mut self, account: ServiceAccount) -> Result<(), SeedError> {
        account.validate()?;
        self.insert(account);
        Ok(())
    }

    /// Removes a service account; `false` if there was none.
    pub fn remove(&mut self, namespace: &str, name: &str) -> bool {
        self.accounts
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some()
    }

    pub fn mode(&self) -> KubernetesMode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: KubernetesMode) {
        self.mode = mode;
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match (sent, &self.bearer_token) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(sent), Some(want)) => constant_time_eq(sent, want),
        }
    }

    fn service_account_json(&self, stored: &Stored) -> Value {
        let account = &stored.account;
        let uid = sha256_hex(format!("{}/{}", account.namespace, account.name).as_bytes());
        let mut metadata = json!({
            "name": account.name,
            "namespace": account.namespace,
            "uid": format!("{}-{}-{}-{}-{}", &uid[0..8], &uid[8..12], &uid[12..16], &uid[16..20], &uid[20..32]),
            "resourceVersion": stored.resource_version.to_string(),
            "creationTimestamp": format_time(self.created),
        });
        if !account.annotations.is_empty() {
            metadata["annotations"] = json!(account.annotations);
        }
        json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": metadata})
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(serve).with_state(state)
}

/// `(namespace, name)` of a ServiceAccount path.
fn service_account_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("serviceaccounts/")?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    json_response(code, &body)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut response = (code, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn serve(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let target = service_account_path(uri.path()).filter(|_| method == Method::GET);
    let resource = if target.is_some() {
        "serviceaccounts"
    } else {
        "other"
    };
    let mut state = state.lock();
    let (response, outcome) = answer(&state.kubernetes, target, &headers);
    state.kubernetes.stats.record(resource, outcome);
    drop(state);
    tracing::debug!(
        resource,
        status = response.status().as_u16(),
        "kubernetes request"
    );
    response
}

fn answer(
    kubernetes: &Kubernetes,
    target: Option<(&str, &str)>,
    headers: &HeaderMap,
) -> (Response, &'static str) {
    let mode = kubernetes.mode();
    if mode.unavailable {
        let response = status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
            None,
        );
        return (response, "ServiceUnavailable");
    }
    if !kubernetes.authorized(headers) {
        let response = status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
            None,
        );
        return (response, "Unauthorized");
    }
    let Some((namespace, name)) = target else {
        let response = status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        );
        return (response, "NotFound");
    };
    if mode.forbidden {
        let response = status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "serviceaccounts \"{name}\" is forbidden: User \"system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud\" cannot get resource \"serviceaccounts\" in API group \"\" in the namespace \"{namespace}\""
            ),
            Some(json!({"name": name, "kind": "serviceaccounts"})),
        );
        return (response, "Forbidden");
    }
    match kubernetes
        .accounts
        .get(&(namespace.to_string(), name.to_string()))
    {
        Some(stored) => (
            json_response(StatusCode::OK, &kubernetes.service_account_json(stored)),
            SUCCESS,
        ),
        None => (
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("serviceaccounts \"{name}\" not found"),
                Some(json!({"name": name, "kind": "serviceaccounts"})),
            ),
            "NotFound",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_paths_are_recognised() {
        assert_eq!(
            service_account_path("/api/v1/namespaces/team-a/serviceaccounts/app"),
            Some(("team-a", "app"))
        );
        for other in [
            "/api/v1/namespaces/team-a/serviceaccounts/",
            "/api/v1/namespaces/team-a/serviceaccounts/app/token",
            "/api/v1/namespaces/team-a/pods/app",
            "/api/v1/namespaces//serviceaccounts/app",
            "/version",
        ] {
            assert_eq!(service_account_path(other), None, "{other}");
        }
    }

    #[test]
    fn bearer_tokens_are_checked_when_configured() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        let now = OffsetDateTime::now_utc();
        let open = Kubernetes::from_seed(&Seed::default(), now);
        assert!(open.authorized(&headers("Bearer anything")));
        assert!(!open.authorized(&headers("Bearer ")));
        assert!(!open.authorized(&HeaderMap::new()));
        let locked =
            Kubernetes::from_seed(&Seed::default().with_kubernetes_token("k8s-token"), now);
        assert!(locked.authorized(&headers("Bearer k8s-token")));
        assert!(!locked.authorized(&headers("Bearer other")));
        assert!(!locked.authorized(&headers("Basic k8s-token")));
    }

    #[test]
    fn accounts_get_new_resource_versions_when_replaced() {
        let mut kubernetes = Kubernetes::from_seed(
            &Seed::default().with_service_account(ServiceAccount::new("ns", "sa")),
            OffsetDateTime::now_utc(),
        );
        let version =
            |k: &Kubernetes| k.accounts[&("ns".to_string(), "sa".to_string())].resource_version;
        let first = version(&kubernetes);
        kubernetes
            .put(ServiceAccount::new("ns", "sa").with_role_arn("acs:ram::1:role/r"))
            .unwrap();
        assert!(version(&kubernetes) > first);
        assert!(kubernetes.remove("ns", "sa"));
        assert!(!kubernetes.remove("ns", "sa"));
        assert!(kubernetes.put(ServiceAccount::new("", "sa")).is_err());
    }
}
