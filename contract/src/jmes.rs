//! jmesPath extraction: compiled once when the SecretProviderClass is parsed,
//! applied to the fetched JSON value. Error messages are upstream's.

use std::sync::Arc;

/// A compiled jmesPath expression.
#[derive(Clone)]
pub struct JmesQuery {
    text: String,
    expression: Arc<jmespath::Expression<'static>>,
}

impl std::fmt::Debug for JmesQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JmesQuery").field(&self.text).finish()
    }
}

impl JmesQuery {
    /// Compiles `path`; the error is `invalid JMES Path: <path>` with the
    /// parser's reason.
    pub fn compile(path: &str) -> Result<JmesQuery, String> {
        let expression = jmespath::compile(path).map_err(|e| {
            format!(
                "invalid JMES Path: {path} ({})",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
        Ok(JmesQuery {
            text: path.to_string(),
            expression: Arc::new(expression),
        })
    }

    /// Applies the query to `document`, which must yield a string.
    /// `alias` names the output in errors, which name the path, the kind of
    /// problem and the type of a wrong result, never a value.
    pub fn extract(&self, document: &serde_json::Value, alias: &str) -> Result<String, String> {
        let result = self.expression.search(document).map_err(|e| {
            // A runtime error names types, argument counts and functions of
            // the expression; anything else is not shown.
            let reason = match &e.reason {
                jmespath::ErrorReason::Runtime(reason) => reason.to_string(),
                jmespath::ErrorReason::Parse(_) => "it cannot be evaluated".to_string(),
            };
            format!(
                "invalid JMES Path: {} ({reason}, at column {})",
                self.text, e.column
            )
        })?;
        if result.is_null() {
            return Err(format!(
                "jmes path - {} for object alias - {alias} does not point to a valid object",
                self.text
            ));
        }
        match &*result {
            jmespath::Variable::String(s) => Ok(s.clone()),
            other => Err(format!(
                "invalid JMES search result type for path {}; only string is allowed (the result is {})",
                self.text,
                variable_kind(other)
            )),
        }
    }
}

/// What kind of jmesPath value `value` is, never the value itself.
fn variable_kind(value: &jmespath::Variable) -> &'static str {
    match value {
        jmespath::Variable::Null => "null",
        jmespath::Variable::Bool(_) => "a boolean",
        jmespath::Variable::Number(_) => "a number",
        jmespath::Variable::String(_) => "a string",
        jmespath::Variable::Array(_) => "an array",
        jmespath::Variable::Object(_) => "an object",
        jmespath::Variable::Expref(_) => "an expression reference",
    }
}

/// Parses an object's content as the JSON document for its jmesPath entries.
/// The error names the object, the kind of problem and its position, never
/// the content: `invalid JSON used with jmesPath in secret: db (not valid
/// JSON: expected a value at line 1, column 13)`.
pub fn parse_document(contents: &[u8], object_name: &str) -> Result<serde_json::Value, String> {
    crate::content::parse_json(contents)
        .map_err(|e| format!("invalid JSON used with jmesPath in secret: {object_name} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        parse_document(
            br#"{"username":"testuser","password":"testpassword","n":5,"nested":{"k":"v"},"list":["a","b"]}"#,
            "test",
        )
        .unwrap()
    }

    #[test]
    fn extracts_strings() {
        for (path, want) in [
            ("username", "testuser"),
            ("nested.k", "v"),
            ("list[1]", "b"),
            ("\"password\"", "testpassword"),
        ] {
            assert_eq!(
                JmesQuery::compile(path)
                    .unwrap()
                    .extract(&doc(), "x")
                    .unwrap(),
                want
            );
        }
    }

    // upstream's four error strings (provider/secret_value_test.go), each
    // followed by what is wrong
    #[test]
    fn upstream_errors() {
        assert_eq!(
            parse_document(b"not json {", "test").unwrap_err(),
            "invalid JSON used with jmesPath in secret: test (not valid JSON: expected true, false or null at line 1, column 2)"
        );
        assert!(
            JmesQuery::compile(".testpath")
                .unwrap_err()
                .starts_with("invalid JMES Path: .testpath")
        );
        assert_eq!(
            JmesQuery::compile("missing")
                .unwrap()
                .extract(&doc(), "alias")
                .unwrap_err(),
            "jmes path - missing for object alias - alias does not point to a valid object"
        );
        for (path, kind) in [
            ("n", "a number"),
            ("nested", "an object"),
            ("list", "an array"),
        ] {
            assert_eq!(
                JmesQuery::compile(path)
                    .unwrap()
                    .extract(&doc(), "a")
                    .unwrap_err(),
                format!(
                    "invalid JMES search result type for path {path}; only string is allowed (the result is {kind})"
                )
            );
        }
    }

    #[test]
    fn a_value_in_bad_json_is_not_quoted() {
        let e = parse_document(b"{\"password\": hunter2}", "db").unwrap_err();
        assert_eq!(
            e,
            "invalid JSON used with jmesPath in secret: db (not valid JSON: expected a value at line 1, column 14)"
        );
        let e = parse_document(b"{\"password\": \"\xa7\xa4\"}", "db").unwrap_err();
        assert_eq!(
            e,
            "invalid JSON used with jmesPath in secret: db (not valid JSON: it is not UTF-8 text (invalid byte sequence at byte offset 14 of 18))"
        );
    }

    #[test]
    fn evaluation_errors_name_types_not_values() {
        let doc = parse_document("{\"k\":\"§secret\"}".as_bytes(), "db").unwrap();
        let e = JmesQuery::compile("abs(k)")
            .unwrap()
            .extract(&doc, "x")
            .unwrap_err();
        assert_eq!(
            e,
            "invalid JMES Path: abs(k) (Argument 0 expects type number, given string, at column 3)"
        );
        assert!(!e.contains('§'));
    }
}
