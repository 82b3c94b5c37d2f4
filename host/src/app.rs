//! The composition root: builds the provider's parts from the configuration
//! and the process environment ([`provider`]), binds the socket and the
//! health server, and serves until shutdown ([`App`]). `main`, the tests and
//! the benchmarks all start the provider through here, so they run the same
//! wiring.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use crate::cloud::CloudClient;
use crate::config::Config;
use crate::health;
use crate::identity::cache::CacheSettings;
use crate::identity::imds::{ImdsClient, ImdsSettings};
use crate::identity::kube::{KubeClient, KubeConfig, LookupSettings, RoleArnLookup};
use crate::identity::sts::StsClient;
use crate::identity::{CredentialChain, IdentitySettings};
use crate::mount::{Provider, ProviderParts};
use crate::plugin::PluginRuntime;
use crate::region::Region;
use crate::server::{self, SOCKET_FILE, SocketGuard};

/// The provider name the driver looks for: `spec.provider: alibabacloud`.
pub const PROVIDER_NAME: &str = "alibabacloud";

/// Start-up failure of the provider.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::LoadError),
    /// The cloud client could not be built.
    #[error("invalid cloud configuration: {0}")]
    Cloud(#[from] crate::cloud::ClientError),
    /// A value of the configuration is invalid (when a `Config` built in
    /// code, not read by `Config::load`, reaches here).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The --region flag is not a region id.
    #[error(
        "--region {} is not an Alibaba Cloud region id ({}, e.g. cn-hangzhou)",
        .0.shown(),
        crate::region::REGION_RULE
    )]
    Region(crate::region::RegionError),
    /// The identity settings (environment or `[identity]`) are invalid.
    #[error("invalid identity settings: {0}")]
    Identity(#[from] crate::identity::SettingsError),
    /// The ECS metadata client cannot be built (`identity.metadata_url`).
    #[error("invalid identity settings: {0}")]
    Metadata(#[source] crate::identity::imds::ImdsError),
    /// The Kubernetes client cannot be built (`identity.kubernetes_url`).
    #[error("invalid identity settings: {0}")]
    Kubernetes(#[source] crate::identity::kube::KubeError),
    /// The configuration does not fit the container's memory limit.
    #[error(transparent)]
    Memory(#[from] crate::memory::OverLimit),
    /// The socket cannot be bound.
    #[error("cannot listen on {}: {source}{hint}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
        /// What to check.
        hint: String,
    },
    /// The health server cannot listen.
    #[error(transparent)]
    Health(std::io::Error),
}

impl StartError {
    /// Whether the configuration (config file, flags, environment) is at
    /// fault, rather than the node (socket directory, ports): the process
    /// exits with EX_USAGE for these.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, StartError::Socket { .. } | StartError::Health(_))
    }
}

/// Builds the provider from its configuration; `region` is the --region
/// flag; `env` is the process environment (read once, here).
pub async fn provider(
    config: Config,
    region: Option<String>,
    env: Vec<(String, String)>,
) -> Result<Provider, StartError> {
    provider_resolving(config, region, env, Vec::new()).await
}

/// [`provider`], with the cloud API's DNS answers fixed for some hosts (see
/// [`CloudClient::with_resolve`]). For tests only: the process has no way to
/// set them.
#[doc(hidden)]
pub async fn provider_resolving(
    config: Config,
    region: Option<String>,
    env: Vec<(String, String)>,
    resolve: Vec<(String, SocketAddr)>,
) -> Result<Provider, StartError> {
    // One rule for --region and cloud.region (`Region::parse`); the config's
    // region was checked by `Config::validate`.
    let default_region = match region.filter(|r| !r.is_empty()) {
        Some(r) => Some(Region::parse(&r).map_err(StartError::Region)?),
        None => config.cloud.default_region()?,
    };
    let memory_limit = crate::memory::cgroup_limit(std::path::Path::new("/sys/fs/cgroup"));
    let planned = crate::memory::check(&config, memory_limit).map_err(StartError::Memory)?;
    tracing::info!(
        planned_mib = planned >> 20,
        container_limit_mib = memory_limit.map(|l| l >> 20),
        "memory plan"
    );
    let plugins = PluginRuntime::load(&config).await?;
    // One set per provider, handed to each part that counts.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let cloud = Arc::new(
        CloudClient::with_resolve(&config.cloud, env.iter().cloned(), resolve)
            .map_err(StartError::Cloud)?
            .with_metrics(metrics.clone()),
    );
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let id = &config.identity;
    let settings = IdentitySettings::new(lookup, id)?;
    // Settings upstream started with and that fail (or may fail) per
    // Mount: a warning now, the error on the Mounts they affect.
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let imds = Arc::new(
        ImdsClient::new(ImdsSettings {
            base_url: id.metadata_base_url()?,
            ..ImdsSettings::from_env(lookup)
        })
        .map_err(StartError::Metadata)?,
    );
    if let Some(problem) = imds.problem() {
        tracing::warn!("{problem}: the ECS RAM role link fails on every Mount that reaches it");
    }
    let lookup_settings = LookupSettings {
        ttl: id.service_account_cache_ttl,
        ..LookupSettings::default()
    };
    let token_file = std::path::Path::new(&id.kubernetes_token_file);
    let roles = if let Some(base_url) = id.kubernetes_base_url()? {
        let non_empty = |s: &str| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
        let kube = KubeClient::new(KubeConfig::new(
            base_url,
            id.kubernetes_token_file.clone(),
            non_empty(&id.kubernetes_ca_file),
        ))
        .map_err(StartError::Kubernetes)?;
        RoleArnLookup::new(Some(kube), lookup_settings)
    } else {
        // Without a mounted API token (chart: rbac.readServiceAccounts =
        // false) pod identity needs the SecretProviderClass's podRoleArn.
        if token_file.is_file() {
            // In-cluster, as upstream's client-go: a client that cannot
            // be set up fails each ServiceAccount lookup, not start-up.
            match KubeConfig::in_cluster(
                lookup,
                token_file,
                std::path::Path::new(&id.kubernetes_ca_file),
            )
            .and_then(|config| config.map(KubeClient::new).transpose())
            {
                Ok(kube) => RoleArnLookup::new(kube, lookup_settings),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "the Kubernetes client cannot be set up: ServiceAccount role annotations cannot be read (with identity.policy = \"upstream\", pod identity falls back to the provider's identity, as upstream)"
                    );
                    RoleArnLookup::unavailable(e.to_string(), lookup_settings)
                }
            }
        } else {
            tracing::info!(
                token_file = %token_file.display(),
                "no Kubernetes API token: ServiceAccount role annotations are not read; pod identity needs podRoleArn"
            );
            RoleArnLookup::new(None, lookup_settings)
        }
    };
    let credentials = CredentialChain::new(
        settings,
        StsClient::new(cloud.clone()),
        CacheSettings {
            refresh_margin: id.refresh_margin,
            max_entries: id.cache_max_entries,
            idle_ttl: id.cache_idle_ttl,
        },
        roles,
        imds.clone(),
    )
    .with_metrics(metrics.clone());
    Ok(Provider::from_parts(ProviderParts {
        config,
        plugins,
        cloud,
        credentials,
        default_region,
        imds,
        metrics,
    }))
}

/// Where and how [`App`] serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The directory of the socket ([`SOCKET_FILE`] in it).
    pub socket_dir: PathBuf,
    /// The health server; `None`: none (tests).
    pub health: Option<HealthOptions>,
}

/// The health server's address and checks (see [`health::HealthSettings`]).
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Address to listen on; `None`: every address, IPv6 and IPv4.
    pub bind: Option<IpAddr>,
    /// Port (0: any free port).
    pub port: u16,
    /// Path of the readiness check.
    pub path: String,
    /// How long one check may take.
    pub timeout: Duration,
}

type HealthServer = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// The provider bound to its socket (and health port), ready to serve.
pub struct App {
    provider: Arc<Provider>,
    listener: UnixListener,
    socket: PathBuf,
    guard: SocketGuard,
    health: Option<(SocketAddr, HealthServer)>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("socket", &self.socket)
            .field("health", &self.health.as_ref().map(|(addr, _)| addr))
            .finish_non_exhaustive()
    }
}

impl App {
    /// Binds `provider` to `<socket_dir>/alibabacloud.sock` and, if asked,
    /// the health server: bind failures are start-up errors, not log lines.
    pub async fn bind(provider: Provider, options: ServeOptions) -> Result<App, StartError> {
        let provider = Arc::new(provider);
        if let Some(warning) = server::socket_dir_warning(&options.socket_dir) {
            tracing::warn!("{warning}");
        }
        let socket = options.socket_dir.join(SOCKET_FILE);
        let listener = server::bind_socket(&socket).map_err(|source| {
            let hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    " (the socket's directory must be writable by this process, uid {}, and by no other user; the Helm chart prepares <providersDir>/alibabacloud for it)",
                    rustix::process::geteuid().as_raw()
                )
            } else {
                String::new()
            };
            StartError::Socket {
                path: socket.clone(),
                source,
                hint,
            }
        })?;
        let guard = SocketGuard(socket.clone());
        let (stop, _) = tokio::sync::watch::channel(false);
        let health = match options.health {
            None => None,
            Some(h) => {
                let mut stopped = stop.subscribe();
                let (addr, serve) = health::bind(
                    health::HealthSettings {
                        bind: h.bind,
                        port: h.port,
                        path: h.path,
                        timeout: h.timeout,
                        socket: socket.clone(),
                        metrics: Some(provider.metrics().clone()),
                    },
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )
                .await
                .map_err(StartError::Health)?;
                Some((addr, Box::pin(serve) as HealthServer))
            }
        };
        Ok(App {
            provider,
            listener,
            socket,
            guard,
            health,
            stop,
        })
    }

    /// The provider being served.
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The health server's address, if there is one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(|(addr, _)| *addr)
    }

    /// Serves Mounts (and health checks) until `shutdown`, then stops
    /// gracefully: no new connections, in-flight Mounts finish within
    /// `limits.shutdown_grace`. The socket is removed when this returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let App {
            provider,
            listener,
            guard,
            health,
            stop,
            ..
        } = self;
        let health_task = health.map(|(_, serve)| tokio::spawn(serve));
        let grace = provider.config().limits.shutdown_grace;
        let stopping = stop.clone();
        let result = server::serve(
            provider,
            listener,
            async move {
                shutdown.await;
                let _ = stopping.send(true);
            },
            grace,
        )
        .await;
        let _ = stop.send(true);
        if let Some(task) = health_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        drop(guard);
        result
    }
}
