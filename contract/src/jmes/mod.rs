//! jmesPath extraction: compiled once when the SecretProviderClass is parsed,
//! applied to the fetched JSON value. Error messages are upstream's.
//!
//! Both the expression (written by whoever may create a SecretProviderClass
//! in a namespace) and the document (the fetched secret) are untrusted, and
//! one process serves every pod of the node, so every step is bounded before
//! it runs:
//!
//! 1. the expression's length ([`MAX_EXPRESSION_BYTES`]);
//! 2. its nesting, counted on the text before the `jmespath` crate's
//!    recursive parser sees it ([`MAX_NESTING_DEPTH`]; see `scan.rs` for
//!    where that parser recurses);
//! 3. the parsed AST's depth and size ([`MAX_AST_DEPTH`],
//!    [`MAX_AST_NODES`]), measured without recursion; the AST is then
//!    lowered into our own flat program, and taken apart without recursion;
//! 4. evaluation by our own evaluator (the crate's `search` recurses without
//!    limit and copies the document): it borrows the document, and charges
//!    every node, element, comparison and byte to [`EVAL_FUEL`], every value
//!    it builds to [`MAX_CREATED_BYTES`], nests at most [`MAX_VALUE_DEPTH`]
//!    and returns at most [`MAX_RESULT_BYTES`].
//!
//! The evaluator implements the whole JMESPath specification as the
//! `jmespath` crate does (the compliance suite is run through both in
//! `tests/jmespath_compliance.rs`), with these deliberate differences:
//! an unknown function, a wrong argument count and a slice step of 0 are
//! refused when compiling (the crate fails only if that part is evaluated);
//! `avg([])` is null as the specification says (the crate fails);
//! `to_number` of a string gives a number or null (the crate returns any
//! JSON the string holds, e.g. an array for `'[1]'`); an expression
//! reference has no JSON form (the crate writes its debug dump into
//! `to_string` output); and a slice step near `i32::MAX` selects what the
//! specification says (the crate's 32-bit index overflows and panics).
//!
//! No error ever quotes the document: errors name types, positions and
//! limits.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::arithmetic_side_effects
)]

mod eval;
mod functions;
mod ir;
mod scan;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jmespath::ast::Ast;

/// Longest accepted expression, in bytes. Real jmesPath entries are like
/// `username` or `data.credentials[0].password`; 1 KiB leaves a wide
/// margin and bounds everything the parser builds.
pub const MAX_EXPRESSION_BYTES: usize = 1024;

/// Deepest nesting of the expression's text: brackets, parentheses and
/// braces still open, plus the `!`, `&`, `*` and projections (`[*]`, `[]`,
/// `[?..]`, slices) that may still be open (see `scan.rs`). The crate's
/// parser takes up to ~2.4 KB of stack per level in a debug build (a
/// function call; ~1 KB for a parenthesis), so 32 levels stay under ~80 KB,
/// while real paths need 1 to 3.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Deepest parsed expression (a chain `a.b.c` is as deep as it is long):
/// bounds the recursion of lowering the AST and of evaluating it (whose
/// levels take ~1.5 KB each in a debug build, much less in release).
pub const MAX_AST_DEPTH: usize = 64;

/// Most nodes in a parsed expression (`a.b` has three, `*` four).
pub const MAX_AST_NODES: usize = 512;

/// The fuel of one evaluation. Each node evaluated, each array element or
/// object entry visited, each comparison (in sorts, `==`, `contains`), and
/// each started [`FUEL_BYTES_PER_UNIT`] bytes of a string compared,
/// searched, converted or written costs one unit; inserting an entry into an
/// object the expression builds costs four. The whole budget is what
/// bounds the time: the worst cases we know (sorting, `to_string` of a
/// document of small values, doubling with `[@,@]`, `merge` of big objects,
/// nested `map` and projections) run out of it in about 2 ms in a release
/// build on this project's 2-core machines (`worst_cases_are_fast` prints
/// them), and a real extraction costs tens of units. 100,000 still lets a
/// filter search an array of 10,000 records
/// (`items[?name=='db'].password | [0]`, ~1 ms): far more than a secret
/// holds.
pub const EVAL_FUEL: u64 = 100_000;

/// Bytes of string handled per unit of [`EVAL_FUEL`].
pub const FUEL_BYTES_PER_UNIT: usize = 64;

/// Most bytes of values one evaluation may build (the strings, arrays and
/// objects it creates; parts of the document are borrowed and not counted):
/// with [`EVAL_FUEL`], what stops `[@,@]|[@,@]|…|to_string(@)`. An
/// extraction builds nothing or a few bytes (`join`, `to_string` of a small
/// object); 1 MiB lets `to_string(@)` of a secret of several hundred KiB
/// through, and keeps what a hostile expression can make the process touch
/// small.
pub const MAX_CREATED_BYTES: usize = 1 << 20;

/// Longest result: the file the extraction writes. Usually a value borrowed
/// from the document, so this is the same 4 MiB as a plugin's default
/// output limit (what a document can be); a built result is already within
/// [`MAX_CREATED_BYTES`].
pub const MAX_RESULT_BYTES: usize = 4 << 20;

/// Deepest value the evaluator builds or walks (comparing, writing JSON):
/// documents from [`parse_document`] nest at most 128 levels (serde_json's
/// limit), and this leaves room for what an expression wraps around them.
/// Walking values uses explicit stacks, so this bounds memory, not the
/// thread's stack.
pub const MAX_VALUE_DEPTH: usize = 256;

/// A compiled jmesPath expression.
#[derive(Clone)]
pub struct JmesQuery {
    text: String,
    program: Arc<ir::Program>,
}

impl std::fmt::Debug for JmesQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JmesQuery").field(&self.text).finish()
    }
}

/// `invalid JMES Path: <path> (<reason>)`, upstream's prefix.
fn invalid(path: &str, reason: &str) -> String {
    format!("invalid JMES Path: {path} ({reason})")
}

impl JmesQuery {
    /// Compiles `path`; the error is `invalid JMES Path: <path>` with the
    /// reason (an overlong path is shown shortened).
    pub fn compile(path: &str) -> Result<JmesQuery, String> {
        if path.len() > MAX_EXPRESSION_BYTES {
            let mut cut = 64;
            while !path.is_char_boundary(cut) {
                cut = cut.saturating_sub(1);
            }
            let shown = path.get(..cut).unwrap_or_default();
            return Err(format!(
                "invalid JMES Path: {shown}… (the expression is {} bytes long; the limit is \
                 {MAX_EXPRESSION_BYTES} bytes (MAX_EXPRESSION_BYTES): a jmesPath selects a \
                 value, like data.credentials[0].password)",
                path.len()
            ));
        }
        scan::check_nesting(path).map_err(|e| invalid(path, &e))?;
        let ast = jmespath::parse(path).map_err(|e| {
            invalid(
                path,
                e.to_string().lines().next().unwrap_or("cannot be parsed"),
            )
        })?;
        let program = ir::Program::lower(&ast);
        dismantle(ast);
        Ok(JmesQuery {
            text: path.to_string(),
            program: Arc::new(program.map_err(|e| invalid(path, &e))?),
        })
    }

    /// Applies the query to `document`, which must yield a string.
    /// `alias` names the output in errors.
    pub fn extract(&self, document: &serde_json::Value, alias: &str) -> Result<String, String> {
        let mut evaluator = eval::Evaluator::new(&self.program);
        let result = evaluator
            .run(document)
            .map_err(|e| invalid(&self.text, &e))?;
        if result.is_null() {
            return Err(format!(
                "jmes path - {} for object alias - {alias} does not point to a valid object",
                self.text
            ));
        }
        match result.as_str() {
            Some(s) if s.len() > MAX_RESULT_BYTES => Err(invalid(
                &self.text,
                &format!(
                    "the result is {} bytes long; the limit is {MAX_RESULT_BYTES} bytes \
                     (MAX_RESULT_BYTES): point the path at a smaller value",
                    s.len()
                ),
            )),
            Some(s) => Ok(s.to_owned()),
            None => Err(format!(
                "invalid JMES search result type for path {}; only string is allowed (the result is {})",
                self.text,
                result.kind().described()
            )),
        }
    }

    /// Applies the query to `document` and returns the result as JSON,
    /// whatever its type, under the same limits as [`JmesQuery::extract`]
    /// (the copy made for the result counts towards
    /// [`MAX_CREATED_BYTES`]). For tests and diagnostics.
    pub fn search(&self, document: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut evaluator = eval::Evaluator::new(&self.program);
        let result = evaluator
            .run(document)
            .map_err(|e| invalid(&self.text, &e))?;
        evaluator
            .json_of(&result, 0)
            .map_err(|e| invalid(&self.text, &e))
    }
}

/// Parses an object's content as the JSON document for its jmesPath entries.
/// The error names the object, never the content.
pub fn parse_document(contents: &[u8], object_name: &str) -> Result<serde_json::Value, String> {
    crate::content::parse_json(contents)
        .map_err(|e| format!("invalid JSON used with jmesPath in secret: {object_name} ({e})"))
}

/// Compiles `path`, parses `contents` and extracts: the whole path an
/// attacker-controlled Mount request takes, for fuzzing. Never panics,
/// overflows the stack or runs past the limits above, for any input.
pub fn compile_and_extract(path: &str, contents: &[u8]) -> Result<String, String> {
    let query = JmesQuery::compile(path)?;
    let document = parse_document(contents, "fuzz")?;
    query.extract(&document, "fuzz")
}

/// Drops the crate's AST without recursing: its boxes are emptied onto an
/// explicit stack first.
fn dismantle(ast: Ast) {
    let mut stack = vec![ast];
    while let Some(node) = stack.pop() {
        match node {
            Ast::Comparison { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. } => {
                stack.push(*lhs);
                stack.push(*rhs);
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                stack.push(*predicate);
                stack.push(*then);
            }
            Ast::Expref { ast: node, .. }
            | Ast::Flatten { node, .. }
            | Ast::Not { node, .. }
            | Ast::ObjectValues { node, .. } => stack.push(*node),
            Ast::Function { args: nodes, .. }
            | Ast::MultiList {
                elements: nodes, ..
            } => stack.extend(nodes),
            Ast::MultiHash { elements, .. } => {
                stack.extend(elements.into_iter().map(|kv| kv.value))
            }
            Ast::Identity { .. }
            | Ast::Field { .. }
            | Ast::Index { .. }
            | Ast::Literal { .. }
            | Ast::Slice { .. } => {}
        }
    }
}
