//! The on-disk cache of compiled custom plugins (`[plugin_cache] dir`): a
//! second start loads the native code instead of compiling, a changed
//! component is compiled again, and a directory others can write is never
//! used.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use contract::config::Config;
use provider::plugin::PluginRuntime;

fn config(plugin: &Path, cache_dir: &Path) -> Config {
    let text = format!(
        "[plugin_cache]\ndir = {:?}\n[plugins.testing]\npath = {:?}\n[plugins.testing.capabilities]\nhttp = [\"https://vault.internal:8200\"]\nalibaba_cloud = true\npod_info = true\n",
        cache_dir.display().to_string(),
        plugin.display().to_string(),
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

fn entries(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn testing_plugin(dir: &Path) -> std::path::PathBuf {
    let built = format!("{}/testing_plugin.wasm", provider::plugin::BUILT_PLUGIN_DIR);
    let copy = dir.join("testing_plugin.wasm");
    std::fs::copy(built, &copy).unwrap();
    copy
}

#[tokio::test]
async fn a_restart_loads_compiled_plugins_from_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let plugin = testing_plugin(root.path());
    let cache = root.path().join("cache/plugins");
    let config = config(&plugin, &cache);

    let first = PluginRuntime::load(&config).await.unwrap();
    assert_eq!(first.compile_cache_stats(), Some((0, 1)), "compiled once");
    drop(first);
    assert!(entries(&cache) > 0, "native code was written to {cache:?}");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let second = PluginRuntime::load(&config).await.unwrap();
    assert_eq!(
        second.compile_cache_stats(),
        Some((1, 0)),
        "loaded, not compiled"
    );
    drop(second);

    // Another component at the same path: its content hash differs, so it is
    // compiled (and cached) anew instead of the old code being run.
    let mut bytes = std::fs::read(&plugin).unwrap();
    // A custom section (id 0, name "x", 1 byte) appended to the component.
    bytes.extend_from_slice(&[0, 3, 1, b'x', 7]);
    std::fs::write(&plugin, &bytes).unwrap();
    let third = PluginRuntime::load(&config).await.unwrap();
    assert_eq!(third.compile_cache_stats(), Some((0, 1)), "recompiled");
}

#[tokio::test]
async fn a_directory_others_can_write_is_not_used() {
    let root = tempfile::tempdir().unwrap();
    let plugin = testing_plugin(root.path());
    let cache = root.path().join("shared");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();

    let runtime = PluginRuntime::load(&config(&plugin, &cache)).await.unwrap();
    assert_eq!(runtime.compile_cache_stats(), None);
    drop(runtime);
    assert_eq!(entries(&cache), 0, "nothing was written to {cache:?}");

    // A symlink to a private directory is not followed either.
    let private = root.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    let runtime = PluginRuntime::load(&config(&plugin, &link)).await.unwrap();
    assert_eq!(runtime.compile_cache_stats(), None);
}

#[tokio::test]
async fn only_custom_plugins_use_it() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let mut config = Config::default();
    config.plugin_cache.dir = cache.display().to_string();
    let runtime = PluginRuntime::load(&config).await.unwrap();
    assert_eq!(runtime.compile_cache_stats(), None);
    assert!(
        !cache.exists(),
        "the built-ins are precompiled into the binary"
    );
}
