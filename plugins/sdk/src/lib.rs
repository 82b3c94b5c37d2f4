//! SDK for backend plugins of csi-secrets-store-provider-alibabacloud.
//!
//! A backend implements [`Backend`] and exports it with [`export_backend!`];
//! it never touches wit-bindgen or the WIT files itself:
//!
//! ```ignore
//! use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo};
//!
//! struct Hello;
//!
//! impl Backend for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION")).about("Greets every object")
//!     }
//!
//!     fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
//!         Ok(FetchedObject::new(format!("hello {}", request.name), "1"))
//!     }
//! }
//!
//! plugin_sdk::export_backend!(Hello);
//! ```
//!
//! Host services: [`cloud`] (signed Alibaba Cloud calls), [`http`] (outbound
//! HTTP within the operator's allowlist), [`identity`] (the pod's token,
//! nodePublishSecretRef keys, pod info — each only when granted) and [`log`];
//! [`content`] reads base64, JSON and UTF-8 with errors that never quote the
//! content.
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and route an `objectType` to the `.wasm` file in config.toml.

extern crate self as plugin_sdk;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "backend",
        pub_export_macro: true,
        export_macro_name: "__export_backend_world",
        default_bindings_module: "plugin_sdk::bindings",
        runtime_path: "plugin_sdk::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen::rt;

pub use bindings::alibabacloud_csi::plugin::types::Parameter;
pub use bindings::{FetchError, FetchedObject, ObjectRequest, PluginInfo};

pub mod cloud;
pub mod content;
pub mod http;
pub mod identity;
pub mod log;

/// The WIT package version this SDK was built against.
pub const WIT_VERSION: &str = "0.1.0";

/// The WIT version, stored in a custom section so that the host can read it
/// before compiling the component and explain a version mismatch.
#[used]
#[allow(unsafe_code)] // link_section is an unsafe attribute; it only names a section.
#[unsafe(link_section = "alibabacloud-csi-plugin-wit-version")]
static WIT_VERSION_SECTION: [u8; 5] = *b"0.1.0";

/// A backend plugin: fetches one object per call, on a fresh instance.
pub trait Backend {
    /// The plugin's name, version and the settings it reads.
    fn describe() -> PluginInfo;

    /// Checks the operator's `[plugins.<type>.config]` at start-up. The
    /// default checks that every required config key of [`Backend::describe`]
    /// is set and that no unknown key is.
    fn validate(config: &Config) -> Result<(), String> {
        config.check(&Self::describe())
    }

    /// Fetches the object `request` names.
    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError>;
}

impl<T: Backend> bindings::Guest for T {
    fn describe() -> PluginInfo {
        <T as Backend>::describe()
    }

    fn validate(config: Vec<(String, String)>) -> Result<(), String> {
        <T as Backend>::validate(&Config(config))
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        <T as Backend>::fetch(request)
    }
}

/// The operator's settings for this plugin (`[plugins.<type>.config]`).
#[derive(Debug, Clone, Default)]
pub struct Config(pub Vec<(String, String)>);

impl Config {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        lookup(&self.0, key)
    }

    /// Every required config key of `info` is set, and no key is unknown.
    pub fn check(&self, info: &PluginInfo) -> Result<(), String> {
        if let Some(missing) = info
            .config
            .iter()
            .find(|p| p.required && self.get(&p.name).is_none_or(str::is_empty))
        {
            return Err(format!(
                "{} needs the config key {:?}: {}",
                info.name, missing.name, missing.description
            ));
        }
        if let Some((unknown, _)) = self
            .0
            .iter()
            .find(|(k, _)| !info.config.iter().any(|p| &p.name == k))
        {
            let known: Vec<&str> = info.config.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "{} has no config key {unknown:?}; known keys: {}",
                info.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        Ok(())
    }
}

impl PluginInfo {
    /// A plugin called `name` at `version` (use `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, version: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            config: Vec::new(),
            parameters: Vec::new(),
        }
    }

    /// One line on what the plugin fetches.
    pub fn about(mut self, description: &str) -> PluginInfo {
        self.description = description.to_string();
        self
    }

    /// A key of `[plugins.<type>.config]` the plugin reads.
    pub fn config(mut self, name: &str, description: &str, required: bool) -> PluginInfo {
        self.config.push(Parameter {
            name: name.to_string(),
            description: description.to_string(),
            required,
        });
        self
    }

    /// A key of an object's `parameters` map the plugin reads.
    pub fn parameter(mut self, name: &str, description: &str, required: bool) -> PluginInfo {
        self.parameters.push(Parameter {
            name: name.to_string(),
            description: description.to_string(),
            required,
        });
        self
    }
}

/// Exports a [`Backend`] implementation as the plugin's `fetch`.
#[macro_export]
macro_rules! export_backend {
    ($backend:ident) => {
        $crate::bindings::__export_backend_world!($backend with_types_in $crate::bindings);
    };
}

impl FetchedObject {
    /// An object with `contents` at `version`.
    pub fn new(contents: impl Into<Vec<u8>>, version: impl Into<String>) -> Self {
        FetchedObject {
            contents: contents.into(),
            version: version.into(),
        }
    }
}

impl ObjectRequest {
    /// The value of `key` in the operator's plugin configuration.
    pub fn config(&self, key: &str) -> Option<&str> {
        lookup(&self.config, key)
    }

    /// The value of `key` in the object's `parameters` map.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        lookup(&self.parameters, key)
    }

    /// The value of config key `key`, or an `invalid-request` error naming it.
    pub fn require_config(&self, key: &str) -> Result<&str, FetchError> {
        self.config(key).filter(|v| !v.is_empty()).ok_or_else(|| {
            FetchError::InvalidRequest(format!(
                "the {} plugin needs config key {key:?} in [plugins.{}.config]",
                self.object_type, self.object_type
            ))
        })
    }

    /// Fails with `invalid-request` if the object's `parameters` map has a key
    /// outside `known`, naming the key and the known ones.
    pub fn expect_parameters(&self, known: &[&str]) -> Result<(), FetchError> {
        match self
            .parameters
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((key, _)) if known.is_empty() => Err(FetchError::InvalidRequest(format!(
                "objectType {} takes no parameters, but the object has {key:?}",
                self.object_type
            ))),
            Some((key, _)) => Err(FetchError::InvalidRequest(format!(
                "unknown parameter {key:?} for objectType {}; known parameters: {}",
                self.object_type,
                known.join(", ")
            ))),
        }
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `"<kind>: <message>"` for a fetch error, e.g. `not found: KMS secret "db" ...`.
pub fn describe_fetch_error(error: &FetchError) -> String {
    let (kind, message) = match error {
        FetchError::NotFound(m) => ("not found", m),
        FetchError::PermissionDenied(m) => ("permission denied", m),
        FetchError::InvalidRequest(m) => ("invalid request", m),
        FetchError::Unavailable(m) => ("unavailable", m),
        FetchError::Other(m) => ("error", m),
    };
    format!("{kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(parameters: &[(&str, &str)]) -> ObjectRequest {
        ObjectRequest {
            name: "n".into(),
            object_type: "custom".into(),
            version: None,
            version_label: None,
            endpoint: None,
            region: "cn-hangzhou".into(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            config: vec![("address".into(), "https://x".into())],
        }
    }

    #[test]
    fn lookups_and_parameter_checks() {
        let req = request(&[("field", "a")]);
        assert_eq!(req.parameter("field"), Some("a"));
        assert_eq!(req.config("address"), Some("https://x"));
        assert_eq!(req.config("missing"), None);
        assert!(req.expect_parameters(&["field", "other"]).is_ok());
        let err = req.expect_parameters(&["other"]).unwrap_err();
        assert_eq!(
            describe_fetch_error(&err),
            "invalid request: unknown parameter \"field\" for objectType custom; known parameters: other"
        );
        let err = req.expect_parameters(&[]).unwrap_err();
        assert!(describe_fetch_error(&err).contains("takes no parameters"));
    }
}
