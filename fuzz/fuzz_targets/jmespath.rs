//! jmesPath as the provider runs it: the expression compiled when the
//! SecretProviderClass is parsed, the fetched secret parsed as JSON, the
//! expression applied.
//!
//! Input: `expression \0 document`.
//!
//! Invariants: no panic; the extracted string is bounded (the evaluator must
//! not turn a few KiB of input into an unbounded output); a compiled
//! expression compiles again; a JSON error never quotes the document; an
//! error is linear in the expression's length.
#![no_main]

use contract::jmes::{self, JmesQuery};
use libfuzzer_sys::fuzz_target;
use provider_fuzz::{split_fields, text};

/// The most an extraction may produce from one input (at most a few KiB:
/// libFuzzer's default `-max_len` is 4096).
const MAX_OUTPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let fields = split_fields(data, 2);
    let expression = text(fields[0]);
    let document = fields[1];
    let Ok(query) = JmesQuery::compile(&expression) else {
        return;
    };
    assert!(
        JmesQuery::compile(&expression).is_ok(),
        "compiles once, not twice"
    );
    let parsed = match jmes::parse_document(document, "object") {
        Ok(parsed) => parsed,
        Err(message) => {
            // What is wrong and where, from a fixed vocabulary: never a
            // fragment of the document.
            assert!(
                message.starts_with(
                    "invalid JSON used with jmesPath in secret: object (not valid JSON: "
                ) && message.len() <= 200,
                "{message}"
            );
            return;
        }
    };
    match query.extract(&parsed, "alias") {
        Ok(output) => assert!(
            output.len() <= MAX_OUTPUT,
            "{} bytes extracted from {} bytes of input",
            output.len(),
            data.len()
        ),
        // A runtime error quotes the expression, upstream's message (which
        // can name a function from it) and upstream's context lines (the
        // expression again and a caret line as long): linear, never more.
        Err(message) => assert!(
            message.len() <= 5 * expression.len() + 512,
            "{} bytes of error for {} bytes of expression",
            message.len(),
            expression.len()
        ),
    }
});
