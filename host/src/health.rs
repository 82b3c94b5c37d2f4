//! HTTP health endpoints: `/live` (the process answers) and the healthz path
//! (the gRPC socket answers a health check end to end, as the driver would
//! reach it); and `/metrics`, the provider's Prometheus metrics (OpenMetrics
//! text when the scraper accepts it, else the text format 0.0.4).
//!
//! By default the server listens on every address of both IP versions, as
//! Go's `:8989` did for the upstream provider: one IPv6 socket with
//! `IPV6_V6ONLY` off (`[::]`, which also accepts IPv4 as `::ffff:a.b.c.d`),
//! or `0.0.0.0` where the kernel has no IPv6. Probes then reach it on
//! IPv4-only, dual-stack and IPv6-only pod networks alike.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The gRPC service whose health is checked.
const PROVIDER_SERVICE: &str = "v1alpha1.CSIDriverProvider";

/// Settings of the health server.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Address to listen on; `None`: every address, IPv6 and IPv4 (see the
    /// module documentation).
    pub bind: Option<IpAddr>,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Path of the readiness check, e.g. `/healthz`.
    pub path: String,
    /// How long one check may take.
    pub timeout: Duration,
    /// The provider socket to check.
    pub socket: PathBuf,
    /// The metrics served at `/metrics` (none: no `/metrics`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

#[derive(Clone)]
struct Probe {
    socket: PathBuf,
    timeout: Duration,
    metrics: Option<Arc<crate::metrics::Metrics>>,
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
    let listener = listen(settings.bind, settings.port, dual_stack).map_err(|e| {
        let addr = match settings.bind {
            Some(ip) => SocketAddr::new(ip, settings.port).to_string(),
            None => format!("port {}", settings.port),
        };
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr} for health checks: {e} (see --healthz-port and --healthz-bind-address)"
            ),
        )
    })?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let mut app = Router::new()
        .route("/live", get(|| async { "ok" }))
        .route(&settings.path, get(healthz));
    if settings.metrics.is_some() && settings.path != "/metrics" {
        app = app.route("/metrics", get(metrics));
    }
    let app = app.with_state(Probe {
        socket: settings.socket,
        timeout: settings.timeout,
        metrics: settings.metrics,
    });
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((addr, serve))
}

/// A non-blocking listener on `bind`, or, without one, on `[::]` with
/// `IPV6_V6ONLY` off (`v6` makes that socket), falling back to `0.0.0.0`
/// when the kernel has no IPv6.
fn listen(
    bind: Option<IpAddr>,
    port: u16,
    v6: impl FnOnce(u16) -> io::Result<std::net::TcpListener>,
) -> io::Result<std::net::TcpListener> {
    let listener = match bind {
        Some(ip) => std::net::TcpListener::bind(SocketAddr::new(ip, port))?,
        None => match v6(port) {
            Ok(listener) => listener,
            Err(e) if ipv6_unavailable(&e) => {
                tracing::info!(
                    error = %e,
                    "no IPv6 on this host: the health server listens on 0.0.0.0 only"
                );
                std::net::TcpListener::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?
            }
            Err(e) => return Err(e),
        },
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `[::]:port` accepting IPv4 too (`IPV6_V6ONLY` off, whatever the host's
/// `net.ipv6.bindv6only`), with `SO_REUSEADDR` as std and tokio set it.
fn dual_stack(port: u16) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The errors of a host without IPv6: the family is not compiled in
/// (`EAFNOSUPPORT`), or it is disabled (`net.ipv6.conf.all.disable_ipv6`:
/// `EADDRNOTAVAIL` on bind).
fn ipv6_unavailable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::AFNOSUPPORT.raw_os_error()
            || code == rustix::io::Errno::ADDRNOTAVAIL.raw_os_error()
            || code == rustix::io::Errno::PROTONOSUPPORT.raw_os_error()
    )
}

async fn healthz(State(probe): State<Probe>) -> (StatusCode, String) {
    match tokio::time::timeout(probe.timeout, check(&probe.socket)).await {
        Ok(Ok(())) => (StatusCode::OK, "ok".into()),
        Ok(Err(reason)) => (StatusCode::SERVICE_UNAVAILABLE, reason.to_string()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the provider socket did not answer within {:?}",
                probe.timeout
            ),
        ),
    }
}

/// The metrics, in OpenMetrics text if the scraper accepts it (Prometheus
/// asks for it first), else in the Prometheus text format 0.0.4.
async fn metrics(
    State(probe): State<Probe>,
    headers: HeaderMap,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let Some(metrics) = probe.metrics else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no metrics\n".into(),
        );
    };
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        crate::metrics::OPENMETRICS_CONTENT_TYPE
    } else {
        crate::metrics::TEXT_CONTENT_TYPE
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        metrics.encode(openmetrics),
    )
}

/// Why the socket is not healthy.
#[derive(Debug, thiserror::Error)]
enum Unhealthy {
    #[error("cannot connect to {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("health check failed: {}", .0.message())]
    Check(tonic::Status),
    #[error("the provider reports status {0}")]
    Status(i32),
}

async fn check(socket: &std::path::Path) -> Result<(), Unhealthy> {
    let channel = crate::client::connect(socket)
        .await
        .map_err(|source| Unhealthy::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: PROVIDER_SERVICE.to_string(),
        })
        .await
        .map_err(Unhealthy::Check)?;
    match response.into_inner().status {
        1 => Ok(()),
        status => Err(Unhealthy::Status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    fn accepts(listener: &std::net::TcpListener, to: SocketAddr) {
        let mut client = std::net::TcpStream::connect(to).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        listener.set_nonblocking(true).unwrap();
        server.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok", "via {to}, peer {peer}");
    }

    fn has_ipv6_loopback() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    #[test]
    fn default_listens_on_both_ip_versions() {
        let listener = listen(None, 0, dual_stack).unwrap();
        let addr = listener.local_addr().unwrap();
        if !has_ipv6_loopback() {
            // A host without IPv6: the fallback (tested below) applies.
            assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::UNSPECIFIED));
            return;
        }
        assert_eq!(addr.ip(), IpAddr::from(Ipv6Addr::UNSPECIFIED));
        accepts(
            &listener,
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        );
        accepts(
            &listener,
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        );
    }

    #[test]
    fn without_ipv6_the_default_falls_back_to_ipv4() {
        for errno in [
            rustix::io::Errno::AFNOSUPPORT,
            rustix::io::Errno::ADDRNOTAVAIL,
        ] {
            let no_v6 = |_| Err(io::Error::from_raw_os_error(errno.raw_os_error()));
            let listener = listen(None, 0, no_v6).unwrap();
            let addr = listener.local_addr().unwrap();
            assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::UNSPECIFIED));
            accepts(
                &listener,
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
            );
        }
    }

    #[test]
    fn other_ipv6_errors_are_not_hidden() {
        let in_use = |_| Err(io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(
            listen(None, 0, in_use).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }

    #[test]
    fn an_explicit_address_is_used_as_given() {
        let listener = listen(Some(Ipv4Addr::LOCALHOST.into()), 0, |_| {
            panic!("no dual-stack socket for an explicit address")
        })
        .unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
        accepts(&listener, addr);
        if has_ipv6_loopback() {
            let listener = listen(Some(Ipv6Addr::LOCALHOST.into()), 0, dual_stack).unwrap();
            let addr = listener.local_addr().unwrap();
            accepts(&listener, addr);
            assert!(
                std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, addr.port())).is_err(),
                "[::1] must not accept IPv4"
            );
        }
    }

    #[test]
    fn a_port_in_use_stops_start_up() {
        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(listen(None, port, dual_stack).is_err());
    }
}
