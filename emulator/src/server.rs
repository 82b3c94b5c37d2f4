//! The HTTP front: routes, the per-request pipeline and response rendering.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use alibabacloud_signature::percent_encode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::admin;
use crate::api::{self, Api, Call, Product, Store};
use crate::auth::{self, NONCE_CAPACITY, NONCE_WINDOW, NonceCache};
use crate::clock::Clock;
use crate::error::ApiError;
use crate::faults::{Faults, Fired, Latency};
use crate::holds::Holds;
use crate::iam::{Credential, Iam};
use crate::imds::Imds;
use crate::kubernetes::Kubernetes;
use crate::request::ApiRequest;
use crate::seed::{AccessKey, KmsSecret, OosParameter, Seed, SeedError};
use crate::stats::{NO_ACTION, SUCCESS, StatsRecorder};

/// A running emulator's state, behind one lock.
pub(crate) struct AppState {
    state: Mutex<State>,
}

/// Everything a running emulator holds that can change. Handlers lock it
/// once per request and never across an await.
pub(crate) struct State {
    pub clock: Clock,
    pub store: Store,
    pub iam: Iam,
    pub imds: Imds,
    pub kubernetes: Kubernetes,
    pub nonces: NonceCache,
    pub faults: Faults,
    pub latency: Latency,
    pub holds: Holds,
    pub stats: StatsRecorder,
}

impl AppState {
    pub fn new(seed: &Seed) -> Self {
        let clock = Clock::default();
        let now = clock.now();
        AppState {
            state: Mutex::new(State {
                clock,
                store: Store::from_seed(seed, now),
                iam: Iam::new(&seed.access_keys, &seed.roles, &seed.oidc_providers),
                imds: Imds::from_seed(seed),
                kubernetes: Kubernetes::from_seed(seed, now),
                nonces: NonceCache::new(NONCE_WINDOW, NONCE_CAPACITY),
                faults: Faults::default(),
                latency: Latency::NONE,
                holds: Holds::default(),
                stats: StatsRecorder::default(),
            }),
        }
    }

    /// The state; a panic while it was held does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    pub fn put_kms_secret(&mut self, secret: KmsSecret) -> Result<(), SeedError> {
        secret.validate()?;
        self.store.kms.insert(secret.name.clone(), secret);
        Ok(())
    }

    pub fn rotate_kms_secret(
        &mut self,
        name: &str,
        version_id: &str,
        data: &str,
    ) -> Result<(), SeedError> {
        let secret = self
            .store
            .kms
            .get_mut(name)
            .ok_or_else(|| SeedError::Invalid(format!("KMS secret {name:?} does not exist")))?;
        let mut rotated = secret.clone();
        rotated.rotate(version_id, data);
        rotated.validate()?;
        *secret = rotated;
        Ok(())
    }

    pub fn put_oos_parameter(&mut self, parameter: OosParameter) -> Result<(), SeedError> {
        parameter.validate()?;
        self.store.oos.insert(parameter.name.clone(), parameter);
        Ok(())
    }

    pub fn put_access_key(&mut self, key: AccessKey) -> Result<(), SeedError> {
        key.validate()?;
        self.iam.identities.insert(Credential::from(&key));
        Ok(())
    }

    /// Attaches a role (one of the emulator's) to the instance, or detaches it.
    pub fn set_imds_role(&mut self, role_arn: Option<String>) -> Result<(), SeedError> {
        if let Some(arn) = &role_arn
            && self.iam.role(arn).is_none()
        {
            return Err(SeedError::Invalid(format!("role {arn:?} does not exist")));
        }
        self.imds.set_role_arn(role_arn);
        Ok(())
    }

    /// Makes live issued credentials (of `role_arn`, if given) expire now.
    pub fn expire_credentials(&mut self, role_arn: Option<&str>) -> usize {
        let now = self.clock.now();
        self.iam.expire(role_arn, now)
    }

    /// Zeroes the API, metadata-server and Kubernetes counters.
    pub fn reset_stats(&mut self) {
        self.stats.reset();
        self.imds.stats.reset();
        self.kubernetes.stats.reset();
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(serve_api).post(serve_api))
        .nest("/__emulator", admin::routes())
        .fallback(unknown_path)
        .with_state(state)
}

async fn serve_api(
    Shared(state): Shared<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let request = ApiRequest::new(method, &uri, headers, body);
    // Sampled, then slept without holding anything, so that concurrent
    // requests overlap their delays. (Emulated backend latency, for
    // benchmarks and the scripts: tests that need a request in flight hold
    // it instead.)
    let delay = state.lock().latency.sample();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let api = request.action().and_then(api::find);
    let held = api.and_then(|api| {
        state
            .lock()
            .holds
            .arrive(api.action, (api.object)(&request))
    });
    if let Some(mut hold) = held {
        let _ = hold.wait_for(|status| status.released).await;
    }
    let action = request.action().unwrap_or(NO_ACTION);
    let result = {
        let mut state = state.lock();
        let result = process(&mut state, &request, api);
        let outcome = result
            .as_ref()
            .map_or_else(|e| e.code.as_str(), |_| SUCCESS);
        state.stats.record(action, outcome);
        result
    };

    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(Reply::Json(body)) => {
            tracing::debug!(action, %request_id, elapsed_ms, "answered");
            success(body, &request_id)
        }
        Ok(Reply::Raw(body)) => {
            tracing::debug!(action, %request_id, elapsed_ms, "answered a fault's answer");
            raw_response(body, &request_id)
        }
        Err(error) => {
            tracing::info!(action, %request_id, code = %error.code, status = error.status.as_u16(), elapsed_ms, "answered with an error");
            error_response(
                &error,
                &request_id,
                request.host_id(),
                api.map(|a| a.product),
            )
        }
    }
}

/// A successful answer.
enum Reply {
    /// The handler's body (`RequestId` is added).
    Json(Value),
    /// A fault's answer, sent as is.
    Raw(String),
}

/// Routing, authentication, faults and the handler, in the real gateway's order.
fn process(
    state: &mut State,
    request: &ApiRequest,
    api: Option<&'static Api>,
) -> Result<Reply, ApiError> {
    if request.action().is_none() {
        return Err(ApiError::missing_parameter("Action"));
    }
    let api = api.ok_or_else(ApiError::action_not_found)?;
    let version = request
        .version()
        .ok_or_else(|| ApiError::missing_parameter("Version"))?;
    if version != api.version {
        return Err(ApiError::invalid_version());
    }
    let now = state.clock.now();
    let credential = if api.anonymous {
        None
    } else {
        Some(auth::authenticate(
            request,
            &state.iam.identities,
            &mut state.nonces,
            now,
        )?)
    };
    match state.faults.check(api.action, (api.object)(request)) {
        Some(Fired::Error(error)) => return Err(error),
        Some(Fired::Answer(body)) => return Ok(Reply::Raw(body)),
        None => {}
    }
    let mut call = Call {
        request,
        store: &state.store,
        iam: &mut state.iam,
        product: api.product,
        principal: credential.as_deref().map(|c| &*c.principal),
        now,
    };
    (api.handler)(&mut call).map(Reply::Json)
}

async fn unknown_path(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    error_response(&ApiError::action_not_found(), &new_request_id(), host, None)
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_ascii_uppercase()
}

fn success(mut body: Value, request_id: &str) -> Response {
    if let Value::Object(fields) = &mut body {
        fields.insert("RequestId".into(), Value::String(request_id.to_string()));
    }
    json_response(StatusCode::OK, &body, request_id, None)
}

/// HTTP 200 with `body` as is (a fault's answer).
fn raw_response(body: String, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-acs-request-id"), id);
    }
    response
}

fn error_response(
    error: &ApiError,
    request_id: &str,
    host_id: &str,
    product: Option<Product>,
) -> Response {
    let product = product.map_or(String::new(), |p| format!("&product={}", p.code()));
    let body = json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": error.code,
        "Message": error.message,
        "Recommend": format!(
            "https://api.aliyun.com/troubleshoot?q={}{product}&requestId={request_id}",
            percent_encode(&error.code)
        ),
    });
    json_response(error.status, &body, request_id, error.retry_after)
}

fn json_response(
    status: StatusCode,
    body: &Value,
    request_id: &str,
    retry_after: Option<u32>,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-acs-request-id"), id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(
            HeaderName::from_static("x-acs-retry-after"),
            HeaderValue::from(seconds),
        );
    }
    response
}
