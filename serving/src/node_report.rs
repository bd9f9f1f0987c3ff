//! The node's reports to the registry (`PUT /api/okla/v1/nodes/{node_id}`): which versions of
//! each model it serves, which failed to download or load and why, and what each version of a
//! deployment answered since it went live. The registry turns changes into `model.deployed` and
//! `model.load_failed` events and judges canary gates on the fleet's sums, so a report is the
//! node's whole state, not a delta: a lost report is repaired by the next one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::manager::{ModelManager, ModelStatus, VersionHealth};
use crate::registry_client::RegistryClient;
use crate::traffic::{LATENCY_BOUNDS_SECONDS, TrafficSnapshot};

/// Versions the registry source could not fetch (download or checksum), by (model, version):
/// they never reach the manager, so the report learns of them here.
#[derive(Debug, Default)]
pub struct SourceFailures {
    failures: Mutex<BTreeMap<(String, u64), String>>,
}

impl SourceFailures {
    pub fn record(&self, model: &str, version: u64, error: String) {
        self.lock().insert((model.to_owned(), version), error);
    }

    pub fn clear(&self, model: &str, version: u64) {
        self.lock().remove(&(model.to_owned(), version));
    }

    /// Forgets a model the node no longer follows.
    pub fn forget(&self, model: &str) {
        self.lock().retain(|(name, _), _| name != model);
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

#[derive(Debug, Serialize)]
pub struct NodeReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    pub report_seconds: f64,
    pub models: Vec<ModelReport>,
}

#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub model: String,
    /// The deployment revision unversioned requests follow; `None` before any.
    pub revision: Option<i64>,
    pub versions: Vec<VersionReport>,
}

#[derive(Debug, Serialize)]
pub struct VersionReport {
    pub version: u64,
    /// `loading`, `serving` or `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_seconds: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    pub latency_bounds_seconds: &'static [f64],
    pub latency_counts: Vec<u64>,
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
                    VersionHealth::Loading => ("loading", None),
                    VersionHealth::Serving => ("serving", None),
                    VersionHealth::Failed(error) => ("failed", Some(error)),
                };
                VersionReport {
                    version: version.version,
                    state,
                    error,
                    load_seconds: version.load_seconds,
                    requests: traffic.requests,
                    errors: traffic.errors,
                    latency_bounds_seconds: &LATENCY_BOUNDS_SECONDS,
                    latency_counts: traffic.latency_counts,
                }
            })
            .collect();
        models.insert(
            model.model.clone(),
            ModelReport {
                model: model.model,
                // A default deployment (champion or Production) has no revision of its own.
                revision: model.revision.filter(|&revision| revision > 0),
                versions,
            },
        );
    }
    for ((name, version), error) in failures {
        let model = models.entry(name.clone()).or_insert_with(|| ModelReport {
            model: name.clone(),
            revision: None,
            versions: Vec::new(),
        });
        // What the manager knows of a version (it loaded from an earlier download) wins.
        if model.versions.iter().any(|v| v.version == *version) {
            continue;
        }
        model.versions.push(VersionReport {
            version: *version,
            state: "failed",
            error: Some(error.clone()),
            load_seconds: None,
            requests: 0,
            errors: 0,
            latency_bounds_seconds: &LATENCY_BOUNDS_SECONDS,
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

pub struct NodeReporter {
    pub client: RegistryClient,
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
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let report = build_report(
                self.manager.status(),
                &self.failures.snapshot(),
                self.http_url.clone(),
                self.every,
            );
            match self.client.put_node_report(&self.node_id, &report).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(
                        node = self.node_id.as_str(),
                        "reporting to the registry again"
                    );
                }
                Ok(()) => {}
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
