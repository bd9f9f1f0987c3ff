//! Deployments (`/api/okla/v1/deployments`): which versions of a model the serving fleet
//! serves and how traffic splits; and the fleet's reports (`/api/okla/v1/nodes`), to wait until
//! a version is served everywhere.

use std::time::{Duration, Instant};

use okla_proto::policy::{self, CHAMPION_ALIAS};
use okla_proto::wire::{
    Deployment, DeploymentAnswer, DeploymentSpec, Node, NodeAnswer, NodeList, NodeReport, Route,
    VersionState,
};
use reqwest::Method;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::http::Client;
use crate::registry::{RegisteredModel, Stage};

/// How often [`Client::wait_until_served`] asks the registry.
const SERVED_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The default deployment of `model` by [`policy::default_version`], as a registry with
/// deployments would answer it.
pub(crate) fn default_deployment(model: &RegisteredModel) -> Deployment {
    let champion = model
        .aliases
        .iter()
        .find(|alias| alias.alias == CHAMPION_ALIAS)
        .map(|alias| alias.version);
    let production = model
        .latest_versions
        .iter()
        .filter(|version| version.current_stage == Stage::Production)
        .map(|version| version.version);
    let chosen = policy::default_version(champion, production);
    Deployment {
        name: model.name.clone(),
        source: chosen
            .map_or("none", |(source, _)| source.as_str())
            .to_owned(),
        revision: 0,
        routes: chosen
            .map(|(_, version)| Route {
                version,
                weight: 100,
            })
            .into_iter()
            .collect(),
        sticky: None,
        shadow: None,
        canary_gate: None,
        updated_at: None,
        updated_by: None,
    }
}

impl Client {
    /// `model`'s effective deployment (explicit, else the default one).
    pub async fn get_deployment(&self, model: &str) -> Result<Deployment> {
        let answer: DeploymentAnswer = self
            .get_json(self.okla(["deployments", model]), &[])
            .await?;
        Ok(answer.deployment)
    }

    /// What the fleet should serve of `model`: its effective deployment, or `None` when the
    /// registry does not know the model. A registry without the deployments endpoint (its 404
    /// is not MLflow's `RESOURCE_DOES_NOT_EXIST`) gets the default rule applied here: the
    /// `champion` alias's version, else the latest Production version, at 100% (`source`
    /// `champion` or `production`, revision 0), else nothing (`none`).
    pub async fn effective_deployment(&self, model: &str) -> Result<Option<Deployment>> {
        match self.get_deployment(model).await {
            Ok(deployment) => Ok(Some(deployment)),
            Err(error) if error.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(error) if error.is_not_found() => match self.get_registered_model(model).await {
                Ok(registered) => Ok(Some(default_deployment(&registered))),
                Err(error) if error.is_not_found() => Ok(None),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Sends a serving node's whole state (`PUT /api/okla/v1/nodes/{node_id}`); answers the
    /// node as the registry recorded it. Never retried: the next report repairs a lost one.
    pub async fn put_node_report(&self, node_id: &str, report: &NodeReport) -> Result<Node> {
        let answer: NodeAnswer = self
            .send_body(Method::PUT, self.okla(["nodes", node_id]), report)
            .await?;
        Ok(answer.node)
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

    /// Takes `model` out of the fleet: serving nodes stop serving it, until a deployment, the
    /// `champion` alias or a Production version deploys it again. `reason` is recorded in the
    /// model's history.
    pub async fn undeploy(&self, model: &str, reason: &str) -> Result<Deployment> {
        let answer: DeploymentAnswer = self
            .send_body(
                Method::POST,
                self.okla(["deployments", model, "undeploy"]),
                &serde_json::json!({ "comment": reason }),
            )
            .await?;
        Ok(answer.deployment)
    }

    /// The latest report of every node that serves `model`.
    pub async fn nodes(&self, model: &str) -> Result<Vec<Node>> {
        let answer: NodeList = self
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
                    node.version_state(model, version) != Some(VersionState::Serving)
                        || node.model_revision(model) < revision
                })
                .map(|node| {
                    let state = node
                        .version_state(model, version)
                        .map_or("absent", VersionState::as_str);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Alias, ModelVersion};

    fn model(stages: &[(u64, Stage)], aliases: &[(&str, u64)]) -> RegisteredModel {
        RegisteredModel {
            name: "pricing".to_owned(),
            description: String::new(),
            latest_versions: stages
                .iter()
                .map(|&(version, current_stage)| ModelVersion {
                    name: "pricing".to_owned(),
                    version,
                    current_stage,
                    source: String::new(),
                    run_id: String::new(),
                    status: String::new(),
                    description: String::new(),
                    aliases: Vec::new(),
                    tags: Vec::new(),
                    creation_timestamp: 0,
                    last_updated_timestamp: 0,
                })
                .collect(),
            aliases: aliases
                .iter()
                .map(|&(alias, version)| Alias {
                    alias: alias.to_owned(),
                    version,
                })
                .collect(),
            tags: Vec::new(),
        }
    }

    fn served(model: &RegisteredModel) -> Option<u64> {
        let deployment = default_deployment(model);
        assert!(deployment.routes.len() <= 1);
        deployment.routes.first().map(|route| {
            assert_eq!(route.weight, 100);
            route.version
        })
    }

    #[test]
    fn champion_wins_over_production() {
        let none = default_deployment(&model(&[], &[]));
        assert_eq!((none.source.as_str(), none.routes.len()), ("none", 0));
        assert_eq!(
            served(&model(&[(1, Stage::Staging), (2, Stage::Archived)], &[])),
            None
        );
        let production = model(&[(3, Stage::Production), (4, Stage::Staging)], &[]);
        assert_eq!(served(&production), Some(3));
        assert_eq!(default_deployment(&production).source, "production");
        let champion = model(
            &[(3, Stage::Production)],
            &[("challenger", 4), ("champion", 2)],
        );
        assert_eq!(served(&champion), Some(2));
        assert_eq!(default_deployment(&champion).source, "champion");
        assert_eq!(
            served(&model(&[(3, Stage::Production)], &[("challenger", 4)])),
            Some(3)
        );
    }
}
