//! HTTP health endpoints: `/live` (the process answers) and the healthz path
//! (the gRPC socket answers a health check end to end, as the driver would
//! reach it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The gRPC service whose health is checked.
const PROVIDER_SERVICE: &str = "v1alpha1.CSIDriverProvider";

/// Settings of the health server.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Path of the readiness check, e.g. `/healthz`.
    pub path: String,
    /// How long one check may take.
    pub timeout: Duration,
    /// The provider socket to check.
    pub socket: PathBuf,
}

#[derive(Clone)]
struct Probe {
    socket: PathBuf,
    timeout: Duration,
}

/// Binds the health server (a bind failure is a start-up error, not a log
/// line) and returns the future that serves it until `shutdown`.
pub async fn bind(
    settings: HealthSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {} for health checks: {e} (see --healthz-port)",
                    settings.addr
                ),
            )
        })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/live", get(|| async { "ok" }))
        .route(&settings.path, get(healthz))
        .with_state(Probe {
            socket: settings.socket,
            timeout: settings.timeout,
        });
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((addr, serve))
}

async fn healthz(State(probe): State<Probe>) -> (StatusCode, String) {
    match tokio::time::timeout(probe.timeout, check(&probe.socket)).await {
        Ok(Ok(())) => (StatusCode::OK, "ok".into()),
        Ok(Err(reason)) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the provider socket did not answer within {:?}",
                probe.timeout
            ),
        ),
    }
}

async fn check(socket: &std::path::Path) -> Result<(), String> {
    let channel = crate::client::connect(socket)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: PROVIDER_SERVICE.to_string(),
        })
        .await
        .map_err(|e| format!("health check failed: {}", e.message()))?;
    match response.into_inner().status {
        1 => Ok(()),
        status => Err(format!("the provider reports status {status}")),
    }
}
