//! One Mount from request to response: parse the SecretProviderClass, fetch
//! every object concurrently through its plugin, build the files (aliases,
//! jmesPath, modes) and the object versions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::cloud::CloudClient;
use crate::config::Config;
use crate::fair::{FairShare, Permit};
use crate::fetches::{FetchKey, Fetches};
use crate::identity::imds::ImdsClient;
use crate::identity::{CredentialChain, MountAuth, OwnedMountIdentity};
use crate::plugin::{FetchError, FetchedObject, ObjectRequest, PluginError, PluginRuntime};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
use crate::region::Region;
use crate::session::CloudSession;
use crate::singleflight::{Expiring, Settings as FlightSettings, SingleFlight};
use crate::spc::{self, MountSpec, ObjectSpec, RawMount};

/// Slack after the Mount's deadline before the outer timeout fires.
const BACKSTOP: Duration = Duration::from_millis(100);

/// Longest version string accepted from a plugin.
const MAX_VERSION_LEN: usize = 1024;

/// The provider: everything a Mount needs, shared by all Mounts.
#[derive(Debug)]
pub struct Provider {
    config: Arc<Config>,
    plugins: Arc<PluginRuntime>,
    cloud: Arc<CloudClient>,
    credentials: Arc<CredentialChain>,
    region: RegionSource,
    /// CPU-bound steps (parsing the request, building the files) run on the
    /// blocking pool, at most one per core at a time and shared fairly by
    /// namespace, so that no request holds an async worker for long and one
    /// namespace's heavy requests do not queue another's.
    cpu: FairShare,
    /// Mounts in flight, shared fairly by namespace.
    mounts: FairShare,
    /// Fetches shared by Mounts, and the value cache.
    fetches: Fetches,
    /// Bytes of fetched objects held by Mounts in flight, in KiB
    /// (`limits.secret_bytes_in_flight`).
    secret_bytes: Arc<Semaphore>,
    /// The provider's metrics (served at the health server's `/metrics`).
    metrics: Arc<crate::metrics::Metrics>,
}

/// The region of Mounts whose SecretProviderClass names none: --region, else
/// `cloud.region`, else the node's region from the ECS metadata server
/// (looked up once; a failure is remembered for a while, not retried per
/// Mount), else [`UPSTREAM_DEFAULT_REGION`], as the upstream provider, whose
/// `--region` defaults to it.
#[derive(Debug)]
struct RegionSource {
    configured: Option<Region>,
    imds: Arc<ImdsClient>,
    /// The region found (`None`: the lookup failed, remembered for
    /// [`REGION_RETRY`]); one lookup serves every Mount that waits for it.
    discovered: SingleFlight<(), Option<Region>, std::convert::Infallible>,
}

/// How long a failed region lookup is remembered.
const REGION_RETRY: Duration = Duration::from_secs(30);

/// The region of a Mount when nothing else names one (no SecretProviderClass
/// `region`, no --region, no `cloud.region`, no answer from the metadata
/// server): the default of the upstream provider's `--region`.
pub const UPSTREAM_DEFAULT_REGION: &str = "cn-hangzhou";

/// The memo of the region the metadata server gave (one key).
fn region_memo() -> SingleFlight<(), Option<Region>, std::convert::Infallible> {
    SingleFlight::new(FlightSettings {
        max_entries: 1,
        idle_ttl: None,
        refresh_margin: Duration::ZERO,
        stale_on_error: None,
    })
}

impl RegionSource {
    async fn region(&self) -> Region {
        if let Some(region) = &self.configured {
            return region.clone();
        }
        let imds = self.imds.clone();
        let found = self.discovered.get_or_load(&(), || async move {
            Ok(match imds.region().await {
                Ok(region) => {
                    tracing::info!(%region, "region from the ECS metadata server");
                    Expiring::forever(Some(region))
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        region = UPSTREAM_DEFAULT_REGION,
                        retry_after = ?REGION_RETRY,
                        "the node's region is unknown (the ECS metadata server did not give it): SecretProviderClasses without `region` use the upstream provider's default region; set `region` in them, or start the provider with --region (chart: regionId)"
                    );
                    Expiring::until(None, tokio::time::Instant::now() + REGION_RETRY)
                }
            })
        });
        let found = match found.await {
            Ok((found, _)) => found.value,
            Err(never) => match never {},
        };
        found.unwrap_or_else(|| {
            Region::parse(UPSTREAM_DEFAULT_REGION).expect("the upstream default is a region id")
        })
    }
}

/// What the provider is made of (see [`Provider::from_parts`]).
pub struct ProviderParts {
    /// The configuration.
    pub config: Config,
    /// The loaded plugins.
    pub plugins: PluginRuntime,
    /// The signed-call client.
    pub cloud: Arc<CloudClient>,
    /// The credential chain.
    pub credentials: CredentialChain,
    /// --region, else `cloud.region`; `None`: ask the metadata server.
    pub default_region: Option<Region>,
    /// The metadata server (the node's region).
    pub imds: Arc<ImdsClient>,
    /// The provider's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What failed, classified for the gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The SecretProviderClass or request is wrong.
    InvalidArgument,
    /// An object does not exist.
    NotFound,
    /// The identity may not read an object.
    PermissionDenied,
    /// Temporary; the driver retries.
    Unavailable,
    /// Out of time.
    DeadlineExceeded,
    /// A size or memory limit.
    ResourceExhausted,
    /// A plugin bug or an unexpected answer.
    Internal,
}

/// A failed Mount. Messages name the objects and never carry secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MountError {
    /// The class of the (first) failure.
    pub kind: FailureKind,
    /// The whole message.
    pub message: String,
}

impl FailureKind {
    /// A label value (metrics).
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::InvalidArgument => "invalid_argument",
            FailureKind::NotFound => "not_found",
            FailureKind::PermissionDenied => "permission_denied",
            FailureKind::Unavailable => "unavailable",
            FailureKind::DeadlineExceeded => "deadline_exceeded",
            FailureKind::ResourceExhausted => "resource_exhausted",
            FailureKind::Internal => "internal",
        }
    }
}

impl MountError {
    fn new(kind: FailureKind, message: impl Into<String>) -> MountError {
        MountError {
            kind,
            message: message.into(),
        }
    }
}

impl Provider {
    /// The provider made of its parts (the composition root, `app`, builds
    /// them from the configuration and the environment); the Mount's own
    /// machinery (fair shares, shared fetches, the secret-bytes budget) is
    /// sized from `parts.config.limits`.
    pub fn from_parts(parts: ProviderParts) -> Provider {
        let ProviderParts {
            config,
            plugins,
            cloud,
            credentials,
            default_region,
            imds,
            metrics,
        } = parts;
        Provider {
            plugins: Arc::new(plugins),
            cloud,
            credentials: Arc::new(credentials),
            region: RegionSource {
                configured: default_region,
                imds,
                discovered: region_memo(),
            },
            cpu: {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                FairShare::new(cores, cores.saturating_sub(1).max(1))
            },
            mounts: FairShare::new(
                config.limits.mounts_in_flight,
                config.limits.mounts_in_flight_per_namespace,
            ),
            fetches: Fetches::new(&config.cache).with_metrics(metrics.clone()),
            metrics,
            secret_bytes: Arc::new(Semaphore::new(
                config.limits.secret_bytes_in_flight.div_ceil(1024),
            )),
            config: Arc::new(config),
        }
    }

    /// Runs a CPU-bound step of a Mount on the blocking pool, one per core at
    /// a time. A panic in it fails this Mount only, as an internal error.
    async fn cpu<T: Send + 'static>(
        &self,
        namespace: &str,
        step: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, MountError> {
        let _permit = self.cpu.acquire(namespace).await;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(step, error = %e, "a Mount step panicked");
            MountError::new(
                FailureKind::Internal,
                format!("the provider failed while {step} (a bug; please report it with the provider's log)"),
            )
        })
    }

    /// The shared credential chain.
    pub fn credential_chain(&self) -> Arc<CredentialChain> {
        self.credentials.clone()
    }

    /// The shared cloud client.
    pub fn cloud_client(&self) -> Arc<CloudClient> {
        self.cloud.clone()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Shared fetches and the value cache (for their counters).
    pub fn fetches(&self) -> &Fetches {
        &self.fetches
    }

    /// The shared cloud client (for its counters).
    pub fn cloud(&self) -> &CloudClient {
        &self.cloud
    }

    /// The provider's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The routed objectTypes.
    pub fn object_types(&self) -> Vec<&str> {
        self.plugins.object_types()
    }

    /// The deadline of a Mount: the configured bound, and the caller's gRPC
    /// deadline less the margin, whichever comes first.
    pub fn mount_deadline(&self, caller: Option<Instant>) -> Result<Instant, MountError> {
        let now = Instant::now();
        let own = now + self.config.limits.mount_timeout;
        let Some(caller) = caller else {
            return Ok(own);
        };
        let margin = self.config.limits.deadline_margin;
        match caller.checked_sub(margin).filter(|d| *d > now) {
            Some(d) => Ok(d.min(own)),
            None => Err(MountError::new(
                FailureKind::DeadlineExceeded,
                format!(
                    "the caller's deadline ({:?} from now) leaves less than the provider's margin of {margin:?} (config key limits.deadline_margin)",
                    caller.saturating_duration_since(now)
                ),
            )),
        }
    }

    /// Serves one Mount.
    pub async fn mount(
        &self,
        request: MountRequest,
        deadline: Instant,
    ) -> Result<MountResponse, MountError> {
        // The tenant key, read before the (bounded, but costlier) whole parse.
        let namespace = spc::pod_namespace(&request.attributes).unwrap_or_default();
        let _turn = self.turn(&namespace, deadline).await?;
        let limits = spc::RequestLimits::from(&self.config.limits);
        let spec = self
            .cpu(&namespace, "parsing the Mount request", move || {
                spc::parse(
                    RawMount {
                        attributes: &request.attributes,
                        secrets: &request.secrets,
                        permission: &request.permission,
                        target_path: &request.target_path,
                    },
                    &limits,
                )
            })
            .await?
            .map_err(|e| MountError::new(FailureKind::InvalidArgument, e.0))?;
        let spec = Arc::new(spec);
        for warning in &spec.warnings {
            tracing::warn!(pod = %spec.pod, "{warning}");
        }
        self.check_routes(&spec)?;

        let region = match &spec.region {
            Some(region) => region.clone(),
            None => self.region.region().await,
        };
        let auth = Arc::new(MountAuth::new(
            self.credentials.clone(),
            OwnedMountIdentity {
                pod: spec.pod.clone(),
                node_publish_secrets: spec.node_publish_secrets.clone(),
                use_pod_service_account_token: spec.use_pod_service_account_token,
                service_account_tokens: spec.service_account_tokens.clone(),
                pod_role_arn: spec.pod_role_arn.clone(),
            },
            deadline,
        ));
        let mount_label: Arc<str> = Arc::from(spec.pod.to_string());
        let (fetched, _holding) = self
            .fetch_all(&spec, region.into_string(), auth.clone(), deadline, mount_label)
            .await
            .map_err(|mut e| {
                // The event then says why another identity was used.
                if let Some(reason) = auth.fallback() {
                    e.message.push_str(&format!(
                        "; note: pod identity (usePodServiceAccountToken) was skipped ({reason}), so the provider's identity was used, as the upstream provider does (identity.policy = \"upstream\")"
                    ));
                }
                e
            })?;
        let limits = self.config.limits.clone();
        self.cpu(&namespace, "building the files", move || {
            build_response(&spec, fetched, &limits)
        })
        .await?
    }

    /// Waits for this namespace's turn among the Mounts in flight, until the
    /// Mount's deadline. A namespace with as many Mounts waiting as its share
    /// is refused at once (UNAVAILABLE: the driver retries later).
    async fn turn(&self, namespace: &str, deadline: Instant) -> Result<Permit, MountError> {
        let share = self.mounts.per_key();
        let waited = Instant::now();
        let turn = self.mounts.acquire_queueing_at_most(namespace, share);
        match tokio::time::timeout_at(deadline.into(), turn).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(usage)) => Err(MountError::new(
                FailureKind::Unavailable,
                format!(
                    "namespace {namespace:?} has {} Mounts in flight and {} waiting on this node, its share (config key limits.mounts_in_flight_per_namespace = {share}); retry later",
                    usage.held, usage.waiting
                ),
            )),
            Err(_) => {
                let usage = self.mounts.usage(namespace);
                Err(MountError::new(
                    FailureKind::DeadlineExceeded,
                    format!(
                        "the Mount waited {} for its turn and ran out of time: namespace {namespace:?} has {} of its {share} Mounts in flight and the node {} of {} (config keys limits.mounts_in_flight_per_namespace, limits.mounts_in_flight)",
                        round(waited.elapsed()),
                        usage.held,
                        usage.in_use,
                        self.mounts.capacity()
                    ),
                ))
            }
        }
    }

    fn check_routes(&self, spec: &MountSpec) -> Result<(), MountError> {
        for object in &spec.objects {
            if !self.plugins.routes(&object.object_type) {
                // upstream: unsupported object type "x", only support "kms" and "oos"
                return Err(MountError::new(
                    FailureKind::InvalidArgument,
                    format!(
                        "{}: unsupported object type {:?}, only support {}",
                        object.label(),
                        object.object_type,
                        crate::plugin::quoted_list(&self.plugins.object_types())
                    ),
                ));
            }
            if let Some(role) = &object.cross_account_role_arn
                && let Err(e) = crate::identity::check_role_arn(role)
            {
                return Err(MountError::new(
                    FailureKind::InvalidArgument,
                    format!("{}: crossAccountRoleArn: {e}", object.label()),
                ));
            }
        }
        Ok(())
    }

    async fn fetch_all(
        &self,
        spec: &MountSpec,
        region: String,
        auth: Arc<MountAuth>,
        deadline: Instant,
        mount_label: Arc<str>,
    ) -> Result<(Vec<FetchedObject>, Holding), MountError> {
        let done: Vec<AtomicBool> = spec
            .objects
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let per_mount = Semaphore::new(self.config.limits.fetch_concurrency_per_mount);
        // The files of a Mount are bounded as objects arrive, not after: a
        // Mount of many large objects stops at the limit instead of holding
        // them all.
        let holding = Holding {
            node: self.secret_bytes.clone(),
            node_limit: self.config.limits.secret_bytes_in_flight,
            mount_limit: self.config.limits.response_max_bytes,
            permit: std::sync::Mutex::new(None),
            bytes: AtomicUsize::new(0),
        };
        let over_budget = Notify::new();
        let over_budget_error = std::sync::Mutex::new(None);
        let fetches: Vec<_> = spec
            .objects
            .iter()
            .enumerate()
            .map(|(i, object)| {
                let request = self.object_request(object, &region);
                let session = Arc::new(
                    CloudSession::new(
                        self.cloud.clone(),
                        auth.clone(),
                        object.cross_account_role_arn.clone(),
                        region.clone(),
                        deadline,
                    )
                    .for_object(&object.name, &object.object_type),
                );
                let label = mount_label.clone();
                let (done, per_mount) = (&done, &per_mount);
                let (holding, over_budget, over_budget_error) =
                    (&holding, &over_budget, &over_budget_error);
                let auth = auth.clone();
                let cross_account = object.cross_account_role_arn.clone();
                let object_type = object.object_type.clone();
                async move {
                    let _in_flight = self.metrics.object_fetch_started();
                    let _mount_slot = per_mount.acquire().await.expect("never closed");
                    let namespace = spec.pod.namespace.clone();
                    let plugins = self.plugins.clone();
                    // Shared with other Mounts of the same identity when the
                    // plugin depends on nothing else; if the identity cannot
                    // be resolved, the plugin's own call reports why.
                    let key = if self.plugins.shareable(&request.object_type) {
                        auth.identity_key().await.ok().map(|identity| FetchKey {
                            identity,
                            cross_account,
                            object_type: request.object_type.clone(),
                            name: request.name.clone(),
                            version: request.version.clone(),
                            version_label: request.version_label.clone(),
                            endpoint: request.endpoint.clone(),
                            region: request.region.clone(),
                            parameters: request.parameters.clone(),
                        })
                    } else {
                        None
                    };
                    let fetch = async move {
                        plugins
                            .fetch(request, session, deadline, label, &namespace)
                            .await
                    };
                    let result = match key {
                        Some(key) => self
                            .fetches
                            .get(key, fetch)
                            .await
                            .map(|shared| shared.to_fetched()),
                        None => fetch.await,
                    };
                    let outcome = match &result {
                        Ok(_) => "ok",
                        Err(error) => classify(error).label(),
                    };
                    self.metrics.object_fetched(&object_type, outcome);
                    if let Ok(object) = &result
                        && let Err(error) = holding.add(object.contents.len())
                    {
                        *over_budget_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                        over_budget.notify_one();
                    }
                    done[i].store(true, Ordering::Relaxed);
                    result
                }
            })
            .collect();
        let fetches = futures::future::join_all(fetches);
        let budget = deadline.saturating_duration_since(Instant::now());
        // Plugins and cloud calls stop at the deadline with specific errors;
        // this outer bound only catches what they did not.
        let backstop = deadline + BACKSTOP;
        let fetches = async {
            tokio::select! {
                results = fetches => Ok(results),
                () = over_budget.notified() => Err(()),
            }
        };
        let results = match tokio::time::timeout_at(backstop.into(), fetches).await {
            Ok(Ok(results)) => results,
            Ok(Err(())) => {
                let error = over_budget_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                return Err(error.expect("set before the notification"));
            }
            Err(_) => {
                let pending: Vec<String> = spec
                    .objects
                    .iter()
                    .zip(&done)
                    .filter(|(_, d)| !d.load(Ordering::Relaxed))
                    .map(|(o, _)| o.label())
                    .collect();
                return Err(MountError::new(
                    FailureKind::DeadlineExceeded,
                    format!(
                        "the Mount did not finish within {}; still fetching {}",
                        round(budget),
                        pending.join(", ")
                    ),
                ));
            }
        };

        let mut objects = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (object, result) in spec.objects.iter().zip(results) {
            match result {
                Ok(fetched) => objects.push(fetched),
                Err(error) => failures.push((object, error)),
            }
        }
        if failures.is_empty() {
            return Ok((objects, holding));
        }
        // A failure after the deadline is the deadline's, whatever the
        // plugin called it (a cut-off cloud call looks "unavailable").
        let kind = if Instant::now() >= deadline {
            FailureKind::DeadlineExceeded
        } else {
            classify(&failures[0].1)
        };
        let describe = |(o, e): &(&ObjectSpec, PluginError)| {
            format!("{} objectType {}: {e}", o.label(), o.object_type)
        };
        let message = if failures.len() == 1 {
            describe(&failures[0])
        } else {
            format!(
                "{} of {} objects failed: {}",
                failures.len(),
                spec.objects.len(),
                failures.iter().map(describe).collect::<Vec<_>>().join("; ")
            )
        };
        Err(MountError::new(kind, message))
    }

    fn object_request(&self, object: &ObjectSpec, region: &str) -> ObjectRequest {
        ObjectRequest {
            name: object.name.clone(),
            object_type: object.object_type.clone(),
            version: object.version.clone(),
            version_label: object.version_label.clone(),
            endpoint: object.kms_endpoint.clone(),
            region: region.to_string(),
            parameters: object.parameters.clone(),
            config: self
                .plugins
                .plugin_config(&object.object_type)
                .unwrap_or_default()
                .to_vec(),
        }
    }
}

/// The files and object versions of a Mount: aliases, jmesPath extractions
/// and modes. The size of the files is checked as each one is added.
fn build_response(
    spec: &MountSpec,
    fetched: Vec<FetchedObject>,
    limits: &crate::config::Limits,
) -> Result<MountResponse, MountError> {
    let mut files = Vec::new();
    let mut versions = Vec::new();
    let mut total = 0usize;
    let mut add = |files: &mut Vec<File>, file: File| {
        total = total.saturating_add(file.contents.len() + file.path.len());
        if total > limits.response_max_bytes {
            return Err(too_large(total, limits.response_max_bytes));
        }
        files.push(file);
        Ok(())
    };
    for (object, fetched) in spec.objects.iter().zip(fetched) {
        let version = fetched.version;
        if version.is_empty() || version.len() > MAX_VERSION_LEN {
            return Err(MountError::new(
                FailureKind::Internal,
                format!(
                    "{}: the {} plugin returned a version of {} bytes; a version must have 1 to {MAX_VERSION_LEN}",
                    object.label(),
                    object.object_type,
                    version.len()
                ),
            ));
        }
        let mode = object.file_permission.unwrap_or(spec.default_mode) as i32;
        if !object.jmes_path.is_empty() {
            let document =
                crate::jmes::parse_document(&fetched.contents, &object.name).map_err(|e| {
                    MountError::new(
                        FailureKind::InvalidArgument,
                        format!("{}: {e}", object.label()),
                    )
                })?;
            for entry in &object.jmes_path {
                let value = entry.query.extract(&document, &entry.alias).map_err(|e| {
                    MountError::new(
                        FailureKind::InvalidArgument,
                        format!("{}: {e}", object.label()),
                    )
                })?;
                add(
                    &mut files,
                    File {
                        path: entry.file_path.clone(),
                        mode,
                        contents: value.into_bytes(),
                    },
                )?;
                versions.push(ObjectVersion {
                    id: entry.file_path.clone(),
                    version: version.clone(),
                });
            }
        }
        add(
            &mut files,
            File {
                path: object.file_path.clone(),
                mode,
                contents: fetched.contents,
            },
        )?;
        versions.push(ObjectVersion {
            id: object.file_path.clone(),
            version,
        });
    }
    versions.sort_by(|a, b| a.id.cmp(&b.id));

    let total: usize = files.iter().map(|f| f.contents.len() + f.path.len()).sum();
    if total > limits.response_warn_bytes {
        tracing::warn!(
            pod = %spec.pod,
            bytes = total,
            "the Mount's files exceed {} bytes: syncing them to a Kubernetes Secret (1 MiB cap) may fail",
            limits.response_warn_bytes
        );
    }
    Ok(MountResponse {
        object_version: versions,
        error: None,
        files,
    })
}

/// The bytes of fetched objects one Mount holds, counted against its own
/// limit (`limits.response_max_bytes`) and the node's
/// (`limits.secret_bytes_in_flight`), which it returns when dropped.
struct Holding {
    node: Arc<Semaphore>,
    node_limit: usize,
    mount_limit: usize,
    permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    bytes: AtomicUsize,
}

impl Holding {
    fn add(&self, size: usize) -> Result<(), MountError> {
        let total = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if total > self.mount_limit {
            return Err(too_large(total, self.mount_limit));
        }
        let kib = u32::try_from(size.div_ceil(1024)).unwrap_or(u32::MAX);
        let more = self.node.clone().try_acquire_many_owned(kib).map_err(|_| {
            MountError::new(
                FailureKind::Unavailable,
                format!(
                    "Mounts in flight on this node already hold {} bytes of secrets (config key limits.secret_bytes_in_flight); retry later",
                    self.node_limit
                ),
            )
        })?;
        let mut permit = self.permit.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *permit {
            Some(held) => held.merge(more),
            None => *permit = Some(more),
        }
        Ok(())
    }
}

/// The Mount's files would exceed `limits.response_max_bytes`.
fn too_large(total: usize, limit: usize) -> MountError {
    MountError::new(
        FailureKind::ResourceExhausted,
        format!(
            "the Mount's files total more than {limit} bytes (at least {total}; config key limits.response_max_bytes; the driver's default gRPC limit is 4 MiB); split the objects across several SecretProviderClasses"
        ),
    )
}

fn classify(error: &PluginError) -> FailureKind {
    match error {
        PluginError::UnknownObjectType { .. } => FailureKind::InvalidArgument,
        PluginError::Fetch(FetchError::NotFound(_)) => FailureKind::NotFound,
        PluginError::Fetch(FetchError::PermissionDenied(_)) => FailureKind::PermissionDenied,
        PluginError::Fetch(FetchError::InvalidRequest(_)) => FailureKind::InvalidArgument,
        PluginError::Fetch(FetchError::Unavailable(_)) => FailureKind::Unavailable,
        PluginError::Fetch(FetchError::Other(_)) => FailureKind::Internal,
        PluginError::Trapped { .. } => FailureKind::Internal,
        PluginError::TimedOut { .. } => FailureKind::DeadlineExceeded,
        PluginError::NodeMemory { .. } => FailureKind::Unavailable,
        PluginError::MemoryLimit { .. }
        | PluginError::OutputTooLarge { .. }
        | PluginError::HostCallLimit { .. } => FailureKind::ResourceExhausted,
    }
}

fn round(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod region_tests {
    use super::*;
    use crate::identity::imds::ImdsSettings;

    fn source(configured: Option<&str>, imds: ImdsSettings) -> RegionSource {
        RegionSource {
            configured: configured.map(|r| Region::parse(r).unwrap()),
            imds: Arc::new(ImdsClient::new(imds).unwrap()),
            discovered: region_memo(),
        }
    }

    #[tokio::test]
    async fn without_metadata_access_the_region_is_the_upstream_default() {
        for imds in [
            ImdsSettings {
                disabled: true,
                ..ImdsSettings::default()
            },
            // Nothing listens there: connection refused.
            ImdsSettings {
                base_url: crate::net::BaseUrl::parse(
                    "http://127.0.0.1:1",
                    crate::net::ClearText::Allowed,
                )
                .unwrap(),
                ..ImdsSettings::default()
            },
        ] {
            let regions = source(None, imds);
            assert_eq!(regions.region().await, "cn-hangzhou");
            // The failure is remembered: the second Mount does not ask again.
            let after_one = regions.discovered.stats();
            assert_eq!((after_one.loads, after_one.size), (1, 1));
            assert_eq!(regions.region().await, "cn-hangzhou");
            let after_two = regions.discovered.stats();
            assert_eq!((after_two.loads, after_two.hits), (1, 1));
        }
        assert_eq!(UPSTREAM_DEFAULT_REGION, "cn-hangzhou");
    }

    #[tokio::test]
    async fn a_configured_region_comes_first() {
        let regions = source(
            Some("ap-southeast-1"),
            ImdsSettings {
                base_url: crate::net::BaseUrl::parse(
                    "http://127.0.0.1:1",
                    crate::net::ClearText::Allowed,
                )
                .unwrap(),
                ..ImdsSettings::default()
            },
        );
        assert_eq!(regions.region().await, "ap-southeast-1");
        assert_eq!(regions.discovered.stats().loads, 0, "no lookup");
    }
}
