//! `GET /api/okla/v1/events`: the outbox as a feed, for serving nodes that poll instead of
//! consuming RabbitMQ. Events come in `sequence` order; a client passes the `next_after` of one
//! page as `after` of the next. Delivery is at least once, as on RabbitMQ: dedupe by `event_id`.

use axum::Json;
use axum::extract::State;
use okla_proto::events as proto;
use okla_proto::wire::{EventsPage, FeedEvent};
use prost::Message;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::MlflowQuery;
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::outbox::OutboxEvent;

const DEFAULT_MAX_RESULTS: u32 = 100;
const MAX_RESULTS: u32 = 1000;

#[derive(Deserialize)]
pub(super) struct FeedRequest {
    after: Option<String>,
    max_results: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    MlflowQuery(request): MlflowQuery<FeedRequest>,
) -> Result<Json<Value>> {
    let after = match request.after.as_deref().filter(|after| !after.is_empty()) {
        None => 0,
        Some(after) => after
            .parse::<i64>()
            .ok()
            .filter(|after| *after >= 0)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid value {after} for parameter 'after' supplied. It must be a sequence number (an integer >= 0)"
                ))
            })?,
    };
    let limit = match request.max_results.as_deref().filter(|max| !max.is_empty()) {
        None => DEFAULT_MAX_RESULTS,
        Some(max) => match max.parse::<u32>() {
            Ok(0) => DEFAULT_MAX_RESULTS,
            Ok(max) if max <= MAX_RESULTS => max,
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid value {max} for parameter 'max_results' supplied. It must be at most {MAX_RESULTS}"
                )));
            }
        },
    };
    let events = state.store.events_after(after, limit).await?;
    // The cursor moves past events the caller may not read, so a page of only those does not
    // stall a follower.
    let next_after = events.last().map_or(after, |event| event.sequence);
    let events = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            events,
            |event| event.model_name.clone(),
        )
        .await?;
    let events = events.iter().map(feed_event).collect::<Result<Vec<_>>>()?;
    Ok(Json(json!(EventsPage { events, next_after })))
}

fn feed_event(row: &OutboxEvent) -> Result<FeedEvent> {
    let event = proto::ModelEvent::decode(row.payload.as_slice()).map_err(|error| {
        Error::Internal(anyhow::anyhow!(
            "outbox event {} does not decode: {error}",
            row.sequence
        ))
    })?;
    Ok(FeedEvent {
        sequence: row.sequence,
        event_id: row.event_id.clone(),
        model_name: row.model_name.clone(),
        model_sequence: row.model_sequence,
        routing_key: row.routing_key.clone(),
        occurred_at_ms: event.occurred_at_ms,
        actor: event.actor.clone(),
        published_at_ms: row.published_at,
        event: body_json(event.body.as_ref()),
    })
}

/// The body as `{"<oneof field name>": {...fields}}`, snake_case as in the .proto.
fn body_json(body: Option<&proto::model_event::Body>) -> Value {
    use proto::model_event::Body;
    match body {
        Some(Body::VersionCreated(created)) => json!({ "version_created": {
            "version": created.version,
            "source": created.source,
            "run_id": created.run_id,
            "storage_location": created.storage_location,
            "model_id": created.model_id,
        }}),
        Some(Body::StageTransitioned(transitioned)) => json!({ "stage_transitioned": {
            "version": transitioned.version,
            "from_stage": transitioned.from_stage,
            "to_stage": transitioned.to_stage,
            "comment": transitioned.comment,
        }}),
        Some(Body::AliasSet(set)) => json!({ "alias_set": {
            "alias": set.alias,
            "version": set.version,
            "previous_version": set.previous_version,
        }}),
        Some(Body::AliasDeleted(deleted)) => json!({ "alias_deleted": {
            "alias": deleted.alias,
            "version": deleted.version,
        }}),
        Some(Body::VersionDeleted(deleted)) => {
            json!({ "version_deleted": { "version": deleted.version } })
        }
        Some(Body::ModelRenamed(renamed)) => {
            json!({ "model_renamed": { "new_name": renamed.new_name } })
        }
        Some(Body::ModelDeleted(_)) => json!({ "model_deleted": {} }),
        Some(Body::DeploymentUpdated(updated)) => json!({ "deployment_updated": {
            "revision": updated.revision,
            "routes": routes_json(&updated.routes),
            "sticky_routing_key_header": updated.sticky_routing_key_header,
            "shadow_version": updated.shadow_version,
            "canary_gate": updated.canary_gate.as_ref().map(|gate| json!({
                "version": gate.version,
                "max_error_rate_delta": gate.max_error_rate_delta,
                "max_p99_ratio": gate.max_p99_ratio,
                "min_requests": gate.min_requests,
            })),
            "comment": updated.comment,
        }}),
        Some(Body::DeploymentDeleted(deleted)) => json!({ "deployment_deleted": {
            "revision": deleted.revision,
            "comment": deleted.comment,
            "undeployed": deleted.undeployed,
        }}),
        Some(Body::DeploymentRolledBack(rolled_back)) => json!({ "deployment_rolled_back": {
            "revision": rolled_back.revision,
            "from_routes": routes_json(&rolled_back.from_routes),
            "to_version": rolled_back.to_version,
            "reason": rolled_back.reason,
            "sticky_routing_key_header": rolled_back.sticky_routing_key_header,
            "shadow_version": rolled_back.shadow_version,
        }}),
        Some(Body::ModelDeployed(deployed)) => json!({ "model_deployed": {
            "node_id": deployed.node_id,
            "version": deployed.version,
            "load_seconds": deployed.load_seconds,
            "revision": deployed.revision,
        }}),
        Some(Body::ModelLoadFailed(failed)) => json!({ "model_load_failed": {
            "node_id": failed.node_id,
            "version": failed.version,
            "error": failed.error,
        }}),
        // A body this build does not know (written by a newer registry): shown as empty.
        None => json!({}),
    }
}

fn routes_json(routes: &[proto::DeploymentRoute]) -> Value {
    routes
        .iter()
        .map(|route| json!({ "version": route.version, "weight": route.weight }))
        .collect()
}
