//! Serving nodes: the state report each okla-serving node sends (which versions of which models
//! it serves, their load state and request counters), every rule a report must satisfy, what
//! changed since a node's previous report (the `model.deployed` / `model.load_failed` events),
//! staleness, and the canary gate's verdict over the reports of a fleet. Pure: no I/O, no async.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::deployments::{CanaryGate, DeploymentSpec};

/// Longest node id accepted.
pub const MAX_NODE_ID_CHARS: usize = 200;
/// Most models one report may list.
pub const MAX_MODELS: usize = 1000;
/// Most versions one model entry may list.
pub const MAX_VERSIONS: usize = 100;
/// Longest reason a node gives for serving a model the registry names nothing for.
pub const MAX_UNCONFIRMED_CHARS: usize = 2000;
/// Most finite latency bucket bounds of one histogram.
pub const MAX_BUCKETS: usize = 64;
/// Longest `http_url` accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest load error kept; longer messages are refused, not cut.
pub const MAX_ERROR_CHARS: usize = 5000;
/// The report interval assumed when a node does not say.
pub const DEFAULT_REPORT_SECONDS: f64 = 5.0;
/// Bounds of `report_seconds`.
pub const MIN_REPORT_SECONDS: f64 = 0.01;
pub const MAX_REPORT_SECONDS: f64 = 86_400.0;
/// A node is stale once this many reports in a row are overdue.
pub const MISSED_REPORTS_BEFORE_STALE: f64 = 3.0;
/// The quantile the canary gate compares latencies at.
const P99_PERCENT: u128 = 99;

/// Where a node is with one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Loading,
    Serving,
    Failed,
}

impl VersionState {
    pub fn parse(text: &str, field: &str) -> Result<VersionState, String> {
        match text {
            "loading" => Ok(VersionState::Loading),
            "serving" => Ok(VersionState::Serving),
            "failed" => Ok(VersionState::Failed),
            other => Err(invalid(
                field,
                format!("must be one of \"loading\", \"serving\", \"failed\", got \"{other}\""),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Loading => "loading",
            VersionState::Serving => "serving",
            VersionState::Failed => "failed",
        }
    }
}

/// One version on one node. The counters run since the node began serving the model entry's
/// `revision` and reset when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionReport {
    pub version: i64,
    pub state: VersionState,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub requests: u64,
    /// The node's live request rate: the increase of `requests` over the time since its
    /// previous report of the same revision. Absent when the node has no such report (and in
    /// reports stored before nodes sent it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests that failed inside the server (not client mistakes).
    #[serde(default)]
    pub errors: u64,
    /// Ascending upper bounds of the latency buckets, in seconds; empty with empty counts when
    /// the node keeps no histogram.
    #[serde(default)]
    pub latency_bounds_seconds: Vec<f64>,
    /// One count per bound plus the +Inf bucket; they sum to `requests`.
    #[serde(default)]
    pub latency_counts: Vec<u64>,
}

/// One model on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    /// The deployment revision the node's routing follows; `None` when it serves the default.
    #[serde(default)]
    pub revision: Option<i64>,
    pub versions: Vec<VersionReport>,
    /// Why the node serves the model although the registry names nothing for it to serve (not
    /// in the registry, no deployment): it keeps serving until the model is undeployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<String>,
}

/// What a node reports. Also the stored JSON form (`serving_nodes.report`), so fields are only
/// ever added, with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    #[serde(default)]
    pub http_url: Option<String>,
    #[serde(default)]
    pub report_seconds: Option<f64>,
    pub models: Vec<ModelReport>,
}

/// Node ids: 1 to 200 characters of `[A-Za-z0-9._:-]`.
pub fn validate_node_id(node_id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:-".contains(c);
    if node_id.is_empty()
        || node_id.chars().count() > MAX_NODE_ID_CHARS
        || !node_id.chars().all(allowed)
    {
        return Err(invalid(
            "node_id",
            format!(
                "must be 1 to {MAX_NODE_ID_CHARS} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-', got '{node_id}'"
            ),
        ));
    }
    Ok(())
}

impl NodeReport {
    /// Checks every rule; errors name the field, e.g. `models[0].versions[1].latency_counts`.
    pub fn validated(self) -> Result<NodeReport, String> {
        if let Some(url) = &self.http_url
            && url.chars().count() > MAX_URL_CHARS
        {
            return Err(invalid(
                "http_url",
                format!("is longer than {MAX_URL_CHARS} characters"),
            ));
        }
        if let Some(seconds) = self.report_seconds
            && !(seconds.is_finite()
                && (MIN_REPORT_SECONDS..=MAX_REPORT_SECONDS).contains(&seconds))
        {
            return Err(invalid(
                "report_seconds",
                format!("must be from {MIN_REPORT_SECONDS} to {MAX_REPORT_SECONDS}, got {seconds}"),
            ));
        }
        if self.models.len() > MAX_MODELS {
            return Err(invalid(
                "models",
                format!(
                    "has {} entries; at most {MAX_MODELS} are allowed",
                    self.models.len()
                ),
            ));
        }
        let mut models = BTreeSet::new();
        for (index, model) in self.models.iter().enumerate() {
            let field = format!("models[{index}]");
            model.check(&field)?;
            if !models.insert(model.model.as_str()) {
                return Err(invalid(
                    &format!("{field}.model"),
                    format!("model '{}' appears more than once", model.model),
                ));
            }
        }
        Ok(self)
    }

    /// The interval the node promised to report at.
    pub fn interval_seconds(&self) -> f64 {
        self.report_seconds.unwrap_or(DEFAULT_REPORT_SECONDS)
    }

    pub fn model(&self, name: &str) -> Option<&ModelReport> {
        self.models.iter().find(|model| model.model == name)
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        // Strings, integers and validated finite floats always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored form back.
    pub fn from_json(text: &str) -> Result<NodeReport, String> {
        serde_json::from_str(text).map_err(|error| format!("stored node report: {error}"))
    }
}

impl ModelReport {
    fn check(&self, field: &str) -> Result<(), String> {
        if self.model.trim().is_empty()
            || self.model.chars().count() > 256
            || self.model.contains(['\0', '\n', '\r'])
        {
            return Err(invalid(
                &format!("{field}.model"),
                format!("must be a registered model name, got '{}'", self.model),
            ));
        }
        if let Some(revision) = self.revision
            && revision < 1
        {
            return Err(invalid(
                &format!("{field}.revision"),
                format!("must be a deployment revision (1 or more) or null, got {revision}"),
            ));
        }
        if let Some(unconfirmed) = &self.unconfirmed
            && unconfirmed.chars().count() > MAX_UNCONFIRMED_CHARS
        {
            return Err(invalid(
                &format!("{field}.unconfirmed"),
                format!("must be at most {MAX_UNCONFIRMED_CHARS} characters"),
            ));
        }
        if self.versions.len() > MAX_VERSIONS {
            return Err(invalid(
                &format!("{field}.versions"),
                format!(
                    "has {} entries; at most {MAX_VERSIONS} are allowed",
                    self.versions.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, version) in self.versions.iter().enumerate() {
            let field = format!("{field}.versions[{index}]");
            version.check(&field)?;
            if !seen.insert(version.version) {
                return Err(invalid(
                    &format!("{field}.version"),
                    format!("version {} appears more than once", version.version),
                ));
            }
        }
        Ok(())
    }
}

impl VersionReport {
    fn check(&self, field: &str) -> Result<(), String> {
        if self.version < 1 {
            return Err(invalid(
                &format!("{field}.version"),
                format!(
                    "must be a model version number (1 or more), got {}",
                    self.version
                ),
            ));
        }
        match (&self.error, self.state) {
            (None, VersionState::Failed) => {
                return Err(invalid(
                    &format!("{field}.error"),
                    "must say why the version failed when state is \"failed\"".to_owned(),
                ));
            }
            (Some(error), _) if error.chars().count() > MAX_ERROR_CHARS => {
                return Err(invalid(
                    &format!("{field}.error"),
                    format!("is longer than {MAX_ERROR_CHARS} characters"),
                ));
            }
            _ => {}
        }
        if let Some(seconds) = self.load_seconds
            && !(seconds.is_finite() && seconds >= 0.0)
        {
            return Err(invalid(
                &format!("{field}.load_seconds"),
                format!("must be a number of seconds (0 or more), got {seconds}"),
            ));
        }
        if let Some(rate) = self.requests_per_second
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(invalid(
                &format!("{field}.requests_per_second"),
                format!("must be a number of requests per second (0 or more), got {rate}"),
            ));
        }
        if self.errors > self.requests {
            return Err(invalid(
                &format!("{field}.errors"),
                format!(
                    "is {}, more than the {} requests",
                    self.errors, self.requests
                ),
            ));
        }
        self.check_histogram(field)
    }

    fn check_histogram(&self, field: &str) -> Result<(), String> {
        let bounds = &self.latency_bounds_seconds;
        let counts = &self.latency_counts;
        if bounds.len() > MAX_BUCKETS {
            return Err(invalid(
                &format!("{field}.latency_bounds_seconds"),
                format!(
                    "has {} entries; at most {MAX_BUCKETS} are allowed",
                    bounds.len()
                ),
            ));
        }
        if let Some(index) = bounds
            .iter()
            .position(|bound| !bound.is_finite() || *bound < 0.0)
        {
            return Err(invalid(
                &format!("{field}.latency_bounds_seconds[{index}]"),
                format!(
                    "must be a finite number of seconds (0 or more), got {}",
                    bounds[index]
                ),
            ));
        }
        if let Some(index) = bounds.windows(2).position(|pair| pair[0] >= pair[1]) {
            return Err(invalid(
                &format!("{field}.latency_bounds_seconds"),
                format!(
                    "must be strictly ascending; entry {} ({}) is not above entry {index} ({})",
                    index + 1,
                    bounds[index + 1],
                    bounds[index]
                ),
            ));
        }
        if counts.is_empty() && bounds.is_empty() {
            // No histogram: the node keeps no latencies.
            return Ok(());
        }
        if counts.len() != bounds.len() + 1 {
            return Err(format!(
                "Invalid node report: '{field}.latency_counts' must have 1 more entry than latency_bounds_seconds (the last is the +Inf bucket); it has {}, latency_bounds_seconds has {}",
                counts.len(),
                bounds.len()
            ));
        }
        let total = counts
            .iter()
            .try_fold(0u64, |total, count| total.checked_add(*count));
        if total != Some(self.requests) {
            return Err(invalid(
                &format!("{field}.latency_counts"),
                format!(
                    "must sum to requests ({}), they sum to {}",
                    self.requests,
                    total.map_or_else(|| "more than 2^64".to_owned(), |total| total.to_string())
                ),
            ));
        }
        Ok(())
    }
}

/// A node is stale once `MISSED_REPORTS_BEFORE_STALE` reports in a row are overdue.
pub fn is_stale(reported_at_ms: i64, report_seconds: f64, now_ms: i64) -> bool {
    let allowed_ms = report_seconds * MISSED_REPORTS_BEFORE_STALE * 1000.0;
    now_ms.saturating_sub(reported_at_ms) as f64 > allowed_ms
}

/// Something a node's report says happened to one of its versions.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The version is serving and was not in the node's previous report.
    Deployed {
        version: i64,
        load_seconds: Option<f64>,
        revision: Option<i64>,
    },
    /// The version failed to load, and either it had not failed before or the error changed.
    LoadFailed { version: i64, error: String },
}

/// What changed on a node between its `previous` report (none for a node new to the registry)
/// and `current`, per model in report order.
pub fn transitions(
    previous: Option<&NodeReport>,
    current: &NodeReport,
) -> Vec<(String, Vec<Transition>)> {
    let mut changes = Vec::new();
    for model in &current.models {
        let before = previous.and_then(|previous| previous.model(&model.model));
        let earlier = |version: i64| {
            before.and_then(|before| {
                before
                    .versions
                    .iter()
                    .find(|entry| entry.version == version)
            })
        };
        let mut found = Vec::new();
        for version in &model.versions {
            let was = earlier(version.version);
            match version.state {
                VersionState::Serving
                    if was.is_none_or(|was| was.state != VersionState::Serving) =>
                {
                    found.push(Transition::Deployed {
                        version: version.version,
                        load_seconds: version.load_seconds,
                        revision: model.revision,
                    });
                }
                VersionState::Failed
                    if was.is_none_or(|was| {
                        was.state != VersionState::Failed || was.error != version.error
                    }) =>
                {
                    found.push(Transition::LoadFailed {
                        version: version.version,
                        error: version.error.clone().unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        if !found.is_empty() {
            changes.push((model.model.clone(), found));
        }
    }
    changes
}

/// Requests, errors and a latency histogram summed over nodes and versions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub requests: u64,
    pub errors: u64,
    /// The bounds of the merged histogram: those of the first histogram added; histograms with
    /// other bounds count in `requests`/`errors` but not in the latencies.
    pub latency_bounds_seconds: Vec<f64>,
    pub latency_counts: Vec<u64>,
}

impl Traffic {
    pub fn add(&mut self, version: &VersionReport) {
        self.requests = self.requests.saturating_add(version.requests);
        self.errors = self.errors.saturating_add(version.errors);
        if version.latency_counts.is_empty() {
            return;
        }
        if self.latency_counts.is_empty() {
            self.latency_bounds_seconds = version.latency_bounds_seconds.clone();
            self.latency_counts = version.latency_counts.clone();
        } else if self.latency_bounds_seconds == version.latency_bounds_seconds
            && self.latency_counts.len() == version.latency_counts.len()
        {
            for (sum, count) in self.latency_counts.iter_mut().zip(&version.latency_counts) {
                *sum = sum.saturating_add(*count);
            }
        }
    }

    /// Errors per request; 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// The upper bound of the bucket where the cumulative count reaches 99% (the last finite
    /// bound for the +Inf bucket); `None` without latencies or without finite bounds.
    pub fn p99_seconds(&self) -> Option<f64> {
        let total: u128 = self.latency_counts.iter().map(|count| *count as u128).sum();
        if total == 0 {
            return None;
        }
        let mut cumulative: u128 = 0;
        for (index, count) in self.latency_counts.iter().enumerate() {
            cumulative += *count as u128;
            if cumulative * 100 >= total * P99_PERCENT {
                return self
                    .latency_bounds_seconds
                    .get(index)
                    .or(self.latency_bounds_seconds.last())
                    .copied();
            }
        }
        self.latency_bounds_seconds.last().copied()
    }
}

/// The canary and the stable routes' traffic under one deployment revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryTraffic {
    pub canary: Traffic,
    pub stable: Traffic,
}

/// Sums the model entries that follow `revision` (entries of other revisions, or of the
/// default, count for nothing): the gate's version is the canary, the spec's other routes are
/// stable; anything else a node holds (the shadow, leftovers) is neither.
pub fn aggregate<'a>(
    spec: &DeploymentSpec,
    gate: &CanaryGate,
    revision: i64,
    entries: impl IntoIterator<Item = &'a ModelReport>,
) -> CanaryTraffic {
    let stable_versions: BTreeSet<i64> = spec
        .routes
        .iter()
        .map(|route| route.version)
        .filter(|version| *version != gate.version)
        .collect();
    let mut traffic = CanaryTraffic::default();
    for entry in entries {
        if entry.revision != Some(revision) {
            continue;
        }
        for version in &entry.versions {
            if version.version == gate.version {
                traffic.canary.add(version);
            } else if stable_versions.contains(&version.version) {
                traffic.stable.add(version);
            }
        }
    }
    traffic
}

/// Whether the gate rolls the canary back, and why (the reason recorded with the rollback).
/// Not judged before the canary has answered `min_requests`.
pub fn judge(gate: &CanaryGate, traffic: &CanaryTraffic) -> Option<String> {
    let canary = &traffic.canary;
    let stable = &traffic.stable;
    let min_requests = u64::try_from(gate.min_requests).unwrap_or(u64::MAX);
    if canary.requests < min_requests {
        return None;
    }
    let canary_rate = canary.error_rate();
    let stable_rate = stable.error_rate();
    if canary_rate - stable_rate > gate.max_error_rate_delta {
        return Some(format!(
            "canary gate: version {} error rate {canary_rate:.3} vs {stable_rate:.3} (allowed +{:.3}) over {} requests",
            gate.version, gate.max_error_rate_delta, canary.requests
        ));
    }
    if stable.requests > 0
        && let (Some(canary_p99), Some(stable_p99)) = (canary.p99_seconds(), stable.p99_seconds())
        && canary_p99 > stable_p99 * gate.max_p99_ratio
    {
        return Some(format!(
            "canary gate: version {} p99 latency {canary_p99:.4} s vs {stable_p99:.4} s (allowed x{:.2}) over {} requests",
            gate.version, gate.max_p99_ratio, canary.requests
        ));
    }
    None
}

fn invalid(field: &str, problem: String) -> String {
    format!("Invalid node report: '{field}' {problem}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deployments::Route;

    const BOUNDS: [f64; 3] = [0.01, 0.05, 0.1];

    fn version(number: i64, requests: u64, errors: u64, counts: [u64; 4]) -> VersionReport {
        VersionReport {
            version: number,
            state: VersionState::Serving,
            error: None,
            load_seconds: Some(0.5),
            requests,
            requests_per_second: None,
            errors,
            latency_bounds_seconds: BOUNDS.to_vec(),
            latency_counts: counts.to_vec(),
        }
    }

    fn entry(revision: Option<i64>, versions: Vec<VersionReport>) -> ModelReport {
        ModelReport {
            model: "pricing".to_owned(),
            revision,
            versions,
            unconfirmed: None,
        }
    }

    fn report(models: Vec<ModelReport>) -> NodeReport {
        NodeReport {
            http_url: Some("http://10.0.0.5:8000".to_owned()),
            report_seconds: Some(2.0),
            models,
        }
    }

    fn canary_spec() -> (DeploymentSpec, CanaryGate) {
        let gate = CanaryGate {
            version: 4,
            max_error_rate_delta: 0.02,
            max_p99_ratio: 1.5,
            min_requests: 100,
        };
        let spec = DeploymentSpec {
            routes: vec![
                Route {
                    version: 3,
                    weight: 90,
                },
                Route {
                    version: 4,
                    weight: 10,
                },
            ],
            sticky: None,
            shadow: Some(5),
            canary_gate: Some(gate),
        };
        (spec, gate)
    }

    #[test]
    fn a_full_report_is_valid_and_round_trips() {
        let valid = report(vec![entry(
            Some(7),
            vec![version(3, 10, 1, [5, 3, 1, 1]), version(4, 0, 0, [0; 4])],
        )])
        .validated()
        .expect("valid");
        assert_eq!(NodeReport::from_json(&valid.to_json()), Ok(valid.clone()));
        let mut no_histogram = version(3, 10, 0, [0; 4]);
        no_histogram.latency_bounds_seconds.clear();
        no_histogram.latency_counts.clear();
        assert!(
            report(vec![entry(None, vec![no_histogram])])
                .validated()
                .is_ok()
        );
        assert_eq!(valid.interval_seconds(), 2.0);
    }

    #[test]
    fn a_request_rate_is_optional_and_reports_stored_without_it_still_read() {
        let mut rated = version(3, 10, 1, [5, 3, 1, 1]);
        rated.requests_per_second = Some(12.5);
        let mut idle = version(4, 0, 0, [0; 4]);
        idle.requests_per_second = Some(0.0);
        let valid = report(vec![entry(Some(7), vec![rated, idle])])
            .validated()
            .expect("valid");
        assert_eq!(NodeReport::from_json(&valid.to_json()), Ok(valid.clone()));

        let unrated = report(vec![entry(Some(7), vec![version(3, 10, 1, [5, 3, 1, 1])])]);
        let stored = unrated.to_json();
        assert!(!stored.contains("requests_per_second"), "{stored}");
        let before_the_field = r#"{"http_url":null,"report_seconds":2.0,"models":[{"model":"pricing","revision":7,"versions":[{"version":3,"state":"serving","error":null,"load_seconds":0.5,"requests":10,"errors":1,"latency_bounds_seconds":[0.01,0.05,0.1],"latency_counts":[5,3,1,1]}]}]}"#;
        let read = NodeReport::from_json(before_the_field).expect("an older stored report");
        assert_eq!(read.models[0].versions[0].requests_per_second, None);
    }

    #[test]
    fn every_invalid_report_is_refused_naming_the_field() {
        type Mutation = fn(&mut NodeReport);
        let cases: &[(Mutation, &str)] = &[
            (
                |r| {
                    r.models[0].versions[1].latency_counts.pop();
                },
                "'models[0].versions[1].latency_counts' must have 1 more entry than latency_bounds_seconds",
            ),
            (
                |r| r.models[0].versions[0].latency_counts[0] += 1,
                "'models[0].versions[0].latency_counts' must sum to requests",
            ),
            (
                |r| r.models[0].versions[0].latency_bounds_seconds = vec![0.1, 0.05, 0.2],
                "'models[0].versions[0].latency_bounds_seconds' must be strictly ascending",
            ),
            (
                |r| r.models[0].versions[0].latency_bounds_seconds[2] = f64::NAN,
                "'models[0].versions[0].latency_bounds_seconds[2]'",
            ),
            (
                |r| {
                    r.models[0].versions[0].latency_bounds_seconds =
                        (1..=65).map(f64::from).collect();
                },
                "has 65 entries",
            ),
            (
                |r| r.models[0].versions[0].errors = 11,
                "'models[0].versions[0].errors'",
            ),
            (
                |r| r.models[0].versions[0].state = VersionState::Failed,
                "'models[0].versions[0].error'",
            ),
            (
                |r| r.models[0].versions[1].version = 3,
                "'models[0].versions[1].version' version 3 appears more than once",
            ),
            (
                |r| r.models[0].versions[0].version = 0,
                "'models[0].versions[0].version'",
            ),
            (
                |r| r.models[0].versions[0].load_seconds = Some(-1.0),
                "'models[0].versions[0].load_seconds'",
            ),
            (
                |r| r.models[0].versions[1].requests_per_second = Some(-0.5),
                "'models[0].versions[1].requests_per_second' must be a number of requests per second (0 or more), got -0.5",
            ),
            (
                |r| r.models[0].versions[0].requests_per_second = Some(f64::NAN),
                "'models[0].versions[0].requests_per_second'",
            ),
            (
                |r| r.models[0].versions[0].requests_per_second = Some(f64::INFINITY),
                "'models[0].versions[0].requests_per_second'",
            ),
            (|r| r.models[0].revision = Some(0), "'models[0].revision'"),
            (|r| r.models[0].model = " ".to_owned(), "'models[0].model'"),
            (
                |r| {
                    let copy = r.models[0].clone();
                    r.models.push(copy);
                },
                "'models[1].model' model 'pricing' appears more than once",
            ),
            (|r| r.report_seconds = Some(0.0), "'report_seconds'"),
            (
                |r| r.report_seconds = Some(f64::INFINITY),
                "'report_seconds'",
            ),
            (|r| r.http_url = Some("h".repeat(3000)), "'http_url'"),
            (
                |r| {
                    let versions = (1..=101).map(|n| version(n, 0, 0, [0; 4])).collect();
                    r.models[0].versions = versions;
                },
                "'models[0].versions' has 101 entries",
            ),
            (
                |r| {
                    r.models = (0..1001)
                        .map(|n| ModelReport {
                            model: format!("m{n}"),
                            revision: None,
                            versions: Vec::new(),
                            unconfirmed: None,
                        })
                        .collect();
                },
                "'models' has 1001 entries",
            ),
        ];
        for &(mutate, expected) in cases {
            let mut bad = report(vec![entry(
                Some(7),
                vec![version(3, 10, 1, [5, 3, 1, 1]), version(4, 0, 0, [0; 4])],
            )]);
            mutate(&mut bad);
            let message = bad.validated().expect_err(expected);
            assert!(message.starts_with("Invalid node report: "), "{message}");
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }

    #[test]
    fn node_ids() {
        assert!(validate_node_id("node-1.zone_a:8000").is_ok());
        assert!(validate_node_id(&"n".repeat(200)).is_ok());
        for bad in ["", "a b", "a/b", "é", &"n".repeat(201)] {
            let message = validate_node_id(bad).expect_err(bad);
            assert!(message.contains("'node_id'"), "{message}");
        }
    }

    #[test]
    fn staleness_is_three_missed_reports() {
        assert!(!is_stale(10_000, 2.0, 16_000));
        assert!(is_stale(10_000, 2.0, 16_001));
        assert!(
            !is_stale(10_000, 5.0, 9_000),
            "a clock step back is not stale"
        );
    }

    #[test]
    fn transitions_report_new_serving_and_new_failures_once() {
        let mut failed = version(4, 0, 0, [0; 4]);
        failed.state = VersionState::Failed;
        failed.error = Some("bad onnx".to_owned());
        let mut loading = version(4, 0, 0, [0; 4]);
        loading.state = VersionState::Loading;
        let first = report(vec![entry(
            Some(7),
            vec![version(3, 0, 0, [0; 4]), loading.clone()],
        )]);
        assert_eq!(
            transitions(None, &first),
            vec![(
                "pricing".to_owned(),
                vec![Transition::Deployed {
                    version: 3,
                    load_seconds: Some(0.5),
                    revision: Some(7)
                }]
            )]
        );
        assert!(transitions(Some(&first), &first).is_empty(), "nothing new");

        let second = report(vec![entry(
            Some(7),
            vec![version(3, 5, 0, [5, 0, 0, 0]), failed.clone()],
        )]);
        assert_eq!(
            transitions(Some(&first), &second),
            vec![(
                "pricing".to_owned(),
                vec![Transition::LoadFailed {
                    version: 4,
                    error: "bad onnx".to_owned()
                }]
            )]
        );
        assert!(transitions(Some(&second), &second).is_empty());
        let mut other_error = second.clone();
        other_error.models[0].versions[1].error = Some("out of memory".to_owned());
        assert_eq!(transitions(Some(&second), &other_error)[0].1.len(), 1);

        // Serving after a failure is a deployment again.
        let third = report(vec![entry(
            Some(7),
            vec![version(3, 5, 0, [5, 0, 0, 0]), version(4, 0, 0, [0; 4])],
        )]);
        assert!(matches!(
            transitions(Some(&second), &third)[0].1.as_slice(),
            [Transition::Deployed { version: 4, .. }]
        ));
    }

    #[test]
    fn p99_is_the_bound_where_the_cumulative_count_reaches_99_percent() {
        let mut traffic = Traffic::default();
        assert_eq!(traffic.p99_seconds(), None);
        traffic.add(&version(3, 100, 0, [98, 1, 1, 0]));
        assert_eq!(traffic.p99_seconds(), Some(0.05));
        let mut traffic = Traffic::default();
        traffic.add(&version(3, 100, 0, [99, 0, 0, 1]));
        assert_eq!(traffic.p99_seconds(), Some(0.01));
        let mut traffic = Traffic::default();
        traffic.add(&version(3, 100, 0, [90, 0, 0, 10]));
        assert_eq!(traffic.p99_seconds(), Some(0.1), "+Inf is the last bound");
    }

    #[test]
    fn merging_skips_histograms_with_other_bounds() {
        let mut traffic = Traffic::default();
        traffic.add(&version(3, 10, 1, [10, 0, 0, 0]));
        traffic.add(&version(3, 10, 1, [0, 10, 0, 0]));
        let mut other = version(3, 10, 2, [10, 0, 0, 0]);
        other.latency_bounds_seconds = vec![1.0, 2.0, 3.0];
        traffic.add(&other);
        assert_eq!((traffic.requests, traffic.errors), (30, 4));
        assert_eq!(traffic.latency_counts, vec![10, 10, 0, 0]);
    }

    #[test]
    fn aggregate_counts_only_the_judged_revision_and_the_routes() {
        let (spec, gate) = canary_spec();
        let node_a = entry(
            Some(7),
            vec![
                version(3, 100, 0, [100, 0, 0, 0]),
                version(4, 50, 20, [50, 0, 0, 0]),
                version(5, 70, 70, [70, 0, 0, 0]),
            ],
        );
        let node_b = entry(Some(7), vec![version(4, 70, 28, [70, 0, 0, 0])]);
        let old = entry(Some(6), vec![version(4, 900, 900, [900, 0, 0, 0])]);
        let default = entry(None, vec![version(4, 900, 900, [900, 0, 0, 0])]);
        let traffic = aggregate(&spec, &gate, 7, [&node_a, &node_b, &old, &default]);
        assert_eq!((traffic.canary.requests, traffic.canary.errors), (120, 48));
        assert_eq!((traffic.stable.requests, traffic.stable.errors), (100, 0));
        assert_eq!(
            judge(&gate, &traffic).as_deref(),
            Some(
                "canary gate: version 4 error rate 0.400 vs 0.000 (allowed +0.020) over 120 requests"
            )
        );
    }

    #[test]
    fn the_gate_waits_for_min_requests_and_allows_the_margin() {
        let (_, gate) = canary_spec();
        let mut traffic = CanaryTraffic::default();
        traffic.canary.add(&version(4, 99, 99, [99, 0, 0, 0]));
        assert_eq!(judge(&gate, &traffic), None, "under min_requests");

        let mut traffic = CanaryTraffic::default();
        traffic.canary.add(&version(4, 100, 3, [100, 0, 0, 0]));
        traffic.stable.add(&version(3, 100, 2, [100, 0, 0, 0]));
        assert_eq!(judge(&gate, &traffic), None, "1 point worse, 2 allowed");
        traffic.canary.add(&version(4, 100, 10, [100, 0, 0, 0]));
        assert!(judge(&gate, &traffic).is_some(), "6.5% vs 2%");
    }

    #[test]
    fn the_gate_trips_on_p99_only_against_stable_traffic() {
        let (_, gate) = canary_spec();
        let mut traffic = CanaryTraffic::default();
        traffic.canary.add(&version(4, 100, 0, [0, 0, 100, 0]));
        assert_eq!(judge(&gate, &traffic), None, "no stable traffic to compare");
        traffic.stable.add(&version(3, 100, 0, [100, 0, 0, 0]));
        assert_eq!(
            judge(&gate, &traffic).as_deref(),
            Some(
                "canary gate: version 4 p99 latency 0.1000 s vs 0.0100 s (allowed x1.50) over 100 requests"
            )
        );
        let mut close = CanaryTraffic::default();
        close.canary.add(&version(4, 100, 0, [0, 100, 0, 0]));
        close.stable.add(&version(3, 100, 0, [0, 100, 0, 0]));
        assert_eq!(judge(&gate, &close), None);
    }
}
