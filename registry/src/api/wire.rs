//! MLflow's JSON shapes (proto3 JSON: snake_case fields, int64 as numbers, empty fields omitted),
//! built from domain types. Only this module knows how entities look on the wire.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use okla_proto::wire;

use super::extract::serialize_f64;
use crate::domain::KeyValue;
use crate::domain::model_registry::{HistoryEntry, ModelVersion, RegisteredModel, VersionFile};
use crate::domain::nodes::VersionState;
use crate::domain::tracking::{DatasetInput, Experiment, LoggedModel, Metric, Run, RunInfo};
use crate::store::deployments::DeploymentState;
use crate::store::nodes::NodeState;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KeyValueWire {
    pub(super) key: String,
    #[serde(default)]
    pub(super) value: String,
}

impl From<&KeyValue> for KeyValueWire {
    fn from(pair: &KeyValue) -> Self {
        KeyValueWire {
            key: pair.key.clone(),
            value: pair.value.clone(),
        }
    }
}

impl From<KeyValueWire> for KeyValue {
    fn from(pair: KeyValueWire) -> Self {
        KeyValue {
            key: pair.key,
            value: pair.value,
        }
    }
}

fn pairs(pairs: &[KeyValue]) -> Vec<KeyValueWire> {
    pairs.iter().map(KeyValueWire::from).collect()
}

#[derive(Serialize)]
pub(super) struct ExperimentWire {
    experiment_id: String,
    name: String,
    artifact_location: String,
    lifecycle_stage: &'static str,
    last_update_time: i64,
    creation_time: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
}

impl From<&Experiment> for ExperimentWire {
    fn from(experiment: &Experiment) -> Self {
        ExperimentWire {
            experiment_id: experiment.experiment_id.to_string(),
            name: experiment.name.clone(),
            artifact_location: experiment.artifact_location.clone(),
            lifecycle_stage: experiment.lifecycle_stage.as_str(),
            last_update_time: experiment.last_update_time,
            creation_time: experiment.creation_time,
            tags: pairs(&experiment.tags),
        }
    }
}

#[derive(Serialize)]
pub(super) struct RunInfoWire {
    run_uuid: String,
    run_id: String,
    experiment_id: String,
    run_name: String,
    user_id: String,
    status: &'static str,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: String,
    lifecycle_stage: &'static str,
}

impl From<&RunInfo> for RunInfoWire {
    fn from(info: &RunInfo) -> Self {
        RunInfoWire {
            run_uuid: info.run_id.clone(),
            run_id: info.run_id.clone(),
            experiment_id: info.experiment_id.to_string(),
            run_name: info.run_name.clone(),
            user_id: info.user_id.clone(),
            status: info.status.as_str(),
            start_time: info.start_time,
            end_time: info.end_time,
            artifact_uri: info.artifact_uri.clone(),
            lifecycle_stage: info.lifecycle_stage.as_str(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct MetricWire {
    key: String,
    #[serde(serialize_with = "serialize_f64")]
    value: f64,
    timestamp: i64,
    step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
}

impl From<&Metric> for MetricWire {
    fn from(metric: &Metric) -> Self {
        MetricWire {
            key: metric.key.clone(),
            value: metric.value,
            timestamp: metric.timestamp,
            step: metric.step,
            model_id: None,
            run_id: None,
        }
    }
}

#[derive(Serialize)]
struct RunDataWire {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<KeyValueWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
}

#[derive(Serialize)]
struct DatasetWire {
    name: String,
    digest: String,
    source_type: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
}

#[derive(Serialize)]
struct DatasetInputWire {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
    dataset: DatasetWire,
}

impl From<&DatasetInput> for DatasetInputWire {
    fn from(input: &DatasetInput) -> Self {
        DatasetInputWire {
            tags: pairs(&input.tags),
            dataset: DatasetWire {
                name: input.name.clone(),
                digest: input.digest.clone(),
                source_type: input.source_type.clone(),
                source: input.source.clone(),
                schema: input.schema.clone(),
                profile: input.profile.clone(),
            },
        }
    }
}

#[derive(Serialize)]
struct ModelIdWire {
    model_id: String,
}

#[derive(Serialize)]
struct ModelOutputWire {
    model_id: String,
    step: i64,
}

#[derive(Serialize)]
struct RunInputsWire {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_inputs: Vec<DatasetInputWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_inputs: Vec<ModelIdWire>,
}

#[derive(Serialize)]
struct RunOutputsWire {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_outputs: Vec<ModelOutputWire>,
}

#[derive(Serialize)]
pub(super) struct RunWire {
    info: RunInfoWire,
    data: RunDataWire,
    inputs: RunInputsWire,
    outputs: RunOutputsWire,
}

impl From<&Run> for RunWire {
    fn from(run: &Run) -> Self {
        RunWire {
            info: RunInfoWire::from(&run.info),
            data: RunDataWire {
                metrics: run.metrics.iter().map(MetricWire::from).collect(),
                params: pairs(&run.params),
                tags: pairs(&run.tags),
            },
            inputs: RunInputsWire {
                dataset_inputs: run
                    .dataset_inputs
                    .iter()
                    .map(DatasetInputWire::from)
                    .collect(),
                model_inputs: run
                    .model_inputs
                    .iter()
                    .map(|model_id| ModelIdWire {
                        model_id: model_id.clone(),
                    })
                    .collect(),
            },
            outputs: RunOutputsWire {
                model_outputs: run
                    .model_outputs
                    .iter()
                    .map(|(model_id, step)| ModelOutputWire {
                        model_id: model_id.clone(),
                        step: *step,
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Serialize)]
struct LoggedModelInfoWire {
    model_id: String,
    experiment_id: String,
    name: String,
    creation_timestamp_ms: i64,
    last_updated_timestamp_ms: i64,
    artifact_uri: String,
    status: String,
    model_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
}

#[derive(Serialize)]
struct LoggedModelDataWire {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<KeyValueWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricWire>,
}

#[derive(Serialize)]
pub(super) struct LoggedModelWire {
    info: LoggedModelInfoWire,
    data: LoggedModelDataWire,
}

impl From<&LoggedModel> for LoggedModelWire {
    fn from(model: &LoggedModel) -> Self {
        LoggedModelWire {
            info: LoggedModelInfoWire {
                model_id: model.model_id.clone(),
                experiment_id: model.experiment_id.to_string(),
                name: model.name.clone(),
                creation_timestamp_ms: model.creation_timestamp,
                last_updated_timestamp_ms: model.last_updated_timestamp,
                artifact_uri: model.artifact_location.clone(),
                status: model.status.clone(),
                model_type: model.model_type.clone().unwrap_or_default(),
                source_run_id: model.source_run_id.clone(),
                tags: pairs(&model.tags),
            },
            data: LoggedModelDataWire {
                params: pairs(&model.params),
                metrics: model
                    .metrics
                    .iter()
                    .map(|(metric, run_id)| MetricWire {
                        model_id: Some(model.model_id.clone()),
                        run_id: Some(run_id.clone()),
                        ..MetricWire::from(metric)
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Serialize)]
pub(super) struct ModelVersionWire {
    name: String,
    version: String,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    current_stage: String,
    description: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
    run_link: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<String>,
}

impl From<&ModelVersion> for ModelVersionWire {
    fn from(version: &ModelVersion) -> Self {
        ModelVersionWire {
            name: version.name.clone(),
            version: version.version.to_string(),
            creation_timestamp: version.creation_timestamp,
            last_updated_timestamp: version.last_updated_timestamp,
            user_id: version.user_id.clone(),
            current_stage: version.current_stage.clone(),
            description: version.description.clone().unwrap_or_default(),
            source: version.source.clone(),
            run_id: version.run_id.clone().filter(|run_id| !run_id.is_empty()),
            status: version.status.clone(),
            status_message: version.status_message.clone(),
            tags: pairs(&version.tags),
            run_link: version.run_link.clone().unwrap_or_default(),
            aliases: version.aliases.clone(),
            model_id: version.model_id.clone(),
        }
    }
}

#[derive(Serialize)]
struct AliasWire {
    alias: String,
    version: String,
}

#[derive(Serialize)]
pub(super) struct RegisteredModelWire {
    name: String,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    latest_versions: Vec<ModelVersionWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueWire>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<AliasWire>,
}

impl From<&RegisteredModel> for RegisteredModelWire {
    fn from(model: &RegisteredModel) -> Self {
        RegisteredModelWire {
            name: model.name.clone(),
            creation_timestamp: model.creation_timestamp,
            last_updated_timestamp: model.last_updated_timestamp,
            description: model.description.clone(),
            latest_versions: model
                .latest_versions
                .iter()
                .map(ModelVersionWire::from)
                .collect(),
            tags: pairs(&model.tags),
            aliases: model
                .aliases
                .iter()
                .map(|(alias, version)| AliasWire {
                    alias: alias.clone(),
                    version: version.to_string(),
                })
                .collect(),
        }
    }
}

/// A version file as okla's `/files` endpoint answers it.
pub(super) fn version_file(file: &VersionFile) -> wire::VersionFile {
    wire::VersionFile {
        path: file.path.clone(),
        // Sizes come from the artifact store and are never negative.
        size: u64::try_from(file.size).unwrap_or_default(),
        sha256: file.sha256.clone(),
    }
}

/// A history entry as okla's `/history` endpoint answers it.
pub(super) fn history_entry(entry: &HistoryEntry) -> wire::HistoryEntry {
    wire::HistoryEntry {
        id: entry.id,
        name: entry.name.clone(),
        version: entry
            .version
            .and_then(|version| u64::try_from(version).ok()),
        kind: entry.kind.clone(),
        from: entry.from_value.clone(),
        to: entry.to_value.clone(),
        actor: entry.actor.clone(),
        timestamp: entry.time,
        comment: entry.comment.clone(),
    }
}

/// A page of a search or list answer: `{"<field>": [...], "next_page_token": "..."}`, with an
/// empty list omitted as proto3 JSON does. Serialised straight to the response body, since
/// pages can hold tens of thousands of entries.
pub(super) struct Listing<T> {
    pub(super) field: &'static str,
    pub(super) items: Vec<T>,
    pub(super) next_page_token: Option<String>,
}

impl<T> Listing<T> {
    /// Converts a page of domain entities into their wire form.
    pub(super) fn of<D>(field: &'static str, page: crate::store::Page<D>) -> Listing<T>
    where
        T: for<'a> From<&'a D>,
    {
        Listing {
            field,
            items: page.items.iter().map(T::from).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

impl<T: Serialize> Serialize for Listing<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.items.is_empty() {
            map.serialize_entry(self.field, &self.items)?;
        }
        if let Some(token) = &self.next_page_token {
            map.serialize_entry("next_page_token", token)?;
        }
        map.end()
    }
}

/// A model's effective deployment: `source` is `explicit`, `champion`, `production`,
/// `undeployed` (explicitly taken out of the fleet) or `none` (nothing to serve; serving nodes
/// keep what they serve until an undeploy). `undeployed` and `none` have no routes. Versions are JSON numbers. The domain
/// validated every number, so none is negative.
pub(super) fn deployment(state: &DeploymentState) -> wire::Deployment {
    let effective = state.effective.as_ref();
    let spec = effective.map(|effective| &effective.spec);
    wire::Deployment {
        name: state.name.clone(),
        source: match effective {
            Some(effective) => effective.source.as_str(),
            None if state.undeployed => "undeployed",
            None => "none",
        }
        .to_owned(),
        revision: number(state.revision),
        routes: spec
            .map(|spec| {
                spec.routes
                    .iter()
                    .map(|route| wire::Route {
                        version: number(route.version),
                        weight: u32::try_from(route.weight).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sticky: spec
            .and_then(|spec| spec.sticky.as_ref())
            .map(|sticky| wire::Sticky {
                routing_key_header: sticky.routing_key_header.clone(),
            }),
        shadow: spec.and_then(|spec| spec.shadow).map(number),
        canary_gate: spec
            .and_then(|spec| spec.canary_gate)
            .map(|gate| wire::CanaryGate {
                version: number(gate.version),
                max_error_rate_delta: gate.max_error_rate_delta,
                max_p99_ratio: gate.max_p99_ratio,
                min_requests: number(gate.min_requests),
            }),
        updated_at: state.updated_at,
        updated_by: state.updated_by.clone(),
    }
}

/// A serving node's latest report: its models as reported, plus when it reported and whether
/// it is stale (three reports overdue). Versions are JSON numbers; unknown values are `null`.
pub(super) fn node(node: &NodeState) -> wire::Node {
    let report = &node.report;
    wire::Node {
        node_id: node.node_id.clone(),
        http_url: report.http_url.clone(),
        report_seconds: report.interval_seconds(),
        reported_at_ms: node.reported_at,
        stale: node.stale,
        models: report
            .models
            .iter()
            .map(|model| wire::NodeModel {
                model: model.model.clone(),
                revision: model.revision.map(number),
                versions: model
                    .versions
                    .iter()
                    .map(|version| wire::NodeVersion {
                        version: number(version.version),
                        state: match version.state {
                            VersionState::Loading => wire::VersionState::Loading,
                            VersionState::Serving => wire::VersionState::Serving,
                            VersionState::Failed => wire::VersionState::Failed,
                        },
                        error: version.error.clone(),
                        load_seconds: version.load_seconds,
                        requests: version.requests,
                        errors: version.errors,
                        requests_per_second: version.requests_per_second,
                        latency_bounds_seconds: version.latency_bounds_seconds.clone(),
                        latency_counts: version.latency_counts.clone(),
                    })
                    .collect(),
                unconfirmed: model.unconfirmed.clone(),
            })
            .collect(),
    }
}

/// A version, revision or count the domain has validated as not negative.
fn number(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}
