//! config.toml: `Config::parse` (TOML, then the built-in routes merged in,
//! then validation).
//!
//! Input: the file's text.
//!
//! Invariants: no panic; an accepted config validates again, keeps only
//! enabled routes, keeps the built-in routes unless a file route replaced or
//! disabled them, gives every route effective limits, and its request limits
//! convert; plugin config values convert.
#![no_main]

use std::path::Path;

use contract::config::{self, Config};
use contract::spc::RequestLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    config
        .validate()
        .expect("an accepted config validates again");
    let limits = RequestLimits::from(&config.limits);
    assert!(limits.max_objects > 0 && limits.max_objects_bytes > 0);
    for (name, route) in &config.plugins {
        assert!(route.enabled, "plugin {name} is disabled but kept");
        let effective = config.limits_for(route);
        assert!(effective.memory_limit_mib > 0 && effective.max_output_bytes > 0);
        for value in route.config.values() {
            let _ = config::plugin_config_value(value);
        }
    }
    // Parsing is a function of the text.
    let again = Config::parse(text, Path::new("fuzz.toml")).expect("parses twice");
    assert_eq!(format!("{again:?}"), format!("{config:?}"));
});
