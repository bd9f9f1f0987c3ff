//! Serving nodes (`/api/okla/v1/nodes[/{node_id}]`): the report a node PUTs and the latest
//! report the registry answers with. They differ on purpose: a report leaves out what a node
//! does not know, while the registry's answer writes every field, `null` when unknown.

use serde::{Deserialize, Serialize};

/// Where a node is with one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Loading,
    Serving,
    Failed,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Loading => "loading",
            VersionState::Serving => "serving",
            VersionState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for VersionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `PUT /api/okla/v1/nodes/{node_id}`: the node's whole state, not a delta, so a
/// lost report is repaired by the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    pub report_seconds: f64,
    pub models: Vec<ModelReport>,
}

/// What a node serves of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    /// The deployment revision unversioned requests follow; `None` under a default deployment.
    #[serde(default)]
    pub revision: Option<u64>,
    pub versions: Vec<VersionReport>,
    /// Why the node serves the model although the registry names nothing for it to serve (not
    /// in the registry, no deployment): it keeps serving until the model is undeployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<String>,
}

/// One version on the reporting node. The counters run since the node began serving the
/// model's `revision` and restart when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionReport {
    pub version: u64,
    pub state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_seconds: Option<f64>,
    pub requests: u64,
    /// Requests per second since the node's previous report of the same revision; absent
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests that failed inside the server (not client mistakes).
    pub errors: u64,
    /// Ascending upper bounds of the latency buckets, in seconds.
    pub latency_bounds_seconds: Vec<f64>,
    /// One count per bound plus the +Inf bucket; they sum to `requests`.
    pub latency_counts: Vec<u64>,
}

/// A node's latest report as the registry answers it, plus when it reported and whether it is
/// stale (three reports overdue: ignored by canary gates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub node_id: String,
    #[serde(default)]
    pub http_url: Option<String>,
    #[serde(default)]
    pub report_seconds: f64,
    #[serde(default)]
    pub reported_at_ms: i64,
    #[serde(default)]
    pub stale: bool,
    #[serde(default)]
    pub models: Vec<NodeModel>,
}

/// What a node serves of one model, as the registry answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeModel {
    pub model: String,
    /// The deployment revision the node follows.
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub versions: Vec<NodeVersion>,
    /// Why the node serves the model although the registry names nothing for it to serve (not
    /// in the registry, no deployment): it keeps serving until the model is undeployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<String>,
}

/// A version on a node, as the registry answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeVersion {
    pub version: u64,
    pub state: VersionState,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    #[serde(default)]
    pub latency_bounds_seconds: Vec<f64>,
    #[serde(default)]
    pub latency_counts: Vec<u64>,
}

impl Node {
    /// The deployment revision the node follows for `model`, if it reports one.
    pub fn model_revision(&self, model: &str) -> Option<u64> {
        self.models
            .iter()
            .find(|reported| reported.model == model)
            .and_then(|reported| reported.revision)
    }

    /// The state this node reports for `model`'s `version`, if it reports one.
    pub fn version_state(&self, model: &str, version: u64) -> Option<VersionState> {
        self.models
            .iter()
            .filter(|reported| reported.model == model)
            .flat_map(|reported| &reported.versions)
            .find(|reported| reported.version == version)
            .map(|reported| reported.state)
    }
}

/// `{"node": ...}`: the answer of a report and of `GET /api/okla/v1/nodes/{node_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAnswer {
    pub node: Node,
}

/// `{"nodes": [...]}`: `GET /api/okla/v1/nodes[?model=...]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    #[serde(default)]
    pub nodes: Vec<Node>,
}
