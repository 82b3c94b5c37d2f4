//! The parts of loading a plugin, before anything of it runs: its bytes
//! (built in, or read from its file), the WIT version it was built for,
//! compilation, and what it imports judged against what the operator
//! granted. [`super::pipeline`] runs them in order, for `load` and for
//! `plugin check`.

use std::borrow::Cow;
use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::budget::Class;
use super::egress::{self, Egress};
use super::instance::error_text;
use crate::config::{PluginLimits, PluginRoute};

/// The WIT package this host implements.
pub const HOST_WIT_VERSION: &str = "alibabacloud-csi:plugin@0.1.0";
/// The custom section in which the SDK stamps the WIT version a plugin was
/// built against.
const WIT_VERSION_SECTION: &str = "alibabacloud-csi-plugin-wit-version";
/// Our package name in import names.
const PACKAGE: &str = "alibabacloud-csi:plugin/";
/// The version triple of [`HOST_WIT_VERSION`].
const HOST_VERSION: (u64, u64, u64) = (0, 1, 0);
/// WASI interfaces a plugin may import: what Rust's std needs, all granting
/// nothing (no arguments, environment, preopens; stdin closed).
const WASI_OFFERED: &[&str] = &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/"];

/// The built-in KMS plugin, compiled into the binary by build.rs.
const BUILTIN_KMS: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/kms_plugin.wasm"
));
/// The built-in OOS plugin.
const BUILTIN_OOS: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/oos_plugin.wasm"
));
/// The built-in KMS plugin compiled to native code by build.rs (empty if it
/// could not be).
const BUILTIN_KMS_CODE: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/kms_plugin.cwasm"
));
/// The built-in OOS plugin compiled to native code by build.rs.
const BUILTIN_OOS_CODE: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/oos_plugin.cwasm"
));

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PluginSource {
    /// Compiled into the binary.
    Builtin(String),
    /// A component file.
    File(PathBuf),
}

impl PluginSource {
    /// The source a route names (`builtin` first); `None` if it names none.
    pub(crate) fn of(route: &PluginRoute) -> Option<PluginSource> {
        match (&route.builtin, &route.path) {
            (Some(name), _) => Some(PluginSource::Builtin(name.clone())),
            (None, Some(path)) => Some(PluginSource::File(path.clone())),
            (None, None) => None,
        }
    }

    /// The class its instances are accounted to.
    pub(crate) fn class(&self) -> Class {
        match self {
            PluginSource::Builtin(_) => Class::Builtin,
            PluginSource::File(_) => Class::Custom,
        }
    }
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "built-in {name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why a plugin's bytes could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// `builtin` names no plugin of ours.
    #[error("no built-in plugin is called {0:?}")]
    NoSuchBuiltin(String),
    /// The component file cannot be read.
    #[error("cannot read the file: {0}; check plugins.<type>.path and the volume that holds it")]
    File(#[source] std::io::Error),
}

/// The bytes of a plugin: embedded in the binary, or read from its file.
pub(crate) fn read(source: &PluginSource) -> Result<Cow<'static, [u8]>, ReadError> {
    match source {
        PluginSource::Builtin(name) => match name.as_str() {
            "kms" => Ok(Cow::Borrowed(BUILTIN_KMS)),
            "oos" => Ok(Cow::Borrowed(BUILTIN_OOS)),
            other => Err(ReadError::NoSuchBuiltin(other.to_string())),
        },
        PluginSource::File(path) => std::fs::read(path).map(Cow::Owned).map_err(ReadError::File),
    }
}

/// Why a plugin could not be compiled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompileError {
    /// A file holds a core module, not a component.
    #[error(
        "it is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or convert it with wasm-tools component new)"
    )]
    CoreModule,
    /// The SDK stamped a WIT version this host does not implement.
    #[error("it was built with plugin-sdk for {0}")]
    Version(#[source] VersionError),
    /// A file is not a valid component.
    #[error("it is not a valid WebAssembly component: {}", error_text(.0))]
    Invalid(#[source] anyhow::Error),
    /// A built-in plugin does not compile (a broken build).
    #[error("{}", error_text(.0))]
    Builtin(#[source] anyhow::Error),
}

/// Compiles the `bytes` of a plugin ([`read`]); for a file, checks its WIT
/// version stamp first.
pub(crate) fn compile(
    engine: &Engine,
    source: &PluginSource,
    bytes: &[u8],
) -> Result<Component, CompileError> {
    match source {
        PluginSource::Builtin(name) => {
            if let Some(component) = precompiled(engine, name) {
                return Ok(component);
            }
            Component::new(engine, bytes).map_err(|e| CompileError::Builtin(e.into()))
        }
        PluginSource::File(_) => {
            if wasmparser::Parser::is_core_wasm(bytes) {
                return Err(CompileError::CoreModule);
            }
            if let Some(stamp) = wit_version_stamp(bytes) {
                check_version(&stamp).map_err(CompileError::Version)?;
            }
            Component::new(engine, bytes).map_err(|e| CompileError::Invalid(e.into()))
        }
    }
}

/// A built-in plugin's native code, precompiled by build.rs for this
/// engine's settings; `None` (and the `.wasm` is compiled) when there is
/// none or it does not fit the engine.
fn precompiled(engine: &Engine, name: &str) -> Option<Component> {
    let code = match name {
        "kms" => BUILTIN_KMS_CODE,
        "oos" => BUILTIN_OOS_CODE,
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
pub(crate) fn wit_version_stamp(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload
            && section.name() == WIT_VERSION_SECTION
        {
            return Some(String::from_utf8_lossy(section.data()).trim().to_string());
        }
    }
    None
}

/// A version of the plugin interfaces this host does not implement; its
/// `Display` names the version and what to upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not `major.minor.patch`.
    #[error("{0:?}, which is not a version")]
    NotAVersion(String),
    /// Another major or minor version: older (rebuild the plugin) or newer
    /// (upgrade the provider).
    #[error(
        "{PACKAGE}@{version}; this provider supports {major}.{minor}.x ({HOST_WIT_VERSION}): {advice}",
        major = HOST_VERSION.0,
        minor = HOST_VERSION.1,
        advice = advice(.newer)
    )]
    OtherMinor {
        /// The version the plugin was built for.
        version: String,
        /// Whether it is newer than the host's.
        newer: bool,
    },
    /// A newer patch release of the host's version.
    #[error(
        "{PACKAGE}@{version}, newer than this provider's {HOST_WIT_VERSION}: upgrade the provider"
    )]
    NewerPatch {
        /// The version the plugin was built for.
        version: String,
    },
}

/// What to upgrade for a plugin of another minor version.
fn advice(newer: &bool) -> &'static str {
    if *newer {
        "upgrade the provider, or rebuild the plugin with a plugin-sdk for this version"
    } else {
        "rebuild the plugin with the current plugin-sdk"
    }
}

/// Accepts `0.1.x` up to the host's own version; says what to upgrade otherwise.
fn check_version(version: &str) -> Result<(), VersionError> {
    let parsed: Vec<u64> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect();
    let [major, minor, patch] = parsed[..] else {
        return Err(VersionError::NotAVersion(version.to_string()));
    };
    let (hmaj, hmin, hpatch) = HOST_VERSION;
    if (major, minor) != (hmaj, hmin) {
        return Err(VersionError::OtherMinor {
            version: version.to_string(),
            newer: (major, minor) > (hmaj, hmin),
        });
    }
    if patch > hpatch {
        return Err(VersionError::NewerPatch {
            version: version.to_string(),
        });
    }
    Ok(())
}

/// What the operator granted a plugin (`[plugins.<type>.capabilities]`) and
/// the host-call budget of one fetch.
#[derive(Debug)]
pub(crate) struct Grants {
    /// Signed Alibaba Cloud calls.
    pub(crate) alibaba_cloud: bool,
    /// Outbound HTTP, when any origin is allowed.
    pub(crate) egress: Option<Egress>,
    /// Audiences of service-account tokens it may read.
    pub(crate) audiences: Vec<String>,
    /// nodePublishSecretRef keys it may read.
    pub(crate) secret_keys: Vec<String>,
    /// Whether it may read the pod's identity.
    pub(crate) pod_info: bool,
    /// Host calls one fetch may make.
    pub(crate) max_host_calls: u32,
}

impl Grants {
    /// Whether any part of the `identity` interface is granted.
    pub(crate) fn identity(&self) -> bool {
        self.pod_info || !self.audiences.is_empty() || !self.secret_keys.is_empty()
    }
}

/// What the route of `object_type` grants, with its HTTP client.
pub(crate) fn grants(
    object_type: &str,
    route: &PluginRoute,
    limits: &PluginLimits,
) -> Result<Grants, egress::SetupError> {
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
    pub verdict: Result<String, Refusal>,
}

/// Why an import is refused; its `Display` says how to grant it, if it can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An interface of a version this host does not implement.
    #[error("the plugin was built for {0}")]
    Version(#[source] VersionError),
    /// Signed Alibaba Cloud calls, not granted.
    #[error(
        "not granted: set {key}.alibaba_cloud = true to let it make signed Alibaba Cloud calls"
    )]
    AlibabaCloudNotGranted {
        /// `plugins.<type>.capabilities`.
        key: String,
    },
    /// Outbound HTTP, not granted.
    #[error(
        "not granted: list the origins it may reach in {key}.http, e.g. [\"https://vault.internal:8200\"]"
    )]
    HttpNotGranted {
        /// `plugins.<type>.capabilities`.
        key: String,
    },
    /// The pod's identity, not granted.
    #[error(
        "not granted: set {key}.pod_info, {key}.service_account_audiences or {key}.node_publish_secret_keys"
    )]
    IdentityNotGranted {
        /// `plugins.<type>.capabilities`.
        key: String,
    },
    /// An interface of our package this host does not have.
    #[error("this provider ({HOST_WIT_VERSION}) has no interface {0:?}: upgrade the provider")]
    NoSuchInterface(String),
    /// WASI filesystem, sockets or HTTP: never offered.
    #[error(
        "not offered: plugins have no filesystem or network access of their own; use the host's http interface (plugin-sdk http) and capabilities in config.toml"
    )]
    NoAmbientAccess,
    /// Anything else.
    #[error(
        "not offered by this provider (a plugin may import {HOST_WIT_VERSION} interfaces and WASI cli, io, clocks and random)"
    )]
    NotOffered,
}

/// Every import of `component`, judged against `grants` for route `object_type`.
pub(crate) fn inspect(
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

fn judge(name: &str, grants: &Grants, key: &str) -> Result<String, Refusal> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    let key = || key.to_string();
    if let Some(item) = interface.strip_prefix(PACKAGE) {
        if !version.is_empty() {
            check_version(version).map_err(Refusal::Version)?;
        }
        return match item {
            "types" | "log" => Ok("always available".into()),
            "alibaba-cloud" if grants.alibaba_cloud => {
                Ok("signed calls with the Mount's identity".into())
            }
            "alibaba-cloud" => Err(Refusal::AlibabaCloudNotGranted { key: key() }),
            "http" => match &grants.egress {
                Some(_) => Ok("allowed origins only".into()),
                None => Err(Refusal::HttpNotGranted { key: key() }),
            },
            "identity" if grants.identity() => Ok(format!(
                "pod info: {}; token audiences: {}; nodePublishSecretRef keys: {}",
                if grants.pod_info { "yes" } else { "no" },
                list(&grants.audiences),
                list(&grants.secret_keys)
            )),
            "identity" => Err(Refusal::IdentityNotGranted { key: key() }),
            other => Err(Refusal::NoSuchInterface(other.to_string())),
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
        return Err(Refusal::NoAmbientAccess);
    }
    Err(Refusal::NotOffered)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The imports of a component that this host refuses (at least one).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct RefusedImports(Vec<(String, Refusal)>);

impl RefusedImports {
    /// The refused ones among `imports`; `None` if every one is allowed.
    pub(crate) fn among(imports: &[ImportReport]) -> Option<RefusedImports> {
        let refused: Vec<(String, Refusal)> = imports
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.verdict.clone().err()?)))
            .collect();
        (!refused.is_empty()).then_some(RefusedImports(refused))
    }

    /// How many imports are refused.
    pub(crate) fn count(&self) -> usize {
        self.0.len()
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(name, why)| format!("it imports {name}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
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
        assert!(matches!(newer, VersionError::NewerPatch { .. }));
        assert_eq!(
            newer.to_string(),
            "alibabacloud-csi:plugin/@0.1.7, newer than this provider's alibabacloud-csi:plugin@0.1.0: upgrade the provider"
        );
        let next = check_version("0.2.0").unwrap_err().to_string();
        assert!(
            next.contains("supports 0.1.x") && next.contains("upgrade the provider"),
            "{next}"
        );
        assert_eq!(
            next,
            "alibabacloud-csi:plugin/@0.2.0; this provider supports 0.1.x (alibabacloud-csi:plugin@0.1.0): upgrade the provider, or rebuild the plugin with a plugin-sdk for this version"
        );
        assert!(
            check_version("0.0.9")
                .unwrap_err()
                .to_string()
                .contains("rebuild the plugin")
        );
        assert_eq!(
            check_version("x").unwrap_err().to_string(),
            "\"x\", which is not a version"
        );
    }

    #[test]
    fn imports_are_judged() {
        let g = grants();
        let k = "plugins.v.capabilities";
        let refused = |name: &str| judge(name, &g, k).unwrap_err().to_string();
        assert!(judge("alibabacloud-csi:plugin/log@0.1.0", &g, k).is_ok());
        assert!(judge("alibabacloud-csi:plugin/identity@0.1.0", &g, k).is_ok());
        assert!(
            refused("alibabacloud-csi:plugin/http@0.1.0").contains("plugins.v.capabilities.http")
        );
        assert!(
            refused("alibabacloud-csi:plugin/alibaba-cloud@0.1.0").contains("alibaba_cloud = true")
        );
        assert!(matches!(
            judge("alibabacloud-csi:plugin/http@0.2.0", &g, k),
            Err(Refusal::Version(VersionError::OtherMinor {
                newer: true,
                ..
            }))
        ));
        assert!(refused("alibabacloud-csi:plugin/http@0.2.0").contains("upgrade the provider"));
        assert!(refused("alibabacloud-csi:plugin/kv@0.1.0").contains("has no interface \"kv\""));
        assert!(judge("wasi:cli/environment@0.2.6", &g, k).is_ok());
        assert!(refused("wasi:sockets/tcp@0.2.6").contains("not offered"));
        assert!(refused("wasi:filesystem/preopens@0.2.6").contains("not offered"));
        assert!(refused("evil:fs/read@1.0.0").contains("not offered by this provider"));
        assert_eq!(judge("evil:fs/read@1.0.0", &g, k), Err(Refusal::NotOffered));
    }

    #[test]
    fn refused_imports_are_listed_with_how_to_grant_them() {
        let imports = vec![
            ImportReport {
                name: "wasi:io/streams@0.2.6".into(),
                verdict: Ok("WASI, no capabilities".into()),
            },
            ImportReport {
                name: "alibabacloud-csi:plugin/http@0.1.0".into(),
                verdict: Err(Refusal::HttpNotGranted {
                    key: "plugins.v.capabilities".into(),
                }),
            },
            ImportReport {
                name: "evil:fs/read@1.0.0".into(),
                verdict: Err(Refusal::NotOffered),
            },
        ];
        let refused = RefusedImports::among(&imports).unwrap();
        assert_eq!(refused.count(), 2);
        let text = refused.to_string();
        assert!(
            text.starts_with("it imports alibabacloud-csi:plugin/http@0.1.0: not granted: list the origins it may reach in plugins.v.capabilities.http"),
            "{text}"
        );
        assert!(
            text.contains("; it imports evil:fs/read@1.0.0: not offered by this provider"),
            "{text}"
        );
        assert!(RefusedImports::among(&imports[..1]).is_none());
    }

    #[test]
    fn built_in_plugins_and_files_are_read_or_refused_by_name() {
        assert_eq!(
            read(&PluginSource::Builtin("kms".into())).unwrap(),
            BUILTIN_KMS
        );
        let unknown = read(&PluginSource::Builtin("vault".into())).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "no built-in plugin is called \"vault\""
        );
        let missing = read(&PluginSource::File("/nonexistent/plugin.wasm".into())).unwrap_err();
        assert!(matches!(&missing, ReadError::File(e) if e.kind() == std::io::ErrorKind::NotFound));
        assert!(
            missing.to_string().starts_with("cannot read the file: ")
                && missing
                    .to_string()
                    .ends_with("; check plugins.<type>.path and the volume that holds it"),
            "{missing}"
        );
    }
}
