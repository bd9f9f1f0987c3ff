//! Serving node endpoints (`/api/okla/v1/nodes[/{node_id}]`): a node PUTs its state report
//! (which versions it serves, their load state and request counters); anyone reads the fleet's
//! latest reports, or forgets a node. Parsing and answering only; the rules live in
//! `domain::nodes`, the transaction, the events and the canary gates in `store::nodes`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{MlflowJson, MlflowQuery};
use super::wire::node;
use crate::domain::nodes::{ModelReport, NodeReport, VersionReport, VersionState};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::nodes::NodeState;

/// The body of `PUT /api/okla/v1/nodes/{node_id}`. Unknown fields are refused so a misspelt
/// field is not silently ignored; counters and histograms may be left out (a version still
/// loading has none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutNode {
    http_url: Option<String>,
    report_seconds: Option<f64>,
    models: Option<Vec<ModelWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelWire {
    model: Option<String>,
    revision: Option<i64>,
    versions: Option<Vec<VersionWire>>,
    unconfirmed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionWire {
    version: Option<i64>,
    state: Option<String>,
    error: Option<String>,
    load_seconds: Option<f64>,
    requests: Option<u64>,
    requests_per_second: Option<f64>,
    errors: Option<u64>,
    latency_bounds_seconds: Option<Vec<f64>>,
    latency_counts: Option<Vec<u64>>,
}

#[derive(Deserialize)]
pub(super) struct ListNodes {
    model: Option<String>,
}

pub(super) async fn put(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
    MlflowJson(request): MlflowJson<PutNode>,
) -> Result<Json<Value>> {
    let report = report_from_wire(request)?;
    let node = state.store.report_node(&node_id, report).await?;
    Ok(answer(&node))
}

pub(super) async fn list(
    State(state): State<AppState>,
    MlflowQuery(request): MlflowQuery<ListNodes>,
) -> Result<Json<Value>> {
    let model = request.model.as_deref().filter(|model| !model.is_empty());
    let nodes = state.store.list_nodes(model).await?;
    let list = okla_proto::wire::NodeList {
        nodes: nodes.iter().map(node).collect(),
    };
    Ok(Json(json!(list)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
) -> Result<Json<Value>> {
    let node = state.store.get_node(&node_id).await?;
    Ok(answer(&node))
}

/// Forgetting a node that is not known is not an error: DELETE is idempotent.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
) -> Result<Json<Value>> {
    state.store.delete_node(&node_id).await?;
    Ok(super::empty())
}

fn answer(state: &NodeState) -> Json<Value> {
    Json(json!(okla_proto::wire::NodeAnswer { node: node(state) }))
}

fn missing(field: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{field}'."))
}

/// The wire report as the domain's, with every required field present; the domain checks the
/// rules (`NodeReport::validated`, called by the store).
fn report_from_wire(request: PutNode) -> Result<NodeReport> {
    let models = request
        .models
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, model)| model_from_wire(model, &format!("models[{index}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(NodeReport {
        http_url: request.http_url,
        report_seconds: request.report_seconds,
        models,
    })
}

fn model_from_wire(model: ModelWire, field: &str) -> Result<ModelReport> {
    let versions = model
        .versions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, version)| version_from_wire(version, &format!("{field}.versions[{index}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelReport {
        model: model
            .model
            .ok_or_else(|| missing(&format!("{field}.model")))?,
        revision: model.revision,
        versions,
        unconfirmed: model.unconfirmed,
    })
}

fn version_from_wire(version: VersionWire, field: &str) -> Result<VersionReport> {
    let state_field = format!("{field}.state");
    let state = version.state.ok_or_else(|| missing(&state_field))?;
    Ok(VersionReport {
        version: version
            .version
            .ok_or_else(|| missing(&format!("{field}.version")))?,
        state: VersionState::parse(&state, &state_field).map_err(Error::invalid)?,
        error: version.error,
        load_seconds: version.load_seconds,
        requests: version.requests.unwrap_or_default(),
        requests_per_second: version.requests_per_second,
        errors: version.errors.unwrap_or_default(),
        latency_bounds_seconds: version.latency_bounds_seconds.unwrap_or_default(),
        latency_counts: version.latency_counts.unwrap_or_default(),
    })
}
