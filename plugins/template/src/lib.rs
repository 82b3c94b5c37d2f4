//! A backend that reads JSON documents over HTTPS: `GET <objectName>` (a URL,
//! or a path under the config's `base_url`), and writes the document or one
//! of its string fields; the version is the document's `ETag`. Start a backend from it with
//! `csi-secrets-store-provider-alibabacloud plugin new <name>`.

use plugin_sdk::{Backend, FetchError, FetchedObject, ObjectRequest, PluginInfo, http};

struct JsonBackend;

impl Backend for JsonBackend {
    fn describe() -> PluginInfo {
        PluginInfo::new("https-json", env!("CARGO_PKG_VERSION"))
            .about("JSON documents over HTTPS: GET <objectName>")
            .config("base_url", "objectName is a path under it", false)
            .parameter("field", "write only this string field", false)
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        let url = match request.config("base_url") {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), request.name),
            None => request.name.clone(),
        };
        let response = http::get(&url).fetch()?;
        let version = response.etag().unwrap_or_else(|| "1".into());
        match request.parameter("field") {
            Some(field) => Ok(FetchedObject::new(response.field(field)?, version)),
            None => Ok(FetchedObject::new(response.body(), version)),
        }
    }
}

plugin_sdk::export_backend!(JsonBackend);
