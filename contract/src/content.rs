//! Describing a problem with secret content without quoting it: the kind of
//! problem and its position, never a character of the content. Messages built
//! here reach the pod's FailedMount event and the provider's logs.
//!
//! The plugin SDK has the same helpers for plugins (`plugin_sdk::content`);
//! keep the two in step.

use serde_json::Value;

/// What serde_json found wrong and where, without the content:
/// `expected a value at line 1, column 13` (columns count bytes).
///
/// Syntax errors are named from a fixed list; anything else (a type error,
/// which would quote the value) is reported by its category only.
pub fn json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = error.to_string();
    // serde_json's own message for a syntax error is one of a fixed set; it
    // is only compared here, never shown.
    let code = text.split(" at line ").next().unwrap_or_default();
    let kind = JSON_SYNTAX_ERRORS
        .iter()
        .find(|(serde, _)| *serde == code)
        .map(|(_, ours)| *ours)
        .unwrap_or(match error.classify() {
            Category::Eof => "unexpected end of the text",
            Category::Syntax => "malformed JSON",
            Category::Data => "a value of an unexpected type",
            Category::Io => "unreadable text",
        });
    if error.line() == 0 {
        kind.to_string()
    } else {
        format!("{kind} at line {}, column {}", error.line(), error.column())
    }
}

/// serde_json's syntax error messages and how they are shown.
const JSON_SYNTAX_ERRORS: &[(&str, &str)] = &[
    ("EOF while parsing a list", "unexpected end inside an array"),
    (
        "EOF while parsing an object",
        "unexpected end inside an object",
    ),
    (
        "EOF while parsing a string",
        "unexpected end inside a string",
    ),
    (
        "EOF while parsing a value",
        "unexpected end, expected a value",
    ),
    ("expected `:`", "expected ':'"),
    ("expected `,` or `]`", "expected ',' or ']'"),
    ("expected `,` or `}`", "expected ',' or '}'"),
    ("expected ident", "expected true, false or null"),
    ("expected value", "expected a value"),
    ("expected `\"`", "expected '\"'"),
    ("invalid escape", "invalid escape in a string"),
    ("invalid number", "invalid number"),
    ("number out of range", "number out of range"),
    ("invalid unicode code point", "invalid unicode code point"),
    (
        "control character (\\u0000-\\u001F) found while parsing a string",
        "control character in a string",
    ),
    ("key must be a string", "key must be a string"),
    (
        "lone leading surrogate in hex escape",
        "lone surrogate in a \\u escape",
    ),
    ("trailing comma", "trailing comma"),
    ("trailing characters", "trailing characters after the value"),
    (
        "unexpected end of hex escape",
        "unexpected end of a \\u escape",
    ),
    ("recursion limit exceeded", "nested too deeply"),
];

/// Where UTF-8 decoding failed, without the bytes: `invalid byte sequence at
/// byte offset 3 of 12`.
pub fn utf8_error(error: &std::str::Utf8Error, len: usize) -> String {
    let offset = error.valid_up_to();
    match error.error_len() {
        Some(_) => format!("invalid byte sequence at byte offset {offset} of {len}"),
        None => format!("incomplete character at byte offset {offset} of {len} (the end)"),
    }
}

/// `bytes` parsed as JSON; the error gives the kind of problem and its
/// position (`not valid JSON: expected a value at line 1, column 13`).
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid JSON: it is not UTF-8 text ({})",
            utf8_error(&e, bytes.len())
        )
    })?;
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {}", json_error(&e)))
}

/// What kind of JSON value `value` is, for error messages: `a string`,
/// `a number`, ... — never the value itself.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_problems_are_located_not_quoted() {
        for (text, want) in [
            (
                r#"{"password": §hunter2}"#.as_bytes(),
                "not valid JSON: expected a value at line 1, column 14",
            ),
            (
                b"{\"a\":\"\xff\"}",
                "not valid JSON: it is not UTF-8 text (invalid byte sequence at byte offset 6 of 9)",
            ),
            (
                b"{\"a\": \"\xc2\xa7",
                "not valid JSON: unexpected end inside a string at line 1, column 9",
            ),
            (
                b"{\"a\" 1}",
                "not valid JSON: expected ':' at line 1, column 6",
            ),
        ] {
            let error = parse_json(text).unwrap_err();
            assert_eq!(error, want);
            assert!(!error.contains('§'));
        }
        let typed = serde_json::from_str::<u32>(r#""§hunter2""#).unwrap_err();
        assert_eq!(
            json_error(&typed),
            "a value of an unexpected type at line 1, column 11"
        );
        assert_eq!(kind_of(&serde_json::json!([1])), "an array");
    }
}
