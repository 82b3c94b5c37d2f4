//! `parameters.objects` as YAML, parsed with bounds that hold for any input.
//!
//! The text comes from a tenant (a SecretProviderClass, or a pod's
//! `volumeAttributes`), so three costs are bounded before they can grow:
//!
//! - **Size**: the caller checks the text's length first.
//! - **Flow nesting**: libyaml's scanner does work proportional to the depth
//!   of `[`/`{` nesting for every token, so a few hundred KiB of `{a: ` take
//!   seconds. The number of `[` and `{` characters anywhere in the text
//!   (quoted or not) is an upper bound on that depth that no quoting can
//!   hide; at [`MAX_FLOW_BRACKETS`] the scanner stays linear (about 20 ms for
//!   256 KiB at that depth, measured).
//! - **Alias expansion**: anchors and aliases (`&a`, `*a`) let 2 KiB describe
//!   gigabytes. The document is built by a visitor that counts every node it
//!   creates, aliases expanded, and every byte of the strings, and stops at
//!   [`MAX_NODES`] / [`MAX_EXPANDED_STRING_BYTES`]: a bomb never materialises.
//!
//! Nesting depth is bounded by serde_yaml itself (128 levels, an error).
//! Merge keys (`<<: *defaults`) are applied, as the upstream provider's
//! go-yaml did.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};

/// Most `[` and `{` characters in the text (an upper bound on flow nesting).
pub const MAX_FLOW_BRACKETS: usize = 1024;
/// Most YAML nodes (scalars, sequences, mappings) the document may expand
/// to, aliases included. A SecretProviderClass of 256 objects with every
/// field and a few jmesPath entries has about 5,000.
pub const MAX_NODES: usize = 65_536;
/// Most bytes of strings the document may expand to, aliases included.
pub const MAX_EXPANDED_STRING_BYTES: usize = 1 << 20;

/// Why the text was refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(pub String);

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one YAML document into a value, within the bounds above. `what`
/// names the text in messages (`parameters.objects`).
pub fn parse(text: &str, what: &str) -> Result<Value, YamlError> {
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if brackets > MAX_FLOW_BRACKETS {
        return Err(YamlError(format!(
            "{what} has {brackets} '[' and '{{' characters; at most {MAX_FLOW_BRACKETS} are accepted (they bound how deeply flow-style YAML can nest); write the objects in block style, one \"- objectName: ...\" item per object"
        )));
    }
    let budget = Budget {
        nodes: Cell::new(0),
        string_bytes: Cell::new(0),
        exceeded: Cell::new(None),
    };
    let parsed = BoundedValue(&budget).deserialize(serde_yaml::Deserializer::from_str(text));
    if let Some(limit) = budget.exceeded.get() {
        return Err(YamlError(match limit {
            Exceeded::Nodes => format!(
                "{what} expands to more than {MAX_NODES} YAML nodes (anchors and aliases expanded); a SecretProviderClass needs far fewer: remove the repeated aliases (*name) or split the objects across SecretProviderClasses"
            ),
            Exceeded::StringBytes => format!(
                "{what} expands to more than {MAX_EXPANDED_STRING_BYTES} bytes of strings (anchors and aliases expanded); remove the repeated aliases (*name)"
            ),
        }));
    }
    let mut value = parsed.map_err(|e| {
        let message = e.to_string();
        if message.starts_with("repetition limit exceeded") {
            YamlError(format!(
                "{what} repeats aliases (*name) too often for a SecretProviderClass: {message}"
            ))
        } else {
            YamlError(message)
        }
    })?;
    value
        .apply_merge()
        .map_err(|e| YamlError(format!("{what}: a merge key (<<) is invalid: {e}")))?;
    Ok(value)
}

#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Nodes,
    StringBytes,
}

struct Budget {
    nodes: Cell<usize>,
    string_bytes: Cell<usize>,
    exceeded: Cell<Option<Exceeded>>,
}

impl Budget {
    fn node<E: de::Error>(&self) -> Result<(), E> {
        let nodes = self.nodes.get() + 1;
        self.nodes.set(nodes);
        if nodes > MAX_NODES {
            self.exceeded.set(Some(Exceeded::Nodes));
            return Err(E::custom("YAML node budget exceeded"));
        }
        Ok(())
    }

    fn string<E: de::Error>(&self, len: usize) -> Result<(), E> {
        self.node()?;
        let bytes = self.string_bytes.get().saturating_add(len);
        self.string_bytes.set(bytes);
        if bytes > MAX_EXPANDED_STRING_BYTES {
            self.exceeded.set(Some(Exceeded::StringBytes));
            return Err(E::custom("YAML string budget exceeded"));
        }
        Ok(())
    }
}

/// Builds a [`Value`] as serde_yaml's own visitor does, counting as it goes.
#[derive(Clone, Copy)]
struct BoundedValue<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.0.node()?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.0.node()?;
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.0.node()?;
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.0.node()?;
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.0.string(s.len())?;
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.0.string(s.len())?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.node()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.node()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.node()?;
        let mut mapping = Mapping::new();
        while let Some(key) = map.next_key_seed(self)? {
            let value = map.next_value_seed(self)?;
            if mapping.contains_key(&key) {
                return Err(de::Error::custom(duplicate_key(&key)));
            }
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, _) = data.variant::<String>()?;
        let bang = if tag.starts_with('!') { "" } else { "!" };
        Err(de::Error::custom(format!(
            "the YAML tag {bang}{tag} is not supported here; write the value without a tag"
        )))
    }
}

/// serde_yaml's message for a duplicate key.
fn duplicate_key(key: &Value) -> String {
    match key {
        Value::Null => "duplicate entry with null key".into(),
        Value::Bool(b) => format!("duplicate entry with key `{b}`"),
        Value::Number(n) => format!("duplicate entry with key {n}"),
        Value::String(s) => format!("duplicate entry with key {s:?}"),
        _ => "duplicate entry in YAML map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde_yaml(text: &str) {
        let ours = parse(text, "objects");
        let theirs: Result<Value, _> = serde_yaml::from_str(text);
        match (ours, theirs) {
            (Ok(mut a), Ok(b)) => {
                let mut b = b;
                b.apply_merge().unwrap();
                a.apply_merge().unwrap();
                assert_eq!(a, b, "{text:?}");
            }
            (Err(a), Err(b)) => assert_eq!(a.0, b.to_string(), "{text:?}"),
            (a, b) => panic!("{text:?}: ours {a:?}, serde_yaml {b:?}"),
        }
    }

    #[test]
    fn builds_what_serde_yaml_builds() {
        for text in [
            "- objectName: a\n  objectType: kms\n",
            "- objectName: 5\n  objectVersion: 1.5\n  x: true\n  y: ~\n  z: -3\n",
            "[{objectName: a, jmesPath: [{path: p, objectAlias: q}]}]",
            "- objectName: a\n- objectName: a\n",
            "- {a: 1, a: 2}\n",
            "- objectName: 'a: b\n",
            "",
            "- &x objectName\n- *x\n",
            "- 18446744073709551615\n- 0x1f\n- .inf\n",
        ] {
            same_as_serde_yaml(text);
        }
    }

    #[test]
    fn merge_keys_are_applied() {
        let value = parse(
            "- &common\n  objectType: kms\n  objectVersionLabel: ACSCurrent\n- <<: *common\n  objectName: db\n",
            "objects",
        )
        .unwrap();
        let second = &value[1];
        assert_eq!(second["objectName"], Value::from("db"));
        assert_eq!(second["objectType"], Value::from("kms"));
        assert!(second.get("<<").is_none());
    }

    #[test]
    fn an_alias_bomb_stops_at_the_node_budget() {
        let row = |alias: &str| format!("[{}]", vec![alias; 300].join(", "));
        let text = format!(
            "- &a [{}]\n- &b {}\n- {}\n",
            vec!["x"; 300].join(", "),
            row("*a"),
            row("*b")
        );
        assert!(text.len() < 4096);
        let e = parse(&text, "parameters.objects").unwrap_err();
        assert!(
            e.0.starts_with("parameters.objects expands to more than 65536 YAML nodes"),
            "{e}"
        );
        // long strings repeated through aliases
        let text = format!("- &s {}\n{}", "y".repeat(60_000), "- *s\n".repeat(20));
        let e = parse(&text, "objects").unwrap_err();
        assert!(e.0.contains("bytes of strings"), "{e}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_the_scanner_runs() {
        for text in [
            "[".repeat(100_000),
            format!("{}{}", "{a: ".repeat(5000), "}".repeat(5000)),
            format!("- objectName: \"{}\"\n", "[".repeat(2000)),
        ] {
            let e = parse(&text, "parameters.objects").unwrap_err();
            assert!(e.0.contains("'[' and '{' characters"), "{e}");
        }
        // at the limit: serde_yaml's own depth limit answers, quickly
        let e = parse(&"[".repeat(MAX_FLOW_BRACKETS), "objects").unwrap_err();
        assert!(e.0.contains("recursion limit exceeded"), "{e}");
    }

    #[test]
    fn tags_are_refused_by_name() {
        let e = parse("- objectName: !secret a\n", "objects").unwrap_err();
        assert!(e.0.contains("the YAML tag !secret is not supported"), "{e}");
    }
}
