//! Helpers shared by the provider's HTTP clients (the cloud API, the ECS
//! metadata server, the Kubernetes API, plugins' egress): the one builder
//! they start from (which installs rustls' crypto provider), CA bundles,
//! bounded body reads and transport errors without URLs.

use std::path::{Path, PathBuf};
use std::sync::Once;

/// Installs the process-wide rustls crypto provider (ring), once.
///
/// The one place that installs it: every HTTP client of the provider starts
/// from [`client_builder`], which calls this, so no constructor, `app` or
/// command has to. Code outside the crate that uses rustls or reqwest on
/// its own (the tests crate's TLS servers and clients) calls it as
/// `provider::install_crypto_provider`. If another provider was installed
/// first, that one stays.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with rustls' crypto provider installed: every
/// HTTP client of the provider starts here (`reqwest::Client::builder` is
/// refused by clippy elsewhere in the crate, see `host/clippy.toml`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A transport error and its sources, `: `-joined, without the URL (the
/// caller names the server once).
pub(crate) fn transport_cause(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Why a PEM CA bundle file cannot be used ([`read_ca_bundle`]).
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not PEM.
    #[error("{} is not a PEM certificate bundle: {source}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser refused.
        #[source]
        source: reqwest::Error,
    },
    /// The file is PEM without a certificate.
    #[error("{} holds no PEM certificate", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The certificates of a PEM bundle file (at least one).
pub(crate) fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, CaBundleError> {
    let pem = std::fs::read(path).map_err(|source| CaBundleError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| CaBundleError::NotPem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaBundleError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// For a server certificate that no trusted CA vouches for, a hint that
/// names the setting (`ca_key`) that adds one; else nothing.
pub(crate) fn certificate_hint(error: &reqwest::Error, ca_key: &str) -> String {
    if transport_cause(error).contains("invalid peer certificate") {
        format!(
            "; the server's certificate is not from a trusted CA: if it is the right server, put its CA in {ca_key}"
        )
    } else {
        String::new()
    }
}

/// Why a body could not be read ([`read_capped`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Longer than the cap.
    #[error("the answer is larger than {cap} bytes")]
    TooLarge {
        /// The cap, in bytes.
        cap: usize,
    },
    /// The connection's timeout passed while reading.
    #[error("reading the answer timed out")]
    TimedOut,
    /// The connection failed while reading.
    #[error("reading the answer: {}", transport_cause(.0))]
    Read(#[source] reqwest::Error),
}

/// Reads a body of at most `cap` bytes, refusing a larger one early.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > cap as u64)
    {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            BodyError::TimedOut
        } else {
            BodyError::Read(e)
        }
    })? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
