//! The provider's memory plan: the most memory its configuration lets it
//! hold, term by term, checked at start-up against the container's memory
//! limit (the cgroup's), so that a configuration that could be pushed past
//! the limit by a flood of Mounts fails at once with the keys to change,
//! instead of being OOM-killed later under load.

use std::path::Path;

use crate::config::Config;

/// Memory of the process with no Mount in flight, with headroom: 32 MiB
/// measured idle (engine, compiled plugins, runtime; `scripts/measure-rss`),
/// plus connection pools, the credential cache and per-Mount working memory.
pub const BASELINE_BYTES: u64 = 48 << 20;

/// One term of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// What it is and which keys set it.
    pub what: String,
    /// Bytes at most.
    pub bytes: u64,
}

/// The terms of the plan for `config`.
pub fn plan(config: &Config) -> Vec<Term> {
    let l = &config.limits;
    let mut terms = vec![
        Term {
            what: "runtime, compiled plugins and caches".into(),
            bytes: BASELINE_BYTES,
        },
        Term {
            what: "Mount requests held ((limits.mounts_in_flight + limits.mounts_in_flight_per_namespace) x limits.max_request_bytes)"
                .into(),
            bytes: (l.mounts_in_flight + l.mounts_in_flight_per_namespace) as u64
                * l.max_request_bytes as u64,
        },
        Term {
            what: "fetched secrets held (limits.secret_bytes_in_flight)".into(),
            bytes: l.secret_bytes_in_flight as u64,
        },
        Term {
            what: "built-in plugin instances (limits.plugin_memory_mib)".into(),
            bytes: l.plugin_memory_mib << 20,
        },
    ];
    if config.cache.enabled {
        terms.push(Term {
            what: "the value cache (cache.max_bytes)".into(),
            bytes: config.cache.max_bytes,
        });
    }
    if config.plugins.values().any(|r| r.path.is_some()) {
        terms.push(Term {
            what: "custom plugin instances (limits.custom_plugin_memory_mib)".into(),
            bytes: l.custom_plugin_memory_mib << 20,
        });
    }
    terms
}

/// The container's memory limit from the cgroup (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`) under `root` (`/sys/fs/cgroup`); `None` when
/// there is none or it cannot be read.
pub fn cgroup_limit(root: &Path) -> Option<u64> {
    let read = |file: &str| std::fs::read_to_string(root.join(file)).ok();
    let value = read("memory.max").or_else(|| read("memory/memory.limit_in_bytes"))?;
    let value = value.trim();
    if value == "max" {
        return None;
    }
    // cgroup v1 reports "no limit" as a page-rounded i64::MAX.
    value.parse::<u64>().ok().filter(|v| *v < 1 << 60)
}

/// A plan larger than the container's memory limit; its text lists every
/// term and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the configuration lets the provider hold up to {} MiB ({}), more than the container's memory limit of {} MiB: raise the container's memory limit (chart value linux.resources.limits.memory) to at least {}Mi, or lower those keys in [limits]",
    mib(*total),
    terms.iter().map(|(bytes, what)| format!("{} MiB for {what}", mib(*bytes))).collect::<Vec<_>>().join(", "),
    limit >> 20,
    mib(*total)
)]
pub struct OverLimit {
    /// The plan's total, in bytes.
    pub total: u64,
    /// The container's limit, in bytes.
    pub limit: u64,
    /// Each term: bytes, and what they are for (with the config key).
    pub terms: Vec<(u64, String)>,
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Checks the plan against `limit`.
pub fn check(config: &Config, limit: Option<u64>) -> Result<u64, OverLimit> {
    let terms = plan(config);
    let total: u64 = terms.iter().map(|t| t.bytes).sum();
    let Some(limit) = limit else {
        return Ok(total);
    };
    if total <= limit {
        return Ok(total);
    }
    Err(OverLimit {
        total,
        limit,
        terms: terms.iter().map(|t| (t.bytes, t.what.clone())).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_the_charts_limit_with_a_custom_plugin() {
        let mut config = Config::default();
        let builtin_only = check(&config, Some(256 << 20)).unwrap();
        assert_eq!(builtin_only >> 20, 48 + 48 + 32 + 64);
        config.plugins.insert(
            "vault".into(),
            toml::from_str("path = \"/p/vault.wasm\"").unwrap(),
        );
        assert_eq!(check(&config, Some(256 << 20)).unwrap() >> 20, 256);
    }

    #[test]
    fn a_plan_over_the_limit_names_every_term() {
        let mut config = Config::default();
        config.limits.plugin_memory_mib = 512;
        let e = check(&config, Some(256 << 20)).unwrap_err().to_string();
        assert!(
            e.starts_with("the configuration lets the provider hold up to 640 MiB"),
            "{e}"
        );
        assert!(e.contains("512 MiB for built-in plugin instances (limits.plugin_memory_mib)"));
        assert!(e.contains("more than the container's memory limit of 256 MiB"));
        assert!(e.contains("at least 640Mi"));
        assert!(check(&config, None).is_ok());
    }

    #[test]
    fn cgroup_limits_v1_and_v2() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_limit(dir.path()), None);
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(
            dir.path().join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(cgroup_limit(dir.path()), None);
        std::fs::write(
            dir.path().join("memory/memory.limit_in_bytes"),
            "268435456\n",
        )
        .unwrap();
        assert_eq!(cgroup_limit(dir.path()), Some(256 << 20));
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), None);
        std::fs::write(dir.path().join("memory.max"), "134217728\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), Some(128 << 20));
    }
}
