//! Admin endpoints under `/__emulator/`, so that scripts can drive the binary.
//!
//! | Method and path | Body | Effect |
//! |---|---|---|
//! | `GET /__emulator/stats` | | counters ([`crate::Stats`]) |
//! | `DELETE /__emulator/stats` | | zeroes the counters |
//! | `GET /__emulator/faults` | | installed faults with `remaining` and `fired` |
//! | `PUT /__emulator/faults` | a [`crate::Fault`] or a list | replaces the faults |
//! | `POST /__emulator/faults` | a [`crate::Fault`] | adds one |
//! | `DELETE /__emulator/faults` | | removes all |
//! | `GET /__emulator/latency` | | `{"latency":"20ms"}` |
//! | `PUT /__emulator/latency` | `{"latency":"10ms..50ms"}` | sets it |
//! | `DELETE /__emulator/latency` | | no latency |
//! | `PUT /__emulator/kms/secrets` | a [`crate::KmsSecret`] | adds or replaces it |
//! | `POST /__emulator/kms/secrets/{name}/rotate` | `{"version_id":"v2","data":".."}` | `PutSecretValue`-style rotation |
//! | `PUT /__emulator/oos/parameters` | an [`crate::OosParameter`] | adds or replaces it |
//! | `PUT /__emulator/access-keys` | an [`crate::AccessKey`] | adds or replaces it |
//!
//! Errors are `400 {"error": "..."}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::{Fault, Latency};
use crate::seed::{AccessKey, KmsSecret, OosParameter};
use crate::server::AppState;

type Shared = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/stats", get(stats).delete(reset_stats))
        .route(
            "/faults",
            get(list_faults)
                .put(replace_faults)
                .post(add_fault)
                .delete(clear_faults),
        )
        .route(
            "/latency",
            get(latency).put(set_latency).delete(clear_latency),
        )
        .route("/kms/secrets", put(put_kms_secret))
        .route("/kms/secrets/{name}/rotate", post(rotate_kms_secret))
        .route("/oos/parameters", put(put_oos_parameter))
        .route("/access-keys", put(put_access_key))
}

fn bad_request(error: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error.to_string() })),
    )
        .into_response()
}

fn done<E: std::fmt::Display>(result: Result<(), E>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(e),
    }
}

async fn stats(State(state): Shared) -> Response {
    Json(state.stats.snapshot()).into_response()
}

async fn reset_stats(State(state): Shared) -> StatusCode {
    state.stats.reset();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(state): Shared) -> Response {
    Json(state.faults.list()).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Fault>),
    One(Box<Fault>),
}

async fn replace_faults(State(state): Shared, Json(faults): Json<OneOrMany>) -> Response {
    let faults = match faults {
        OneOrMany::Many(list) => list,
        OneOrMany::One(fault) => vec![*fault],
    };
    done(state.faults.replace(faults))
}

async fn add_fault(State(state): Shared, Json(fault): Json<Fault>) -> Response {
    done(state.faults.add(fault))
}

async fn clear_faults(State(state): Shared) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    latency: Latency,
}

async fn latency(State(state): Shared) -> Response {
    Json(LatencyBody {
        latency: state.latency(),
    })
    .into_response()
}

async fn set_latency(State(state): Shared, Json(body): Json<LatencyBody>) -> StatusCode {
    state.set_latency(body.latency);
    StatusCode::NO_CONTENT
}

async fn clear_latency(State(state): Shared) -> StatusCode {
    state.set_latency(Latency::NONE);
    StatusCode::NO_CONTENT
}

async fn put_kms_secret(State(state): Shared, Json(secret): Json<KmsSecret>) -> Response {
    done(state.put_kms_secret(secret))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    version_id: String,
    data: String,
}

async fn rotate_kms_secret(
    State(state): Shared,
    Path(name): Path<String>,
    Json(rotation): Json<Rotation>,
) -> Response {
    done(state.rotate_kms_secret(&name, &rotation.version_id, &rotation.data))
}

async fn put_oos_parameter(State(state): Shared, Json(parameter): Json<OosParameter>) -> Response {
    done(state.put_oos_parameter(parameter))
}

async fn put_access_key(State(state): Shared, Json(key): Json<AccessKey>) -> Response {
    done(state.put_access_key(key))
}
