//! okla-native deployment endpoints (`/api/okla/v1/deployments/...`): read the effective
//! deployment of every model or of one, set or replace the explicit one, delete it (back to the
//! default), and roll it back. Parsing and answering only; the rules live in
//! `domain::deployments`, the transactions in `store::deployments`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Actor, Fields, MlflowJson, lenient_opt_i64};
use super::wire::deployment;
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::domain::deployments::{CanaryGate, DeploymentSpec, Route, Sticky};
use crate::domain::model_registry;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::model_registry::Change;

/// The body of `PUT /api/okla/v1/deployments/{model}`: the spec, plus what the change records.
/// Unknown fields are refused so a misspelt field (`"weigth"`) is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutDeployment {
    routes: Option<Vec<RouteWire>>,
    #[serde(default)]
    sticky: Option<StickyWire>,
    #[serde(default)]
    shadow: Option<Value>,
    #[serde(default)]
    canary_gate: Option<CanaryGateWire>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    expected_revision: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteWire {
    version: Option<Value>,
    weight: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StickyWire {
    routing_key_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryGateWire {
    version: Option<Value>,
    max_error_rate_delta: Option<f64>,
    max_p99_ratio: Option<f64>,
    min_requests: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct DeleteDeployment {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    expected_revision: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackDeployment {
    reason: Option<String>,
    #[serde(default)]
    to_version: Option<Value>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    expected_revision: Option<i64>,
}

pub(super) async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    let deployments = state.store.list_deployments().await?;
    let deployments = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            deployments,
            |deployment| deployment.name.clone(),
        )
        .await?;
    let list = okla_proto::wire::DeploymentList {
        deployments: deployments.iter().map(deployment).collect(),
    };
    Ok(Json(json!(list)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let name = model_name(name)?;
    let deployment = state.store.get_deployment(&name).await?;
    Ok(answer(&deployment))
}

pub(super) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    actor: Actor,
    MlflowJson(request): MlflowJson<PutDeployment>,
) -> Result<Json<Value>> {
    let name = model_name(name)?;
    let spec = spec_from_wire(&request)?;
    let change = Change {
        actor: &actor.0,
        comment: request.comment.as_deref(),
    };
    let deployment = state
        .store
        .set_deployment(&name, spec, request.expected_revision, &change)
        .await?;
    Ok(answer(&deployment))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    actor: Actor,
    Fields(request): Fields<DeleteDeployment>,
) -> Result<Json<Value>> {
    remove(&state, name, &actor, &request, Removal::Delete).await
}

/// `POST /api/okla/v1/deployments/{name}/undeploy`: the fleet stops serving the model.
pub(super) async fn undeploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    actor: Actor,
    Fields(request): Fields<DeleteDeployment>,
) -> Result<Json<Value>> {
    remove(&state, name, &actor, &request, Removal::Undeploy).await
}

/// The two ways a deployment goes: back to the default, or the model out of the fleet.
enum Removal {
    Delete,
    Undeploy,
}

async fn remove(
    state: &AppState,
    name: String,
    actor: &Actor,
    request: &DeleteDeployment,
    removal: Removal,
) -> Result<Json<Value>> {
    let name = model_name(name)?;
    let change = Change {
        actor: &actor.0,
        comment: request.comment.as_deref(),
    };
    let revision = request.expected_revision;
    let deployment = match removal {
        Removal::Delete => {
            state
                .store
                .delete_deployment(&name, revision, &change)
                .await?
        }
        Removal::Undeploy => state.store.undeploy(&name, revision, &change).await?,
    };
    Ok(answer(&deployment))
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    actor: Actor,
    MlflowJson(request): MlflowJson<RollbackDeployment>,
) -> Result<Json<Value>> {
    let name = model_name(name)?;
    let to_version = request
        .to_version
        .as_ref()
        .map(|version| version_number(version, "to_version"))
        .transpose()?;
    let change = Change {
        actor: &actor.0,
        comment: request.reason.as_deref(),
    };
    let deployment = state
        .store
        .rollback_deployment(&name, to_version, request.expected_revision, &change)
        .await?;
    Ok(answer(&deployment))
}

fn answer(state: &crate::store::deployments::DeploymentState) -> Json<Value> {
    Json(json!(okla_proto::wire::DeploymentAnswer {
        deployment: deployment(state),
    }))
}

fn model_name(name: String) -> Result<String> {
    model_registry::validate_model_name(&name).map_err(Error::invalid)?;
    Ok(name)
}

/// Versions arrive as numbers (3) or, as everywhere in MLflow's API, as strings ("3").
fn version_number(value: &Value, field: &str) -> Result<i64> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => {
            return Err(Error::invalid(format!(
                "Invalid deployment: '{field}' must be a version number, got {other}"
            )));
        }
    };
    model_registry::parse_version(&text).map_err(|_| {
        Error::invalid(format!(
            "Invalid deployment: '{field}' must be a version number (1 or more), got {value}"
        ))
    })
}

fn missing(field: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{field}'."))
}

/// The wire spec as the domain's, with every field present; the domain checks the rules.
fn spec_from_wire(request: &PutDeployment) -> Result<DeploymentSpec> {
    let routes = request.routes.as_ref().ok_or_else(|| missing("routes"))?;
    let routes = routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let field = format!("routes[{index}].version");
            let version = route.version.as_ref().ok_or_else(|| missing(&field))?;
            Ok(Route {
                version: version_number(version, &field)?,
                weight: route
                    .weight
                    .ok_or_else(|| missing(&format!("routes[{index}].weight")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sticky = request
        .sticky
        .as_ref()
        .map(|sticky| {
            Ok::<_, Error>(Sticky {
                routing_key_header: sticky
                    .routing_key_header
                    .clone()
                    .ok_or_else(|| missing("sticky.routing_key_header"))?,
            })
        })
        .transpose()?;
    let shadow = request
        .shadow
        .as_ref()
        .map(|shadow| version_number(shadow, "shadow"))
        .transpose()?;
    let canary_gate = request
        .canary_gate
        .as_ref()
        .map(|gate| {
            let version = gate
                .version
                .as_ref()
                .ok_or_else(|| missing("canary_gate.version"))?;
            Ok::<_, Error>(CanaryGate {
                version: version_number(version, "canary_gate.version")?,
                max_error_rate_delta: gate
                    .max_error_rate_delta
                    .ok_or_else(|| missing("canary_gate.max_error_rate_delta"))?,
                max_p99_ratio: gate
                    .max_p99_ratio
                    .ok_or_else(|| missing("canary_gate.max_p99_ratio"))?,
                min_requests: gate
                    .min_requests
                    .ok_or_else(|| missing("canary_gate.min_requests"))?,
            })
        })
        .transpose()?;
    Ok(DeploymentSpec {
        routes,
        sticky,
        shadow,
        canary_gate,
    })
}
