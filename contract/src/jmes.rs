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
    /// `alias` names the output in errors.
    pub fn extract(&self, document: &serde_json::Value, alias: &str) -> Result<String, String> {
        let result = self
            .expression
            .search(document)
            .map_err(|e| format!("invalid JMES Path: {} ({e})", self.text))?;
        if result.is_null() {
            return Err(format!(
                "jmes path - {} for object alias - {alias} does not point to a valid object",
                self.text
            ));
        }
        match result.as_string() {
            Some(s) => Ok(s.clone()),
            None => Err(format!(
                "invalid JMES search result type for path {}; only string is allowed",
                self.text
            )),
        }
    }
}

/// Parses an object's content as the JSON document for its jmesPath entries.
/// The error names the object, never the content.
pub fn parse_document(contents: &[u8], object_name: &str) -> Result<serde_json::Value, String> {
    serde_json::from_slice(contents)
        .map_err(|_| format!("invalid JSON used with jmesPath in secret: {object_name}"))
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

    // upstream's four error strings (provider/secret_value_test.go)
    #[test]
    fn upstream_errors() {
        assert_eq!(
            parse_document(b"not json {", "test").unwrap_err(),
            "invalid JSON used with jmesPath in secret: test"
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
        for path in ["n", "nested", "list"] {
            assert_eq!(
                JmesQuery::compile(path)
                    .unwrap()
                    .extract(&doc(), "a")
                    .unwrap_err(),
                format!("invalid JMES search result type for path {path}; only string is allowed")
            );
        }
    }

    #[test]
    fn a_value_in_bad_json_is_not_quoted() {
        let e = parse_document(b"{\"password\": hunter2}", "db").unwrap_err();
        assert!(!e.contains("hunter2"));
    }
}
