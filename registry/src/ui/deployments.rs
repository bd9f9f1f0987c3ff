//! `/deployments` (every model with an effective deployment) and `/deployments/{name}` (routes,
//! sticky header, shadow, canary gate, revision; the serving nodes with per-version state and
//! traffic from their reports; the rollbacks from the model history).

use askama::Template;
use axum::extract::{Path, State};

use super::models::HistoryRow;
use super::{PageResult, format_time, render, require_read, segment};
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::domain::deployments::DeploymentSpec;
use crate::domain::model_registry::HistoryKind;
use crate::domain::nodes::Traffic;
use crate::state::AppState;

struct DeploymentRow {
    name: String,
    href: String,
    model_href: String,
    source: &'static str,
    routes: String,
    revision: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct DeploymentsPage {
    rows: Vec<DeploymentRow>,
}

fn routes_summary(spec: &DeploymentSpec) -> String {
    spec.routes
        .iter()
        .map(|route| format!("v{} {}%", route.version, route.weight))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn list(State(state): State<AppState>, caller: Caller) -> PageResult {
    let deployments = state.store.list_deployments().await?;
    let rows = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            deployments,
            |deployment| deployment.name.clone(),
        )
        .await?
        .into_iter()
        .filter_map(|deployment| {
            let effective = deployment.effective?;
            Some(DeploymentRow {
                href: format!("/deployments/{}", segment(&deployment.name)),
                model_href: format!("/models/{}", segment(&deployment.name)),
                source: effective.source.as_str(),
                routes: routes_summary(&effective.spec),
                revision: deployment.revision,
                updated: format_time(deployment.updated_at),
                name: deployment.name,
            })
        })
        .collect();
    render(&DeploymentsPage { rows })
}

struct RouteRow {
    version: i64,
    weight: i64,
}

struct NodeVersionRow {
    version: i64,
    state: &'static str,
    error: String,
    requests: u64,
    requests_per_second: String,
    error_rate: String,
    p99: String,
}

struct NodeRow {
    node_id: String,
    reported: String,
    stale: bool,
    revision: String,
    versions: Vec<NodeVersionRow>,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    name: String,
    model_href: String,
    source: String,
    revision: i64,
    updated: String,
    updated_by: String,
    routes: Vec<RouteRow>,
    sticky: String,
    shadow: String,
    canary_gate: String,
    nodes: Vec<NodeRow>,
    rollbacks: Vec<HistoryRow>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> PageResult {
    require_read(&state, &caller, ResourceType::RegisteredModel, &name).await?;
    let deployment = state.store.get_deployment(&name).await?;
    let spec = deployment
        .effective
        .as_ref()
        .map(|effective| &effective.spec);
    let nodes = state
        .store
        .list_nodes(Some(&deployment.name))
        .await?
        .into_iter()
        .map(|node| {
            let entry = node.report.model(&deployment.name);
            let stale = node.stale;
            NodeRow {
                reported: format_time(Some(node.reported_at)),
                stale,
                revision: entry
                    .and_then(|entry| entry.revision)
                    .map(|revision| revision.to_string())
                    .unwrap_or_else(|| "default".to_owned()),
                versions: entry
                    .map(|entry| {
                        entry
                            .versions
                            .iter()
                            .map(|version| {
                                let mut traffic = Traffic::default();
                                traffic.add(version);
                                NodeVersionRow {
                                    version: version.version,
                                    state: version.state.as_str(),
                                    error: version.error.clone().unwrap_or_default(),
                                    requests: traffic.requests,
                                    // A stale node's last rate says nothing about now.
                                    requests_per_second: version
                                        .requests_per_second
                                        .filter(|_| !stale)
                                        .map(|rate| format!("{rate:.1}"))
                                        .unwrap_or_else(|| "—".to_owned()),
                                    error_rate: format!("{:.2}%", traffic.error_rate() * 100.0),
                                    p99: traffic
                                        .p99_seconds()
                                        .map(|seconds| format!("{:.1} ms", seconds * 1000.0))
                                        .unwrap_or_else(|| "—".to_owned()),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                node_id: node.node_id,
            }
        })
        .collect();
    let rollbacks = state
        .store
        .model_history(&deployment.name)
        .await?
        .into_iter()
        .rev()
        .filter(|entry| entry.kind == HistoryKind::DeploymentRollback.as_str())
        .map(HistoryRow::from)
        .collect();
    render(&DeploymentPage {
        model_href: format!("/models/{}", segment(&deployment.name)),
        source: deployment
            .effective
            .as_ref()
            .map(|effective| effective.source.as_str().to_owned())
            .unwrap_or_default(),
        revision: deployment.revision,
        updated: format_time(deployment.updated_at),
        updated_by: deployment.updated_by.clone().unwrap_or_default(),
        routes: spec
            .map(|spec| {
                spec.routes
                    .iter()
                    .map(|route| RouteRow {
                        version: route.version,
                        weight: route.weight,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sticky: spec
            .and_then(|spec| spec.sticky.as_ref())
            .map(|sticky| sticky.routing_key_header.clone())
            .unwrap_or_default(),
        shadow: spec
            .and_then(|spec| spec.shadow)
            .map(|version| format!("v{version}"))
            .unwrap_or_default(),
        canary_gate: spec
            .and_then(|spec| spec.canary_gate)
            .map(|gate| {
                format!(
                    "v{}: error rate at most {} above stable, p99 at most {}× stable, after {} requests",
                    gate.version, gate.max_error_rate_delta, gate.max_p99_ratio, gate.min_requests
                )
            })
            .unwrap_or_default(),
        name: deployment.name,
        nodes,
        rollbacks,
    })
}
