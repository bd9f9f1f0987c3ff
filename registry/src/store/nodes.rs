//! Serving nodes in the database: each node's latest state report (`serving_nodes`), stored in
//! one transaction with the `model.deployed` / `model.load_failed` events it implies, and the
//! canary gates judged over the fleet's reports once a report is stored.
//!
//! The gate's rollback runs after the report's transaction commits, in its own transaction,
//! through `rollback_deployment` with `expected_revision` set to the judged revision: a second
//! verdict on the same revision (another node's report, a concurrent one) finds the revision
//! moved on and changes nothing.

use std::collections::BTreeSet;

use okla_proto::events as proto;
use proto::model_event::Body;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};

use super::Store;
use super::outbox::write_events;
use super::sql::{get_f64, get_i64, get_opt_text, get_text};
use super::transaction::Change;
use crate::domain::deployments::DeploymentSpec;
use crate::domain::nodes::{
    NodeReport, Transition, VersionState, aggregate, is_stale, judge, transitions, validate_node_id,
};
use crate::domain::now_millis;
use crate::error::{Error, Result};

/// The actor of every rollback the canary gate makes.
pub const CANARY_GATE_ACTOR: &str = "canary-gate";

/// A node's latest report as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub node_id: String,
    pub reported_at: i64,
    /// True once three reports in a row are overdue (see `domain::nodes::is_stale`).
    pub stale: bool,
    pub report: NodeReport,
}

/// A model's explicit deployment with a canary gate, as the gate judges it.
struct GatedDeployment {
    name: String,
    revision: i64,
    spec: DeploymentSpec,
}

impl Store {
    /// Stores `report` as the node's latest, with an event for each version that started
    /// serving or failed since its previous report (only for models the registry knows), in one
    /// transaction; then judges the canary gates of the models the report follows a deployment
    /// revision of, and rolls back any canary that fails its gate.
    pub async fn report_node(&self, node_id: &str, report: NodeReport) -> Result<NodeState> {
        validate_node_id(node_id).map_err(Error::invalid)?;
        let report = report.validated().map_err(Error::invalid)?;
        let reported_at = now_millis();
        let mut transaction = self.writer.begin().await?;
        // Locks the node's row on PostgreSQL, so two reports of one node see each other's
        // result as their previous report and no change is announced twice.
        sqlx::query("UPDATE serving_nodes SET reported_at = reported_at WHERE node_id = $1")
            .bind(node_id)
            .execute(&mut *transaction)
            .await?;
        let previous = sqlx::query("SELECT report FROM serving_nodes WHERE node_id = $1")
            .bind(node_id)
            .fetch_optional(&mut *transaction)
            .await?
            .map(|row| stored_report(&row))
            .transpose()?;
        let changes = transitions(previous.as_ref(), &report);
        let names: Vec<&str> = changes.iter().map(|(model, _)| model.as_str()).collect();
        let known = known_models(self, &mut transaction, &names).await?;
        sqlx::query(
            "INSERT INTO serving_nodes (node_id, http_url, report, report_seconds, reported_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node_id) DO UPDATE SET http_url = excluded.http_url, \
             report = excluded.report, report_seconds = excluded.report_seconds, \
             reported_at = excluded.reported_at",
        )
        .bind(node_id)
        .bind(report.http_url.as_deref())
        .bind(report.to_json())
        .bind(report.interval_seconds())
        .bind(reported_at)
        .execute(&mut *transaction)
        .await?;
        let actor = format!("node:{node_id}");
        let mut wrote_events = false;
        for (model, found) in changes {
            if !known.contains(&model) {
                continue;
            }
            let bodies = found
                .into_iter()
                .map(|transition| event_body(node_id, transition))
                .collect();
            write_events(&mut transaction, self.backend, &model, &actor, bodies).await?;
            wrote_events = true;
        }
        transaction.commit().await?;
        if wrote_events {
            self.events_committed();
        }
        self.judge_canary_gates(&report).await?;
        Ok(NodeState {
            node_id: node_id.to_owned(),
            reported_at,
            stale: false,
            report,
        })
    }

    /// Every node, by node id (byte order); with `model`, only the nodes reporting it, each
    /// with only that model's entry.
    pub async fn list_nodes(&self, model: Option<&str>) -> Result<Vec<NodeState>> {
        let rows =
            sqlx::query("SELECT node_id, report, report_seconds, reported_at FROM serving_nodes")
                .fetch_all(&self.reader)
                .await?;
        let now = now_millis();
        let mut nodes = rows
            .iter()
            .map(|row| node_state(row, now))
            .collect::<Result<Vec<_>>>()?;
        nodes.sort_by(|left, right| left.node_id.cmp(&right.node_id));
        if let Some(model) = model {
            nodes.retain_mut(|node| {
                node.report.models.retain(|entry| entry.model == model);
                !node.report.models.is_empty()
            });
        }
        Ok(nodes)
    }

    /// One node's latest report; NotFound when the node never reported or was forgotten.
    pub async fn get_node(&self, node_id: &str) -> Result<NodeState> {
        validate_node_id(node_id).map_err(Error::invalid)?;
        let row = sqlx::query(
            "SELECT node_id, report, report_seconds, reported_at FROM serving_nodes WHERE node_id = $1",
        )
        .bind(node_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| node_not_found(node_id))?;
        node_state(&row, now_millis())
    }

    /// Forgets a node (its next report brings it back, announcing what it serves again).
    /// Returns whether it was known; forgetting an unknown node changes nothing.
    pub async fn delete_node(&self, node_id: &str) -> Result<bool> {
        validate_node_id(node_id).map_err(Error::invalid)?;
        let deleted = sqlx::query("DELETE FROM serving_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Judges the gate of every model whose entry in `report` follows the revision of the
    /// model's explicit, gated deployment, over every fresh node's entry for that revision.
    /// A report that follows another revision (or the default) cannot change a verdict.
    async fn judge_canary_gates(&self, report: &NodeReport) -> Result<()> {
        let names: Vec<&str> = report
            .models
            .iter()
            .filter(|entry| entry.revision.is_some())
            .map(|entry| entry.model.as_str())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let gated: Vec<GatedDeployment> = self
            .gated_deployments(&names)
            .await?
            .into_iter()
            .filter(|deployment| {
                report
                    .model(&deployment.name)
                    .is_some_and(|entry| entry.revision == Some(deployment.revision))
            })
            .collect();
        if gated.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let fleet: Vec<NodeState> = self
            .list_nodes(None)
            .await?
            .into_iter()
            .filter(|node| !is_stale(node.reported_at, node.report.interval_seconds(), now))
            .collect();
        for deployment in gated {
            let Some(gate) = deployment.spec.canary_gate else {
                continue;
            };
            let entries = fleet
                .iter()
                .filter_map(|node| node.report.model(&deployment.name));
            let traffic = aggregate(&deployment.spec, &gate, deployment.revision, entries);
            let Some(reason) = judge(&gate, &traffic) else {
                continue;
            };
            let change = Change {
                actor: CANARY_GATE_ACTOR,
                comment: Some(reason.as_str()),
            };
            match self
                .rollback_deployment(&deployment.name, None, Some(deployment.revision), &change)
                .await
            {
                Ok(state) => tracing::info!(
                    model = %deployment.name,
                    revision = state.revision,
                    %reason,
                    "canary gate rolled the deployment back"
                ),
                // The deployment changed (or went) since it was judged: the change wins, and a
                // rollback by an earlier verdict on the same revision is already done.
                Err(Error::Conflict(_) | Error::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The explicit deployments with a canary gate among `names`.
    async fn gated_deployments(&self, names: &[&str]) -> Result<Vec<GatedDeployment>> {
        let mut gated = Vec::new();
        if names.is_empty() {
            return Ok(gated);
        }
        let sql = format!(
            "SELECT name, spec, revision FROM deployments WHERE spec IS NOT NULL AND {}",
            self.in_id_list("name", 1)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.id_list(names));
        for row in query.fetch_all(&self.reader).await? {
            let Some(text) = get_opt_text(&row, "spec")? else {
                continue;
            };
            let spec = DeploymentSpec::from_json(&text)
                .map_err(|message| Error::Internal(anyhow::anyhow!(message)))?;
            if spec.canary_gate.is_some() {
                gated.push(GatedDeployment {
                    name: get_text(&row, "name")?,
                    revision: get_i64(&row, "revision")?,
                    spec,
                });
            }
        }
        Ok(gated)
    }
}

/// The names among `names` of registered models that exist.
async fn known_models(
    store: &Store,
    transaction: &mut Transaction<'_, Any>,
    names: &[&str],
) -> Result<BTreeSet<String>> {
    let mut known = BTreeSet::new();
    if names.is_empty() {
        return Ok(known);
    }
    let sql = format!(
        "SELECT name FROM registered_models WHERE {}",
        store.in_id_list("name", 1)
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(store.id_list(names));
    for row in query.fetch_all(&mut **transaction).await? {
        known.insert(get_text(&row, "name")?);
    }
    Ok(known)
}

fn event_body(node_id: &str, transition: Transition) -> Body {
    match transition {
        Transition::Deployed {
            version,
            load_seconds,
            revision,
        } => Body::ModelDeployed(proto::ModelDeployed {
            node_id: node_id.to_owned(),
            version,
            load_seconds: load_seconds.unwrap_or_default(),
            revision,
        }),
        Transition::LoadFailed { version, error } => {
            Body::ModelLoadFailed(proto::ModelLoadFailed {
                node_id: node_id.to_owned(),
                version,
                error,
            })
        }
    }
}

fn stored_report(row: &AnyRow) -> Result<NodeReport> {
    NodeReport::from_json(&get_text(row, "report")?)
        .map_err(|message| Error::Internal(anyhow::anyhow!(message)))
}

/// The nodes that are not stale and report a version of `model` serving, by node id: the fleet
/// a change to the model's deployment reaches now.
pub(crate) async fn live_nodes_serving(
    connection: &mut AnyConnection,
    model: &str,
) -> Result<Vec<String>> {
    let rows =
        sqlx::query("SELECT node_id, report, report_seconds, reported_at FROM serving_nodes")
            .fetch_all(&mut *connection)
            .await?;
    let now = now_millis();
    let mut nodes = Vec::new();
    for row in &rows {
        let node = node_state(row, now)?;
        let serves = node.report.models.iter().any(|entry| {
            entry.model == model
                && entry
                    .versions
                    .iter()
                    .any(|version| version.state == VersionState::Serving)
        });
        if serves && !node.stale {
            nodes.push(node.node_id);
        }
    }
    nodes.sort();
    Ok(nodes)
}

fn node_state(row: &AnyRow, now: i64) -> Result<NodeState> {
    let reported_at = get_i64(row, "reported_at")?;
    let report_seconds = get_f64(row, "report_seconds")?;
    Ok(NodeState {
        node_id: get_text(row, "node_id")?,
        reported_at,
        stale: is_stale(reported_at, report_seconds, now),
        report: stored_report(row)?,
    })
}

pub(super) fn node_not_found(node_id: &str) -> Error {
    Error::not_found(format!("Serving node '{node_id}' not found"))
}
