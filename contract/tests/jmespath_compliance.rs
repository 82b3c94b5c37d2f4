//! Differential test: the JMESPath compliance suite (shipped in the source of
//! the `jmespath` crate 0.5.0, read from the cargo registry where the build
//! unpacked it, not copied here) run through our bounded evaluator and
//! through the `jmespath` crate as an oracle.
//!
//! For every case the crate passes, our result must be identical to the
//! crate's (the same JSON, number representation included) or both must
//! fail. The crate passes all 875 cases of the suite; the one case we differ
//! on is a benchmark (no expected answer) that our limits refuse.
//!
//! Then the same comparison on cases of our own (edge cases of numbers,
//! slices, sorting, escaping, functions' type errors) and on expressions
//! generated at random, and a table of the deliberate differences.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use contract::jmes::JmesQuery;
use jmespath::{Rcvar, ToJmespath, Variable};
use serde_json::Value;

/// Benchmark expressions our limits refuse on purpose (they have no expected
/// result in the suite).
const REFUSED_BY_LIMITS: &[(&str, &str)] = &[("benchmarks.json", "a[*].b[*].c[*].d[*]")];

/// The crate's answer, as JSON.
fn oracle(expression: &str, given: &Value) -> Result<Value, String> {
    let compiled = jmespath::compile(expression).map_err(|e| e.to_string())?;
    let result = compiled.search(given).map_err(|e| e.to_string())?;
    serde_json::to_value(&*result).map_err(|e| e.to_string())
}

/// The same JSON, written the same way (so `1` differs from `1.0`).
fn identical(a: &Value, b: &Value) -> bool {
    a == b && serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

fn ours(expression: &str, given: &Value) -> Result<Value, String> {
    JmesQuery::compile(expression)?.search(given)
}

/// Whether `got` is the suite's expected answer (compared as the crate's
/// own compliance runner does: as JMESPath variables, numbers within an
/// epsilon).
fn expected(case: &Value, got: &Result<Value, String>) -> bool {
    if case.get("error").is_some() {
        return got.is_err();
    }
    match (case.get("result"), got) {
        (Some(want), Ok(got)) => {
            let want: Rcvar = want.clone().to_jmespath().unwrap();
            let got: Rcvar = Rcvar::new(serde_json::from_value::<Variable>(got.clone()).unwrap());
            want == got
        }
        (Some(_), Err(_)) => false,
        // a benchmark: any answer is the suite's
        (None, _) => true,
    }
}

/// `<cargo home>/registry/src/<index>/jmespath-0.5.0/tests/compliance`: the
/// suite as the `jmespath` crate ships it. Building this test unpacks the
/// crate there.
fn compliance_dir() -> std::path::PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = cargo_home.join("registry/src");
    std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
        .map(|e| e.unwrap().path().join("jmespath-0.5.0/tests/compliance"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "the jmespath 0.5.0 source is not under {}; run `cargo fetch`",
                registry.display()
            )
        })
}

fn refused_by_limits(file: &str, expression: &str) -> bool {
    REFUSED_BY_LIMITS
        .iter()
        .any(|(f, prefix)| *f == file && expression.starts_with(prefix))
}

#[test]
fn compliance_suite_matches_the_jmespath_crate() {
    let dir = compliance_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 16, "the suite has 16 files");

    let mut cases = 0;
    let mut crate_fails = BTreeSet::new();
    let mut differences = BTreeSet::new();
    let mut failures = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let suites: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for suite in suites.as_array().unwrap() {
            let given = &suite["given"];
            for case in suite["cases"].as_array().unwrap() {
                cases += 1;
                let expression = case["expression"].as_str().unwrap();
                let theirs = oracle(expression, given);
                let mine = ours(expression, given);
                let crate_passes = expected(case, &theirs);
                let same = match (&theirs, &mine) {
                    (Ok(a), Ok(b)) => identical(a, b),
                    (Err(_), Err(_)) => true,
                    _ => false,
                };
                let deliberate = refused_by_limits(&file, expression);
                if !crate_passes {
                    crate_fails.insert(format!("{file}: {expression}"));
                }
                if !same {
                    differences.insert(format!("{file}: {expression}"));
                }
                if (!crate_passes || !same) && !deliberate {
                    failures.push(format!(
                        "{file}: {expression:?}\n  crate: {theirs:?} (passes: {crate_passes})\n  ours:  {mine:?}"
                    ));
                }
                if deliberate && case.get("bench").is_none() {
                    failures.push(format!("{file}: {expression:?} has an expected answer"));
                }
            }
        }
    }
    println!(
        "{cases} compliance cases; the crate fails {}: {crate_fails:#?}; we differ on {}: {differences:#?}",
        crate_fails.len(),
        differences.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cases, 875);
    assert_eq!(differences.len(), REFUSED_BY_LIMITS.len());
}

/// A document with every type and the awkward values.
fn awkward_document() -> Value {
    serde_json::from_str(
        r#"{
            "a": "x", "b": "y", "t": true, "f": false, "nil": null, "zero": 0,
            "n": [1, 1.0, -0.0, 2.5, 1e300, 12345678901234567890, -3, 0.1, 0.2, 0.30000000000000004],
            "ints": [3, 1, 2, 1], "floats": [1.5, -2.25, 1e-7, 3.0],
            "s": ["b", "a", "c", "é", "A", "", "ab", "a"],
            "mixed": [1, "1", true, null, [1], {"1": 1}],
            "o": {"z": 1, "a": {"k": [1, {"m": null}]}, "ü": "u", "": "empty"},
            "people": [
                {"name": "b", "age": 3, "tags": ["x"]},
                {"name": "a", "age": 3, "tags": []},
                {"name": "c", "age": 1},
                {"name": "d", "age": 2.0, "tags": ["y", "z"]}
            ],
            "e": [], "eo": {},
            "str": "héllo \"quoted\" \\ \n\t\u0001\u001f\u007f\u2028 end 😀",
            "nested": [[1, [2]], [3], 4, [[5]], []],
            "objs": [{"k": 1}, {"k": 2}, {"j": 3}, 5, null]
        }"#,
    )
    .unwrap()
}

/// Expressions of our own, each compared with the crate.
const EXTRA_CASES: &[&str] = &[
    // fields, indices, slices
    "a",
    "o.a.k[1].m",
    "o.\"ü\"",
    "o.\"\"",
    "n[0]",
    "n[-1]",
    "n[-10]",
    "n[-11]",
    "n[10]",
    "n[::-1]",
    "n[::2]",
    "n[1:-1:3]",
    "n[-3:]",
    "n[:-3]",
    "n[100:]",
    "n[:100]",
    "n[-100:]",
    "n[::-3]",
    "n[5:1:-1]",
    "n[1:5:-1]",
    "n[-1:-100:-1]",
    "n[2147483647:]",
    "n[-2147483647:]",
    "n[:2147483647:2147483647]",
    "n[::-2147483647]",
    "e[0]",
    "e[-1]",
    "e[::-1]",
    "a[0]",
    "a[::1]",
    "o[0]",
    "nil[0]",
    // projections and flatten
    "people[*].name",
    "people[*].tags[0]",
    "people[].tags[]",
    "nested[]",
    "nested[][]",
    "nested[][][]",
    "o.*",
    "o.*.k",
    "*",
    "*.k",
    "objs[*].k",
    "objs[].k",
    "people[?age > `2`].name",
    "people[?age == `3`]",
    "people[?tags].name",
    "people[?!tags].name",
    "people[?age == `2`].name",
    "people[?name < 'b']",
    "objs[?k]",
    "e[*]",
    "eo.*",
    "a[*]",
    "a.*",
    "people[*].[name, age]",
    "people[*].{n: name, a: age}",
    "people[:2].name",
    "people[::-1].name | [0]",
    "nested[*][*]",
    "nested[*][0]",
    "people[*].tags[*]",
    "people[*].tags[]",
    // multiselect, literals, raw strings
    "[a, b, nil]",
    "{a: a, b: b, a: b}",
    "nil.[a]",
    "nil.{a: a}",
    "`[1, 2.0, -0]`",
    "`1e2`",
    "`\"\\u00e9\"`",
    "'it''s'",
    "'a\\'b'",
    "'\\n'",
    "`{\"b\": 1, \"a\": [true]}`",
    "`-0.0`",
    // comparisons and logic
    "a == 'x'",
    "a != 'x'",
    "n[0] == n[1]",
    "`0.71` == `0.7100000000000002`",
    "n[7] == n[9]",
    "`0.0` == `-0.0`",
    "`1e-320` == `0`",
    "zero < `1`",
    "a < b",
    "t == `true`",
    "mixed == mixed",
    "o == o",
    "o == `{}`",
    "e == eo",
    "nil == nil",
    "nil == missing",
    "people[0] == people[1]",
    "`[1, 2]` == `[1, 2.0]`",
    "`{\"a\": 1}` == `{\"a\": 1.0}`",
    "n[0] >= n[1]",
    "n[0] <= `0.5`",
    "a || b",
    "nil || e || eo || f || 'last'",
    "a && b",
    "e && a",
    "!a",
    "!e",
    "!zero",
    "!nil",
    "[&a, &a] | @[0] == @[1]",
    "[&a] | @[0] == @[0]",
    "[&a] | !@[0]",
    "t && !f",
    "(a || b) && f",
    // functions: numbers
    "abs(`-1`)",
    "abs(`-1.5`)",
    "abs(n[6])",
    "abs(n[5])",
    "avg(ints)",
    "avg(floats)",
    "avg(n)",
    "ceil(`1.2`)",
    "ceil(`-1.2`)",
    "floor(`1.8`)",
    "floor(n[4])",
    "sum(ints)",
    "sum(e)",
    "sum(floats)",
    "sum(n)",
    "max(ints)",
    "min(ints)",
    "max(n)",
    "min(n)",
    "max(s)",
    "min(s)",
    "max(e)",
    "min(e)",
    "max(`[1, 1.0]`)",
    "min(`[1, 1.0]`)",
    "max(`[1.0, 1]`)",
    "min(`[1.0, 1]`)",
    "length(str)",
    "length(s)",
    "length(o)",
    "to_number('1')",
    "to_number('1.50')",
    "to_number('-0')",
    "to_number(' 2 ')",
    "to_number('1e400')",
    "to_number('0x1')",
    "to_number('')",
    "to_number(`1.5`)",
    "to_number(t)",
    "to_number(e)",
    "to_number('12345678901234567890')",
    "to_number('-12345678901234567890123')",
    // functions: strings and arrays
    "contains(s, 'a')",
    "contains(s, `\"z\"`)",
    "contains(a, 'x')",
    "contains(str, 'llo')",
    "contains(a, `1`)",
    "contains(mixed, `[1]`)",
    "contains(mixed, `{\"1\": 1.0}`)",
    "contains(n, `2.5`)",
    "starts_with(str, 'hé')",
    "ends_with(str, '😀')",
    "join(', ', s)",
    "join('', e)",
    "join(a, `[\"1\", \"2\"]`)",
    "keys(o)",
    "values(o)",
    "keys(eo)",
    "reverse(s)",
    "reverse(str)",
    "reverse(e)",
    "reverse('')",
    "sort(s)",
    "sort(ints)",
    "sort(n)",
    "sort(e)",
    "sort_by(people, &age)[*].name",
    "sort_by(people, &name)[*].name",
    "sort_by(people, &to_string(age))[*].name",
    "sort_by(e, &a)",
    "max_by(people, &age).name",
    "min_by(people, &age).name",
    "max_by(e, &age)",
    "max_by(people, &name).name",
    "min_by(people, &name).name",
    "map(&age, people)",
    "map(&tags, people)",
    "map(&[@], ints)",
    "map(&map(&@, @), nested[:2])",
    "merge(o, `{\"z\": 2}`, eo)",
    "merge(eo)",
    "not_null(nil, missing, a)",
    "not_null(nil)",
    "not_null(f, a)",
    "to_array(a)",
    "to_array(s)",
    "to_array(nil)",
    "to_string(a)",
    "to_string(n)",
    "to_string(o)",
    "to_string(str)",
    "to_string(mixed)",
    "to_string(`1e300`)",
    "to_string(people)",
    "to_string(nil)",
    "to_string(t)",
    "to_string(abs(`-1`))",
    "type(a)",
    "type(n)",
    "type(o)",
    "type(nil)",
    "type(t)",
    "type(zero)",
    "type(&a)",
    "type(`1.5`)",
    // type errors
    "abs(a)",
    "avg(s)",
    "avg(mixed)",
    "ceil(a)",
    "contains(o, a)",
    "ends_with(a, `1`)",
    "floor(nil)",
    "join(`1`, s)",
    "join(', ', n)",
    "keys(a)",
    "length(`1`)",
    "length(t)",
    "map(a, s)",
    "map(&a, a)",
    "max(mixed)",
    "max(o)",
    "max_by(people, &tags)",
    "max_by(people, a)",
    "merge(a)",
    "merge(o, a)",
    "min(`[1, \"a\"]`)",
    "min_by(s, &@)",
    "reverse(`1`)",
    "sort(mixed)",
    "sort(`[1, \"a\"]`)",
    "sort_by(people, &tags)",
    "sort_by(mixed, &@)",
    "sort_by(a, &@)",
    "starts_with(`1`, a)",
    "sum(s)",
    "to_string(&a)",
    "values(e)",
    "sort_by(`[1, \"a\"]`, &@)",
    "min_by(`[1, \"a\"]`, &@)",
    // pipes and chains
    "people | [0] | name",
    "people[*] | [0]",
    "people[*].name | [1]",
    "o | keys(@) | [0]",
    "a.b.c.d",
    "o.a.k | [0]",
    "@",
    "@.a",
    "@ | @ | a",
];

fn same_as_crate(expression: &str, given: &Value) -> Result<(), String> {
    let theirs = oracle(expression, given);
    let mine = ours(expression, given);
    let same = match (&theirs, &mine) {
        (Ok(a), Ok(b)) => identical(a, b),
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "{expression:?}\n  crate: {theirs:?}\n  ours:  {mine:?}"
        ))
    }
}

#[test]
fn our_cases_match_the_jmespath_crate() {
    let given = awkward_document();
    let failures: Vec<String> = EXTRA_CASES
        .iter()
        .filter_map(|e| same_as_crate(e, &given).err())
        .collect();
    println!("{} cases of our own", EXTRA_CASES.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the crate does with a case we handle differently on purpose.
#[derive(Debug, PartialEq)]
enum Crate {
    /// Gives this JSON.
    Gives(&'static str),
    /// Gives a JSON string holding the debug dump of its AST.
    DumpsAnExpref,
    /// Fails.
    Fails,
    /// Panics (in a debug build: integer overflow; in release: an index out
    /// of bounds).
    Panics,
}

/// The deliberate differences: (expression, what the crate does, what we
/// give: JSON, or an error containing the text after `error: `).
const DELIBERATE: &[(&str, Crate, &str)] = &[
    // the spec: avg of an empty array is null (the crate divides 0 by 0)
    ("avg(e)", Crate::Fails, "null"),
    // the spec: to_number gives a number or null (the crate parses any JSON)
    ("to_number('[1]')", Crate::Gives("[1]"), "null"),
    ("to_number('\"a\"')", Crate::Gives("\"a\""), "null"),
    ("to_number('true')", Crate::Gives("true"), "null"),
    ("to_number('{}')", Crate::Gives("{}"), "null"),
    // an expression reference has no JSON form (the crate dumps its AST)
    ("&a", Crate::DumpsAnExpref, "error: has no JSON form"),
    ("&a == &a", Crate::DumpsAnExpref, "error: has no JSON form"),
    (
        "to_string([&a])",
        Crate::DumpsAnExpref,
        "error: has no JSON form",
    ),
    // refused when compiling, even where evaluation would not reach them
    (
        "a || foo(a)",
        Crate::Gives("\"x\""),
        "error: unknown function foo()",
    ),
    (
        "a || abs(a, a)",
        Crate::Gives("\"x\""),
        "error: abs() takes 1 argument(s)",
    ),
    (
        "a || not_null()",
        Crate::Gives("\"x\""),
        "error: not_null() takes at least 1",
    ),
    (
        "a || n[::0]",
        Crate::Gives("\"x\""),
        "error: a slice step cannot be 0",
    ),
    (
        "nil.[n[::0]]",
        Crate::Gives("null"),
        "error: a slice step cannot be 0",
    ),
    // slices whose step overflows the crate's 32-bit index
    (
        "n[5:10:2147483647]",
        Crate::Panics,
        "[12345678901234567890]",
    ),
    ("n[1::2147483647]", Crate::Panics, "[1.0]"),
];

#[test]
fn deliberate_differences_from_the_jmespath_crate() {
    let given = awkward_document();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcomes: Vec<_> = DELIBERATE
        .iter()
        .map(|(expression, _, _)| {
            std::panic::catch_unwind(|| oracle(expression, &given)).map_or(Crate::Panics, |r| {
                match r {
                    Err(_) => Crate::Fails,
                    Ok(v) if v.as_str().is_some_and(|s| s.contains("<expression: ")) => {
                        Crate::DumpsAnExpref
                    }
                    Ok(v) => Crate::Gives(Box::leak(v.to_string().into_boxed_str())),
                }
            })
        })
        .collect();
    std::panic::set_hook(hook);
    for ((expression, crate_does, we_give), outcome) in DELIBERATE.iter().zip(outcomes) {
        assert_eq!(&outcome, crate_does, "the crate on {expression:?}");
        let mine = ours(expression, &given);
        match we_give.strip_prefix("error: ") {
            Some(text) => {
                let e = mine.expect_err(expression);
                assert!(e.contains(text), "{expression:?}: {e}");
            }
            None => assert_eq!(
                mine.expect(expression),
                serde_json::from_str::<Value>(we_give).unwrap(),
                "{expression:?}"
            ),
        }
    }
}

/// A small deterministic generator (xorshift), so the test needs no crate.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'t>(&mut self, items: &[&'t str]) -> &'t str {
        items[self.below(items.len())]
    }

    /// A random expression over `awkward_document()`'s fields, at most
    /// `depth` levels deep, with correct function arities (wrong ones are
    /// refused when compiling: see DELIBERATE).
    fn expression(&mut self, depth: usize) -> String {
        const FIELDS: &[&str] = &[
            "a", "t", "f", "nil", "zero", "n", "ints", "floats", "s", "mixed", "o", "people", "e",
            "eo", "str", "nested", "objs", "name", "age", "tags", "k", "z", "missing",
        ];
        const LITERALS: &[&str] = &[
            "`1`",
            "`-2.5`",
            "`\"a\"`",
            "`[1, 2]`",
            "`{\"k\": 1}`",
            "`null`",
            "`true`",
            "'x'",
            "'1'",
            "''",
            "`[]`",
            "`0`",
            "`1e3`",
        ];
        const FUNCTIONS: &[(&str, usize)] = &[
            ("abs", 1),
            ("avg", 1),
            ("ceil", 1),
            ("contains", 2),
            ("ends_with", 2),
            ("floor", 1),
            ("join", 2),
            ("keys", 1),
            ("length", 1),
            ("map", 2),
            ("max", 1),
            ("max_by", 2),
            ("merge", 2),
            ("min", 1),
            ("min_by", 2),
            ("not_null", 2),
            ("reverse", 1),
            ("sort", 1),
            ("sort_by", 2),
            ("starts_with", 2),
            ("sum", 1),
            ("to_array", 1),
            ("to_number", 1),
            ("to_string", 1),
            ("type", 1),
            ("values", 1),
        ];
        if depth == 0 {
            return match self.below(4) {
                0 => "@".into(),
                1 => self.pick(LITERALS).into(),
                _ => self.pick(FIELDS).into(),
            };
        }
        let d = depth - 1;
        match self.below(22) {
            0 | 1 => format!("{}.{}", self.expression(d), self.pick(FIELDS)),
            2 => format!("{}[{}]", self.expression(d), self.below(7) as i64 - 3),
            3 => format!("{}[*].{}", self.expression(d), self.pick(FIELDS)),
            4 => format!("{}[]", self.expression(d)),
            5 => format!("{} | {}", self.expression(d), self.expression(d)),
            6 => format!("{} || {}", self.expression(d), self.expression(d)),
            7 => format!("{} && {}", self.expression(d), self.expression(d)),
            8 => format!("!{}", self.expression(d)),
            9 => {
                let op = self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                format!("{} {op} {}", self.expression(d), self.expression(d))
            }
            10 => format!("[{}, {}]", self.expression(d), self.expression(d)),
            11 => format!("{{k: {}, z: {}}}", self.expression(d), self.expression(d)),
            12 => format!("{}[?{}]", self.expression(d), self.expression(d)),
            13 => {
                let bound = |r: &mut Random| match r.below(3) {
                    0 => String::new(),
                    _ => (r.below(9) as i64 - 4).to_string(),
                };
                let (start, stop) = (bound(self), bound(self));
                let step = ["", ":1", ":-1", ":2", ":-3"][self.below(5)];
                format!("{}[{start}:{stop}{step}]", self.expression(d))
            }
            14 => format!("{}.*", self.expression(d)),
            15 => format!("({})", self.expression(d)),
            _ => {
                let (name, arity) = FUNCTIONS[self.below(FUNCTIONS.len())];
                let args: Vec<String> = (0..arity)
                    .map(|_| {
                        if self.below(3) == 0 {
                            format!("&{}", self.expression(d))
                        } else {
                            self.expression(d)
                        }
                    })
                    .collect();
                format!("{name}({})", args.join(", "))
            }
        }
    }
}

#[test]
fn random_expressions_match_the_jmespath_crate() {
    let given = awkward_document();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut compared, mut deliberate) = (0, 0);
    let mut failures = Vec::new();
    for _ in 0..20_000 {
        let expression = random.expression(4);
        let theirs = oracle(&expression, &given);
        compared += 1;
        if let Err(e) = same_as_crate(&expression, &given) {
            // the deliberate differences (see DELIBERATE), recognised by the
            // functions involved: an expref dumped by to_string (and then
            // maybe sliced, compared or parsed away), to_number of a string
            // holding other JSON, avg of an empty array
            let expref_dump = theirs
                .as_ref()
                .is_ok_and(|v| v.to_string().contains("<expression: "))
                || expression.contains('&') && expression.contains("to_string(");
            let any_json = expression.contains("to_number(");
            let avg_of_empty = expression.contains("avg(")
                && theirs
                    .as_ref()
                    .is_err_and(|e| e.contains("Expected to be a valid f64"));
            if expref_dump || any_json || avg_of_empty {
                deliberate += 1;
            } else {
                failures.push(e);
            }
        }
    }
    println!("{compared} random expressions compared, {deliberate} differ deliberately");
    assert!(compared > 15_000);
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
