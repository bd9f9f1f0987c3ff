//! Experiments and runs through MLflow's tracking API: find or create an experiment, create a
//! run, log params and tags, end it; metrics go through the run's [`MetricLogger`].

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::Client;
use crate::metrics::MetricLogger;
use crate::wire::{Empty, KeyValue, now_ms};

/// Page size of `metrics/get-history`, as the mlflow client asks.
const HISTORY_PAGE_SIZE: &str = "25000";

/// An experiment's id; a string on the wire ("0" is MLflow's Default experiment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExperimentId(pub String);

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

/// What the registry keeps about a run (MLflow's `RunInfo`, the fields this crate uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: ExperimentId,
    #[serde(default)]
    pub run_name: String,
    pub status: RunStatus,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Where the run's artifacts live, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
    pub artifact_uri: String,
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// One point of a metric's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(
        deserialize_with = "crate::wire::double",
        serialize_with = "crate::wire::serialize_double"
    )]
    pub value: f64,
    #[serde(default)]
    pub timestamp: i64,
    #[serde(default)]
    pub step: i64,
}

/// A run being tracked: its info, and the logger its metrics go through. Cheap to clone;
/// clones share the logger.
#[derive(Debug, Clone)]
pub struct Run {
    client: Client,
    info: RunInfo,
    metrics: MetricLogger,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: RunWire,
}

#[derive(Deserialize)]
struct RunWire {
    info: RunInfo,
}

impl Client {
    /// The id of the experiment named `name`, created if there is none.
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<ExperimentId> {
        if let Some(id) = self.experiment_by_name(name).await? {
            return Ok(id);
        }
        #[derive(Deserialize)]
        struct Created {
            experiment_id: ExperimentId,
        }
        let created: Result<Created> = self
            .send_body(
                Method::POST,
                self.mlflow("experiments/create"),
                &serde_json::json!({ "name": name }),
            )
            .await;
        match created {
            Ok(created) => Ok(created.experiment_id),
            // Someone else created it since we looked.
            Err(error) if error.error_code() == Some("RESOURCE_ALREADY_EXISTS") => self
                .experiment_by_name(name)
                .await?
                .ok_or_else(|| Error::Invalid(format!("experiment '{name}' exists and does not"))),
            Err(error) => Err(error),
        }
    }

    async fn experiment_by_name(&self, name: &str) -> Result<Option<ExperimentId>> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        #[derive(Deserialize)]
        struct Experiment {
            experiment_id: ExperimentId,
        }
        let answer: Result<Answer> = self
            .get_json(
                self.mlflow("experiments/get-by-name"),
                &[("experiment_name", name)],
            )
            .await;
        match answer {
            Ok(answer) => Ok(Some(answer.experiment.experiment_id)),
            Err(error) if error.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Starts a run (`RUNNING`) in `experiment_id`, with `tags`. Its metric logger starts on
    /// the current tokio runtime.
    pub async fn create_run(
        &self,
        experiment_id: &ExperimentId,
        run_name: &str,
        tags: &[(&str, &str)],
    ) -> Result<Run> {
        let tags: Vec<KeyValue> = tags
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            })
            .collect();
        let answer: RunAnswer = self
            .send_body(
                Method::POST,
                self.mlflow("runs/create"),
                &serde_json::json!({
                    "experiment_id": experiment_id,
                    "run_name": run_name,
                    "start_time": now_ms(),
                    "tags": tags,
                }),
            )
            .await?;
        Ok(self.run_handle(answer.run.info))
    }

    /// A handle on an existing run, e.g. to resume logging to it.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let answer: RunAnswer = self
            .get_json(self.mlflow("runs/get"), &[("run_id", run_id)])
            .await?;
        Ok(self.run_handle(answer.run.info))
    }

    /// Every point of `run_id`'s metric `key`, in the registry's order (all pages).
    pub async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            metrics: Vec<Metric>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut metrics = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", HISTORY_PAGE_SIZE),
            ];
            if let Some(token) = &page_token {
                query.push(("page_token", token));
            }
            let page: Page = self
                .get_json(self.mlflow("metrics/get-history"), &query)
                .await?;
            metrics.extend(page.metrics);
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(metrics),
            }
        }
    }

    fn run_handle(&self, info: RunInfo) -> Run {
        Run {
            client: self.clone(),
            metrics: MetricLogger::spawn(self.clone(), info.run_id.clone()),
            info,
        }
    }
}

impl Run {
    pub fn id(&self) -> &str {
        &self.info.run_id
    }

    pub fn experiment_id(&self) -> &ExperimentId {
        &self.info.experiment_id
    }

    /// Where the run's artifacts live (`mlflow-artifacts:/<experiment>/<run>/artifacts`).
    pub fn artifact_uri(&self) -> &str {
        &self.info.artifact_uri
    }

    /// The run as the registry last described it to this handle.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The run's metric logger (a clone; see [`MetricLogger`]).
    pub fn metrics(&self) -> MetricLogger {
        self.metrics.clone()
    }

    /// Logs a param. MLflow refuses to change a param's value (`INVALID_PARAMETER_VALUE`);
    /// logging the same value again is fine.
    pub async fn log_param(&self, key: &str, value: &str) -> Result<()> {
        self.post_empty(
            "runs/log-parameter",
            serde_json::json!({ "run_id": self.id(), "key": key, "value": value }),
        )
        .await
    }

    /// Sets a tag, replacing its value if set.
    pub async fn set_tag(&self, key: &str, value: &str) -> Result<()> {
        self.post_empty(
            "runs/set-tag",
            serde_json::json!({ "run_id": self.id(), "key": key, "value": value }),
        )
        .await
    }

    /// Flushes the metrics, then ends the run with `status` (`Finished`, `Failed`, `Killed`)
    /// and an end time. The run is ended even when the flush fails; the flush's error is
    /// returned then, since some metrics were not recorded.
    pub async fn end_run(&self, status: RunStatus) -> Result<RunInfo> {
        let flushed = self.metrics.flush().await;
        #[derive(Deserialize)]
        struct Answer {
            run_info: RunInfo,
        }
        let answer: Answer = self
            .client
            .send_body(
                Method::POST,
                self.client.mlflow("runs/update"),
                &serde_json::json!({
                    "run_id": self.id(),
                    "status": status,
                    "end_time": now_ms(),
                }),
            )
            .await?;
        flushed?;
        Ok(answer.run_info)
    }

    async fn post_empty(&self, endpoint: &str, body: serde_json::Value) -> Result<()> {
        let _: Empty = self
            .client
            .send_body(Method::POST, self.client.mlflow(endpoint), &body)
            .await?;
        Ok(())
    }
}
