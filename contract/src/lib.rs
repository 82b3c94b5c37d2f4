//! What the provider accepts from outside, parsed and validated with no I/O:
//! the Mount request and its SecretProviderClass ([`spc`]), jmesPath
//! ([`jmes`]), output file paths ([`paths`]), the operator's config.toml
//! ([`config`]), endpoint and origin policy ([`net`]), region ids
//! ([`region`]) and the pod's
//! service-account token JSON ([`tokens`]); [`content`] describes a problem
//! with secret content without quoting it.
//!
//! Everything here is a leaf of the provider's dependency graph and is
//! exercised by the fuzz targets in `fuzz/`, which link this crate alone.

pub mod config;
pub mod content;
pub mod jmes;
pub mod net;
pub mod paths;
pub mod region;
pub mod spc;
pub mod tokens;
pub mod yaml;
