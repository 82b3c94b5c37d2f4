//! Reading secret content, and answers that carry it, with errors that say
//! what is wrong and where — never a character of the content.
//!
//! A plugin's error reaches the pod's FailedMount event and the provider's
//! logs, so it must not quote what it failed to read. The usual error types do:
//! base64's names the offending byte (`Invalid symbol 35, offset 3`), serde's
//! type errors quote the value (`invalid type: string "hunter2", expected
//! u32`). These helpers keep the kind of problem and its position only:
//!
//! ```
//! use plugin_sdk::content;
//!
//! assert_eq!(
//!     content::base64("QUJD#RUZH").unwrap_err(),
//!     "not valid base64: invalid character at byte offset 4 of 9"
//! );
//! assert_eq!(
//!     content::json(br#"{"password": hunter2}"#).unwrap_err(),
//!     "not valid JSON: expected a value at line 1, column 14"
//! );
//! ```
//!
//! Read a JSON answer into a [`serde_json::Value`] with [`json`] and pick its
//! fields by hand (with [`kind_of`] in the errors) rather than deserializing
//! it into typed fields: a type error would quote the field's value.

use base64::Engine as _;
use serde_json::Value;

/// `bytes` as UTF-8 text; the error gives the position of the first invalid
/// sequence.
pub fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes)
        .map_err(|e| format!("not valid UTF-8: {}", utf8_error(&e, bytes.len())))
}

/// Where UTF-8 decoding failed, without the bytes: `invalid byte sequence at
/// byte offset 3 of 12`.
pub fn utf8_error(error: &std::str::Utf8Error, len: usize) -> String {
    let offset = error.valid_up_to();
    match error.error_len() {
        Some(_) => format!("invalid byte sequence at byte offset {offset} of {len}"),
        None => format!("incomplete character at byte offset {offset} of {len} (the end)"),
    }
}

/// `bytes` parsed as JSON; the error gives the kind of problem and its line
/// and column (`not valid JSON: expected a value at line 1, column 13`).
pub fn json(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid JSON: it is not UTF-8 text ({})",
            utf8_error(&e, bytes.len())
        )
    })?;
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {}", json_error(&e)))
}

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

/// `text` decoded as standard base64 (padded), surrounding whitespace
/// ignored; the error gives the kind of problem and its byte offset in `text`
/// (`not valid base64: invalid character at byte offset 3 of 120`).
pub fn base64(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_start();
    let lead = text.len() - trimmed.len();
    let trimmed = trimmed.trim_end();
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|e| {
            // The decoder works in blocks and may name a later bad byte than
            // the first: point at the first byte outside the alphabet.
            let e = match e {
                base64::DecodeError::InvalidByte(offset, byte) => {
                    let outside = trimmed.bytes().position(|b| {
                        !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                    });
                    base64::DecodeError::InvalidByte(
                        outside.map_or(offset, |o| o.min(offset)),
                        byte,
                    )
                }
                e => e,
            };
            format!("not valid base64: {}", base64_error(&e, lead, text.len()))
        })
}

/// What the base64 decoder found wrong and where, without the offending
/// character; `lead` is added to its offsets (whitespace trimmed before
/// decoding), `len` is the length of the text as given.
pub fn base64_error(error: &base64::DecodeError, lead: usize, len: usize) -> String {
    match error {
        base64::DecodeError::InvalidByte(offset, _) => format!(
            "invalid character at byte offset {} of {len}",
            lead + offset
        ),
        base64::DecodeError::InvalidLastSymbol(offset, _) => format!(
            "the last character, at byte offset {} of {len}, has bits set that encode no byte",
            lead + offset
        ),
        base64::DecodeError::InvalidLength(symbols) => format!(
            "invalid length: {symbols} base64 characters leave one over (the text has {len} bytes)"
        ),
        base64::DecodeError::InvalidPadding => "invalid padding (missing or extra '=')".to_string(),
    }
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

    /// Every character of these secrets is unusual, so a leak of even one of
    /// them shows.
    const MARKS: &[char] = &['§', '¤', 'Ж', '¶', 'ꙮ', 'Ѫ', '#', '~', '!'];

    fn assert_clean(message: &str) {
        assert!(
            !message.contains(MARKS),
            "a character of the content leaked: {message}"
        );
    }

    #[test]
    fn base64_errors_give_the_position_not_the_character() {
        for (text, want) in [
            (
                "QUJD#RUZH",
                "not valid base64: invalid character at byte offset 4 of 9",
            ),
            (
                "  QUJD§RUZH\n",
                "not valid base64: invalid character at byte offset 6 of 13",
            ),
            (
                "QUJDR",
                "not valid base64: invalid length: 5 base64 characters leave one over (the text has 5 bytes)",
            ),
            (
                "QUJ=",
                "not valid base64: the last character, at byte offset 2 of 4, has bits set that encode no byte",
            ),
            (
                "§¤Ж¶ꙮѪ",
                "not valid base64: invalid character at byte offset 0 of 13",
            ),
            (
                "QUJDRUZH§¤Ж¶ꙮѪ",
                "not valid base64: invalid character at byte offset 8 of 21",
            ),
            (
                "QUI",
                "not valid base64: invalid padding (missing or extra '=')",
            ),
        ] {
            let error = base64(text).unwrap_err();
            assert_eq!(error, want, "{text:?}");
            assert_clean(&error);
        }
        // the upstream message quoted the byte: "Invalid symbol 35, offset 4"
        let error = base64("QUJD#RUZH").unwrap_err();
        assert!(!error.contains("35"), "{error}");
        assert_eq!(base64(" AAEC/w==\n").unwrap(), [0u8, 1, 2, 255]);
    }

    #[test]
    fn json_errors_give_the_kind_and_position() {
        for (text, want) in [
            (
                r#"{"password": §hunter2}"#.as_bytes(),
                "not valid JSON: expected a value at line 1, column 14".to_string(),
            ),
            (
                b"{\"a\":\"\xff\"}",
                "not valid JSON: it is not UTF-8 text (invalid byte sequence at byte offset 6 of 9)"
                    .to_string(),
            ),
            (
                b"{\"a\":\"\xc3",
                "not valid JSON: it is not UTF-8 text (incomplete character at byte offset 6 of 7 (the end))"
                    .to_string(),
            ),
            (
                b"{\"a\": \"#~!\"",
                "not valid JSON: unexpected end inside an object at line 1, column 11".to_string(),
            ),
            (
                b"\"\xc2\xa7\" trailing",
                "not valid JSON: trailing characters after the value at line 1, column 6".to_string(),
            ),
            (
                b"{\"a\":\"\\q\"}",
                "not valid JSON: invalid escape in a string at line 1, column 8".to_string(),
            ),
            (
                b"",
                "not valid JSON: unexpected end, expected a value at line 1, column 0".to_string(),
            ),
        ] {
            let error = json(text).unwrap_err();
            assert_eq!(error, want, "{}", String::from_utf8_lossy(text));
            assert_clean(&error);
        }
    }

    #[test]
    fn type_errors_are_reported_by_category_only() {
        // serde's own message quotes the value: invalid type: string "§hunter2"
        let error = serde_json::from_str::<u32>(r#""§hunter2""#).unwrap_err();
        assert!(error.to_string().contains('§'));
        assert_eq!(
            json_error(&error),
            "a value of an unexpected type at line 1, column 11"
        );
    }

    #[test]
    fn utf8_and_kinds() {
        assert_eq!(utf8(b"ok").unwrap(), "ok");
        assert_eq!(
            utf8(b"ab\xff\xfe").unwrap_err(),
            "not valid UTF-8: invalid byte sequence at byte offset 2 of 4"
        );
        let v: Value = serde_json::from_str(r#"[null, true, 1, "s", [], {}]"#).unwrap();
        let kinds: Vec<&str> = v.as_array().unwrap().iter().map(kind_of).collect();
        assert_eq!(
            kinds,
            [
                "null",
                "a boolean",
                "a number",
                "a string",
                "an array",
                "an object"
            ]
        );
    }
}
