//! A local Alibaba Cloud emulator: KMS `GetSecretValue` and OOS
//! `GetSecretParameter` served over HTTP from a [`Seed`], with request
//! signatures (V3 `ACS3-HMAC-SHA256` and V1 HMAC-SHA1), timestamps, nonces,
//! STS tokens and permissions checked as the real service does, so that both
//! this project's client and the official SDKs work against it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use alibabacloud_emulator::{AccessKey, Emulator, Fault, KmsSecret, Seed};
//!
//! let seed = Seed::default()
//!     .with_access_key(AccessKey::new("testid", "testsecret"))
//!     .with_kms_secret(KmsSecret::text("db", r#"{"password":"s3cr3t"}"#));
//! let emu = Emulator::start(seed, "127.0.0.1:0".parse()?).await?;
//! emu.inject_fault(Fault::throttling("GetSecretValue").times(1));
//! // ... point a client at emu.url() ...
//! assert_eq!(emu.stats().requests("GetSecretValue"), 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Admin endpoints for scripts are described in the `admin` module docs.

mod admin;
mod api;
mod auth;
mod error;
mod faults;
mod iam;
mod request;
mod seed;
mod server;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{ActiveFault, Fault, FaultError, Latency, LatencyParseError};
pub use seed::{
    ACS_CURRENT, ACS_PREVIOUS, AccessKey, DEFAULT_REGION, KmsSecret, KmsSecretVersion, KmsSeed,
    OosParameter, OosParameterVersion, OosSeed, SecretDataType, Seed, SeedError,
};
pub use stats::{ActionStats, NO_ACTION, SUCCESS, Stats};

/// How long [`Emulator::shutdown`] waits for open connections before
/// dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the emulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The seed is inconsistent.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A running emulator. Dropping it stops the server; [`Emulator::shutdown`]
/// also waits for it.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<server::AppState>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Emulator {
    /// Validates `seed`, binds `addr` (port 0 picks one) and starts serving
    /// on the current tokio runtime.
    pub async fn start(seed: Seed, addr: SocketAddr) -> Result<Emulator, StartError> {
        seed.validate()?;
        let bind_error = |source| StartError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let state = Arc::new(server::AppState::new(&seed));
        let app = server::router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%local, region = %seed.region, access_keys = seed.access_keys.len(),
            kms_secrets = seed.kms.secrets.len(), oos_parameters = seed.oos.parameters.len(),
            "emulator started");
        Ok(Emulator {
            addr: local,
            state,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`: what the SDKs take as `endpoint` (with protocol `http`).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The region the emulator serves.
    pub fn region(&self) -> &str {
        &self.state.store.region
    }

    /// Counters since start or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> Stats {
        self.state.stats.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    /// Delay added to every API request from now on.
    pub fn set_latency(&self, latency: Latency) {
        self.state.set_latency(latency);
    }

    /// The current latency setting.
    pub fn latency(&self) -> Latency {
        self.state.latency()
    }

    /// Installs a fault after the existing ones.
    ///
    /// # Panics
    /// If the fault is invalid (see [`Fault::validate`]); use
    /// [`try_inject_fault`](Self::try_inject_fault) to get the error instead.
    pub fn inject_fault(&self, fault: Fault) {
        if let Err(error) = self.try_inject_fault(fault) {
            panic!("invalid fault: {error}");
        }
    }

    /// Installs a fault after the existing ones.
    pub fn try_inject_fault(&self, fault: Fault) -> Result<(), FaultError> {
        self.state.faults.add(fault)
    }

    /// The installed faults with their remaining and fired counts.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.state.faults.list()
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Adds or replaces a KMS secret.
    pub fn put_kms_secret(&self, secret: KmsSecret) -> Result<(), SeedError> {
        self.state.put_kms_secret(secret)
    }

    /// Adds a version to a KMS secret as `PutSecretValue` does: it becomes
    /// `ACSCurrent` and the old current one `ACSPrevious`.
    pub fn rotate_kms_secret(
        &self,
        name: &str,
        version_id: &str,
        data: &str,
    ) -> Result<(), SeedError> {
        self.state.rotate_kms_secret(name, version_id, data)
    }

    /// Adds or replaces an OOS parameter.
    pub fn put_oos_parameter(&self, parameter: OosParameter) -> Result<(), SeedError> {
        self.state.put_oos_parameter(parameter)
    }

    /// Adds or replaces an access key.
    pub fn put_access_key(&self, key: AccessKey) -> Result<(), SeedError> {
        self.state.put_access_key(key)
    }

    /// Stops accepting, lets open requests finish (up to a few seconds) and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "emulator server failed"),
                Ok(_) => {}
                Err(_) => server.abort(),
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
