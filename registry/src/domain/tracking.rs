//! Experiments, runs, params, metrics and tags, with MLflow's validation rules and limits.

use super::{KeyValue, LifecycleStage};

/// MLflow's limits on one `log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// MLflow's limits on key and value lengths.
pub const MAX_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;

/// The run-name tag MLflow keeps in step with `runs.name`.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

#[derive(Debug, Clone)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    pub fn parse(text: &str) -> Result<RunStatus, String> {
        match text.to_ascii_uppercase().as_str() {
            "RUNNING" => Ok(RunStatus::Running),
            "SCHEDULED" => Ok(RunStatus::Scheduled),
            "FINISHED" => Ok(RunStatus::Finished),
            "FAILED" => Ok(RunStatus::Failed),
            "KILLED" => Ok(RunStatus::Killed),
            _ => Err(format!(
                "Invalid run status '{text}'. Must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: i64,
    pub run_name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

/// One metric point. `value` is NaN when the client logged NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

impl Metric {
    /// MLflow's "latest" order: by step, then timestamp, then value.
    pub fn is_newer_than(&self, other: &Metric) -> bool {
        (self.step, self.timestamp)
            .cmp(&(other.step, other.timestamp))
            .then_with(|| sortable_value(self.value).total_cmp(&sortable_value(other.value)))
            == std::cmp::Ordering::Greater
    }
}

/// NaN is stored as 0 with a flag, as MLflow's SQL store does, so it orders as 0.
pub fn sortable_value(value: f64) -> f64 {
    if value.is_nan() { 0.0 } else { value }
}

#[derive(Debug, Clone, Default)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub info: RunInfo,
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<String>,
    pub model_outputs: Vec<(String, i64)>,
}

/// An MLflow 3 logged model: the artifacts `log_model` writes, with their own params, metrics, tags.
#[derive(Debug, Clone)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub status: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub tags: Vec<KeyValue>,
    pub params: Vec<KeyValue>,
    pub metrics: Vec<(Metric, String)>,
}

/// Logged-model statuses as MLflow spells them on the wire.
pub const LOGGED_MODEL_STATUSES: [&str; 3] = [
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
];

/// Validates a param, metric or tag key as MLflow does: word characters, `.`, `-`, ` `, `:`, `/`,
/// no leading `/` and no `..` segment (keys become file paths in some stores).
pub fn validate_key(kind: &str, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("Missing value for required parameter '{kind} key'"));
    }
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(format!(
            "{kind} key '{}...' had length {}, which exceeded length limit of {MAX_KEY_LENGTH}",
            truncate(key, 40),
            key.chars().count()
        ));
    }
    let allowed = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ' ' | ':' | '/'));
    if !allowed {
        return Err(format!(
            "Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        ));
    }
    if key.starts_with('/') || key.split('/').any(|segment| segment == "..") {
        return Err(format!(
            "Invalid {kind} name: '{key}'. Names cannot be absolute paths or contain '..' segments."
        ));
    }
    Ok(())
}

pub fn validate_value_length(
    kind: &str,
    key: &str,
    value: &str,
    limit: usize,
) -> Result<(), String> {
    let length = value.chars().count();
    if length > limit {
        return Err(format!(
            "{kind} value '{}...' for key '{key}' had length {length}, which exceeded length limit of {limit}",
            truncate(value, 40)
        ));
    }
    Ok(())
}

/// PostgreSQL cannot store a NUL character in text, so neither backend accepts one: refusing it
/// here keeps SQLite and PostgreSQL alike and turns what would be a database error into a 400.
fn validate_no_nul(kind: &str, key: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!(
            "{kind} value for key '{key}' contains a NUL character, which cannot be stored"
        ));
    }
    Ok(())
}

pub fn validate_param(param: &KeyValue) -> Result<(), String> {
    validate_key("Param", &param.key)?;
    validate_no_nul("Param", &param.key, &param.value)?;
    validate_value_length("Param", &param.key, &param.value, MAX_PARAM_VALUE_LENGTH)
}

pub fn validate_tag(tag: &KeyValue) -> Result<(), String> {
    validate_key("Tag", &tag.key)?;
    validate_no_nul("Tag", &tag.key, &tag.value)?;
    validate_value_length("Tag", &tag.key, &tag.value, MAX_TAG_VALUE_LENGTH)
}

pub fn validate_metric(metric: &Metric) -> Result<(), String> {
    validate_key("Metric", &metric.key)
}

pub fn validate_batch_sizes(metrics: usize, params: usize, tags: usize) -> Result<(), String> {
    let over = |what: &str, got: usize, limit: usize| {
        format!(
            "A batch logging request can contain at most {limit} {what}. Got {got} {what}. Please split up {what} across multiple requests and try again."
        )
    };
    if metrics > MAX_METRICS_PER_BATCH {
        return Err(over("metrics", metrics, MAX_METRICS_PER_BATCH));
    }
    if params > MAX_PARAMS_PER_BATCH {
        return Err(over("params", params, MAX_PARAMS_PER_BATCH));
    }
    if tags > MAX_TAGS_PER_BATCH {
        return Err(over("tags", tags, MAX_TAGS_PER_BATCH));
    }
    let total = metrics + params + tags;
    if total > MAX_ENTITIES_PER_BATCH {
        return Err(format!(
            "A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in total. Got {total}."
        ));
    }
    Ok(())
}

pub fn validate_experiment_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(
            "Invalid experiment name: ''. Experiment name must be a non-empty string".to_owned(),
        );
    }
    if name.chars().count() > MAX_EXPERIMENT_NAME_LENGTH {
        return Err(format!(
            "Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        ));
    }
    if name.contains('\0') {
        return Err("Invalid experiment name: it contains a NUL character".to_owned());
    }
    Ok(())
}

/// Experiment ids travel as strings; anything but an integer is refused as MLflow does.
pub fn parse_experiment_id(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("Experiment ID must be a valid integer, got '{text}'"))
}

/// Run ids are 32 lowercase hex characters; checking the shape keeps junk out of queries and paths.
pub fn validate_run_id(run_id: &str) -> Result<(), String> {
    let well_formed = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if well_formed {
        Ok(())
    } else {
        Err(format!("Invalid run ID: '{}'", truncate(run_id, 80)))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(step: i64, timestamp: i64, value: f64) -> Metric {
        Metric {
            key: "m".into(),
            value,
            timestamp,
            step,
        }
    }

    #[test]
    fn latest_metric_orders_by_step_then_timestamp_then_value() {
        let table = [
            (metric(2, 0, 0.0), metric(1, 99, 9.0), true),
            (metric(1, 5, 0.0), metric(1, 4, 9.0), true),
            (metric(1, 5, 2.0), metric(1, 5, 1.0), true),
            (metric(1, 5, 1.0), metric(1, 5, 1.0), false),
            (metric(0, 0, 5.0), metric(1, 0, 0.0), false),
            (metric(1, 1, f64::NAN), metric(1, 1, -1.0), true),
        ];
        for (candidate, current, expected) in table {
            assert_eq!(
                candidate.is_newer_than(&current),
                expected,
                "{candidate:?} vs {current:?}"
            );
        }
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        let table = [
            ("rmse", true),
            ("train/loss epoch:1", true),
            ("mlflow.runName", true),
            ("", false),
            ("/abs", false),
            ("a/../b", false),
            ("bad$char", false),
            (&"k".repeat(251), false),
        ];
        for (key, ok) in table {
            assert_eq!(validate_key("Param", key).is_ok(), ok, "{key}");
        }
    }

    #[test]
    fn batch_limits() {
        assert!(validate_batch_sizes(1000, 0, 0).is_ok());
        assert!(
            validate_batch_sizes(1001, 0, 0)
                .unwrap_err()
                .contains("at most 1000 metrics")
        );
        assert!(
            validate_batch_sizes(0, 101, 0)
                .unwrap_err()
                .contains("params")
        );
        assert!(
            validate_batch_sizes(0, 0, 101)
                .unwrap_err()
                .contains("tags")
        );
        assert!(
            validate_batch_sizes(900, 100, 100)
                .unwrap_err()
                .contains("in total")
        );
    }

    #[test]
    fn nul_characters_are_refused_in_values_and_names() {
        let pair = |value: &str| KeyValue {
            key: "k".to_owned(),
            value: value.to_owned(),
        };
        assert!(validate_tag(&pair("a\0b")).unwrap_err().contains("NUL"));
        assert!(validate_param(&pair("\0")).unwrap_err().contains("NUL"));
        assert!(validate_tag(&pair("plain")).is_ok());
        assert!(validate_experiment_name("a\0b").is_err());
        assert!(validate_experiment_name("fraud").is_ok());
    }

    #[test]
    fn experiment_ids_are_integers() {
        assert_eq!(parse_experiment_id("0"), Ok(0));
        assert_eq!(parse_experiment_id("42"), Ok(42));
        assert!(parse_experiment_id("abc").is_err());
        assert!(parse_experiment_id("-1").is_err());
    }
}
