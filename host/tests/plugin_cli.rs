//! `plugin check` and `plugin new`, run as an operator or a plugin author
//! would: the real binary on real components.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_csi-secrets-store-provider-alibabacloud");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running the provider binary")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn fixture(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let wat = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(format!("{name}.wat"));
    let source = edit(std::fs::read_to_string(&wat).unwrap());
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(&source).unwrap()).unwrap();
    path
}

fn testing_plugin() -> String {
    format!("{}/testing_plugin.wasm", provider::plugin::BUILT_PLUGIN_DIR)
}

#[test]
fn check_reports_imports_that_the_config_does_not_grant() {
    let plugin = testing_plugin();
    let output = run(&["plugin", "check", &plugin, "--object-type", "testing"]);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("built for alibabacloud-csi:plugin@0.1.0 (stamped by plugin-sdk)"),
        "{out}"
    );
    assert!(out.contains("FAIL   import alibabacloud-csi:plugin/http@0.1.0: not granted: list the origins it may reach in plugins.testing.capabilities.http"), "{out}");
    assert!(out.contains("ok     import wasi:cli/environment@"), "{out}");
    assert!(out.contains("FAIL imports: 3 import(s) refused"), "{out}");
}

#[test]
fn check_passes_with_grants_and_shows_what_the_plugin_declares() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = testing_plugin();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.testing]\npath = {plugin:?}\n[plugins.testing.capabilities]\nhttp = [\"https://vault.internal:8200\"]\nalibaba_cloud = true\npod_info = true\n"
        ),
    )
    .unwrap();
    let output = run(&[
        "plugin",
        "check",
        &plugin,
        "--config",
        config.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    for want in [
        "as objectType testing",
        "ok   imports: ",
        "ok   interface: exports describe, validate and fetch of alibabacloud-csi:plugin@0.1.0",
        "ok   describe: testing 0.1.0",
        "config keys: reject - makes validation fail with this message",
        "ok   validate: accepts the configuration of [plugins.testing.config]",
        "the plugin can be routed as objectType testing",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }

    // the plugin's own validation refuses a bad setting
    std::fs::write(
        &config,
        format!(
            "[plugins.testing]\npath = {plugin:?}\n[plugins.testing.config]\nreject = \"base_url must be https\"\n[plugins.testing.capabilities]\nhttp = [\"https://x.internal\"]\nalibaba_cloud = true\npod_info = true\n"
        ),
    )
    .unwrap();
    let output = run(&[
        "plugin",
        "check",
        &plugin,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output)
            .contains("FAIL validate: refuses [plugins.testing.config]: base_url must be https"),
        "{}",
        text(&output)
    );
}

#[test]
fn check_refuses_foreign_worlds_bad_shapes_and_version_skew() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = fixture(dir.path(), "unknown-import", |s| s);
    let out = text(&run(&["plugin", "check", unknown.to_str().unwrap()]));
    assert!(
        out.contains("FAIL   import evil:fs/read@1.0.0: not offered by this provider"),
        "{out}"
    );

    let bad = fixture(dir.path(), "bad-signature", |s| s);
    let out = text(&run(&["plugin", "check", bad.to_str().unwrap()]));
    assert!(
        out.contains("FAIL interface: does not fit alibabacloud-csi:plugin@0.1.0, world backend"),
        "{out}"
    );

    // built with a newer SDK: refused before compiling, saying what to upgrade
    let newer = fixture(dir.path(), "good", |s| {
        s.replace(
            "(core module $m",
            "(core module $m (@custom \"alibabacloud-csi-plugin-wit-version\" \"0.2.0\")",
        )
    });
    let output = run(&["plugin", "check", newer.to_str().unwrap()]);
    let out = text(&output);
    assert!(!output.status.success());
    assert!(
        out.contains("built for alibabacloud-csi:plugin@0.2.0"),
        "{out}"
    );
    assert!(
        out.contains("this provider supports 0.1.x") && out.contains("upgrade the provider"),
        "{out}"
    );

    // an interface of a newer minor than the host implements
    let newer_import = fixture(dir.path(), "good", |s| {
        s.replace(
            "alibabacloud-csi:plugin/types@0.1.0",
            "alibabacloud-csi:plugin/types@0.2.0",
        )
    });
    let out = text(&run(&["plugin", "check", newer_import.to_str().unwrap()]));
    assert!(
        out.contains("FAIL   import alibabacloud-csi:plugin/types@0.2.0: the plugin was built for"),
        "{out}"
    );

    let good = fixture(dir.path(), "good", |s| s);
    let output = run(&["plugin", "check", good.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("no WIT version stamp (not built with plugin-sdk)"));
}

/// From an empty folder to a component the provider accepts, as the
/// authoring guide describes.
#[test]
fn plugin_new_builds_a_component_that_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("config-service");
    let output = run(&[
        "plugin",
        "new",
        "config-service",
        "--dir",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        ".cargo/config.toml",
        "README.md",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file}");
    }
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("PluginInfo::new(\"config-service\""));
    // Same dependency versions as this workspace, so the build needs nothing new.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target_dir = workspace.join("target/plugin-new-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .current_dir(&crate_dir)
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let component = target_dir.join("wasm32-wasip2/release/config_service.wasm");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.config-service]\npath = {component:?}\ncapabilities = {{ http = [\"https://config.internal\"], node_publish_secret_keys = [\"token\"] }}\n"
        ),
    )
    .unwrap();
    let output = run(&[
        "plugin",
        "check",
        component.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("ok   describe: config-service 0.1.0"), "{out}");

    let taken = run(&[
        "plugin",
        "new",
        "config-service",
        "--dir",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(text(&taken).contains("already exists"));
    let bad = run(&["plugin", "new", "Bad_Name"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad));
}
