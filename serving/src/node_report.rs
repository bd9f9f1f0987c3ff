//! The node's reports to the registry (`PUT /api/okla/v1/nodes/{node_id}`): which versions of
//! each model it serves, which failed to download or load and why, and what each version of a
//! deployment answered since it went live. The registry turns changes into `model.deployed` and
//! `model.load_failed` events and judges canary gates on the fleet's sums, so a report is the
//! node's whole state, not a delta: a lost report is repaired by the next one. The one figure
//! that is not a counter, each version's request rate, comes from the difference between two
//! consecutive reports, so the reporter keeps the previous counters ([`RequestRates`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okla_proto::wire::{ModelReport, NodeReport, VersionReport, VersionState};
use tokio_util::sync::CancellationToken;

use crate::manager::{ModelManager, ModelStatus, VersionHealth};
use crate::traffic::{LATENCY_BOUNDS_SECONDS, TrafficSnapshot};

/// What the registry source knows that the manager does not: versions it could not fetch
/// (download or checksum), by (model, version), which never reach the manager; and models it
/// keeps serving although the registry names nothing for them, with the reason.
#[derive(Debug, Default)]
pub struct SourceFailures {
    failures: Mutex<BTreeMap<(String, u64), String>>,
    unconfirmed: Mutex<BTreeMap<String, String>>,
}

impl SourceFailures {
    /// Records why `model` serves without the registry's confirmation, or (`None`) that the
    /// registry confirms it again.
    pub fn set_unconfirmed(&self, model: &str, reason: Option<String>) {
        let mut unconfirmed = self
            .unconfirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match reason {
            Some(reason) => unconfirmed.insert(model.to_owned(), reason),
            None => unconfirmed.remove(model),
        };
    }

    fn unconfirmed(&self) -> BTreeMap<String, String> {
        self.unconfirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn record(&self, model: &str, version: u64, error: String) {
        self.lock().insert((model.to_owned(), version), error);
    }

    pub fn clear(&self, model: &str, version: u64) {
        self.lock().remove(&(model.to_owned(), version));
    }

    /// Forgets a model the node no longer follows.
    pub fn forget(&self, model: &str) {
        self.lock().retain(|(name, _), _| name != model);
        self.set_unconfirmed(model, None);
    }

    fn snapshot(&self) -> BTreeMap<(String, u64), String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), String>> {
        // The map is always consistent between statements, so a panic elsewhere leaves it usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The report for the manager's state plus the versions that failed before reaching it.
pub fn build_report(
    status: Vec<ModelStatus>,
    failures: &BTreeMap<(String, u64), String>,
    http_url: Option<String>,
    every: Duration,
) -> NodeReport {
    let mut models: BTreeMap<String, ModelReport> = BTreeMap::new();
    for model in status {
        let versions = model
            .versions
            .into_iter()
            .map(|version| {
                let traffic = version.traffic.unwrap_or_default();
                let (state, error) = match version.state {
                    VersionHealth::Loading => (VersionState::Loading, None),
                    VersionHealth::Serving => (VersionState::Serving, None),
                    VersionHealth::Failed(error) => (VersionState::Failed, Some(error)),
                };
                VersionReport {
                    version: version.version,
                    state,
                    error,
                    load_seconds: version.load_seconds,
                    requests: traffic.requests,
                    requests_per_second: None,
                    errors: traffic.errors,
                    latency_bounds_seconds: LATENCY_BOUNDS_SECONDS.to_vec(),
                    latency_counts: traffic.latency_counts,
                }
            })
            .collect();
        models.insert(
            model.model.clone(),
            ModelReport {
                model: model.model,
                // A default deployment (champion or Production) has no revision of its own.
                revision: model
                    .revision
                    .filter(|&revision| revision > 0)
                    .and_then(|revision| u64::try_from(revision).ok()),
                versions,
                unconfirmed: None,
            },
        );
    }
    for ((name, version), error) in failures {
        let model = models.entry(name.clone()).or_insert_with(|| ModelReport {
            model: name.clone(),
            revision: None,
            versions: Vec::new(),
            unconfirmed: None,
        });
        // What the manager knows of a version (it loaded from an earlier download) wins.
        if model.versions.iter().any(|v| v.version == *version) {
            continue;
        }
        model.versions.push(VersionReport {
            version: *version,
            state: VersionState::Failed,
            error: Some(error.clone()),
            load_seconds: None,
            requests: 0,
            requests_per_second: None,
            errors: 0,
            latency_bounds_seconds: LATENCY_BOUNDS_SECONDS.to_vec(),
            latency_counts: TrafficSnapshot::default().latency_counts,
        });
        model.versions.sort_by_key(|v| v.version);
    }
    NodeReport {
        http_url,
        report_seconds: every.as_secs_f64(),
        models: models.into_values().collect(),
    }
}

/// Each version's request counter when the previous report was built, keyed by (model,
/// revision, version): counters restart with a new revision, so a rate never spans two.
#[derive(Debug, Default)]
pub struct RequestRates {
    previous: BTreeMap<(String, Option<u64>, u64), (u64, Instant)>,
}

impl RequestRates {
    /// Sets `requests_per_second` of every version of `report`, whose counters were read at
    /// `now`, and keeps them for the next report. Without a usable previous sample (a version
    /// new to the report, a counter that went back to fewer requests, no time elapsed) the rate
    /// stays unknown rather than being made up; entries missing from `report` are forgotten, so
    /// one that comes back starts afresh.
    pub fn fill(&mut self, report: &mut NodeReport, now: Instant) {
        let mut current = BTreeMap::new();
        for model in &mut report.models {
            for version in &mut model.versions {
                let key = (model.model.clone(), model.revision, version.version);
                version.requests_per_second =
                    self.previous.get(&key).and_then(|&(requests, at)| {
                        let seconds = now.checked_duration_since(at)?.as_secs_f64();
                        let more = version.requests.checked_sub(requests)?;
                        (seconds > 0.0).then(|| more as f64 / seconds)
                    });
                current.insert(key, (version.requests, now));
            }
        }
        self.previous = current;
    }
}

pub struct NodeReporter {
    pub client: okla_client::Client,
    pub node_id: String,
    pub http_url: Option<String>,
    pub every: Duration,
    pub manager: Arc<ModelManager>,
    pub failures: Arc<SourceFailures>,
}

impl NodeReporter {
    /// Reports every `every` until `shutdown` is cancelled. An unreachable registry is logged
    /// once per outage; the next report carries the whole state again.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut rates = RequestRates::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let status = self.manager.status();
            let read_at = Instant::now();
            let mut report = build_report(
                status,
                &self.failures.snapshot(),
                self.http_url.clone(),
                self.every,
            );
            let unconfirmed = self.failures.unconfirmed();
            for model in &mut report.models {
                model.unconfirmed = unconfirmed.get(&model.model).cloned();
            }
            rates.fill(&mut report, read_at);
            match self.client.put_node_report(&self.node_id, &report).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(
                        node = self.node_id.as_str(),
                        "reporting to the registry again"
                    );
                }
                Ok(_) => {}
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(node = self.node_id.as_str(), error = %err,
                        "cannot report to the registry; retrying every report interval");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::VersionStatus;

    /// The report of one model serving `versions` as (version, requests) under `revision`.
    fn serving(revision: i64, versions: &[(u64, u64)]) -> NodeReport {
        let status = vec![ModelStatus {
            model: "pricing".into(),
            revision: Some(revision),
            error: None,
            versions: versions
                .iter()
                .map(|&(version, requests)| VersionStatus {
                    version,
                    state: VersionHealth::Serving,
                    load_seconds: Some(0.25),
                    traffic: Some(TrafficSnapshot {
                        requests,
                        errors: 0,
                        latency_counts: {
                            let mut counts = vec![0; LATENCY_BOUNDS_SECONDS.len() + 1];
                            counts[0] = requests;
                            counts
                        },
                    }),
                })
                .collect(),
        }];
        build_report(status, &BTreeMap::new(), None, Duration::from_secs(2))
    }

    fn rates(report: &NodeReport) -> Vec<Option<f64>> {
        report.models[0]
            .versions
            .iter()
            .map(|version| version.requests_per_second)
            .collect()
    }

    #[test]
    fn the_request_rate_is_the_counters_increase_over_the_time_between_reports() {
        let mut rates_of = RequestRates::default();
        let start = Instant::now();
        let at = |seconds: f64| start + Duration::from_secs_f64(seconds);

        let mut first = serving(4, &[(3, 100), (4, 10)]);
        rates_of.fill(&mut first, at(0.0));
        assert_eq!(rates(&first), [None, None], "no previous report");
        let json = serde_json::to_value(&first).unwrap();
        assert!(
            json["models"][0]["versions"][0]
                .get("requests_per_second")
                .is_none()
        );

        let mut second = serving(4, &[(3, 125), (4, 10), (5, 7)]);
        rates_of.fill(&mut second, at(2.0));
        assert_eq!(rates(&second), [Some(12.5), Some(0.0), None]);
        let json = serde_json::to_value(&second).unwrap();
        assert_eq!(
            json["models"][0]["versions"][0]["requests_per_second"],
            12.5
        );

        // Version 3 restarted its counter, version 4 left; both start afresh.
        let mut third = serving(4, &[(3, 5), (5, 10)]);
        rates_of.fill(&mut third, at(3.5));
        assert_eq!(rates(&third), [None, Some(2.0)]);
        let mut fourth = serving(4, &[(3, 8), (4, 20)]);
        rates_of.fill(&mut fourth, at(4.5));
        assert_eq!(rates(&fourth), [Some(3.0), None]);

        let mut same_instant = serving(4, &[(3, 9), (4, 20)]);
        rates_of.fill(&mut same_instant, at(4.5));
        assert_eq!(rates(&same_instant), [None, None], "no time elapsed");

        // A new revision's counters do not continue the previous revision's.
        let mut next_revision = serving(5, &[(3, 50), (4, 30)]);
        rates_of.fill(&mut next_revision, at(6.5));
        assert_eq!(rates(&next_revision), [None, None]);
    }

    #[test]
    fn a_report_merges_the_managers_state_with_download_failures() {
        let status = vec![ModelStatus {
            model: "pricing".into(),
            revision: Some(4),
            error: None,
            versions: vec![VersionStatus {
                version: 3,
                state: VersionHealth::Serving,
                load_seconds: Some(0.25),
                traffic: Some(TrafficSnapshot {
                    requests: 2,
                    errors: 1,
                    latency_counts: {
                        let mut counts = vec![0; LATENCY_BOUNDS_SECONDS.len() + 1];
                        counts[3] = 2;
                        counts
                    },
                }),
            }],
        }];
        let failures = BTreeMap::from([
            (("pricing".to_owned(), 4), "sha256 mismatch".to_owned()),
            (("pricing".to_owned(), 3), "stale".to_owned()),
            (("churn".to_owned(), 1), "HTTP 404".to_owned()),
        ]);
        let report = build_report(status, &failures, None, Duration::from_secs(2));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["report_seconds"], 2.0);
        assert!(json.get("http_url").is_none());
        let churn = &json["models"][0];
        assert_eq!(churn["model"], "churn");
        assert_eq!(churn["revision"], serde_json::Value::Null);
        assert_eq!(churn["versions"][0]["state"], "failed");
        let pricing = &json["models"][1]["versions"];
        assert_eq!(pricing[0]["state"], "serving", "the manager's view wins");
        assert_eq!(pricing[0]["requests"], 2);
        assert_eq!(pricing[0]["load_seconds"], 0.25);
        assert_eq!(pricing[1]["error"], "sha256 mismatch");
        let counts = pricing[1]["latency_counts"].as_array().unwrap();
        assert_eq!(
            counts.len(),
            pricing[1]["latency_bounds_seconds"]
                .as_array()
                .unwrap()
                .len()
                + 1
        );
    }
}
