//! The host's modules form the layers docs/architecture.md describes: each
//! top-level module of `host/src` uses only modules of lower layers (read
//! from its `crate::…` paths outside `#[cfg(test)]` code), so the graph has
//! no cycle. A new module must be given a layer here, which is the point: a
//! dependency that goes up fails this test and names the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module; a module may use modules of lower layers
/// only. Ties are unrelated modules of the same layer (they may not use each
/// other).
const LAYERS: &[(&str, u32)] = &[
    // The generated protocol types (in lib.rs).
    ("proto", 0),
    // Leaves: nothing of the crate but the protocol types.
    ("http", 1),
    ("metrics", 1),
    ("memory", 1),
    ("fair", 1),
    ("goflags", 1),
    ("logging", 1),
    ("client", 1),
    ("singleflight", 1),
    // Signing and sending Alibaba Cloud API calls.
    ("cloud", 2),
    // Credentials: the chain, STS, the metadata server, the Kubernetes API.
    ("identity", 3),
    // One object's access to the cloud with a Mount's identity.
    ("session", 4),
    // WebAssembly plugins.
    ("plugin", 5),
    // Shared (coalesced, cached) fetches.
    ("fetches", 6),
    // A Mount, from parameters to files.
    ("mount", 7),
    // The gRPC server and the health server.
    ("server", 8),
    ("health", 8),
    // The composition root.
    ("app", 9),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`plugin/load.rs` →
/// `plugin`); `None` for lib.rs, main.rs and the binary's own modules.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

/// The code of `text` outside `#[cfg(test)]` items (the first such item
/// and everything after it: test modules come last in this crate).
fn non_test(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// Modules named by `crate::<name>` paths in `code` (comments included:
/// a doc link to a higher layer is a dependency of the reader too).
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::{a, b}` groups
        if after.starts_with('{') {
            let group = &after[1..after.find('}').unwrap_or(after.len())];
            for item in group.split(',') {
                let item = item.trim();
                let name: String = item
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else if !name.is_empty() {
            found.insert(name);
        }
        rest = after;
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for used in crate_paths(non_test(&text)) {
            if used != module && layers.contains_key(used.as_str()) {
                uses.insert(used);
            }
        }
    }
    graph
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let graph = graph();
    let unplaced: Vec<&String> = graph
        .keys()
        .filter(|m| !layers.contains_key(m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer in LAYERS (tests/module_graph.rs): {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            if layers[used.as_str()] >= layers[module.as_str()] {
                upward.push(format!(
                    "{module} (layer {}) uses {used} (layer {})",
                    layers[module.as_str()],
                    layers[used.as_str()]
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies that do not go down a layer:\n{}\nthe graph: {graph:#?}",
        upward.join("\n")
    );
}

#[test]
fn the_parser_sees_paths_and_groups() {
    let code = "use crate::cloud::{ApiCall, CloudClient};\nuse crate::{fair, metrics::Metrics};\nfn f() { crate::identity::x(); }\n#[cfg(test)]\nmod tests { use crate::mount; }";
    assert_eq!(
        crate_paths(non_test(code)),
        ["cloud", "fair", "identity", "metrics"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
