//! `plugin check` and `plugin new`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use provider::config::Config;

use super::UsageError;

pub(crate) async fn plugin_check(
    file: PathBuf,
    config_path: Option<PathBuf>,
    object_type: Option<String>,
) -> anyhow::Result<()> {
    let mut config = Config::load(config_path.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let object_type = object_type
        .or_else(|| {
            config
                .plugins
                .iter()
                .find(|(_, r)| r.path.as_deref() == Some(file.as_path()))
                .map(|(name, _)| name.clone())
        })
        .unwrap_or_else(|| "custom".to_string());
    let route = config.plugins.entry(object_type.clone()).or_default();
    route.builtin = None;
    route.path = Some(file.clone());
    route.enabled = true;
    println!("plugin {} as objectType {object_type}", file.display());
    let report = provider::plugin::PluginRuntime::check(&config, &object_type).await;
    match &report.wit_version {
        Some(v) => println!(
            "  built for alibabacloud-csi:plugin@{v} (stamped by plugin-sdk); this provider implements {}",
            provider::plugin::HOST_WIT_VERSION
        ),
        None => println!(
            "  no WIT version stamp (not built with plugin-sdk); this provider implements {}",
            provider::plugin::HOST_WIT_VERSION
        ),
    }
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    for (name, outcome) in &report.steps {
        if *name == "imports" {
            for import in &report.imports {
                match &import.verdict {
                    Ok(what) => println!("  {}   import {}: {what}", mark(true), import.name),
                    Err(why) => println!("  {}   import {}: {why}", mark(false), import.name),
                }
            }
        }
        match outcome {
            Ok(what) => println!("  {} {name}: {what}", mark(true)),
            Err(why) => println!("  {} {name}: {why}", mark(false)),
        }
    }
    if let Some(info) = &report.info {
        println!("  {} {}: {}", info.name, info.version, info.description);
        for (title, params) in [
            ("config keys", &info.config),
            ("object parameters", &info.parameters),
        ] {
            if params.is_empty() {
                println!("    {title}: none");
            }
            for p in params.iter() {
                println!(
                    "    {title}: {}{} - {}",
                    p.name,
                    if p.required { " (required)" } else { "" },
                    p.description
                );
            }
        }
    }
    if report.passed() {
        println!("the plugin can be routed as objectType {object_type}");
        Ok(())
    } else {
        bail!("the plugin cannot be loaded as configured (see FAIL above)")
    }
}

/// The template `plugin new` copies (a working HTTPS JSON backend).
const TEMPLATE_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");

pub(crate) fn plugin_new(
    name: &str,
    dir: Option<PathBuf>,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(UsageError(format!(
            "{name:?} is not a plugin name: use lowercase letters, digits and '-', starting with a letter"
        ))
        .into());
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let source_tree_sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    let sdk = match sdk_path.or_else(|| source_tree_sdk.is_dir().then_some(source_tree_sdk)) {
        Some(path) => format!(
            "{{ path = {:?} }}",
            std::fs::canonicalize(&path)
                .with_context(|| format!("plugin-sdk at {}", path.display()))?
        ),
        None => "{ git = \"https://github.com/alibabacloud-csi/csi-secrets-store-provider-alibabacloud\" }".to_string(),
    };
    let crate_name = name.replace('-', "_");
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
plugin-sdk = {sdk}

# Small components: what the built-in plugins use.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A crate of its own, not part of an enclosing workspace.
[workspace]
"#
    );
    let lib = TEMPLATE_LIB.replace("\"https-json\"", &format!("{name:?}"));
    let readme = format!(
        r#"# {name}

A backend plugin for csi-secrets-store-provider-alibabacloud, started from
`plugin new`. It reads JSON documents over HTTPS; change `src/lib.rs` to
fetch from your backend.

Build (once: `rustup target add wasm32-wasip2`):

    cargo build --release

Check it as the provider will load it:

    csi-secrets-store-provider-alibabacloud plugin check \
        target/wasm32-wasip2/release/{crate_name}.wasm --config config.toml

Route an objectType to it in the provider's config.toml:

    [plugins.{name}]
    path = "/etc/csi-secrets-store-provider-alibabacloud/plugins/{crate_name}.wasm"
    capabilities = {{ http = ["https://config.internal"] }}
    config = {{ base_url = "https://config.internal/apps" }}

With base_url, an objectName is a path under it, percent-encoded segment by
segment. The version is "1" unless config.version_header names an answer
header that holds a real version (never one derived from the content, such
as many servers' ETag): versions are visible to more people than secrets.
"#
    );
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(dir.join("Cargo.toml"), cargo_toml)?;
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[build]\ntarget = \"wasm32-wasip2\"\n",
    )?;
    std::fs::write(dir.join("README.md"), readme)?;
    println!(
        "created {} — build it with `cargo build --release` there (target wasm32-wasip2); the component is target/wasm32-wasip2/release/{crate_name}.wasm",
        dir.display()
    );
    Ok(())
}
