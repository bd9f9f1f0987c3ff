//! What each version of a deployment answered since this node began serving it: requests,
//! failures and a latency histogram. The registry's canary gate compares a canary's figures with
//! the stable routes' across the fleet, so the histogram's buckets are fixed here and the same on
//! every node (the registry merges only histograms with identical bounds).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets: 250 µs to about 16 s, each 1.5× the previous, fine
/// enough that a p99 ratio of 1.5 or more is told apart from noise.
pub static LATENCY_BOUNDS_SECONDS: LazyLock<Vec<f64>> = LazyLock::new(|| {
    std::iter::successors(Some(0.000_25_f64), |bound| Some(bound * 1.5))
        .take_while(|&bound| bound < 20.0)
        .collect()
});

/// The counters of one version. Updated with relaxed atomics: a report may see a request's
/// count a moment before its latency, which the next report corrects.
struct VersionTraffic {
    version: u64,
    requests: AtomicU64,
    errors: AtomicU64,
    /// One per bound, plus the overflow bucket.
    latency_counts: Vec<AtomicU64>,
}

/// A copy of one version's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSnapshot {
    pub requests: u64,
    pub errors: u64,
    /// `LATENCY_BOUNDS_SECONDS.len() + 1` counts.
    pub latency_counts: Vec<u64>,
}

impl Default for TrafficSnapshot {
    /// No requests yet.
    fn default() -> Self {
        TrafficSnapshot {
            requests: 0,
            errors: 0,
            latency_counts: vec![0; LATENCY_BOUNDS_SECONDS.len() + 1],
        }
    }
}

/// The counters of every version of one deployment revision; a new revision starts from zero.
pub struct Traffic {
    versions: Vec<VersionTraffic>,
}

impl Traffic {
    pub fn new(versions: &[u64]) -> Traffic {
        let buckets = LATENCY_BOUNDS_SECONDS.len() + 1;
        Traffic {
            versions: versions
                .iter()
                .map(|&version| VersionTraffic {
                    version,
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    latency_counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
        }
    }

    /// Counts one request `version` answered (or failed) after `elapsed`. Versions outside the
    /// deployment are not counted.
    pub fn record(&self, version: u64, elapsed: Duration, failed: bool) {
        let Some(traffic) = self.versions.iter().find(|t| t.version == version) else {
            return;
        };
        traffic.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            traffic.errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS_SECONDS.partition_point(|&bound| bound < seconds);
        traffic.latency_counts[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, version: u64) -> Option<TrafficSnapshot> {
        let traffic = self.versions.iter().find(|t| t.version == version)?;
        Some(TrafficSnapshot {
            requests: traffic.requests.load(Ordering::Relaxed),
            errors: traffic.errors.load(Ordering::Relaxed),
            latency_counts: traffic
                .latency_counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_ascend_from_a_quarter_millisecond() {
        let bounds = &*LATENCY_BOUNDS_SECONDS;
        assert_eq!(bounds[0], 0.000_25);
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(*bounds.last().unwrap() > 10.0);
    }

    #[test]
    fn requests_land_in_their_version_and_bucket() {
        let traffic = Traffic::new(&[3, 4]);
        traffic.record(3, Duration::from_micros(100), false);
        traffic.record(3, Duration::from_millis(2), true);
        traffic.record(4, Duration::from_secs(60), false);
        traffic.record(9, Duration::from_millis(1), false);

        let three = traffic.snapshot(3).unwrap();
        assert_eq!((three.requests, three.errors), (2, 1));
        assert_eq!(
            three.latency_counts[0], 1,
            "100 µs is under the first bound"
        );
        let two_ms = LATENCY_BOUNDS_SECONDS.partition_point(|&b| b < 0.002);
        assert_eq!(three.latency_counts[two_ms], 1);
        assert_eq!(three.latency_counts.iter().sum::<u64>(), 2);

        let four = traffic.snapshot(4).unwrap();
        assert_eq!(*four.latency_counts.last().unwrap(), 1, "overflow bucket");
        assert!(traffic.snapshot(9).is_none());
    }
}
