//! Request counters per action and outcome.

use std::collections::BTreeMap;
use std::sync::Mutex;

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
}

#[derive(Default)]
pub(crate) struct StatsRecorder {
    stats: Mutex<Stats>,
}

impl StatsRecorder {
    pub fn record(&self, action: &str, outcome: &str) {
        let mut stats = self.stats.lock().expect("stats lock");
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
        self.stats.lock().expect("stats lock").clone()
    }

    pub fn reset(&self) {
        *self.stats.lock().expect("stats lock") = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_action_and_outcome() {
        let recorder = StatsRecorder::default();
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
}
