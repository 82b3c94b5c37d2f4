//! Example custom backend (being written): HashiCorp Vault KV v2.

use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo};

struct Vault;

impl Backend for Vault {
    fn describe() -> PluginInfo {
        PluginInfo::new("vault-kv2", env!("CARGO_PKG_VERSION"))
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        Err(FetchError::Other(format!("not yet: {}", request.name)))
    }
}

plugin_sdk::export_backend!(Vault);
