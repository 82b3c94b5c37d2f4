//! Loading a plugin: the WIT version it was built for, compilation, and what
//! it imports checked against what the operator granted, before anything of
//! it runs. `plugin check` uses the same functions.

use std::borrow::Cow;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::egress::Egress;
use super::{BUILTIN_KMS, BUILTIN_OOS, Grants, PluginSource, error_text};
use crate::config::{PluginLimits, PluginRoute};

/// The WIT package this host implements.
pub const HOST_WIT_VERSION: &str = "alibabacloud-csi:plugin@0.1.0";
/// The custom section in which the SDK stamps the WIT version a plugin was
/// built against.
pub const WIT_VERSION_SECTION: &str = "alibabacloud-csi-plugin-wit-version";
/// Our package name in import names.
const PACKAGE: &str = "alibabacloud-csi:plugin/";
/// The version triple of [`HOST_WIT_VERSION`].
const HOST_VERSION: (u64, u64, u64) = (0, 1, 0);
/// WASI interfaces a plugin may import: what Rust's std needs, all granting
/// nothing (no arguments, environment, preopens; stdin closed).
const WASI_OFFERED: &[&str] = &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/"];

/// The bytes of a plugin: embedded in the binary, or read from its file.
pub fn read(source: &PluginSource) -> Result<Cow<'static, [u8]>, String> {
    match source {
        PluginSource::Builtin(name) => match name.as_str() {
            "kms" => Ok(Cow::Borrowed(BUILTIN_KMS)),
            "oos" => Ok(Cow::Borrowed(BUILTIN_OOS)),
            other => Err(format!("no built-in plugin is called {other:?}")),
        },
        PluginSource::File(path) => std::fs::read(path).map(Cow::Owned).map_err(|e| {
            format!(
                "cannot read the file: {e}; check plugins.<type>.path and the volume that holds it"
            )
        }),
    }
}

/// Compiles the `bytes` of a plugin ([`read`]); for a file, checks its WIT
/// version stamp first.
pub fn compile(engine: &Engine, source: &PluginSource, bytes: &[u8]) -> Result<Component, String> {
    match source {
        PluginSource::Builtin(name) => {
            if let Some(component) = precompiled(engine, name) {
                return Ok(component);
            }
            Component::new(engine, bytes).map_err(|e| error_text(&e.into()))
        }
        PluginSource::File(_) => {
            if wasmparser::Parser::is_core_wasm(bytes) {
                return Err(
                    "it is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or convert it with wasm-tools component new)".into(),
                );
            }
            if let Some(stamp) = wit_version_stamp(bytes) {
                check_version(&stamp)
                    .map_err(|e| format!("it was built with plugin-sdk for {e}"))?;
            }
            Component::new(engine, bytes).map_err(|e| {
                format!(
                    "it is not a valid WebAssembly component: {}",
                    error_text(&e.into())
                )
            })
        }
    }
}

/// A built-in plugin's native code, precompiled by build.rs for this
/// engine's settings; `None` (and the `.wasm` is compiled) when there is
/// none or it does not fit the engine.
fn precompiled(engine: &Engine, name: &str) -> Option<Component> {
    let code = match name {
        "kms" => super::BUILTIN_KMS_CODE,
        "oos" => super::BUILTIN_OOS_CODE,
        _ => return None,
    };
    if code.is_empty() {
        return None;
    }
    // SAFETY: `Component::deserialize` runs native code it is given. These
    // bytes were produced by wasmtime's own `precompile_component` in our
    // build script, from our own plugins, and are embedded in the binary:
    // nothing outside the build can change them. wasmtime checks that they
    // were made by the same wasmtime version and settings before using them.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize(engine, code) };
    match loaded {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(plugin = name, error = %error_text(&e.into()), "the precompiled built-in plugin does not fit this engine; compiling it");
            None
        }
    }
}

/// The WIT version the SDK stamped into the component, if any.
pub fn wit_version_stamp(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload
            && section.name() == WIT_VERSION_SECTION
        {
            return Some(String::from_utf8_lossy(section.data()).trim().to_string());
        }
    }
    None
}

/// Accepts `0.1.x` up to the host's own version; says what to upgrade otherwise.
fn check_version(version: &str) -> Result<(), String> {
    let parsed: Vec<u64> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect();
    let [major, minor, patch] = parsed[..] else {
        return Err(format!("{version:?}, which is not a version"));
    };
    let (hmaj, hmin, hpatch) = HOST_VERSION;
    if (major, minor) != (hmaj, hmin) {
        return Err(format!(
            "{PACKAGE}@{version}; this provider supports {hmaj}.{hmin}.x ({HOST_WIT_VERSION}): {}",
            if (major, minor) > (hmaj, hmin) {
                "upgrade the provider, or rebuild the plugin with a plugin-sdk for this version"
            } else {
                "rebuild the plugin with the current plugin-sdk"
            }
        ));
    }
    if patch > hpatch {
        return Err(format!(
            "{PACKAGE}@{version}, newer than this provider's {HOST_WIT_VERSION}: upgrade the provider"
        ));
    }
    Ok(())
}

/// What the route of `object_type` grants, with its HTTP client.
pub fn grants(
    object_type: &str,
    route: &PluginRoute,
    limits: &PluginLimits,
) -> Result<Grants, String> {
    let caps = &route.capabilities;
    let egress = if caps.http.is_empty() {
        None
    } else {
        Some(Egress::new(
            object_type,
            &caps.http,
            caps.allow_internal_addresses,
            limits.http_timeout,
            limits.http_max_response_bytes,
            route.http_ca_file.as_deref(),
        )?)
    };
    Ok(Grants {
        alibaba_cloud: route.grants_alibaba_cloud(),
        egress,
        audiences: caps.service_account_audiences.clone(),
        secret_keys: caps.node_publish_secret_keys.clone(),
        pod_info: caps.pod_info,
        max_host_calls: limits.max_host_calls,
    })
}

/// One import of a component and whether this host allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The import, e.g. `alibabacloud-csi:plugin/http@0.1.0`.
    pub name: String,
    /// `Ok(what is granted)`, or why it is refused and how to grant it.
    pub verdict: Result<String, String>,
}

/// Every import of `component`, judged against `grants` for route `object_type`.
pub fn inspect(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    object_type: &str,
) -> Vec<ImportReport> {
    let key = format!("plugins.{object_type}.capabilities");
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| {
            let verdict = judge(name, grants, &key);
            ImportReport {
                name: name.to_string(),
                verdict,
            }
        })
        .collect()
}

fn judge(name: &str, grants: &Grants, key: &str) -> Result<String, String> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    if let Some(item) = interface.strip_prefix(PACKAGE) {
        if !version.is_empty() {
            check_version(version).map_err(|e| format!("the plugin was built for {e}"))?;
        }
        return match item {
            "types" | "log" => Ok("always available".into()),
            "alibaba-cloud" if grants.alibaba_cloud => {
                Ok("signed calls with the Mount's identity".into())
            }
            "alibaba-cloud" => Err(format!(
                "not granted: set {key}.alibaba_cloud = true to let it make signed Alibaba Cloud calls"
            )),
            "http" => match &grants.egress {
                Some(_) => Ok("allowed origins only".into()),
                None => Err(format!(
                    "not granted: list the origins it may reach in {key}.http, e.g. [\"https://vault.internal:8200\"]"
                )),
            },
            "identity" if grants.identity() => Ok(format!(
                "pod info: {}; token audiences: {}; nodePublishSecretRef keys: {}",
                if grants.pod_info { "yes" } else { "no" },
                list(&grants.audiences),
                list(&grants.secret_keys)
            )),
            "identity" => Err(format!(
                "not granted: set {key}.pod_info, {key}.service_account_audiences or {key}.node_publish_secret_keys"
            )),
            other => Err(format!(
                "this provider ({HOST_WIT_VERSION}) has no interface {other:?}: upgrade the provider"
            )),
        };
    }
    if WASI_OFFERED
        .iter()
        .any(|prefix| interface.starts_with(prefix))
    {
        return Ok("WASI, no capabilities".into());
    }
    if ["wasi:filesystem/", "wasi:sockets/", "wasi:http/"]
        .iter()
        .any(|prefix| interface.starts_with(prefix))
    {
        return Err(
            "not offered: plugins have no filesystem or network access of their own; use the host's http interface (plugin-sdk http) and capabilities in config.toml".into(),
        );
    }
    Err(format!(
        "not offered by this provider (a plugin may import {HOST_WIT_VERSION} interfaces and WASI cli, io, clocks and random)"
    ))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Refuses a component that imports anything not granted or not offered.
pub fn check_imports(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    object_type: &str,
) -> Result<(), String> {
    let refused: Vec<String> = inspect(engine, component, grants, object_type)
        .into_iter()
        .filter_map(|r| {
            r.verdict
                .err()
                .map(|why| format!("it imports {}: {why}", r.name))
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> Grants {
        Grants {
            alibaba_cloud: false,
            egress: None,
            audiences: vec!["vault".into()],
            secret_keys: vec![],
            pod_info: false,
            max_host_calls: 1,
        }
    }

    #[test]
    fn versions() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("0.1.0-rc1").is_ok());
        let newer = check_version("0.1.7").unwrap_err();
        assert!(newer.contains("upgrade the provider"), "{newer}");
        let next = check_version("0.2.0").unwrap_err();
        assert!(
            next.contains("supports 0.1.x") && next.contains("upgrade the provider"),
            "{next}"
        );
        assert!(
            check_version("0.0.9")
                .unwrap_err()
                .contains("rebuild the plugin")
        );
        assert!(check_version("x").is_err());
    }

    #[test]
    fn imports_are_judged() {
        let g = grants();
        let k = "plugins.v.capabilities";
        assert!(judge("alibabacloud-csi:plugin/log@0.1.0", &g, k).is_ok());
        assert!(judge("alibabacloud-csi:plugin/identity@0.1.0", &g, k).is_ok());
        assert!(
            judge("alibabacloud-csi:plugin/http@0.1.0", &g, k)
                .unwrap_err()
                .contains("plugins.v.capabilities.http")
        );
        assert!(
            judge("alibabacloud-csi:plugin/alibaba-cloud@0.1.0", &g, k)
                .unwrap_err()
                .contains("alibaba_cloud = true")
        );
        assert!(
            judge("alibabacloud-csi:plugin/http@0.2.0", &g, k)
                .unwrap_err()
                .contains("upgrade the provider")
        );
        assert!(
            judge("alibabacloud-csi:plugin/kv@0.1.0", &g, k)
                .unwrap_err()
                .contains("has no interface \"kv\"")
        );
        assert!(judge("wasi:cli/environment@0.2.6", &g, k).is_ok());
        assert!(
            judge("wasi:sockets/tcp@0.2.6", &g, k)
                .unwrap_err()
                .contains("not offered")
        );
        assert!(
            judge("wasi:filesystem/preopens@0.2.6", &g, k)
                .unwrap_err()
                .contains("not offered")
        );
        assert!(
            judge("evil:fs/read@1.0.0", &g, k)
                .unwrap_err()
                .contains("not offered by this provider")
        );
    }
}
