//! csi-secrets-store-provider-alibabacloud: a Secrets Store CSI Driver
//! provider for Alibaba Cloud KMS Secrets Manager and OOS encrypted
//! parameters, with backends as sandboxed WebAssembly components.
//!
//! The driver calls [`server`] over a Unix socket; [`mount`] parses the
//! SecretProviderClass ([`spc`]), fetches each object through its plugin
//! ([`plugin`]), whose signed Alibaba Cloud calls go through [`cloud`], and
//! builds the files ([`paths`], [`jmes`]).

pub mod client;
pub mod cloud;
pub mod fair;
pub use contract::config;
pub mod health;
mod http;
pub mod identity;
pub use contract::jmes;
pub mod logging;
pub mod memory;
pub mod mount;
pub use contract::paths;
pub mod plugin;
pub mod server;
pub use contract::spc;

/// The provider protocol (package `v1alpha1`), generated from `proto/`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}

pub use mount::{MountError, Provider};
