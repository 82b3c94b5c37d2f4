//! A gRPC client of the provider socket, as the CSI driver dials it
//! (`:authority` localhost, no TLS); used by `/healthz`, the `mount` and
//! `bench` commands, and the tests.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;

/// Connects to the provider socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// A `CSIDriverProvider` client on the socket at `path`.
pub async fn provider_client(
    path: &Path,
) -> Result<CsiDriverProviderClient<Channel>, tonic::transport::Error> {
    Ok(CsiDriverProviderClient::new(connect(path).await?))
}
