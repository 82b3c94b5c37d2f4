//! Injected faults and latency, for tests and benchmarks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::StatusCode;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// An error to answer instead of processing matching requests, or (with
/// [`answer`](Fault::answer)) a successful answer of the fault's own making.
/// Faults are checked after a request is authenticated, in the order they
/// were added.
///
/// Without [`times`](Fault::times) or [`probability`](Fault::probability) it
/// fires on every matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The action to match, e.g. `GetSecretValue`; `*` matches any.
    pub action: String,
    /// The object to match: KMS `SecretName` (name, not ARN) or OOS `Name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Fire on the first `times` matching requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Fire on each matching request with this probability (0.0 to 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// The error `Code`, e.g. `Rejected.Throttling`; empty for an `answer`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// The HTTP status; default: the real one for well-known codes
    /// (`Rejected.Throttling` 429, `ServiceUnavailableTemporary` 503,
    /// `InternalFailure` 500), else 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error `Message`; default: the real one for well-known codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Adds `x-acs-retry-after: <seconds>`, which the SDKs turn into a
    /// throttling exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// Instead of an error: answer HTTP 200 with this body, byte for byte (a
    /// malformed or unexpected answer, as a broken service or a proxy might
    /// send). `code`, `status`, `message` and `retry_after` do not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Why a fault cannot be installed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// Both `times` and `probability` were given.
    #[error("a fault fires either the first `times` requests or with a `probability`, not both")]
    TimesAndProbability,
    /// The probability is not within 0.0..=1.0.
    #[error("probability must be between 0.0 and 1.0, got {0}")]
    Probability(f64),
    /// The status is not an HTTP error status.
    #[error("status must be an HTTP error status (400-599), got {0}")]
    Status(u16),
    /// Action, or both code and answer, are empty.
    #[error("a fault needs a non-empty action, and a code or an answer")]
    Empty,
    /// Both a code and an answer were given.
    #[error("a fault answers either an error `code` or an `answer` body, not both")]
    CodeAndAnswer,
}

impl Fault {
    /// Answers matching `action` requests with `code` (default status and message).
    pub fn new(action: impl Into<String>, code: impl Into<String>) -> Self {
        Fault {
            action: action.into(),
            object: None,
            times: None,
            probability: None,
            code: code.into(),
            status: None,
            message: None,
            retry_after: None,
            answer: None,
        }
    }

    /// Answers matching `action` requests with HTTP 200 and `body` as is
    /// (a JSON answer of the wrong shape, or no JSON at all), as a broken
    /// service or a proxy might: for the error paths of a client.
    pub fn answer(action: impl Into<String>, body: impl Into<String>) -> Self {
        Fault {
            code: String::new(),
            answer: Some(body.into()),
            ..Fault::new(action, "")
        }
    }

    /// `Rejected.Throttling`, 429.
    pub fn throttling(action: impl Into<String>) -> Self {
        Fault::new(action, "Rejected.Throttling")
    }

    /// `ServiceUnavailableTemporary`, 503.
    pub fn unavailable(action: impl Into<String>) -> Self {
        Fault::new(action, "ServiceUnavailableTemporary")
    }

    /// `InternalFailure`, 500.
    pub fn internal_failure(action: impl Into<String>) -> Self {
        Fault::new(action, "InternalFailure")
    }

    /// Only requests for this object (KMS secret name or OOS parameter name).
    pub fn for_object(mut self, name: impl Into<String>) -> Self {
        self.object = Some(name.into());
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Each matching request with probability `p`.
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Overrides the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sends `x-acs-retry-after`.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Checks that the fault can fire as described.
    pub fn validate(&self) -> Result<(), FaultError> {
        if self.action.is_empty() || (self.code.is_empty() && self.answer.is_none()) {
            return Err(FaultError::Empty);
        }
        if !self.code.is_empty() && self.answer.is_some() {
            return Err(FaultError::CodeAndAnswer);
        }
        if self.times.is_some() && self.probability.is_some() {
            return Err(FaultError::TimesAndProbability);
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(FaultError::Probability(p));
        }
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err(FaultError::Status(status));
        }
        Ok(())
    }

    fn matches(&self, action: &str, object: Option<&str>) -> bool {
        targets(&self.action, self.object.as_deref(), action, object)
    }

    fn fire(&self) -> Fired {
        match &self.answer {
            Some(body) => Fired::Answer(body.clone()),
            None => Fired::Error(self.error()),
        }
    }

    fn error(&self) -> ApiError {
        let status = self
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or_else(|| ApiError::default_status(&self.code));
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| ApiError::default_message(&self.code).to_string());
        let mut error = ApiError::new(status, self.code.clone(), message);
        error.retry_after = self.retry_after;
        error
    }
}

/// What a fault answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fired {
    /// An error in the POP envelope.
    Error(ApiError),
    /// HTTP 200 with this body, as is.
    Answer(String),
}

/// An installed fault and how often it may still fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// The fault as installed.
    #[serde(flatten)]
    pub fault: Fault,
    /// For `times` faults: how many more requests it will answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    /// How many requests it has answered.
    pub fired: u64,
}

/// The installed faults, checked in order.
#[derive(Default)]
pub(crate) struct Faults {
    active: Vec<ActiveFault>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) -> Result<(), FaultError> {
        fault.validate()?;
        let remaining = fault.times;
        self.active.push(ActiveFault {
            fault,
            remaining,
            fired: 0,
        });
        Ok(())
    }

    pub fn replace(&mut self, faults: Vec<Fault>) -> Result<(), FaultError> {
        for fault in &faults {
            fault.validate()?;
        }
        self.active = faults
            .into_iter()
            .map(|fault| ActiveFault {
                remaining: fault.times,
                fault,
                fired: 0,
            })
            .collect();
        Ok(())
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.active.clone()
    }

    /// What the first fault that matches and fires answers, if any.
    pub fn check(&mut self, action: &str, object: Option<&str>) -> Option<Fired> {
        for entry in self.active.iter_mut() {
            if !entry.fault.matches(action, object) {
                continue;
            }
            let fires = match (entry.remaining.as_mut(), entry.fault.probability) {
                (Some(0), _) => false,
                (Some(left), _) => {
                    *left -= 1;
                    true
                }
                (None, Some(p)) => rand::rng().random_bool(p),
                (None, None) => true,
            };
            if fires {
                entry.fired += 1;
                return Some(entry.fault.fire());
            }
        }
        None
    }
}

/// Delay added before each API request is answered: fixed (`min == max`) or
/// drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Latency {
    /// No delay.
    pub const NONE: Latency = Latency {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// Always `delay`.
    pub fn fixed(delay: Duration) -> Self {
        Latency {
            min: delay,
            max: delay,
        }
    }

    /// Uniformly between `min` and `max` (swapped if given the wrong way round).
    pub fn range(min: Duration, max: Duration) -> Self {
        Latency {
            min: min.min(max),
            max: min.max(max),
        }
    }

    /// One delay.
    pub fn sample(&self) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        rand::rng().random_range(self.min..=self.max)
    }
}

/// Why a latency string is not valid.
#[derive(Debug, thiserror::Error)]
#[error("invalid latency {input:?}: expected e.g. \"20ms\", \"1s\" or \"10ms..50ms\" ({reason})")]
pub struct LatencyParseError {
    input: String,
    reason: String,
}

impl FromStr for Latency {
    type Err = LatencyParseError;

    /// `0`, `none`, `20ms`, `1.5s`, or a range `10ms..50ms`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| LatencyParseError {
            input: s.to_string(),
            reason,
        };
        let parse = |part: &str| {
            let part = part.trim();
            if part == "0" {
                return Ok(Duration::ZERO);
            }
            humantime::parse_duration(part).map_err(|e| fail(e.to_string()))
        };
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Latency::NONE);
        }
        match s.split_once("..") {
            Some((min, max)) => Ok(Latency::range(parse(min)?, parse(max)?)),
            None => Ok(Latency::fixed(parse(s)?)),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if self.max.is_zero() {
            f.write_str("none")
        } else if self.min == self.max {
            f.write_str(&show(self.min))
        } else {
            write!(f, "{}..{}", show(self.min), show(self.max))
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a fault or hold for `want_action` (`*`: any) and `want_object`
/// (`None`: any) applies to a request of `action` on `object`.
pub(crate) fn targets(
    want_action: &str,
    want_object: Option<&str>,
    action: &str,
    object: Option<&str>,
) -> bool {
    (want_action == "*" || want_action == action)
        && want_object.is_none_or(|want| Some(want) == object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_parses_and_prints() {
        for (input, want, shown) in [
            ("20ms", Latency::fixed(Duration::from_millis(20)), "20ms"),
            ("1s", Latency::fixed(Duration::from_secs(1)), "1s"),
            ("none", Latency::NONE, "none"),
            ("0", Latency::NONE, "none"),
            (
                "10ms..50ms",
                Latency::range(Duration::from_millis(10), Duration::from_millis(50)),
                "10ms..50ms",
            ),
        ] {
            let latency: Latency = input.parse().unwrap();
            assert_eq!(latency, want, "{input}");
            assert_eq!(latency.to_string(), shown);
        }
        assert!("fast".parse::<Latency>().is_err());
        assert!("10ms..".parse::<Latency>().is_err());
    }

    #[test]
    fn ranged_latency_stays_in_range() {
        let latency = Latency::range(Duration::from_millis(5), Duration::from_millis(7));
        for _ in 0..100 {
            let d = latency.sample();
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(7));
        }
    }

    fn error(fired: Option<Fired>) -> ApiError {
        match fired {
            Some(Fired::Error(error)) => error,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn times_faults_fire_then_stop() {
        let mut faults = Faults::default();
        faults
            .add(Fault::throttling("GetSecretValue").times(2))
            .unwrap();
        assert!(faults.check("GetSecretParameter", None).is_none());
        let first = error(faults.check("GetSecretValue", Some("a")));
        assert_eq!(first.code, "Rejected.Throttling");
        assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(first.message, "QPS Limit Exceeded");
        assert!(faults.check("GetSecretValue", None).is_some());
        assert!(faults.check("GetSecretValue", None).is_none());
        let listed = faults.list();
        assert_eq!((listed[0].remaining, listed[0].fired), (Some(0), 2));
    }

    #[test]
    fn object_and_probability_filters() {
        let mut faults = Faults::default();
        faults
            .add(
                Fault::unavailable("*")
                    .for_object("db")
                    .with_probability(1.0),
            )
            .unwrap();
        faults
            .add(Fault::new("GetSecretValue", "Custom").with_probability(0.0))
            .unwrap();
        assert!(faults.check("GetSecretValue", Some("other")).is_none());
        let err = error(faults.check("GetSecretParameter", Some("db")));
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn invalid_faults_are_refused() {
        let mut faults = Faults::default();
        assert_eq!(
            faults.add(Fault::throttling("A").times(1).with_probability(0.5)),
            Err(FaultError::TimesAndProbability)
        );
        assert_eq!(
            faults.add(Fault::throttling("A").with_probability(1.5)),
            Err(FaultError::Probability(1.5))
        );
        assert_eq!(
            faults.add(Fault::throttling("A").with_status(200)),
            Err(FaultError::Status(200))
        );
        let mut both = Fault::answer("A", "{}");
        both.code = "X".into();
        assert_eq!(faults.add(both), Err(FaultError::CodeAndAnswer));
        let mut neither = Fault::answer("A", "");
        neither.answer = None;
        assert_eq!(faults.add(neither), Err(FaultError::Empty));
        assert!(faults.list().is_empty());
    }

    #[test]
    fn answer_faults_answer_their_body() {
        let mut faults = Faults::default();
        faults
            .add(Fault::answer("GetSecretValue", "not json").for_object("db"))
            .unwrap();
        assert_eq!(
            faults.check("GetSecretValue", Some("db")),
            Some(Fired::Answer("not json".into()))
        );
        assert_eq!(faults.check("GetSecretValue", Some("other")), None);
        let fault: Fault =
            serde_json::from_str(r#"{"action":"GetSecretParameter","answer":"{\"Parameter\":1}"}"#)
                .unwrap();
        assert_eq!(
            fault,
            Fault::answer("GetSecretParameter", r#"{"Parameter":1}"#)
        );
        assert_eq!(
            serde_json::to_string(&fault).unwrap(),
            r#"{"action":"GetSecretParameter","answer":"{\"Parameter\":1}"}"#
        );
    }

    #[test]
    fn faults_read_from_json_with_inferred_status() {
        let fault: Fault = serde_json::from_str(
            r#"{"action":"GetSecretValue","code":"InternalFailure","times":1}"#,
        )
        .unwrap();
        assert_eq!(fault.error().status, StatusCode::INTERNAL_SERVER_ERROR);
        let custom: Fault = serde_json::from_str(
            r#"{"action":"*","code":"Forbidden.KmsServiceNotEnabled","status":403,"message":"no"}"#,
        )
        .unwrap();
        let err = custom.error();
        assert_eq!((err.status.as_u16(), err.message.as_str()), (403, "no"));
    }
}
