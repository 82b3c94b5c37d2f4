//! A local Alibaba Cloud emulator: KMS `GetSecretValue`, OOS
//! `GetSecretParameter` and STS `AssumeRole` / `AssumeRoleWithOIDC` served
//! over HTTP from a [`Seed`], with request signatures (V3 `ACS3-HMAC-SHA256`
//! and V1 HMAC-SHA1), timestamps, nonces, STS tokens and per-identity
//! permissions checked as the real service does, so that both this
//! project's client and the official SDKs work against it. Two more
//! listeners play the ECS metadata server (IMDS) and a minimal Kubernetes API
//! (ServiceAccount GET).
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
//!
//! The `server` feature (on by default) brings the HTTP servers, axum and
//! tokio. Without it the crate is only its request decoding, signature
//! verification, JWT reading and seed types: what the fuzz targets in
//! `fuzz/` link (through the hidden `fuzzing` module), at a fraction of
//! the build cost.

// Without the servers, much of the IAM and error plumbing has no caller.
#![cfg_attr(not(feature = "server"), allow(dead_code, unused_imports))]

#[cfg(feature = "server")]
mod admin;
#[cfg(feature = "server")]
mod api;
mod auth;
#[cfg(feature = "server")]
mod clock;
mod error;
#[cfg(feature = "server")]
mod faults;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "server")]
mod holds;
mod iam;
#[cfg(feature = "server")]
mod imds;
pub mod jwt;
#[cfg(feature = "server")]
mod kubernetes;
mod request;
mod seed;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod stats;

#[cfg(feature = "server")]
use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "server")]
use std::sync::Arc;
#[cfg(feature = "server")]
use std::time::Duration;

#[cfg(feature = "server")]
use time::OffsetDateTime;
#[cfg(feature = "server")]
use tokio::sync::watch;
#[cfg(feature = "server")]
use tokio::task::JoinHandle;

#[cfg(feature = "server")]
pub use faults::{ActiveFault, Fault, FaultError, Latency, LatencyParseError};
#[cfg(feature = "server")]
pub use holds::Hold;
pub use iam::{CredentialSource, IssuedCredential};
#[cfg(feature = "server")]
pub use imds::{IMDS_CREDENTIAL_LIFETIME, ImdsMode};
#[cfg(feature = "server")]
pub use kubernetes::KubernetesMode;
pub use seed::{
    ACS_CURRENT, ACS_PREVIOUS, AccessKey, DEFAULT_MAX_SESSION_DURATION, DEFAULT_REGION, ImdsSeed,
    KmsSecret, KmsSecretVersion, KmsSeed, KubernetesSeed, MAX_SESSION_DURATION_LIMIT,
    MIN_SESSION_DURATION, OidcProvider, OidcTrust, OosParameter, OosParameterVersion, OosSeed,
    ROLE_ARN_ANNOTATION, Role, STS_AUDIENCE, SecretDataType, Seed, SeedError, ServiceAccount,
};
#[cfg(feature = "server")]
pub use stats::{ActionStats, ImdsPathStats, ImdsStats, NO_ACTION, STS_ACTIONS, SUCCESS, Stats};

#[cfg(feature = "server")]
/// How long [`Emulator::shutdown`] waits for open connections before
/// dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[cfg(feature = "server")]
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

#[cfg(feature = "server")]
/// Where the three listeners bind (port 0 picks a free one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartOptions {
    /// The cloud API (KMS, OOS, STS) and the admin endpoints.
    pub api: SocketAddr,
    /// The ECS metadata server.
    pub imds: SocketAddr,
    /// The Kubernetes API.
    pub kubernetes: SocketAddr,
}

#[cfg(feature = "server")]
impl StartOptions {
    /// The API on `api`; the metadata server and the Kubernetes API on free
    /// ports of the same IP.
    pub fn new(api: SocketAddr) -> Self {
        let any_port = |ip: IpAddr| SocketAddr::new(ip, 0);
        StartOptions {
            api,
            imds: any_port(api.ip()),
            kubernetes: any_port(api.ip()),
        }
    }

    /// Binds the metadata server to `addr`.
    pub fn with_imds(mut self, addr: SocketAddr) -> Self {
        self.imds = addr;
        self
    }

    /// Binds the Kubernetes API to `addr`.
    pub fn with_kubernetes(mut self, addr: SocketAddr) -> Self {
        self.kubernetes = addr;
        self
    }
}

#[cfg(feature = "server")]
/// A running emulator. Dropping it stops the servers; [`Emulator::shutdown`]
/// also waits for them.
pub struct Emulator {
    addr: SocketAddr,
    imds_addr: SocketAddr,
    kubernetes_addr: SocketAddr,
    state: Arc<server::AppState>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

#[cfg(feature = "server")]
impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("imds_addr", &self.imds_addr)
            .field("kubernetes_addr", &self.kubernetes_addr)
            .finish()
    }
}

#[cfg(feature = "server")]
async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

#[cfg(feature = "server")]
fn spawn_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
    })
}

#[cfg(feature = "server")]
impl Emulator {
    /// Validates `seed`, binds `addr` (port 0 picks one) for the API, the
    /// metadata server and the Kubernetes API on free ports of the same IP,
    /// and starts serving on the current tokio runtime.
    pub async fn start(seed: Seed, addr: SocketAddr) -> Result<Emulator, StartError> {
        Emulator::start_with(seed, StartOptions::new(addr)).await
    }

    /// Like [`start`](Self::start), with each listener's address chosen.
    pub async fn start_with(seed: Seed, options: StartOptions) -> Result<Emulator, StartError> {
        seed.validate()?;
        let (api, local) = bind(options.api).await?;
        let (imds, imds_addr) = bind(options.imds).await?;
        let (kubernetes, kubernetes_addr) = bind(options.kubernetes).await?;
        let state = Arc::new(server::AppState::new(&seed));
        let (stop, stopped) = watch::channel(false);
        let servers = vec![
            spawn_server(api, server::router(state.clone()), stopped.clone()),
            spawn_server(imds, imds::router(state.clone()), stopped.clone()),
            spawn_server(kubernetes, kubernetes::router(state.clone()), stopped),
        ];
        tracing::info!(%local, %imds_addr, %kubernetes_addr, region = %seed.region,
            access_keys = seed.access_keys.len(), roles = seed.roles.len(),
            kms_secrets = seed.kms.secrets.len(), oos_parameters = seed.oos.parameters.len(),
            service_accounts = seed.service_accounts.len(), "emulator started");
        Ok(Emulator {
            addr: local,
            imds_addr,
            kubernetes_addr,
            state,
            stop,
            servers,
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

    /// The metadata server's address (stands for `100.100.100.200:80`).
    pub fn imds_addr(&self) -> SocketAddr {
        self.imds_addr
    }

    /// `http://127.0.0.1:PORT` of the metadata server.
    pub fn imds_url(&self) -> String {
        format!("http://{}", self.imds_addr)
    }

    /// The Kubernetes API's address.
    pub fn kubernetes_addr(&self) -> SocketAddr {
        self.kubernetes_addr
    }

    /// `http://127.0.0.1:PORT` of the Kubernetes API (plain HTTP).
    pub fn kubernetes_url(&self) -> String {
        format!("http://{}", self.kubernetes_addr)
    }

    /// `127.0.0.1:PORT`: what the SDKs take as `endpoint` (with protocol `http`).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The region the emulator serves.
    pub fn region(&self) -> String {
        self.state.lock().store.region.clone()
    }

    /// The emulator's clock, which every expiry and timestamp check reads:
    /// advance it instead of waiting.
    pub fn clock(&self) -> EmulatorClock<'_> {
        EmulatorClock { state: &self.state }
    }

    /// API counters (KMS, OOS, STS: see [`Stats::sts_calls`]) since start
    /// or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> Stats {
        self.state.lock().stats.snapshot()
    }

    /// Metadata-server counters per path kind.
    pub fn imds_stats(&self) -> ImdsStats {
        self.state.lock().imds.stats.snapshot()
    }

    /// Kubernetes API counters: `serviceaccounts` (and `other`) by outcome
    /// (`Success`, `NotFound`, `Unauthorized`, `Forbidden`, `ServiceUnavailable`).
    pub fn kubernetes_stats(&self) -> Stats {
        self.state.lock().kubernetes.stats.snapshot()
    }

    /// Zeroes all counters (API, metadata server, Kubernetes).
    pub fn reset_stats(&self) {
        self.state.lock().reset_stats();
    }

    /// Delay added to every API request from now on.
    pub fn set_latency(&self, latency: Latency) {
        self.state.lock().latency = latency;
    }

    /// The current latency setting.
    pub fn latency(&self) -> Latency {
        self.state.lock().latency
    }

    /// Holds every API request for `action` (`*`: any) at the emulator,
    /// after its latency and before it is authenticated and answered, until
    /// the returned [`Hold`] is released or dropped; [`Hold::arrivals`]
    /// waits for requests to arrive. For tests that need a request in
    /// flight.
    pub fn hold(&self, action: &str) -> Hold {
        Hold::new(self.state.clone(), action, None)
    }

    /// Like [`hold`](Self::hold), only for requests about `object` (KMS
    /// `SecretName`, OOS `Name`, STS `RoleArn`).
    pub fn hold_object(&self, action: &str, object: &str) -> Hold {
        Hold::new(self.state.clone(), action, Some(object))
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
        self.state.lock().faults.add(fault)
    }

    /// The installed faults with their remaining and fired counts.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.state.lock().faults.list()
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Adds or replaces a KMS secret.
    pub fn put_kms_secret(&self, secret: KmsSecret) -> Result<(), SeedError> {
        self.state.lock().put_kms_secret(secret)
    }

    /// Adds a version to a KMS secret as `PutSecretValue` does: it becomes
    /// `ACSCurrent` and the old current one `ACSPrevious`.
    pub fn rotate_kms_secret(
        &self,
        name: &str,
        version_id: &str,
        data: &str,
    ) -> Result<(), SeedError> {
        self.state.lock().rotate_kms_secret(name, version_id, data)
    }

    /// Adds or replaces an OOS parameter.
    pub fn put_oos_parameter(&self, parameter: OosParameter) -> Result<(), SeedError> {
        self.state.lock().put_oos_parameter(parameter)
    }

    /// Adds or replaces an access key.
    pub fn put_access_key(&self, key: AccessKey) -> Result<(), SeedError> {
        self.state.lock().put_access_key(key)
    }

    /// Adds or replaces a RAM role; credentials already issued for it get
    /// its new permissions at once. The OIDC providers it trusts must exist.
    pub fn put_role(&self, role: Role) -> Result<(), SeedError> {
        self.state.lock().iam.put_role(role)
    }

    /// Adds or replaces an OIDC identity provider.
    pub fn put_oidc_provider(&self, provider: OidcProvider) -> Result<(), SeedError> {
        self.state.lock().iam.put_oidc_provider(provider)
    }

    /// Makes every credential issued from now on (by STS or the metadata
    /// server) last `lifetime` (whole seconds, at least 1), whatever was
    /// asked; `None` restores `DurationSeconds` and the roles' own knobs.
    pub fn set_credential_lifetime(&self, lifetime: Option<Duration>) {
        self.state.lock().iam.set_lifetime_override(lifetime);
    }

    /// The lifetime override, if any.
    pub fn credential_lifetime(&self) -> Option<Duration> {
        self.state.lock().iam.lifetime_override()
    }

    /// Makes every live issued credential expire now (requests signed with
    /// them get `InvalidSecurityToken.Expired`; the metadata server hands
    /// out new ones); returns how many.
    pub fn expire_credentials(&self) -> usize {
        self.state.lock().expire_credentials(None)
    }

    /// Like [`expire_credentials`](Self::expire_credentials), for one role.
    pub fn expire_role_credentials(&self, role_arn: &str) -> usize {
        self.state.lock().expire_credentials(Some(role_arn))
    }

    /// The credentials STS and the metadata server issued (the latest
    /// 10,000), oldest first, secrets included.
    pub fn issued_credentials(&self) -> Vec<IssuedCredential> {
        self.state.lock().iam.issued()
    }

    /// Changes how the metadata server behaves (hardened, token endpoint).
    pub fn set_imds_mode(&self, mode: ImdsMode) {
        self.state.lock().imds.set_mode(mode);
    }

    /// The metadata server's current mode.
    pub fn imds_mode(&self) -> ImdsMode {
        self.state.lock().imds.mode()
    }

    /// Attaches a role (one of the emulator's) to the instance, or detaches it.
    pub fn set_imds_role(&self, role_arn: Option<&str>) -> Result<(), SeedError> {
        self.state
            .lock()
            .set_imds_role(role_arn.map(str::to_string))
    }

    /// Adds or replaces a Kubernetes ServiceAccount.
    pub fn put_service_account(&self, account: ServiceAccount) -> Result<(), SeedError> {
        self.state.lock().kubernetes.put(account)
    }

    /// Removes a Kubernetes ServiceAccount; `false` if there was none.
    pub fn remove_service_account(&self, namespace: &str, name: &str) -> bool {
        self.state.lock().kubernetes.remove(namespace, name)
    }

    /// Changes how the Kubernetes API behaves (forbidden, unavailable).
    pub fn set_kubernetes_mode(&self, mode: KubernetesMode) {
        self.state.lock().kubernetes.set_mode(mode);
    }

    /// The Kubernetes API's current mode.
    pub fn kubernetes_mode(&self) -> KubernetesMode {
        self.state.lock().kubernetes.mode()
    }

    /// An OIDC token for `namespace/name` as the kubelet would project it
    /// for audience `sts.aliyuncs.com`, from the OIDC provider `provider_arn`
    /// (its issuer; HS256 with its key if it has one), valid for `ttl`.
    pub fn service_account_token(
        &self,
        provider_arn: &str,
        namespace: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<String, SeedError> {
        let (provider, clock) = {
            let state = self.state.lock();
            (state.iam.oidc_provider(provider_arn), state.clock)
        };
        let provider = provider.ok_or_else(|| {
            SeedError::Invalid(format!("OIDC provider {provider_arn:?} does not exist"))
        })?;
        let claims = jwt::Claims::service_account(&provider.issuer, namespace, name)
            .with_audiences(provider.audiences.iter().take(1).cloned())
            .expiring_in(ttl)
            .shifted(clock.offset().whole_seconds());
        Ok(jwt::mint(&claims, provider.hmac_key.as_deref()))
    }

    /// Stops accepting, lets open requests finish (up to a few seconds) and
    /// waits for the server tasks.
    pub async fn shutdown(mut self) {
        self.state.lock().holds.release_all();
        let _ = self.stop.send(true);
        for mut server in std::mem::take(&mut self.servers) {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "emulator server failed"),
                Ok(_) => {}
                Err(_) => server.abort(),
            }
        }
    }
}

#[cfg(feature = "server")]
impl Drop for Emulator {
    fn drop(&mut self) {
        self.state.lock().holds.release_all();
        let _ = self.stop.send(true);
    }
}

#[cfg(feature = "server")]
/// The emulator's clock: the wall clock plus an offset, or frozen. Every
/// expiry and timestamp the emulator checks (issued credentials, signature
/// timestamps and nonces, OIDC token times, metadata-server tokens) is read
/// from it. From [`Emulator::clock`].
#[derive(Clone, Copy)]
pub struct EmulatorClock<'a> {
    state: &'a server::AppState,
}

#[cfg(feature = "server")]
impl std::fmt::Debug for EmulatorClock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorClock")
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(feature = "server")]
impl EmulatorClock<'_> {
    /// The emulator's time now.
    pub fn now(&self) -> OffsetDateTime {
        self.state.lock().clock.now()
    }

    /// Moves the clock forward by `by`, as if that much time had passed.
    pub fn advance(&self, by: Duration) {
        self.state.lock().clock.advance(by);
    }

    /// Stops the clock: from now on it moves only when advanced.
    pub fn freeze(&self) {
        self.state.lock().clock.freeze();
    }

    /// Back to the wall clock.
    pub fn reset(&self) {
        self.state.lock().clock = clock::Clock::default();
    }
}
