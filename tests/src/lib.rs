//! Test harness: the provider serving its real Unix socket in-process, a gRPC
//! client that speaks to it as the CSI driver does, and the local Alibaba
//! Cloud emulator over HTTP. Tests read like prose:
//!
//! ```ignore
//! let cloud = FakeCloud::start(seed()).await;
//! let provider = TestProvider::start(cloud.config(), cloud.env()).await;
//! let response = provider.mount(Mount::objects("- objectName: test")).await?;
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alibabacloud_emulator::{AccessKey, Emulator, KmsSecret, KmsSecretVersion, OosParameter, Seed};
use provider::Provider;
use provider::config::Config;
use provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use provider::proto::{MountRequest, MountResponse};
use provider::spc;
use tonic::transport::Channel;

pub use alibabacloud_emulator as emulator;

pub mod fake_vault;
pub mod tls;
pub mod upstream;

/// The access key the default seed accepts.
pub const ACCESS_KEY_ID: &str = "testid";
/// Its secret.
pub const ACCESS_KEY_SECRET: &str = "testsecret-0123456789";

/// The seed document's example plus the objects the tests use.
pub fn default_seed() -> Seed {
    Seed::default()
        .with_access_key(AccessKey::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET))
        .with_kms_secret(
            KmsSecret::text(
                "test",
                r#"{"username":"testuser","password":"testpassword"}"#,
            )
            .with_version(
                KmsSecretVersion::new("v0", r#"{"username":"testuser","password":"oldpassword"}"#)
                    .with_stages(["ACSPrevious"]),
            ),
        )
        .with_kms_secret(KmsSecret::binary("binary-test", &[0, 159, 146, 150, 255]))
        .with_oos_parameter(
            OosParameter::new("db/password", "first-password").with_version(2, "second-password"),
        )
}

/// The cluster's OIDC provider in [`identity_seed`].
pub const OIDC_PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee";
/// Its issuer (the `iss` of pod tokens).
pub const OIDC_ISSUER: &str = "https://oidc-ack-cn-hangzhou.example/c0ffee";
/// team-a's pod role: reads `team-a/*`.
pub const TEAM_A_ROLE: &str = "acs:ram::1234567890123456:role/team-a-app";
/// team-b's pod role: reads `team-b/*`.
pub const TEAM_B_ROLE: &str = "acs:ram::1234567890123456:role/team-b-app";
/// The worker nodes' ECS RAM role: reads `node/*` and `test`.
pub const NODE_ROLE: &str = "acs:ram::1234567890123456:role/ack-worker-node";
/// The provider's own role (provider RRSA, or AssumeRole with the test key).
pub const PROVIDER_ROLE: &str = "acs:ram::1234567890123456:role/csi-secrets-store-provider";
/// A role in another account, assumable from team-a's role with [`EXTERNAL_ID`].
pub const SHARED_ROLE: &str = "acs:ram::6543210987654321:role/shared-secrets-reader";
/// The ExternalId [`SHARED_ROLE`] requires.
pub const EXTERNAL_ID: &str = "c0ffee-external-id";

/// [`default_seed`] plus an RRSA cluster: an OIDC provider, pod roles for
/// team-a and team-b, the node role on the metadata server, the provider's
/// role, a cross-account role, and annotated service accounts.
pub fn identity_seed() -> Seed {
    use alibabacloud_emulator::{ImdsSeed, OidcProvider, Role, ServiceAccount};
    default_seed()
        .with_kms_secret(KmsSecret::text("team-a/db", "team-a-password"))
        .with_kms_secret(KmsSecret::text("team-b/db", "team-b-password"))
        .with_kms_secret(KmsSecret::text("node/bootstrap", "node-only"))
        .with_kms_secret(KmsSecret::text("shared/config", "shared-value"))
        .with_oidc_provider(OidcProvider::new(OIDC_PROVIDER, OIDC_ISSUER))
        .with_role(
            Role::new(TEAM_A_ROLE)
                .allowing(["kms:secret/team-a/*"])
                .trusting_oidc(OIDC_PROVIDER, ["system:serviceaccount:team-a:app"]),
        )
        .with_role(
            Role::new(TEAM_B_ROLE)
                .allowing(["kms:secret/team-b/*"])
                .trusting_oidc(OIDC_PROVIDER, ["system:serviceaccount:team-b:app"]),
        )
        .with_role(Role::new(NODE_ROLE).allowing(["kms:secret/node/*", "kms:secret/test"]))
        .with_role(
            Role::new(PROVIDER_ROLE)
                .allowing(["kms:secret/test"])
                .trusting_access_keys([ACCESS_KEY_ID])
                .trusting_oidc(
                    OIDC_PROVIDER,
                    ["system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud"],
                ),
        )
        .with_role(
            Role::new(SHARED_ROLE)
                .allowing(["kms:secret/shared/*"])
                .trusting_roles([TEAM_A_ROLE])
                .with_external_id(EXTERNAL_ID),
        )
        .with_imds(ImdsSeed::with_role(NODE_ROLE))
        .with_service_account(ServiceAccount::new("team-a", "app").with_role_arn(TEAM_A_ROLE))
        .with_service_account(ServiceAccount::new("team-b", "app").with_role_arn(TEAM_B_ROLE))
        .with_service_account(ServiceAccount::new("team-c", "app"))
}

/// A kubelet-like token of service account `namespace/name` for STS.
pub fn pod_token(namespace: &str, name: &str) -> String {
    pod_token_for(namespace, name, "sts.aliyuncs.com")
}

/// A kubelet-like token of service account `namespace/name` for `audience`.
pub fn pod_token_for(namespace: &str, name: &str, audience: &str) -> String {
    let claims = alibabacloud_emulator::jwt::Claims::service_account(OIDC_ISSUER, namespace, name)
        .with_audiences([audience]);
    alibabacloud_emulator::jwt::mint(&claims, None)
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` JSON kubelet sends.
pub fn tokens_json(audience: &str, token: &str) -> String {
    serde_json::json!({ audience: { "token": token, "expirationTimestamp": "2030-01-01T00:00:00Z" } })
        .to_string()
}

/// The emulator and how to point the provider at it.
pub struct FakeCloud {
    /// The running emulator.
    pub emulator: Emulator,
    /// Holds the Kubernetes API token file.
    dir: tempfile::TempDir,
}

/// The bearer token the provider presents to the emulator's Kubernetes API.
pub const KUBERNETES_TOKEN: &str = "provider-kubernetes-token";

impl FakeCloud {
    /// Starts the emulator on 127.0.0.1 with `seed`.
    pub async fn start(seed: Seed) -> FakeCloud {
        let emulator = Emulator::start(
            seed.with_kubernetes_token(KUBERNETES_TOKEN),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .expect("starting the emulator");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubernetes-token"), KUBERNETES_TOKEN).unwrap();
        FakeCloud { emulator, dir }
    }

    /// Environment for the provider: endpoints at the emulator, the access key.
    pub fn env(&self) -> Vec<(String, String)> {
        let url = self.emulator.url();
        vec![
            ("ALIBABACLOUD_KMS_ENDPOINT".into(), url.clone()),
            ("ALIBABACLOUD_OOS_ENDPOINT".into(), url.clone()),
            ("ALIBABACLOUD_STS_ENDPOINT".into(), url),
            ("ACCESS_KEY_ID".into(), ACCESS_KEY_ID.into()),
            ("SECRET_ACCESS_KEY".into(), ACCESS_KEY_SECRET.into()),
        ]
    }

    /// [`FakeCloud::env`] without access keys, plus the cluster's OIDC
    /// provider: the provider's own identity is the node's ECS role.
    pub fn rrsa_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env()
            .into_iter()
            .filter(|(k, _)| k.ends_with("_ENDPOINT"))
            .collect();
        env.push(("ALICLOUD_OIDC_PROVIDER_ARN".into(), OIDC_PROVIDER.into()));
        env
    }

    /// ServiceAccount GETs the emulator's Kubernetes API has answered.
    pub fn service_account_gets(&self) -> u64 {
        self.emulator.kubernetes_stats().requests("serviceaccounts")
    }

    /// A config with the built-in defaults, a default region, and the
    /// emulator's metadata server and Kubernetes API.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.cloud.region = "cn-hangzhou".into();
        config.identity.metadata_url = self.emulator.imds_url();
        config.identity.kubernetes_url = self.emulator.kubernetes_url();
        config.identity.kubernetes_token_file = self
            .dir
            .path()
            .join("kubernetes-token")
            .to_string_lossy()
            .into_owned();
        config.identity.kubernetes_ca_file = String::new();
        config
    }
}

/// Path of a plugin built by the host's build script (e.g. `testing_plugin.wasm`).
pub fn built_plugin(file: &str) -> PathBuf {
    Path::new(provider::plugin::BUILT_PLUGIN_DIR).join(file)
}

/// A route to the testing plugin with every capability granted (its cases
/// need them); tests of the grants narrow it.
pub fn testing_route() -> provider::config::PluginRoute {
    provider::config::PluginRoute {
        path: Some(built_plugin("testing_plugin.wasm")),
        enabled: true,
        capabilities: provider::config::Capabilities {
            http: vec!["https://example.invalid".into()],
            allow_internal_addresses: false,
            alibaba_cloud: Some(true),
            service_account_audiences: vec!["vault".into()],
            node_publish_secret_keys: vec!["vault_token".into()],
            pod_info: true,
        },
        ..provider::config::PluginRoute::default()
    }
}

/// The provider serving a real Unix socket in a temporary directory.
pub struct TestProvider {
    /// The provider (for its counters and config).
    pub provider: Arc<Provider>,
    /// The socket path.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestProvider {
    /// Starts the provider with `config` and `env` as its environment.
    pub async fn start(config: Config, env: Vec<(String, String)>) -> TestProvider {
        TestProvider::start_resolving(config, env, Vec::new()).await
    }

    /// [`TestProvider::start`], with the cloud API's DNS answers for some
    /// hosts fixed (e.g. a KMS instance host on a [`tls::TlsFront`]).
    pub async fn start_resolving(
        config: Config,
        env: Vec<(String, String)>,
        resolve: Vec<(String, std::net::SocketAddr)>,
    ) -> TestProvider {
        let provider = provider::app::provider_resolving(config, None, env, resolve)
            .await
            .expect("starting the provider");
        let dir = tempfile::tempdir().unwrap();
        let app = provider::app::App::bind(
            provider,
            provider::app::ServeOptions {
                socket_dir: dir.path().to_path_buf(),
                health: None,
            },
        )
        .await
        .expect("binding the socket");
        let provider = app.provider().clone();
        let socket = app.socket().to_path_buf();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .expect("serving");
        });
        TestProvider {
            provider,
            socket,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client on the socket, as the driver dials it.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        provider::client::provider_client(&self.socket)
            .await
            .expect("connecting to the provider socket")
    }

    /// Sends `mount` on a new connection and returns the response or the
    /// gRPC status.
    pub async fn mount(&self, mount: Mount) -> Result<MountResponse, tonic::Status> {
        TestProvider::mount_on(self.client().await, mount).await
    }

    /// Sends `mount` on `client` (a connection shared by many Mounts, as
    /// the driver keeps one per provider).
    pub async fn mount_on(
        mut client: CsiDriverProviderClient<Channel>,
        mount: Mount,
    ) -> Result<MountResponse, tonic::Status> {
        let timeout = mount.timeout;
        let mut request = tonic::Request::new(mount.request());
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        client.mount(request).await.map(|r| r.into_inner())
    }

    /// Stops serving (graceful) and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Starts the graceful stop without waiting for it.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("not stopped yet")
    }
}

/// A Mount request, built like the driver builds it.
#[derive(Debug, Clone)]
pub struct Mount {
    /// SPC parameters and volume attributes.
    pub attributes: BTreeMap<String, String>,
    /// nodePublishSecretRef data.
    pub secrets: BTreeMap<String, String>,
    /// Default file mode.
    pub permission: String,
    /// gRPC deadline.
    pub timeout: Option<Duration>,
}

impl Mount {
    /// A Mount of the SecretProviderClass `objects` YAML, with pod info as
    /// kubelet adds it.
    pub fn objects(yaml: &str) -> Mount {
        let mut attributes = BTreeMap::new();
        attributes.insert(spc::ATTR_OBJECTS.to_string(), yaml.to_string());
        attributes.insert("secretProviderClass".into(), "test-spc".into());
        attributes.insert(spc::ATTR_POD_NAMESPACE.into(), "team-a".into());
        attributes.insert(spc::ATTR_POD_NAME.into(), "app-7d9c".into());
        attributes.insert(spc::ATTR_POD_UID.into(), "0b6c2f1e-7d9c".into());
        attributes.insert(spc::ATTR_SERVICE_ACCOUNT.into(), "app".into());
        attributes.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
        Mount {
            attributes,
            secrets: BTreeMap::new(),
            permission: "420".into(),
            timeout: Some(Duration::from_secs(30)),
        }
    }

    /// The same Mount for pod `namespace/name` running as `service_account`.
    pub fn for_pod(mut self, namespace: &str, name: &str, service_account: &str) -> Mount {
        self.attributes
            .insert(spc::ATTR_POD_NAMESPACE.into(), namespace.into());
        self.attributes
            .insert(spc::ATTR_POD_NAME.into(), name.into());
        self.attributes
            .insert(spc::ATTR_SERVICE_ACCOUNT.into(), service_account.into());
        self
    }

    /// Asks for pod identity with the pod's own STS token, as kubelet sends it.
    pub fn with_pod_identity(self) -> Mount {
        let namespace = self.attributes[spc::ATTR_POD_NAMESPACE].clone();
        let account = self.attributes[spc::ATTR_SERVICE_ACCOUNT].clone();
        let token = pod_token(&namespace, &account);
        self.attribute(spc::ATTR_USE_POD_SA_TOKEN, "true")
            .attribute(spc::SA_TOKENS_KEY, &tokens_json("sts.aliyuncs.com", &token))
    }

    /// Sets a parameter or volume attribute.
    pub fn attribute(mut self, key: &str, value: &str) -> Mount {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Adds a nodePublishSecretRef entry.
    pub fn secret(mut self, key: &str, value: &str) -> Mount {
        self.secrets.insert(key.into(), value.into());
        self
    }

    /// Sets the gRPC deadline (`None`: no deadline).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Mount {
        self.timeout = timeout;
        self
    }

    /// The protocol message.
    pub fn request(&self) -> MountRequest {
        MountRequest {
            attributes: serde_json::to_string(&self.attributes).unwrap(),
            secrets: serde_json::to_string(&self.secrets).unwrap(),
            target_path: format!(
                "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets/mount",
                self.attributes
                    .get(spc::ATTR_POD_UID)
                    .map(String::as_str)
                    .unwrap_or("uid")
            ),
            permission: self.permission.clone(),
            current_object_version: Vec::new(),
        }
    }
}

/// The files of a response as path → contents (lossy UTF-8).
pub fn files(response: &MountResponse) -> BTreeMap<String, String> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.contents).into_owned(),
            )
        })
        .collect()
}

/// Asserts that `status` has `code` and a message containing every one of
/// `needles`; returns the message.
#[track_caller]
pub fn assert_status<'a>(
    status: &'a tonic::Status,
    code: tonic::Code,
    needles: &[&str],
) -> &'a str {
    let message = status.message();
    assert_eq!(status.code(), code, "{message}");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    message
}

/// The object versions of a response as (id, version) pairs, in order.
pub fn versions(response: &MountResponse) -> Vec<(String, String)> {
    response
        .object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
}

/// Everything the process logs at the provider's most verbose level (what
/// `serve -v=10` sets), for secrecy checks. The first call installs the
/// global subscriber.
pub fn captured_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(provider::logging::filter_for(10))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init()
            .expect("installing the log capture (another subscriber is set)");
        buffer
    })
}

/// A shared in-memory log sink.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
