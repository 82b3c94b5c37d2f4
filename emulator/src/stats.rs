//! Request counters: API requests per action and outcome, metadata-server
//! requests per path kind, Kubernetes API requests per resource.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The outcome recorded for a request that succeeded.
pub const SUCCESS: &str = "Success";

/// Counted under this action when a request names none.
pub const NO_ACTION: &str = "(none)";

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// API requests answered (admin requests are not counted).
    pub total: u64,
    /// Per action (`GetSecretValue`, ...).
    pub actions: BTreeMap<String, ActionStats>,
}

/// Counters of one action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionStats {
    /// Requests answered.
    pub total: u64,
    /// By outcome: [`SUCCESS`] or the error `Code`.
    pub outcomes: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests answered for `action`.
    pub fn requests(&self, action: &str) -> u64 {
        self.actions.get(action).map_or(0, |a| a.total)
    }

    /// Requests for `action` that ended with `outcome` ([`SUCCESS`] or a code).
    pub fn count(&self, action: &str, outcome: &str) -> u64 {
        self.actions
            .get(action)
            .and_then(|a| a.outcomes.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Successful requests for `action`.
    pub fn successes(&self, action: &str) -> u64 {
        self.count(action, SUCCESS)
    }

    /// STS requests (`AssumeRole` and `AssumeRoleWithOIDC`), whatever their outcome.
    pub fn sts_calls(&self) -> u64 {
        STS_ACTIONS.iter().map(|a| self.requests(a)).sum()
    }
}

/// The STS actions [`Stats::sts_calls`] adds up.
pub const STS_ACTIONS: [&str; 2] = ["AssumeRole", "AssumeRoleWithOIDC"];

/// Metadata-server counters, per path kind: `token` (the PUT),
/// `region-id`, `instance-id`, `zone-id`, `owner-account-id`, `role-name`
/// (`ram/security-credentials/`), `credentials`
/// (`ram/security-credentials/<role>`), `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImdsStats {
    /// Requests answered.
    pub total: u64,
    /// Per path kind.
    pub paths: BTreeMap<String, ImdsPathStats>,
}

/// Counters of one metadata path kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImdsPathStats {
    /// Requests answered.
    pub total: u64,
    /// GETs that carried no `X-aliyun-ecs-metadata-token` (IMDSv1).
    pub without_token: u64,
    /// By outcome: [`SUCCESS`] or the HTTP status (`"401"`, `"403"`, ...).
    pub outcomes: BTreeMap<String, u64>,
}

impl ImdsStats {
    /// Requests of this kind.
    pub fn requests(&self, kind: &str) -> u64 {
        self.paths.get(kind).map_or(0, |p| p.total)
    }

    /// Requests of this kind that ended with `outcome` ([`SUCCESS`] or a status like `"401"`).
    pub fn count(&self, kind: &str, outcome: &str) -> u64 {
        self.paths
            .get(kind)
            .and_then(|p| p.outcomes.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Successful requests of this kind.
    pub fn successes(&self, kind: &str) -> u64 {
        self.count(kind, SUCCESS)
    }

    /// GETs of this kind without a token.
    pub fn without_token(&self, kind: &str) -> u64 {
        self.paths.get(kind).map_or(0, |p| p.without_token)
    }
}

#[derive(Default)]
pub(crate) struct ImdsStatsRecorder {
    stats: ImdsStats,
}

impl ImdsStatsRecorder {
    pub fn record(&mut self, kind: &str, status: axum::http::StatusCode, without_token: bool) {
        let outcome = if status.is_success() {
            SUCCESS.to_string()
        } else {
            status.as_u16().to_string()
        };
        let stats = &mut self.stats;
        stats.total += 1;
        let entry = stats.paths.entry(kind.to_string()).or_default();
        entry.total += 1;
        if without_token {
            entry.without_token += 1;
        }
        *entry.outcomes.entry(outcome).or_default() += 1;
    }

    pub fn snapshot(&self) -> ImdsStats {
        self.stats.clone()
    }

    pub fn reset(&mut self) {
        self.stats = ImdsStats::default();
    }
}

#[derive(Default)]
pub(crate) struct StatsRecorder {
    stats: Stats,
}

impl StatsRecorder {
    pub fn record(&mut self, action: &str, outcome: &str) {
        let stats = &mut self.stats;
        stats.total += 1;
        // Look up before inserting so that the hot path allocates nothing.
        if !stats.actions.contains_key(action) {
            stats
                .actions
                .insert(action.to_string(), ActionStats::default());
        }
        let entry = stats.actions.get_mut(action).expect("inserted above");
        entry.total += 1;
        match entry.outcomes.get_mut(outcome) {
            Some(n) => *n += 1,
            None => {
                entry.outcomes.insert(outcome.to_string(), 1);
            }
        }
    }

    pub fn snapshot(&self) -> Stats {
        self.stats.clone()
    }

    pub fn reset(&mut self) {
        self.stats = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_action_and_outcome() {
        let mut recorder = StatsRecorder::default();
        recorder.record("GetSecretValue", SUCCESS);
        recorder.record("GetSecretValue", SUCCESS);
        recorder.record("GetSecretValue", "Forbidden.ResourceNotFound");
        recorder.record(NO_ACTION, "MissingParameter");
        let stats = recorder.snapshot();
        assert_eq!(stats.total, 4);
        assert_eq!(stats.requests("GetSecretValue"), 3);
        assert_eq!(stats.successes("GetSecretValue"), 2);
        assert_eq!(
            stats.count("GetSecretValue", "Forbidden.ResourceNotFound"),
            1
        );
        assert_eq!(stats.requests("GetSecretParameter"), 0);
        recorder.reset();
        assert_eq!(recorder.snapshot(), Stats::default());
    }

    #[test]
    fn sts_calls_add_up_both_actions_and_all_outcomes() {
        let mut recorder = StatsRecorder::default();
        recorder.record("AssumeRole", SUCCESS);
        recorder.record("AssumeRoleWithOIDC", SUCCESS);
        recorder.record("AssumeRoleWithOIDC", "AuthenticationFail.OIDCToken.Expired");
        recorder.record("GetSecretValue", SUCCESS);
        assert_eq!(recorder.snapshot().sts_calls(), 3);
    }

    #[test]
    fn imds_counts_per_kind_outcome_and_token_use() {
        use axum::http::StatusCode;
        let mut recorder = ImdsStatsRecorder::default();
        recorder.record("token", StatusCode::OK, false);
        recorder.record("credentials", StatusCode::OK, false);
        recorder.record("credentials", StatusCode::OK, true);
        recorder.record("credentials", StatusCode::UNAUTHORIZED, false);
        let stats = recorder.snapshot();
        assert_eq!(stats.total, 4);
        assert_eq!(stats.requests("credentials"), 3);
        assert_eq!(stats.successes("credentials"), 2);
        assert_eq!(stats.count("credentials", "401"), 1);
        assert_eq!(stats.without_token("credentials"), 1);
        assert_eq!(stats.successes("token"), 1);
        assert_eq!(stats.requests("region-id"), 0);
        recorder.reset();
        assert_eq!(recorder.snapshot(), ImdsStats::default());
    }
}
