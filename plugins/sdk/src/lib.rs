//! SDK for backend plugins of csi-secrets-store-provider-alibabacloud.
//!
//! A backend implements [`Backend`] and exports it with [`export_backend!`];
//! it never touches wit-bindgen or the WIT files itself:
//!
//! ```ignore
//! use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest};
//!
//! struct Hello;
//!
//! impl Backend for Hello {
//!     fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
//!         Ok(FetchedObject::new(format!("hello {}", request.name), "1"))
//!     }
//! }
//!
//! plugin_sdk::export_backend!(Hello);
//! ```
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

pub use bindings::{FetchError, FetchedObject, ObjectRequest};

pub mod cloud;
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
    /// Fetches the object `request` names.
    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError>;
}

impl<T: Backend> bindings::Guest for T {
    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        <T as Backend>::fetch(request)
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
