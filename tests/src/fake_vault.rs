//! A fake HashiCorp Vault for the example Vault backend: just the two calls
//! it makes, answered as Vault answers them.
//!
//! - `POST /v1/auth/<auth mount>/login` (Kubernetes auth), body
//!   `{"role": ..., "jwt": ...}`: the role must exist and the JWT's `sub`
//!   (`system:serviceaccount:<namespace>:<name>`) must match the role's bound
//!   namespaces and service-account names (`*` matches any). The JWT is
//!   decoded, its signature not checked (Vault would ask the TokenReview
//!   API). A refusal is `400 {"errors":["..."]}`; a success issues a random
//!   `hvs.` token with the role's policy.
//! - `GET /v1/<kv mount>/data/<path>[?version=N]` (KV v2 read) with
//!   `X-Vault-Token`: an unknown token, or a path outside the token's
//!   readable prefixes, is `403 {"errors":["permission denied"]}`; a missing
//!   path or version is `404 {"errors":[]}`; else the secret's `data` and
//!   `metadata.version`.
//!
//! Anything else is `404 {"errors":["no handler for route ..."]}`. Mounts
//! default to `kubernetes` and `secret`.
//!
//! ```ignore
//! let vault = FakeVault::start()
//!     .await
//!     .with_secret("app/db", json!({"user": "app", "password": "v1"}))
//!     .with_secret("app/db", json!({"user": "app", "password": "v2"})) // version 2
//!     .with_role(VaultRole::new("app").bound_to(["team-a"], ["app"]).reading(["app/"]))
//!     .with_token("hvs.static", ["app/"]);
//! // point the plugin at vault.url(); afterwards:
//! assert_eq!(vault.stats().logins, 1);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

/// A Kubernetes auth role: which service accounts may log in with it, and
/// which secret paths the tokens it issues may read.
#[derive(Debug, Clone, Default)]
pub struct VaultRole {
    name: String,
    namespaces: Vec<String>,
    service_accounts: Vec<String>,
    readable: Vec<String>,
}

impl VaultRole {
    /// A role called `name`, bound to nothing and reading nothing.
    pub fn new(name: &str) -> VaultRole {
        VaultRole {
            name: name.into(),
            ..VaultRole::default()
        }
    }

    /// Binds the role to service accounts: Vault's
    /// `bound_service_account_namespaces` and `bound_service_account_names`
    /// (`*` matches any).
    pub fn bound_to<'a>(
        mut self,
        namespaces: impl IntoIterator<Item = &'a str>,
        service_accounts: impl IntoIterator<Item = &'a str>,
    ) -> VaultRole {
        self.namespaces
            .extend(namespaces.into_iter().map(String::from));
        self.service_accounts
            .extend(service_accounts.into_iter().map(String::from));
        self
    }

    /// Lets its tokens read the secrets whose path starts with one of
    /// `prefixes` (`"app/"`; `""` reads everything).
    pub fn reading<'a>(mut self, prefixes: impl IntoIterator<Item = &'a str>) -> VaultRole {
        self.readable.extend(prefixes.into_iter().map(String::from));
        self
    }
}

/// Request counters, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultStats {
    /// Logins that issued a token.
    pub logins: u64,
    /// Logins refused (bad body, unknown role, service account not bound).
    pub refused_logins: u64,
    /// KV reads answered with a secret.
    pub reads: u64,
    /// KV reads refused with 403 (unknown token, path not readable).
    pub denied_reads: u64,
    /// KV reads answered 404 (no such path or version).
    pub missing_reads: u64,
}

#[derive(Debug)]
struct Vault {
    auth_mount: String,
    kv_mount: String,
    /// Path → its versions' data, version N at index N-1.
    secrets: BTreeMap<String, Vec<Value>>,
    roles: BTreeMap<String, VaultRole>,
    /// Token → readable path prefixes.
    tokens: BTreeMap<String, Vec<String>>,
    stats: VaultStats,
}

type Shared = Arc<Mutex<Vault>>;

/// The running fake; stops serving when dropped.
pub struct FakeVault {
    addr: SocketAddr,
    state: Shared,
    stop: watch::Sender<bool>,
}

impl FakeVault {
    /// Starts an empty Vault on a free port of 127.0.0.1.
    pub async fn start() -> FakeVault {
        let state: Shared = Arc::new(Mutex::new(Vault {
            auth_mount: "kubernetes".into(),
            kv_mount: "secret".into(),
            secrets: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: BTreeMap::new(),
            stats: VaultStats::default(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Vault");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                })
                .await
        });
        FakeVault { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`: the plugin's `address` and the origin to allow.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves Kubernetes auth at `auth/<auth>` and KV v2 at `<kv>`.
    pub fn with_mounts(self, auth: &str, kv: &str) -> FakeVault {
        let mut vault = self.state.lock().unwrap();
        vault.auth_mount = auth.into();
        vault.kv_mount = kv.into();
        drop(vault);
        self
    }

    /// Writes a new version of the secret at `path` (the first is version 1).
    pub fn with_secret(self, path: &str, data: Value) -> FakeVault {
        let mut vault = self.state.lock().unwrap();
        vault.secrets.entry(path.into()).or_default().push(data);
        drop(vault);
        self
    }

    /// Adds a Kubernetes auth role.
    pub fn with_role(self, role: VaultRole) -> FakeVault {
        let mut vault = self.state.lock().unwrap();
        vault.roles.insert(role.name.clone(), role);
        drop(vault);
        self
    }

    /// Adds a token (as an operator would hand out for a
    /// nodePublishSecretRef) that reads the paths under `prefixes`.
    pub fn with_token<'a>(
        self,
        token: &str,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> FakeVault {
        let mut vault = self.state.lock().unwrap();
        let prefixes = prefixes.into_iter().map(String::from).collect();
        vault.tokens.insert(token.into(), prefixes);
        drop(vault);
        self
    }

    /// The request counters so far.
    pub fn stats(&self) -> VaultStats {
        self.state.lock().unwrap().stats.clone()
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Vault's error body.
fn errors(status: StatusCode, errors: &[&str]) -> Response {
    (status, axum::Json(json!({ "errors": errors }))).into_response()
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut vault = state.lock().unwrap();
    let path = uri.path().strip_prefix("/v1/").unwrap_or_default();
    let login = format!("auth/{}/login", vault.auth_mount);
    let data = format!("{}/data/", vault.kv_mount);
    match (method, path) {
        (Method::POST, p) if p == login => vault.login(&body),
        (Method::GET, p) if p.starts_with(&data) => {
            let token = headers.get("x-vault-token").and_then(|t| t.to_str().ok());
            let secret = &p[data.len()..];
            vault.read(token.unwrap_or_default(), secret, query.get("version"))
        }
        _ => errors(
            StatusCode::NOT_FOUND,
            &[&format!("no handler for route {:?}", uri.path())],
        ),
    }
}

impl Vault {
    fn login(&mut self, body: &[u8]) -> Response {
        match self.check_login(body) {
            Ok((role, namespace, account)) => {
                self.stats.logins += 1;
                let token = format!("hvs.{}", uuid::Uuid::new_v4().simple());
                let readable = self.roles[&role].readable.clone();
                self.tokens.insert(token.clone(), readable);
                axum::Json(json!({
                    "request_id": uuid::Uuid::new_v4().to_string(),
                    "auth": {
                        "client_token": token,
                        "accessor": uuid::Uuid::new_v4().simple().to_string(),
                        "policies": ["default", role],
                        "metadata": {
                            "role": role,
                            "service_account_name": account,
                            "service_account_namespace": namespace,
                        },
                        "lease_duration": 3600,
                        "renewable": true,
                    },
                }))
                .into_response()
            }
            Err(message) => {
                self.stats.refused_logins += 1;
                errors(StatusCode::BAD_REQUEST, &[&message])
            }
        }
    }

    /// The role, namespace and service account of a valid login.
    fn check_login(&self, body: &[u8]) -> Result<(String, String, String), String> {
        let body: Value = serde_json::from_slice(body).map_err(|_| "failed to parse JSON input")?;
        let role = body["role"].as_str().filter(|r| !r.is_empty());
        let role = role.ok_or("missing role")?;
        let jwt = body["jwt"].as_str().filter(|j| !j.is_empty());
        let jwt = jwt.ok_or("missing jwt")?;
        let bound = self
            .roles
            .get(role)
            .ok_or_else(|| format!("invalid role name {role:?}"))?;
        let (_, claims) = crate::emulator::jwt::decode(jwt).map_err(|e| e.to_string())?;
        let subject = claims.sub.strip_prefix("system:serviceaccount:");
        let (namespace, account) = subject
            .and_then(|s| s.split_once(':'))
            .ok_or("lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token")?;
        let allows = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        if !allows(&bound.namespaces, namespace) {
            return Err("namespace not authorized".into());
        }
        if !allows(&bound.service_accounts, account) {
            return Err("service account name not authorized".into());
        }
        Ok((role.into(), namespace.into(), account.into()))
    }

    fn read(&mut self, token: &str, path: &str, version: Option<&String>) -> Response {
        let readable = self
            .tokens
            .get(token)
            .is_some_and(|prefixes| prefixes.iter().any(|p| path.starts_with(p.as_str())));
        if !readable {
            self.stats.denied_reads += 1;
            return errors(StatusCode::FORBIDDEN, &["permission denied"]);
        }
        let Ok(version) = version.map_or(Ok(0), |v| v.parse::<usize>()) else {
            return errors(
                StatusCode::BAD_REQUEST,
                &["error converting input for field \"version\""],
            );
        };
        let versions = self
            .secrets
            .get(path)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let version = if version == 0 {
            versions.len()
        } else {
            version
        };
        let Some(data) = version.checked_sub(1).and_then(|i| versions.get(i)) else {
            self.stats.missing_reads += 1;
            return errors(StatusCode::NOT_FOUND, &[]);
        };
        self.stats.reads += 1;
        axum::Json(json!({
            "request_id": uuid::Uuid::new_v4().to_string(),
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {
                "data": data,
                "metadata": {
                    "created_time": "2024-01-01T00:00:00Z",
                    "custom_metadata": null,
                    "deletion_time": "",
                    "destroyed": false,
                    "version": version,
                },
            },
            "wrap_info": null,
            "warnings": null,
            "auth": null,
        }))
        .into_response()
    }
}
