//! Deployments (`/api/okla/v1/deployments`): which versions of a model the serving fleet
//! serves and how traffic splits; and the fleet's reports (`/api/okla/v1/nodes`), to wait until
//! a version is served everywhere.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::Client;

/// How often [`Client::wait_until_served`] asks the registry.
const SERVED_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One route: a version and its share of the traffic (weights sum to 100).
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

/// When the registry rolls a canary route back, judged on the nodes' reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryGate {
    pub version: u64,
    pub max_error_rate_delta: f64,
    pub max_p99_ratio: f64,
    pub min_requests: u64,
}

/// What [`Client::put_deployment`] sets: the registry checks every rule and names the field
/// it refuses.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DeploymentSpec {
    pub routes: Vec<Route>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// A version that gets a copy of the traffic and never answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_gate: Option<CanaryGate>,
    /// Recorded in the model's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A model's effective deployment. `source` says where it comes from: `explicit` (set with
/// [`Client::put_deployment`]), `champion` (the alias), `production` (the latest Production
/// version), or `none` (no routes: the fleet serves nothing of the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    pub source: String,
    /// Bumped by every change; pass it as `expected_revision` to refuse a stale write.
    pub revision: u64,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    #[serde(default)]
    pub shadow: Option<u64>,
    #[serde(default)]
    pub canary_gate: Option<CanaryGate>,
    #[serde(default)]
    pub updated_at: Option<i64>,
    #[serde(default)]
    pub updated_by: Option<String>,
}

/// A serving node's latest report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub node_id: String,
    #[serde(default)]
    pub http_url: Option<String>,
    #[serde(default)]
    pub report_seconds: f64,
    #[serde(default)]
    pub reported_at_ms: i64,
    /// Three reports overdue: ignored by canary gates and by [`Client::wait_until_served`].
    #[serde(default)]
    pub stale: bool,
    #[serde(default)]
    pub models: Vec<NodeModel>,
}

/// What a node serves of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeModel {
    pub model: String,
    /// The deployment revision the node follows.
    #[serde(default)]
    pub revision: Option<i64>,
    #[serde(default)]
    pub versions: Vec<NodeVersion>,
}

/// A version on a node: `state` is `loading`, `serving` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeVersion {
    pub version: u64,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub errors: u64,
}

impl Node {
    /// The state this node reports for `model`'s `version`, if it reports one.
    /// The deployment revision the node follows for `model`, if it reports one.
    pub fn model_revision(&self, model: &str) -> Option<u64> {
        self.models
            .iter()
            .find(|reported| reported.model == model)
            .and_then(|reported| reported.revision)
            .and_then(|revision| u64::try_from(revision).ok())
    }

    pub fn version_state(&self, model: &str, version: u64) -> Option<&str> {
        self.models
            .iter()
            .filter(|reported| reported.model == model)
            .flat_map(|reported| &reported.versions)
            .find(|reported| reported.version == version)
            .map(|reported| reported.state.as_str())
    }
}

#[derive(Deserialize)]
struct DeploymentAnswer {
    deployment: Deployment,
}

impl Client {
    /// `model`'s effective deployment (explicit, else the default one).
    pub async fn get_deployment(&self, model: &str) -> Result<Deployment> {
        let answer: DeploymentAnswer = self
            .get_json(self.okla(["deployments", model]), &[])
            .await?;
        Ok(answer.deployment)
    }

    /// Sets `model`'s deployment. With `expected_revision`, the registry refuses the change
    /// (409 `RESOURCE_CONFLICT`) if the deployment changed since that revision was read.
    pub async fn put_deployment(
        &self,
        model: &str,
        spec: &DeploymentSpec,
        expected_revision: Option<u64>,
    ) -> Result<Deployment> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            spec: &'a DeploymentSpec,
            #[serde(skip_serializing_if = "Option::is_none")]
            expected_revision: Option<u64>,
        }
        let answer: DeploymentAnswer = self
            .send_body(
                Method::PUT,
                self.okla(["deployments", model]),
                &Body {
                    spec,
                    expected_revision,
                },
            )
            .await?;
        Ok(answer.deployment)
    }

    /// Puts one version back at 100%: `to_version`, else the route the canary gate protects,
    /// else the heaviest route. `reason` is recorded in the model's history.
    pub async fn rollback(
        &self,
        model: &str,
        to_version: Option<u64>,
        reason: &str,
    ) -> Result<Deployment> {
        let mut body = serde_json::json!({ "reason": reason });
        if let Some(version) = to_version {
            body["to_version"] = version.into();
        }
        let answer: DeploymentAnswer = self
            .send_body(
                Method::POST,
                self.okla(["deployments", model, "rollback"]),
                &body,
            )
            .await?;
        Ok(answer.deployment)
    }

    /// The latest report of every node that serves `model`.
    pub async fn nodes(&self, model: &str) -> Result<Vec<Node>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            nodes: Vec<Node>,
        }
        let answer: Answer = self
            .get_json(self.okla(["nodes"]), &[("model", model)])
            .await?;
        Ok(answer.nodes)
    }

    /// Waits until every node that is not stale reports `model`'s `version` as `serving`, and
    /// at least one does; returns those nodes. Polls the registry every 500 ms; after
    /// `timeout`, fails with [`Error::Timeout`] naming the nodes not serving it yet.
    pub async fn wait_until_served(
        &self,
        model: &str,
        version: u64,
        timeout: Duration,
    ) -> Result<Vec<Node>> {
        let started = Instant::now();
        // Under an explicit deployment a node must also follow its current revision: a canary
        // version already serving does not mean the node has switched to its promotion.
        let deployment = self.get_deployment(model).await?;
        let revision = (deployment.source == "explicit").then_some(deployment.revision);
        loop {
            let fresh: Vec<Node> = self
                .nodes(model)
                .await?
                .into_iter()
                .filter(|node| !node.stale)
                .collect();
            let waiting: Vec<String> = fresh
                .iter()
                .filter(|node| {
                    node.version_state(model, version) != Some("serving")
                        || node.model_revision(model) < revision
                })
                .map(|node| {
                    let state = node.version_state(model, version).unwrap_or("absent");
                    match (node.model_revision(model), revision) {
                        (Some(seen), Some(wanted)) if seen < wanted => {
                            format!("{} ({state}, revision {seen} of {wanted})", node.node_id)
                        }
                        (None, Some(wanted)) => {
                            format!("{} ({state}, not yet on revision {wanted})", node.node_id)
                        }
                        _ => format!("{} ({state})", node.node_id),
                    }
                })
                .collect();
            if waiting.is_empty() && !fresh.is_empty() {
                return Ok(fresh);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                let last_seen = if fresh.is_empty() {
                    "no node reports the model".to_owned()
                } else {
                    format!("not serving on {}", waiting.join(", "))
                };
                return Err(Error::Timeout {
                    what: format!("{model} version {version} served by every node"),
                    waited,
                    last_seen,
                });
            }
            tokio::time::sleep(SERVED_POLL_INTERVAL.min(timeout - waited)).await;
        }
    }
}
