//! csi-secrets-store-provider-alibabacloud: a Secrets Store CSI Driver
//! provider for Alibaba Cloud KMS Secrets Manager and OOS encrypted
//! parameters, with backends as sandboxed WebAssembly components.
//!
//! The driver calls [`server`] over a Unix socket; [`mount`] parses the
//! SecretProviderClass ([`spc`]), fetches each object through its plugin
//! ([`plugin`]), whose signed Alibaba Cloud calls go through [`cloud`], and
//! builds the files ([`paths`], [`jmes`]).

pub mod app;
pub mod client;
pub(crate) mod cloud;
mod fair;
mod fetches;
pub use contract::config;
pub mod goflags;
pub mod health;
mod http;
pub mod identity;
pub use contract::jmes;
pub use contract::net;
pub mod logging;
mod memory;
mod metrics;
mod mount;
pub use contract::paths;
pub use contract::region;
pub mod plugin;
pub(crate) mod server;
pub mod session;
mod singleflight;
pub use contract::spc;

/// The provider protocol (package `v1alpha1`), generated from `proto/`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("v1alpha1");

    use std::fmt;

    // Written by hand (build.rs skips the generated ones) so that a `{:?}`
    // never prints a secret: the nodePublishSecretRef data, the attributes
    // (which carry the pod's service-account tokens) or a file's contents.

    impl fmt::Debug for MountRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("MountRequest")
                .field("attributes", &Redacted(self.attributes.len()))
                .field("secrets", &Redacted(self.secrets.len()))
                .field("target_path", &self.target_path)
                .field("permission", &self.permission)
                .field("current_object_version", &self.current_object_version)
                .finish()
        }
    }

    impl fmt::Debug for MountResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("MountResponse")
                .field("object_version", &self.object_version)
                .field("error", &self.error)
                .field("files", &self.files)
                .finish()
        }
    }

    impl fmt::Debug for File {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("File")
                .field("path", &self.path)
                .field("mode", &format_args!("{:#o}", self.mode))
                .field("contents", &Redacted(self.contents.len()))
                .finish()
        }
    }

    /// Shows a length in place of a secret value.
    struct Redacted(usize);

    impl fmt::Debug for Redacted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "<redacted, {} bytes>", self.0)
        }
    }
}

pub use http::install_crypto_provider;
pub use mount::{MountError, Provider};

#[cfg(test)]
mod tests {
    use crate::plugin::FetchedObject;
    use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};

    #[test]
    fn debug_output_hides_secrets() {
        let request = MountRequest {
            attributes: r#"{"csi.storage.k8s.io/serviceAccount.tokens":"eyJ-TOKEN-1"}"#.into(),
            secrets: r#"{"access_secret":"NP-SECRET-2"}"#.into(),
            target_path: "/var/lib/kubelet/pods/u/volumes/x".into(),
            permission: "420".into(),
            current_object_version: vec![ObjectVersion {
                id: "db".into(),
                version: "v1".into(),
            }],
        };
        let response = MountResponse {
            object_version: vec![],
            error: None,
            files: vec![File {
                path: "db".into(),
                mode: 0o640,
                contents: b"FILE-SECRET-3".to_vec(),
            }],
        };
        let fetched = FetchedObject {
            contents: b"FETCHED-SECRET-4".to_vec(),
            version: "v1".into(),
        };
        let text = format!("{request:?} {response:?} {fetched:?}");
        for secret in [
            "eyJ-TOKEN-1",
            "NP-SECRET-2",
            "FILE-SECRET-3",
            "FETCHED-SECRET-4",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        for shown in [
            "/var/lib/kubelet/pods/u",
            "0o640",
            "<redacted, 13 bytes>",
            "\"v1\"",
        ] {
            assert!(text.contains(shown), "{shown} not in {text}");
        }
    }
}
