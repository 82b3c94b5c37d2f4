//! `yaml::parse`, the bounded YAML reader of `parameters.objects`.
//!
//! Input: the YAML text.
//!
//! Invariants: no panic; an accepted document stays within the node and
//! string budgets (aliases expanded, merge keys applied); an accepted
//! document is stable (serialised and parsed again, it is the same value);
//! text with more flow brackets than the bound is refused.
#![no_main]

use contract::yaml::{self, MAX_EXPANDED_STRING_BYTES, MAX_FLOW_BRACKETS, MAX_NODES};
use libfuzzer_sys::fuzz_target;
use serde_yaml::Value;

/// (nodes, string bytes), keys included, as the budget counts them.
fn size(value: &Value) -> (usize, usize) {
    match value {
        Value::String(s) => (1, s.len()),
        Value::Sequence(items) => items.iter().map(size).fold((1, 0), add),
        Value::Mapping(map) => map
            .iter()
            .flat_map(|(k, v)| [size(k), size(v)])
            .fold((1, 0), add),
        Value::Tagged(tagged) => add((1, 0), size(&tagged.value)),
        _ => (1, 0),
    }
}

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0 + b.0, a.1 + b.1)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    match yaml::parse(text, "parameters.objects") {
        Ok(value) => {
            assert!(brackets <= MAX_FLOW_BRACKETS);
            let (nodes, bytes) = size(&value);
            assert!(nodes <= MAX_NODES, "{nodes} nodes accepted");
            assert!(
                bytes <= MAX_EXPANDED_STRING_BYTES,
                "{bytes} string bytes accepted"
            );
            // What was accepted reads back as itself (no aliases or merges
            // are left in it). Floats may not round-trip exactly; skip those.
            if let Ok(again) = serde_yaml::to_string(&value)
                && !again.contains(".nan")
            {
                if let Ok(reparsed) = yaml::parse(&again, "again") {
                    if !has_float(&value) {
                        assert_eq!(reparsed, value, "{again}");
                    }
                }
            }
        }
        Err(e) => {
            if brackets > MAX_FLOW_BRACKETS {
                assert!(e.0.contains("'[' and '{'"), "{}", e.0);
            }
        }
    }
});

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Sequence(items) => items.iter().any(has_float),
        Value::Mapping(map) => map.iter().any(|(k, v)| has_float(k) || has_float(v)),
        Value::Tagged(tagged) => has_float(&tagged.value),
        _ => false,
    }
}
