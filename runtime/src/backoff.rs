//! Capped exponential backoff with jitter, on `backon`.
//!
//! Every wait falls between half its nominal delay and the nominal delay itself, the nominal
//! delay doubling from `initial` up to `max`. Without the jitter, a fleet that lost its broker
//! or registry at the same moment would retry in lockstep and hit it together when it returns.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// How long to wait between attempts: nominally `initial`, doubling up to `max`, each wait
/// jittered into `[nominal / 2, nominal]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The endless series of jittered waits, starting over from `initial`.
    pub fn delays(&self) -> Delays {
        Delays {
            backoff: *self,
            delays: self.builder().without_max_times().build(),
        }
    }

    /// The builder for `backon`'s own retry combinators (`Retryable::retry`), which stop after
    /// `with_max_times` retries.
    pub fn builder(&self) -> ExponentialBuilder {
        // backon adds a jitter in [0, delay) to each delay; halving the delays it starts from
        // puts every wait in [nominal / 2, nominal].
        ExponentialBuilder::default()
            .with_min_delay(self.initial / 2)
            .with_max_delay(self.max / 2)
            .with_factor(2.0)
            .with_jitter()
    }
}

/// The waits of one [`Backoff`]: an endless iterator, reset after a success.
#[derive(Debug)]
pub struct Delays {
    backoff: Backoff,
    delays: ExponentialBackoff,
}

impl Delays {
    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.backoff.max)
    }

    /// Starts over from `initial`, after an attempt that succeeded.
    pub fn reset(&mut self) {
        *self = self.backoff.delays();
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    /// The nominal delays: 100 ms doubling up to the 10 s cap.
    fn nominal(attempt: usize) -> Duration {
        (BACKOFF.initial * 2u32.pow(attempt.min(31) as u32)).min(BACKOFF.max)
    }

    #[test]
    fn every_wait_is_between_half_the_nominal_delay_and_the_nominal_delay() {
        for _ in 0..200 {
            for (attempt, delay) in BACKOFF.delays().take(12).enumerate() {
                let nominal = nominal(attempt);
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "attempt {attempt}: {delay:?} outside [{:?}, {nominal:?}]",
                    nominal / 2
                );
            }
        }
    }

    #[test]
    fn waits_grow_to_the_cap_and_stay_there() {
        let delays: Vec<Duration> = BACKOFF.delays().take(20).collect();
        assert!(delays[0] < Duration::from_millis(101));
        assert!(delays[10..].iter().all(|delay| *delay >= BACKOFF.max / 2));
        assert!(delays.iter().all(|delay| *delay <= BACKOFF.max));
    }

    #[test]
    fn waits_are_jittered() {
        let first: Vec<Duration> = BACKOFF.delays().take(8).collect();
        let others: Vec<Vec<Duration>> = (0..20)
            .map(|_| BACKOFF.delays().take(8).collect())
            .collect();
        assert!(
            others.iter().any(|other| *other != first),
            "twenty series of waits were all identical: no jitter"
        );
        let spread: std::collections::BTreeSet<Duration> =
            others.iter().map(|delays| delays[0]).collect();
        assert!(spread.len() > 1, "the first wait never varied");
    }

    #[test]
    fn reset_starts_over_from_initial() {
        let mut delays = BACKOFF.delays();
        for _ in 0..10 {
            delays.next_delay();
        }
        assert!(delays.next_delay() >= BACKOFF.max / 2);
        delays.reset();
        assert!(delays.next_delay() <= BACKOFF.initial);
    }

    #[test]
    fn the_retry_builder_stays_in_bounds_too() {
        use backon::BackoffBuilder;

        for _ in 0..100 {
            let delays: Vec<Duration> = BACKOFF.builder().with_max_times(3).build().collect();
            assert_eq!(delays.len(), 3);
            for (attempt, delay) in delays.into_iter().enumerate() {
                let nominal = nominal(attempt);
                assert!(delay >= nominal / 2 && delay <= nominal, "{delay:?}");
            }
        }
    }
}
