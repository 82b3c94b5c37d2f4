//! The emulator's clock: the wall clock plus an offset that tests advance,
//! or frozen (manual) at an instant that moves only when advanced. Every
//! time the emulator reads (credential issue and expiry, signature
//! timestamps and nonces, OIDC token times, metadata-server tokens,
//! Kubernetes creation stamps) comes from here, so that tests about expiry
//! advance the clock instead of sleeping.

use std::time::Duration;

use time::OffsetDateTime;

/// The wall clock, shifted by `offset`, or frozen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Clock {
    offset: time::Duration,
    frozen: Option<OffsetDateTime>,
}

impl Clock {
    /// The emulator's time now.
    pub fn now(&self) -> OffsetDateTime {
        self.frozen
            .unwrap_or_else(|| OffsetDateTime::now_utc() + self.offset)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        let by = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
        match &mut self.frozen {
            Some(at) => *at = at.saturating_add(by),
            None => self.offset = self.offset.saturating_add(by),
        }
    }

    /// Stops the clock where it is: from now on it moves only when advanced.
    pub fn freeze(&mut self) {
        if self.frozen.is_none() {
            self.frozen = Some(self.now());
        }
    }

    /// Whether the clock is frozen.
    pub fn frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// How far ahead of the wall clock it is (negative: behind).
    pub fn offset(&self) -> time::Duration {
        match self.frozen {
            Some(at) => at - OffsetDateTime::now_utc(),
            None => self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_the_clock_and_freezing_stops_it() {
        let mut clock = Clock::default();
        assert_eq!(clock.offset(), time::Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.offset(), time::Duration::seconds(90));
        let ahead = clock.now() - OffsetDateTime::now_utc();
        assert!((ahead - time::Duration::seconds(90)).abs() < time::Duration::seconds(5));
        clock.freeze();
        let at = clock.now();
        assert_eq!(clock.now(), at, "frozen");
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), at + time::Duration::milliseconds(1500));
        assert!(clock.frozen());
    }
}
