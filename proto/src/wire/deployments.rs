//! Deployments (`/api/okla/v1/deployments[/{model}]`): the spec a client PUTs and the effective
//! deployment the registry answers with.

use serde::{Deserialize, Serialize};

/// One route: a version and its share of the traffic, in percent (weights sum to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub version: u64,
    pub weight: u32,
}

/// Requests carrying this header go to the same version for the same header value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sticky {
    pub routing_key_header: String,
}

/// When the registry rolls a canary route back by itself, judged on the nodes' reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryGate {
    pub version: u64,
    pub max_error_rate_delta: f64,
    pub max_p99_ratio: f64,
    pub min_requests: u64,
}

/// The body of `PUT /api/okla/v1/deployments/{model}` (plus an optional `expected_revision`):
/// the registry checks every rule and names the field it refuses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// A version that gets a copy of the traffic and never answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_gate: Option<CanaryGate>,
    /// Recorded in the model's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A model's effective deployment. `source` says where it comes from: `explicit` (set through
/// the deployments API), `champion` (the alias), `production` (the latest Production version),
/// `undeployed` (explicitly taken out of the fleet: nodes drop it), or `none` (nothing to
/// serve, never undeployed: nodes keep serving what they have and report the disagreement).
/// The last two have no routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    /// Bumped by every change; pass it as `expected_revision` to refuse a stale write.
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_gate: Option<CanaryGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// `{"deployment": ...}`: the answer of every call on one model's deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentAnswer {
    pub deployment: Deployment,
}

/// `{"deployments": [...]}`: `GET /api/okla/v1/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentList {
    #[serde(default)]
    pub deployments: Vec<Deployment>,
}
