//! Listing what the registry holds: experiments, runs with their params and latest metrics,
//! and registered models (MLflow's `experiments/search`, `runs/search`, `runs/get` and
//! `registered-models/search`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http::Client;
use crate::registry::RegisteredModel;
use crate::tracking::{ExperimentId, Metric, RunInfo};
use crate::wire::KeyValue;

/// Page size of `experiments/search` and `runs/search` (the registry allows up to 50 000).
const TRACKING_PAGE_SIZE: u64 = 1000;

/// Page size of `registered-models/search` (the registry's maximum).
const MODELS_PAGE_SIZE: &str = "1000";

/// An experiment as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: ExperimentId,
    pub name: String,
    #[serde(default)]
    pub artifact_location: String,
    #[serde(default)]
    pub lifecycle_stage: String,
    #[serde(default)]
    pub creation_time: i64,
    #[serde(default)]
    pub last_update_time: i64,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// A run with its data: params, tags, and the latest value of each metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetails {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

/// What was logged to a run. `metrics` holds one point per key, the latest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl RunDetails {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.data
            .params
            .iter()
            .find(|param| param.key == key)
            .map(|param| param.value.as_str())
    }

    /// The latest value of metric `key`.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.data
            .metrics
            .iter()
            .find(|metric| metric.key == key)
            .map(|metric| metric.value)
    }
}

/// A `runs/search` query: which experiments, which runs, in what order, how many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    pub experiment_ids: Vec<ExperimentId>,
    /// MLflow's filter grammar, e.g. `metrics.rmse < 1 and params.alpha = '0.5'`; empty for all.
    pub filter: String,
    /// E.g. `metrics.rmse ASC`, `attributes.start_time DESC`.
    pub order_by: Vec<String>,
    /// At most this many runs (all pages up to it).
    pub max_results: u64,
}

impl Client {
    /// The experiment named `name`; an unknown name is `RESOURCE_DOES_NOT_EXIST`.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: Experiment,
        }
        let answer: Answer = self
            .get_json(
                self.mlflow("experiments/get-by-name"),
                &[("experiment_name", name)],
            )
            .await?;
        Ok(answer.experiment)
    }

    /// Every active experiment matching `filter` (e.g. `name LIKE '%pricing%'`; empty for
    /// all), all pages, in the registry's default order.
    pub async fn search_experiments(&self, filter: &str) -> Result<Vec<Experiment>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            experiments: Vec<Experiment>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut experiments = Vec::new();
        let mut page_token: Option<String> = None;
        let page_size = TRACKING_PAGE_SIZE.to_string();
        loop {
            let mut query = vec![("filter", filter), ("max_results", page_size.as_str())];
            if let Some(token) = &page_token {
                query.push(("page_token", token));
            }
            let page: Page = self
                .get_json(self.mlflow("experiments/search"), &query)
                .await?;
            experiments.extend(page.experiments);
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(experiments),
            }
        }
    }

    /// The active runs matching `query`, up to `query.max_results`, in its order.
    pub async fn search_runs(&self, query: &RunQuery) -> Result<Vec<RunDetails>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            runs: Vec<RunDetails>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        while (runs.len() as u64) < query.max_results {
            let wanted = (query.max_results - runs.len() as u64).min(TRACKING_PAGE_SIZE);
            let mut body = serde_json::json!({
                "experiment_ids": query.experiment_ids,
                "filter": query.filter,
                "order_by": query.order_by,
                "max_results": wanted,
            });
            if let Some(token) = &page_token {
                body["page_token"] = token.clone().into();
            }
            // A search changes nothing, but it is a POST: not retried, like every POST here.
            let page: Page = self
                .send_body(Method::POST, self.mlflow("runs/search"), &body)
                .await?;
            runs.extend(page.runs);
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => break,
            }
        }
        runs.truncate(usize::try_from(query.max_results).unwrap_or(usize::MAX));
        Ok(runs)
    }

    /// A run with its params, tags and the latest value of each metric (`runs/get`).
    pub async fn get_run_details(&self, run_id: &str) -> Result<RunDetails> {
        #[derive(Deserialize)]
        struct Answer {
            run: RunDetails,
        }
        let answer: Answer = self
            .get_json(self.mlflow("runs/get"), &[("run_id", run_id)])
            .await?;
        Ok(answer.run)
    }

    /// Every registered model matching `filter` (e.g. `name LIKE '%pricing%'`; empty for all),
    /// all pages, with its latest version per stage and its aliases.
    pub async fn search_registered_models(&self, filter: &str) -> Result<Vec<RegisteredModel>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            registered_models: Vec<RegisteredModel>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut models = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter), ("max_results", MODELS_PAGE_SIZE)];
            if let Some(token) = &page_token {
                query.push(("page_token", token));
            }
            let page: Page = self
                .get_json(self.mlflow("registered-models/search"), &query)
                .await?;
            models.extend(page.registered_models);
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(models),
            }
        }
    }
}

/// A filter matching names that contain `substring` (`name LIKE '%...%'`), with quotes
/// escaped; `%` and `_` in `substring` keep their `LIKE` meaning.
pub fn name_contains_filter(substring: &str) -> String {
    let escaped = substring.replace('\\', "\\\\").replace('\'', "''");
    format!("name LIKE '%{escaped}%'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_decode_with_latest_metrics() {
        let run: RunDetails = serde_json::from_str(
            r#"{"info": {"run_id": "r", "experiment_id": "1", "status": "FINISHED",
                "artifact_uri": "mlflow-artifacts:/1/r/artifacts"},
               "data": {"params": [{"key": "alpha", "value": "0.5"}],
                        "metrics": [{"key": "rmse", "value": "NaN", "timestamp": 1, "step": 2}]}}"#,
        )
        .unwrap();
        assert_eq!(run.param("alpha"), Some("0.5"));
        assert!(run.metric("rmse").is_some_and(f64::is_nan));
        let bare: RunDetails = serde_json::from_str(
            r#"{"info": {"run_id": "r", "experiment_id": "1", "status": "RUNNING",
                "artifact_uri": "x"}, "data": {}}"#,
        )
        .unwrap();
        assert!(bare.data.params.is_empty());
    }

    #[test]
    fn name_filters_escape_quotes() {
        assert_eq!(name_contains_filter("pri"), "name LIKE '%pri%'");
        assert_eq!(name_contains_filter("it's"), "name LIKE '%it''s%'");
    }
}
