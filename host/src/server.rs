//! The CSI provider gRPC server on a Unix socket: `Version`, `Mount`, the
//! `grpc.health.v1` service, the caller's deadline, graceful shutdown, and the
//! one mapping from Mount errors to gRPC statuses.

use std::future::Future;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

use crate::mount::{FailureKind, MountError, Provider};
use crate::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// The socket file name in the providers directory.
pub const SOCKET_FILE: &str = "alibabacloud.sock";
/// The name reported by `Version`: the upstream provider's (its
/// `auth.ProviderName`), so that anything keyed on it sees the same provider.
pub const RUNTIME_NAME: &str = "secrets-store-csi-driver-provider-alibabacloud";

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct ProviderService {
    provider: Arc<Provider>,
}

impl ProviderService {
    /// Wraps a provider.
    pub fn new(provider: Arc<Provider>) -> ProviderService {
        ProviderService { provider }
    }
}

impl From<MountError> for Status {
    fn from(error: MountError) -> Status {
        let code = match error.kind {
            FailureKind::InvalidArgument => Code::InvalidArgument,
            FailureKind::NotFound => Code::NotFound,
            FailureKind::PermissionDenied => Code::PermissionDenied,
            FailureKind::Unavailable => Code::Unavailable,
            FailureKind::DeadlineExceeded => Code::DeadlineExceeded,
            FailureKind::ResourceExhausted => Code::ResourceExhausted,
            FailureKind::Internal => Code::Internal,
        };
        Status::new(code, error.message)
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "v1alpha1".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let started = Instant::now();
        let metrics = self.provider.metrics().clone();
        let _in_flight = metrics.mount_started();
        let answer = self.serve_mount(request, started).await;
        let code = match &answer {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        metrics.mount_done(crate::metrics::grpc_code_name(code), started.elapsed());
        answer
    }
}

impl ProviderService {
    async fn serve_mount(
        &self,
        request: Request<MountRequest>,
        started: Instant,
    ) -> Result<Response<MountResponse>, Status> {
        let caller_deadline = grpc_timeout(request.metadata()).map(|t| started + t);
        let request = request.into_inner();
        let deadline = self.provider.mount_deadline(caller_deadline)?;
        let target_path = request.target_path.clone();
        let span = tracing::info_span!("mount", target = %target_path);
        // A panic anywhere in a Mount fails that Mount, never the process
        // (release builds unwind) or another Mount.
        let mount = std::panic::AssertUnwindSafe(self.provider.mount(request, deadline));
        let result = tracing::Instrument::instrument(mount.catch_unwind(), span)
            .await
            .unwrap_or_else(|_| {
                tracing::error!(target_path = %target_path, "a Mount panicked");
                Err(MountError {
                    kind: FailureKind::Internal,
                    message: "the provider failed while serving this Mount (a bug; please report it with the provider's log)".into(),
                })
            });
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(response) => {
                tracing::info!(
                    target_path = %target_path,
                    files = response.files.len(),
                    elapsed_ms,
                    "mounted"
                );
                Ok(Response::new(response))
            }
            Err(error) => {
                tracing::warn!(
                    target_path = %target_path,
                    kind = ?error.kind,
                    elapsed_ms,
                    error = %error.message,
                    "mount failed"
                );
                Err(error.into())
            }
        }
    }
}

/// Parses the `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Binds the provider socket: removes a stale socket or symlink at `path`
/// (never another kind of file, and never what a symlink points to), creates
/// the new one readable and writable by its owner only, and checks that what
/// is at `path` afterwards is that socket.
///
/// No permission is changed by path after binding: `chmod` follows symlinks,
/// so a symlink swapped in at `path` would have it change another file.
/// The umask around `bind` gives the socket mode 0600 from the start.
pub fn bind_socket(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() || meta.file_type().is_symlink() => {
            std::fs::remove_file(path)?
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it or choose another --provider-volume",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // A restrictive umask while binding, so the socket never exists with
    // wider permissions (the driver connects as root).
    let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(previous);
    let listener = bound?;
    check_own_socket(path)?;
    Ok(listener)
}

/// What is at `path` (not following a symlink) is a socket owned by this
/// process's effective uid, with no permission for group or others.
fn check_own_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path)?;
    let file_type = meta.file_type();
    let refuse = |what: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} {what} just after the provider bound it: another user can write to its directory; make the directory writable by the provider's user only",
                path.display()
            ),
        ))
    };
    if !file_type.is_socket() {
        let kind = if file_type.is_symlink() {
            "a symlink"
        } else if file_type.is_dir() {
            "a directory"
        } else {
            "not a socket"
        };
        return refuse(format!("is {kind}"));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return refuse(format!("belongs to uid {}, not {euid}", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(format!("has mode {:04o}, not 0600", meta.mode() & 0o7777));
    }
    Ok(())
}

/// A warning when `dir`, where the socket is created, can be written by
/// group or others without the sticky bit, or belongs to another user than
/// root or this process: another user could then replace the socket.
pub fn socket_dir_warning(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode();
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!(
            "{} belongs to uid {}: that user can replace the provider's socket",
            dir.display(),
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "{} has mode {:04o}: users other than its owner can create files in it{}; give the provider a directory of its own (the Helm chart uses <providersDir>/alibabacloud, owned by the provider, mode 0700)",
            dir.display(),
            mode & 0o7777,
            if mode & 0o1000 != 0 {
                " and take the socket's name before the provider does"
            } else {
                " and replace the provider's socket"
            }
        ));
    }
    None
}

/// Removes the socket file when dropped.
#[derive(Debug)]
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.0)
            && meta.file_type().is_socket()
        {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Serves the provider on `listener` until `shutdown` resolves, then lets
/// in-flight Mounts finish for at most `grace`.
pub async fn serve(
    provider: Arc<Provider>,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CsiDriverProviderServer<ProviderService>>()
        .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max_request = provider.config().limits.max_request_bytes;
    // Requests beyond the Mounts in flight wait for their namespace's turn,
    // each holding its decoded request: the driver may open as many streams
    // as Mounts run plus one namespace's waiting share, so other namespaces'
    // requests still reach the fair queue; further ones wait in the driver,
    // not in this process.
    let limits = &provider.config().limits;
    let streams = (limits.mounts_in_flight + limits.mounts_in_flight_per_namespace)
        .min(u32::MAX as usize) as u32;
    let service = CsiDriverProviderServer::new(ProviderService::new(provider))
        .max_decoding_message_size(max_request);
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(streams))
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; waiting for in-flight Mounts");
            health
                .set_not_serving::<CsiDriverProviderServer<ProviderService>>()
                .await;
            let _ = stop_tx.send(true);
        });
    tokio::pin!(server);
    let mut stop_rx = stop_rx;
    tokio::select! {
        result = &mut server => result,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace = ?grace, "in-flight Mounts did not finish within the shutdown grace period; exiting");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut m = tonic::metadata::MetadataMap::new();
        for (value, want) in [
            ("120S", Some(Duration::from_secs(120))),
            ("2M", Some(Duration::from_secs(120))),
            ("1H", Some(Duration::from_secs(3600))),
            ("250m", Some(Duration::from_millis(250))),
            ("99u", Some(Duration::from_micros(99))),
            ("5n", Some(Duration::from_nanos(5))),
            ("5x", None),
            ("S", None),
        ] {
            m.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(grpc_timeout(&m), want, "{value}");
        }
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }

    #[tokio::test]
    async fn socket_is_private_and_stale_sockets_are_replaced() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        let first = bind_socket(&path).unwrap();
        drop(first); // leaves a stale socket file behind
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket()
        );
        let _second = bind_socket(&path).unwrap();
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let guard = SocketGuard(path.clone());
        drop(guard);
        assert!(!path.exists());

        let regular = dir.path().join("not-a-socket");
        std::fs::write(&regular, b"keep me").unwrap();
        let e = bind_socket(&regular).unwrap_err();
        assert!(e.to_string().contains("is not a socket"));
        assert_eq!(std::fs::read(&regular).unwrap(), b"keep me");
    }

    #[tokio::test]
    async fn a_stale_symlink_is_removed_and_its_target_left_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep me").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join(SOCKET_FILE);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let _listener = bind_socket(&path).unwrap();
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket()
        );
        let target_meta = std::fs::metadata(&target).unwrap();
        assert_eq!(target_meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[tokio::test]
    async fn what_is_at_the_path_after_bind_must_be_our_private_socket() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        let _listener = bind_socket(&path).unwrap();
        assert!(check_own_socket(&path).is_ok());

        // a symlink swapped in: refused, and nothing is changed through it
        let elsewhere = dir.path().join("elsewhere.sock");
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let e = check_own_socket(&path).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(e.contains("writable by the provider's user only"), "{e}");
        std::fs::remove_file(&path).unwrap();

        // another kind of file
        std::fs::create_dir(&path).unwrap();
        let e = check_own_socket(&path).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        std::fs::remove_dir(&path).unwrap();

        // a socket open to others
        std::fs::rename(&elsewhere, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_own_socket(&path).unwrap_err().to_string();
        assert!(e.contains("has mode 0666, not 0600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        // a socket of another user (needs root to give it away)
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(&path, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
            let e = check_own_socket(&path).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 65534, not 0"), "{e}");
        }
    }

    #[test]
    fn socket_directories_others_can_write_are_reported() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let set = |mode| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(0o700);
        assert_eq!(socket_dir_warning(dir.path()), None);
        set(0o755);
        assert_eq!(socket_dir_warning(dir.path()), None);
        set(0o1775);
        let w = socket_dir_warning(dir.path()).unwrap();
        assert!(
            w.contains("has mode 1775") && w.contains("take the socket's name"),
            "{w}"
        );
        set(0o777);
        let w = socket_dir_warning(dir.path()).unwrap();
        assert!(w.contains("replace the provider's socket"), "{w}");
        set(0o700);
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(dir.path(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
            let w = socket_dir_warning(dir.path()).unwrap();
            assert!(w.contains("belongs to uid 65534"), "{w}");
        }
    }
}
