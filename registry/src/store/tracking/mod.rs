//! Queries for experiments, runs, params, metrics, tags and run inputs/outputs: the request
//! types here, the queries by entity in `experiments.rs`, `runs.rs` and `metrics.rs`.

mod experiments;
mod metrics;
mod runs;

use crate::domain::tracking::{Metric, RunInfo, RunStatus};
use crate::domain::{KeyValue, LifecycleStage, ViewType};
use crate::error::{Error, Result};

/// What `runs/create` asks for.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub experiment_id: i64,
    pub user_id: String,
    pub run_name: Option<String>,
    pub start_time: i64,
    pub tags: Vec<KeyValue>,
}

/// Fields `runs/update` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// Metrics, params and tags of one `log-batch` call, already validated.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    /// Metrics that name a logged model are also recorded on that model.
    pub model_metrics: Vec<(String, Metric)>,
}

pub struct SearchRuns<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a str,
    pub view_type: ViewType,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

pub struct SearchExperiments<'a> {
    pub filter: &'a str,
    pub view_type: ViewType,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

pub(super) const EXPERIMENT_COLUMNS: &str = "experiments.experiment_id, experiments.name, experiments.artifact_location, \
    experiments.lifecycle_stage, experiments.creation_time, experiments.last_update_time";
pub(super) const RUN_COLUMNS: &str = "runs.run_uuid, runs.experiment_id, runs.name, runs.user_id, runs.status, runs.start_time, \
    runs.end_time, runs.artifact_uri, runs.lifecycle_stage";

pub(super) fn require_active(info: &RunInfo) -> Result<()> {
    if info.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The run {} must be in the 'active' state. Current state is deleted.",
            info.run_id
        )));
    }
    Ok(())
}
