//! The upstream provider's command line, as Go's `flag` package and klog read
//! it, turned into the one this binary's parser reads.
//!
//! The upstream provider defines its flags with Go's `flag` package and adds
//! klog's (`klog.InitFlags`). A DaemonSet written for it may therefore use:
//!
//! - one or two dashes: `-provider-volume=/x` is `--provider-volume=/x`;
//! - a value in the next argument: `--region cn-hangzhou`, `-v 3`;
//! - booleans as `-flag`, `-flag=true` or `-flag=false` (never `-flag false`);
//! - klog's flags (`-v`, `--vmodule`, `--logtostderr`, `--log_dir`, ...).
//!
//! [`normalize`] rewrites such a command line into `--name=value` forms. `-v`
//! is kept (it sets the log level here too); the other klog flags have no
//! equivalent (this provider always logs to stderr, its levels follow `-v`
//! or `RUST_LOG`) and are removed, and returned so that the caller can log
//! them in one warning. An unknown flag is an error, with Go's message.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::time::Duration;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A boolean: `-flag`, `-flag=true`, `-flag=false`.
    Switch,
    /// `-flag=value` or `-flag value`.
    Value,
}

/// A flag of this binary's own parser, under the name a Go-style command
/// line may use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFlag {
    /// The name after the dashes (`provider-volume`, `v`, `h`).
    pub name: String,
    /// How the parser spells it: a long name (`--provider-volume`), or a
    /// short one (`-v`) when it has no long name.
    pub canonical: String,
    /// Whether it takes a value.
    pub arity: Arity,
}

impl KnownFlag {
    /// A flag known under `name`, spelt `canonical` (with its dashes).
    pub fn new(name: impl Into<String>, canonical: impl Into<String>, arity: Arity) -> KnownFlag {
        KnownFlag {
            name: name.into(),
            canonical: canonical.into(),
            arity,
        }
    }
}

/// The flags `klog.InitFlags` defines (klog v2), apart from `-v`, which this
/// binary maps to its log level. None of these has an equivalent here.
pub const KLOG_IGNORED: &[(&str, Arity)] = &[
    ("add_dir_header", Arity::Switch),
    ("alsologtostderr", Arity::Switch),
    ("legacy_stderr_threshold_behavior", Arity::Switch),
    ("log_backtrace_at", Arity::Value),
    ("log_dir", Arity::Value),
    ("log_file", Arity::Value),
    ("log_file_max_size", Arity::Value),
    ("logtostderr", Arity::Switch),
    ("one_output", Arity::Switch),
    ("skip_headers", Arity::Switch),
    ("skip_log_headers", Arity::Switch),
    ("stderrthreshold", Arity::Value),
    ("vmodule", Arity::Value),
];

/// A command line the parser can read, and the klog flags taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The arguments, program name excluded, in `--name=value` form.
    pub args: Vec<OsString>,
    /// The klog flags removed, as given (`--log_dir=/var/log`, `--skip_headers`).
    pub ignored: Vec<String>,
}

/// A command line Go's `flag` package would refuse too; the message is Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag neither this binary nor the upstream provider defines.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A flag that takes a value came last, without one.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// `-flag=x` of a boolean flag, where `x` is not a Go boolean.
    #[error("invalid boolean value {value:?} for -{name}: parse error")]
    BadBool {
        /// The flag.
        name: String,
        /// What was given.
        value: String,
    },
    /// `---x`, `-=x`, or a flag name that is not UTF-8.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Rewrites `args` (program name excluded) for a parser that knows `ours`:
/// each known flag becomes `--name=value` (or `--name` for a true switch; a
/// false one is dropped), klog's flags other than `-v` are removed and
/// returned, anything that is not a flag is passed on unchanged, and so is
/// everything after `--`.
pub fn normalize(
    args: impl IntoIterator<Item = OsString>,
    ours: &[KnownFlag],
) -> Result<Normalized, FlagError> {
    let mut input = args.into_iter();
    let mut out = Normalized {
        args: Vec::new(),
        ignored: Vec::new(),
    };
    while let Some(arg) = input.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            out.args.push(arg);
            out.args.extend(input);
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            // Not a flag: the parser decides (a subcommand, or an error).
            out.args.push(arg);
            continue;
        }
        let body = bytes.strip_prefix(b"--").unwrap_or(&bytes[1..]);
        if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
            return Err(FlagError::BadSyntax(arg.to_string_lossy().into_owned()));
        }
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(at) => (&body[..at], Some(OsStr::from_bytes(&body[at + 1..]))),
            None => (body, None),
        };
        let name = std::str::from_utf8(name)
            .map_err(|_| FlagError::BadSyntax(arg.to_string_lossy().into_owned()))?;
        if let Some(flag) = ours.iter().find(|f| f.name == name) {
            match flag.arity {
                Arity::Switch => {
                    if switch_value(name, value)? {
                        out.args.push(OsString::from(&flag.canonical));
                    }
                }
                Arity::Value => {
                    let value = match value {
                        Some(v) => v.to_os_string(),
                        None => input
                            .next()
                            .ok_or_else(|| FlagError::MissingValue(name.to_string()))?,
                    };
                    let value = if name == "v" {
                        klog_level(value)
                    } else {
                        value
                    };
                    let mut joined = flag.canonical.clone().into_bytes();
                    joined.push(b'=');
                    joined.extend_from_slice(value.as_bytes());
                    out.args.push(OsString::from_vec(joined));
                }
            }
            continue;
        }
        let Some((_, arity)) = KLOG_IGNORED.iter().find(|(n, _)| *n == name) else {
            return Err(FlagError::Unknown(name.to_string()));
        };
        match arity {
            Arity::Switch => {
                switch_value(name, value)?;
                out.ignored.push(match value {
                    Some(v) => format!("--{name}={}", v.to_string_lossy()),
                    None => format!("--{name}"),
                });
            }
            Arity::Value => {
                let value = match value {
                    Some(v) => v.to_os_string(),
                    None => input
                        .next()
                        .ok_or_else(|| FlagError::MissingValue(name.to_string()))?,
                };
                out.ignored
                    .push(format!("--{name}={}", value.to_string_lossy()));
            }
        }
    }
    Ok(out)
}

/// The value of a switch: true without one, else Go's boolean.
fn switch_value(name: &str, value: Option<&OsStr>) -> Result<bool, FlagError> {
    match value {
        None => Ok(true),
        Some(v) => {
            let text = v.to_string_lossy();
            parse_go_bool(&text).ok_or_else(|| FlagError::BadBool {
                name: name.to_string(),
                value: text.into_owned(),
            })
        }
    }
}

/// klog's `-v` is an int32 where anything below 1 means "info only": a
/// negative level becomes 0 and a level above 255 becomes 255, the range of
/// this binary's `-v`. Anything else is passed on for the parser to refuse.
fn klog_level(value: OsString) -> OsString {
    match value.to_str().and_then(|v| v.parse::<i64>().ok()) {
        Some(level) => OsString::from(level.clamp(0, 255).to_string()),
        None => value,
    }
}

/// Why a text is not a duration [`parse_go_duration`] accepts; each variant
/// holds the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a sequence of numbers with units.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// Below zero.
    #[error("{0:?} is negative")]
    Negative(String),
    /// A number without a unit.
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit other than `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The text.
        text: String,
    },
    /// Longer than Go's `time.Duration` holds (about 292 years).
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

/// Go's `time.ParseDuration`, limited to durations that are not negative:
/// a sequence of decimal numbers, each with an optional fraction and a unit
/// (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), such as `1.5s`, `1h30m`,
/// `300ms`; or `0`.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_string());
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if let Some(magnitude) = rest.strip_prefix('-') {
        if !magnitude.is_empty() && magnitude.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(text.to_string()));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(tail) => {
                let frac_len = tail.bytes().take_while(u8::is_ascii_digit).count();
                tail.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::MissingUnit(text.to_string())),
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                    text: text.to_string(),
                });
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        // Digits beyond 18 cannot change a nanosecond count below 2^64.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse::<u128>().map_err(|_| invalid())? * unit_ns
                / 10u128.pow(frac_digits.len() as u32)
        };
        total = int
            .checked_mul(unit_ns)
            .and_then(|n| n.checked_add(frac))
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= i64::MAX as u128)
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<KnownFlag> {
        vec![
            KnownFlag::new("provider-volume", "--provider-volume", Arity::Value),
            KnownFlag::new("healthz-port", "--healthz-port", Arity::Value),
            KnownFlag::new("healthz-timeout", "--healthz-timeout", Arity::Value),
            KnownFlag::new("region", "--region", Arity::Value),
            KnownFlag::new("v", "--v", Arity::Value),
            KnownFlag::new("h", "--help", Arity::Switch),
            KnownFlag::new("help", "--help", Arity::Switch),
        ]
    }

    fn run(args: &[&str]) -> Result<(Vec<String>, Vec<String>), FlagError> {
        let n = normalize(args.iter().map(OsString::from), &ours())?;
        Ok((
            n.args
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect(),
            n.ignored,
        ))
    }

    fn args(args: &[&str]) -> Vec<String> {
        run(args).unwrap().0
    }

    #[test]
    fn one_or_two_dashes_and_value_forms() {
        let want = vec!["--provider-volume=/x", "--region=cn-beijing", "--v=3"];
        for line in [
            &["-provider-volume=/x", "-region=cn-beijing", "-v=3"][..],
            &[
                "--provider-volume",
                "/x",
                "-region",
                "cn-beijing",
                "-v",
                "3",
            ],
            &["-provider-volume", "/x", "--region=cn-beijing", "--v", "3"],
        ] {
            assert_eq!(args(line), want, "{line:?}");
        }
    }

    #[test]
    fn the_next_argument_is_a_value_even_with_a_dash() {
        // As Go: a flag that takes a value takes the next argument, whatever it is.
        assert_eq!(args(&["-region", "-x"]), vec!["--region=-x"]);
        assert_eq!(args(&["-region="]), vec!["--region="]);
        assert_eq!(
            args(&["--healthz-timeout=1.5s"]),
            vec!["--healthz-timeout=1.5s"]
        );
    }

    #[test]
    fn klog_verbosity_is_clamped_to_the_binary_range() {
        assert_eq!(args(&["-v=-1"]), vec!["--v=0"]);
        assert_eq!(args(&["-v=4"]), vec!["--v=4"]);
        assert_eq!(args(&["-v", "1000"]), vec!["--v=255"]);
        // Not a number: left for the parser to refuse.
        assert_eq!(args(&["-v=high"]), vec!["--v=high"]);
    }

    #[test]
    fn switches_follow_go_booleans() {
        assert_eq!(args(&["-h"]), vec!["--help"]);
        assert_eq!(args(&["-help=true"]), vec!["--help"]);
        assert_eq!(args(&["--help=T"]), vec!["--help"]);
        assert!(args(&["-help=false"]).is_empty());
        assert!(args(&["-help=0"]).is_empty());
        assert_eq!(
            run(&["-help=yes"]).unwrap_err().to_string(),
            "invalid boolean value \"yes\" for -help: parse error"
        );
    }

    #[test]
    fn every_klog_flag_is_accepted_and_reported() {
        let (args, ignored) = run(&[
            "--logtostderr",
            "-alsologtostderr=false",
            "--vmodule=server=4,auth*=5",
            "-log_file",
            "/var/log/p.log",
            "--log_dir=/var/log",
            "--stderrthreshold=INFO",
            "-v=2",
            "--add_dir_header",
            "--skip_headers=true",
            "-one_output",
            "--log_backtrace_at=server.go:80",
            "--log_file_max_size",
            "1800",
            "--skip_log_headers",
            "--legacy_stderr_threshold_behavior=false",
            "--region=cn-hangzhou",
        ])
        .unwrap();
        assert_eq!(args, vec!["--v=2", "--region=cn-hangzhou"]);
        assert_eq!(
            ignored,
            vec![
                "--logtostderr",
                "--alsologtostderr=false",
                "--vmodule=server=4,auth*=5",
                "--log_file=/var/log/p.log",
                "--log_dir=/var/log",
                "--stderrthreshold=INFO",
                "--add_dir_header",
                "--skip_headers=true",
                "--one_output",
                "--log_backtrace_at=server.go:80",
                "--log_file_max_size=1800",
                "--skip_log_headers",
                "--legacy_stderr_threshold_behavior=false",
            ]
        );
        // Every flag of the table is reachable.
        for (name, arity) in KLOG_IGNORED {
            let line = match arity {
                Arity::Switch => vec![format!("-{name}")],
                Arity::Value => vec![format!("-{name}"), "x".into()],
            };
            let refs: Vec<&str> = line.iter().map(String::as_str).collect();
            assert_eq!(run(&refs).unwrap().1.len(), 1, "{name}");
        }
    }

    #[test]
    fn a_klog_switch_with_a_bad_boolean_is_refused() {
        assert_eq!(
            run(&["--logtostderr=maybe"]).unwrap_err(),
            FlagError::BadBool {
                name: "logtostderr".into(),
                value: "maybe".into()
            }
        );
    }

    #[test]
    fn errors_are_gos() {
        assert_eq!(
            run(&["-endpoint=unix:///provider/alibabacloud.sock"])
                .unwrap_err()
                .to_string(),
            "flag provided but not defined: -endpoint"
        );
        assert_eq!(
            run(&["--region"]).unwrap_err().to_string(),
            "flag needs an argument: -region"
        );
        assert_eq!(
            run(&["--log_dir"]).unwrap_err().to_string(),
            "flag needs an argument: -log_dir"
        );
        for bad in ["---v=1", "-=x", "--=x"] {
            assert_eq!(
                run(&[bad]).unwrap_err(),
                FlagError::BadSyntax(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn words_and_everything_after_double_dash_pass_through() {
        assert_eq!(
            args(&["serve", "-v=1", "-", "--", "-region", "x"]),
            vec!["serve", "--v=1", "-", "--", "-region", "x"]
        );
    }

    #[test]
    fn non_utf8_values_survive() {
        let value = OsString::from_vec(b"/tmp/\xff".to_vec());
        let mut flag = b"--provider-volume=".to_vec();
        flag.extend_from_slice(value.as_bytes());
        let n = normalize([OsString::from_vec(flag.clone())], &ours()).unwrap();
        assert_eq!(n.args, vec![OsString::from_vec(flag.clone())]);
        let n = normalize([OsString::from("-provider-volume"), value], &ours()).unwrap();
        assert_eq!(n.args, vec![OsString::from_vec(flag)]);
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("5s", ms(5000)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("300ms", ms(300)),
            ("1h30m", ms(5_400_000)),
            ("1m0.25s", ms(60_250)),
            ("+2s", ms(2000)),
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("1500us", ms(1) + Duration::from_micros(500)),
            ("1500\u{b5}s", ms(1) + Duration::from_micros(500)),
            ("1500\u{3bc}s", ms(1) + Duration::from_micros(500)),
            ("7ns", Duration::from_nanos(7)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "", "5", "s", ".s", "1.5", "5 s", "5x", "-5s", "1e3s", "3000000h", "1h-5m",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("5").unwrap_err().to_string(),
            "missing unit in duration \"5\""
        );
    }
}
