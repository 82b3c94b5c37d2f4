//! Build script: compiles the provider protocol and the built-in WebAssembly
//! plugins.
//!
//! The plugins (`plugins/kms`, `plugins/oos`, the `plugins/testing` fixture
//! and the `plugins/vault` example) are built for `wasm32-wasip2` by a nested cargo with its own target
//! directory (sharing ours deadlocks on cargo's build lock) and a scrubbed
//! environment (host RUSTFLAGS must not leak into the wasm build). The host
//! embeds `kms.wasm` and `oos.wasm` with `include_bytes!`.
//!
//! The built-in plugins are then compiled to native code here, with the
//! engine settings of `src/plugin/codegen.rs` that the runtime uses too, so
//! that the provider loads them without compiling at start-up
//! (`kms_plugin.cwasm`, `oos_plugin.cwasm`). If that is not possible (a
//! target cranelift was not built for), the file is left empty and the
//! runtime compiles the `.wasm` at start-up instead.
//!
//! Set `PROVIDER_PREBUILT_PLUGIN_DIR` to a directory holding those `.wasm`
//! files (`kms_plugin.wasm`, `oos_plugin.wasm`, `testing_plugin.wasm`,
//! `vault_plugin.wasm`) to skip the nested build (for packagers and machines
//! without the wasm target).

use std::path::{Path, PathBuf};
use std::process::{Command, exit};

#[path = "src/plugin/codegen.rs"]
mod codegen;

const PLUGIN_TARGET: &str = "wasm32-wasip2";
const PLUGIN_PACKAGES: &[&str] = &["kms-plugin", "oos-plugin", "testing-plugin", "vault-plugin"];
const PLUGIN_ARTIFACTS: &[&str] = &[
    "kms_plugin.wasm",
    "oos_plugin.wasm",
    "testing_plugin.wasm",
    "vault_plugin.wasm",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root");
    let out_dir = PathBuf::from(env("OUT_DIR"));

    compile_proto(workspace);

    println!("cargo::rerun-if-env-changed=PROVIDER_PREBUILT_PLUGIN_DIR");
    let artifacts = match std::env::var_os("PROVIDER_PREBUILT_PLUGIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build_plugins(workspace, &out_dir),
    };
    for name in PLUGIN_ARTIFACTS {
        let from = artifacts.join(name);
        if let Err(err) = std::fs::copy(&from, out_dir.join(name)) {
            fail(&format!("cannot copy the plugin {}: {err}", from.display()));
        }
    }
    precompile_builtins(&out_dir);
    println!(
        "cargo::rustc-env=PROVIDER_BUILT_PLUGIN_DIR={}",
        out_dir.display()
    );
}

/// The built-in plugins that are embedded, precompiled.
const PRECOMPILED: &[&str] = &["kms_plugin", "oos_plugin"];

fn precompile_builtins(out_dir: &Path) {
    let target = env("TARGET");
    println!("cargo::rustc-env=PROVIDER_PLUGIN_TARGET={target}");
    println!("cargo::rerun-if-changed=src/plugin/codegen.rs");
    let engine = codegen::codegen_config(&target)
        .map_err(|e| e.to_string())
        .and_then(|config| wasmtime::Engine::new(&config).map_err(|e| e.to_string()));
    for name in PRECOMPILED {
        let wasm = out_dir.join(format!("{name}.wasm"));
        let code = match &engine {
            Ok(engine) => std::fs::read(&wasm)
                .map_err(|e| format!("cannot read {}: {e}", wasm.display()))
                .and_then(|bytes| {
                    engine
                        .precompile_component(&bytes)
                        .map_err(|e| format!("{e:#}"))
                }),
            Err(e) => Err(e.clone()),
        };
        let code = code.unwrap_or_else(|e| {
            println!(
                "cargo::warning=the built-in plugin {name} is not precompiled for {target} ({e}); the provider compiles it at start-up"
            );
            Vec::new()
        });
        let path = out_dir.join(format!("{name}.cwasm"));
        if let Err(e) = std::fs::write(&path, code) {
            fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

fn compile_proto(workspace: &Path) {
    let proto_dir = workspace.join("proto");
    let proto = proto_dir.join("v1alpha1/service.proto");
    println!("cargo::rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])
        .unwrap_or_else(|err| fail(&format!("cannot parse {}: {err}", proto.display())));
    // src/lib.rs writes these Debug impls by hand: the generated ones would
    // print the nodePublishSecretRef data, the attributes (which carry the
    // pod's service-account tokens) and the files' contents.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .skip_debug([
            ".v1alpha1.MountRequest",
            ".v1alpha1.MountResponse",
            ".v1alpha1.File",
        ])
        .compile_fds(fds)
        .unwrap_or_else(|err| fail(&format!("cannot generate the gRPC code: {err}")));
}

fn build_plugins(workspace: &Path, out_dir: &Path) -> PathBuf {
    for path in ["wit", "plugins", "Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", workspace.join(path).display());
    }

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| fail(&format!("cannot run `{rustc} --print sysroot`")));
    if !sysroot
        .join("lib/rustlib")
        .join(PLUGIN_TARGET)
        .join("lib")
        .is_dir()
    {
        fail(&format!(
            "the Rust target {PLUGIN_TARGET} is not installed for {}; run `rustup target add {PLUGIN_TARGET}`",
            sysroot.display()
        ));
    }

    let target_dir = cargo_target_dir(out_dir).join("plugin-wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--profile", "plugin", "--target", PLUGIN_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in PLUGIN_PACKAGES {
        cmd.args(["-p", package]);
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|err| fail(&format!("cannot run the nested cargo build: {err}")));
    if !status.success() {
        fail("building the WebAssembly plugins failed (compiler output above)");
    }
    target_dir.join(PLUGIN_TARGET).join("plugin")
}

/// The target directory of the outer build: the nearest ancestor of OUT_DIR
/// that cargo marked with CACHEDIR.TAG.
fn cargo_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("plugin-build"))
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("{name} is not set")))
}

fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    // A non-zero exit makes cargo print the nested build's stderr.
    exit(1)
}
