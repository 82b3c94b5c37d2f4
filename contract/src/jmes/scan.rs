//! The nesting check on the expression's text, run before the `jmespath`
//! crate's recursive-descent (Pratt) parser sees it.
//!
//! Where that parser recurses (jmespath 0.5, `src/parser.rs`):
//! - `nud` of `(`, `[` (multi-select list, index, slice, `[*]`, `[?`, `[]`),
//!   `{` (every key's value), `!` (`expr(45)`), `&` (`expr(0)`) and `*`
//!   (`parse_wildcard_values` -> `projection_rhs`);
//! - `led` of `[` (index, slice, `[*]`), `[?` and `[]` and of `.*`, `.[` and
//!   `(` (function arguments);
//! - the projections (`[*]`, `*`, `[?..]`, `[]`, slices) parse their right
//!   side with `projection_rhs`, which recurses again on the next `[`, `[?`,
//!   `.*` or `.[`: `[*][*][*]` and `a[?b][?c]` are right-recursive;
//! - the binary operators (`|`, `||`, `&&`, comparisons, `.`) are left
//!   associative: a chain of them recurses once per binding power (at most
//!   five levels), not once per operator.
//!
//! So every unbounded chain of parser frames consumes one of `(`, `[`, `{`,
//! `!`, `&` or `*` per level. The scan counts, at each point of the text, the
//! brackets still open plus the `!`, `&`, `*` and projections (`[*]`, `[]`,
//! `[?..]`, slices) that may still be open: such an operator is counted
//! until the bracket around it closes or a `,` at its level ends the list
//! element it is in (both are consumed only after every frame it opened has
//! returned). A plain index (`[0]`) recurses nowhere and a multi-select list
//! (`[a, b]`) only while open; what a `[` opens is told by a short look
//! ahead, since an index, `[*]` or a slice holds only digits, `-`, `:`, `*`
//! and white space. That is an upper bound on the parser's real depth, and
//! exact for the hostile shapes (`!!!!a`, `((((a))))`, `[*][*][*]`).
//!
//! Quoted identifiers (`"..."`), raw strings (`'...'`) and JSON literals
//! (`` `...` ``) are skipped exactly as the crate's lexer reads them: a
//! backslash takes the next character whatever it is. Only ASCII bytes are
//! compared, and UTF-8 continuation bytes are never ASCII, so a byte scan is
//! exact.

use super::MAX_NESTING_DEPTH;

/// Checks that `path` nests at most [`MAX_NESTING_DEPTH`] levels deep.
pub(super) fn check_nesting(path: &str) -> Result<(), String> {
    let bytes = path.as_bytes();
    // For each open bracket level (levels[0] is the top): the operators
    // counted in it, and whether its closing `]` starts a projection.
    let mut levels: Vec<(usize, bool)> = vec![(0, false)];
    let mut depth: usize = 0;
    let mut i: usize = 0;
    while let Some(&byte) = bytes.get(i) {
        let at = i;
        i = i.saturating_add(1);
        match byte {
            b'"' | b'\'' | b'`' => i = skip_quoted(bytes, i, byte),
            b'[' => match bracket(bytes, i) {
                Bracket::Index(end) => i = end,
                Bracket::Projection(end) => {
                    i = end;
                    depth = open_operator(&mut levels, depth);
                }
                Bracket::Filter => {
                    i = i.saturating_add(1);
                    levels.push((0, true));
                    depth = depth.saturating_add(1);
                }
                Bracket::List => {
                    levels.push((0, false));
                    depth = depth.saturating_add(1);
                }
            },
            b'(' | b'{' => {
                levels.push((0, false));
                depth = depth.saturating_add(1);
            }
            b')' | b']' | b'}' => {
                if levels.len() > 1
                    && let Some((open, projection)) = levels.pop()
                {
                    depth = depth.saturating_sub(open.saturating_add(1));
                    if projection {
                        // `[?..]` goes on as a projection
                        depth = open_operator(&mut levels, depth);
                    }
                }
            }
            b',' => {
                if let Some((open, _)) = levels.last_mut() {
                    depth = depth.saturating_sub(*open);
                    *open = 0;
                }
            }
            b'!' | b'&' => {
                // `!=` and `&&` are binary operators.
                let pair = if byte == b'!' { b'=' } else { b'&' };
                if bytes.get(i) == Some(&pair) {
                    i = i.saturating_add(1);
                } else {
                    depth = open_operator(&mut levels, depth);
                }
            }
            b'*' => depth = open_operator(&mut levels, depth),
            _ => {}
        }
        if depth > MAX_NESTING_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_NESTING_DEPTH} levels deep at byte {at} \
                 (limit MAX_NESTING_DEPTH = {MAX_NESTING_DEPTH}; each open '(', '[' or '{{', \
                 each '!', '&' and '*', and each [..] projection is a level): a jmesPath that \
                 selects a value needs only a few levels, like data.items[0].password"
            ));
        }
    }
    Ok(())
}

fn open_operator(levels: &mut [(usize, bool)], depth: usize) -> usize {
    if let Some((open, _)) = levels.last_mut() {
        *open = open.saturating_add(1);
    }
    depth.saturating_add(1)
}

/// What a `[` opens, as the lexer and parser read it.
enum Bracket {
    /// `[3]`, `[ -1 ]`: an index, no recursion; the index after its `]`.
    Index(usize),
    /// `[]`, `[*]`, `[1:]`, `[::-1]`: a projection over what follows; the
    /// index after its `]`.
    Projection(usize),
    /// `[?`: a filter, a bracket level and then a projection.
    Filter,
    /// A multi-select list (`[a, b]`): a bracket level, no projection.
    List,
}

/// Classifies the `[` before `bytes[i]`. Inside an index, wildcard or
/// slice only digits, `-`, `:`, `*` and white space can stand, so a short
/// look ahead tells them from a list.
fn bracket(bytes: &[u8], i: usize) -> Bracket {
    match bytes.get(i) {
        // the lexer reads `[]` and `[?` only with nothing between
        Some(b']') => return Bracket::Projection(i.saturating_add(1)),
        Some(b'?') => return Bracket::Filter,
        _ => {}
    }
    let mut j = i;
    let (mut digits, mut colon, mut star) = (false, false, false);
    while let Some(&b) = bytes.get(j) {
        match b {
            b'0'..=b'9' => digits = true,
            b':' => colon = true,
            b'*' => star = true,
            b'-' | b' ' | b'\t' | b'\n' | b'\r' => {}
            b']' => {
                let end = j.saturating_add(1);
                return if colon || star {
                    Bracket::Projection(end)
                } else if digits {
                    Bracket::Index(end)
                } else {
                    Bracket::List
                };
            }
            _ => return Bracket::List,
        }
        j = j.saturating_add(1);
    }
    Bracket::List
}

/// Returns the index after the closing `quote`, or the end when unclosed
/// (the lexer then rejects the expression).
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while let Some(&byte) = bytes.get(i) {
        i = i.saturating_add(1);
        if byte == b'\\' {
            i = i.saturating_add(1);
        } else if byte == quote {
            return i;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(path: &str) -> bool {
        check_nesting(path).is_ok()
    }

    #[test]
    fn counts_what_makes_the_parser_recurse() {
        let n = MAX_NESTING_DEPTH;
        for (open, close) in [("(", ")"), ("[", "]"), ("{a:", "}"), ("abs(", ")")] {
            assert!(depth_ok(&format!("{}a{}", open.repeat(n), close.repeat(n))));
            assert!(!depth_ok(&format!(
                "{}a{}",
                open.repeat(n + 1),
                close.repeat(n + 1)
            )));
        }
        for prefix in ["!", "& ", "*."] {
            assert!(depth_ok(&format!("{}a", prefix.repeat(n))));
            assert!(!depth_ok(&format!("{}a", prefix.repeat(n + 1))));
        }
        for projection in ["[*]", "[ * ]", "[?a]", "[0:1]", "[::-1]", "[]", ".*"] {
            assert!(depth_ok(&format!("a{}", projection.repeat(n))));
            assert!(!depth_ok(&format!("a{}", projection.repeat(n + 1))));
        }
    }

    #[test]
    fn does_not_count_binary_operators_or_siblings() {
        assert!(depth_ok(&"a != b || ".repeat(50)));
        assert!(depth_ok(&"a && b | ".repeat(50)));
        assert!(depth_ok(&format!("[{}]", "!a, ".repeat(100))));
        assert!(depth_ok(&format!("{{{}}}", "k: &a, ".repeat(100))));
        assert!(depth_ok(&"(a)".repeat(100)));
        // plain indices do not recurse; slices and projections do
        assert!(depth_ok(&format!("a{}", "[1]".repeat(100))));
        assert!(depth_ok(&format!("a{}", "[ -1 ]".repeat(100))));
        assert!(!depth_ok(&format!("a{}", "[1:]".repeat(100))));
        // a multi-select list ends where its bracket closes
        assert!(depth_ok(&"[a, b] | ".repeat(100)));
        assert!(depth_ok(&format!("a{}", ".[b, c]".repeat(100))));
        assert!(!depth_ok(&format!("{}a", "[*, ".repeat(MAX_NESTING_DEPTH))));
        assert!(depth_ok(&format!("a{}", ".b".repeat(400))));
    }

    #[test]
    fn skips_strings_and_literals_as_the_lexer_does() {
        let deep = "(".repeat(100);
        for quoted in [
            format!("\"{deep}\""),
            format!("'{deep}'"),
            format!("`\"{deep}\"`"),
            format!("\"\\\"{deep}\""),
            format!("'\\'{deep}'"),
            format!("`\"\\`{deep}\"`"),
        ] {
            assert!(depth_ok(&quoted), "{quoted}");
        }
        // a backslash escapes one character: the string ends at the next quote
        assert!(!depth_ok(&format!("'\\\\'{deep}")));
        // brackets in a string do not close brackets outside it
        let n = MAX_NESTING_DEPTH + 1;
        assert!(!depth_ok(&format!("{}']]]]'", "[".repeat(n))));
    }
}
