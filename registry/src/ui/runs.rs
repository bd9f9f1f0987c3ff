//! `/runs/{run_id}` (info, params, tags, metrics with chart placeholders, the artifact browser,
//! the model versions registered from the run) and `/compare` (2 to 50 runs side by side:
//! params, metric ranges, overlaid charts and a scatter of two values).

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use serde_json::json;

use super::{
    PageError, PageResult, QueryPairs, format_number, format_time, link, quoted, render,
    require_read, segment, segments,
};
use crate::api::proxied_path;
use crate::artifacts::ArtifactPath;
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::domain::tracking::Run;
use crate::state::AppState;
use crate::store::model_registry::SearchModels;

/// Where the artifact proxy serves downloads.
const ARTIFACT_DOWNLOADS: &str = "/api/2.0/mlflow-artifacts/artifacts";
/// How many runs `/compare` takes.
const MIN_COMPARED: usize = 2;
const MAX_COMPARED: usize = 50;

struct KeyValueRow {
    key: String,
    value: String,
}

struct MetricRow {
    key: String,
    value: String,
    step: i64,
    time: String,
    /// The chart's `data-series` JSON (escaped by the template like any other text).
    series: String,
}

struct ArtifactRow {
    name: String,
    href: String,
    is_dir: bool,
    size: String,
}

struct VersionLink {
    label: String,
    href: String,
    stage: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    run_id: String,
    run_name: String,
    experiment_id: i64,
    experiment_href: String,
    status: &'static str,
    lifecycle: &'static str,
    start: String,
    end: String,
    user: String,
    artifact_uri: String,
    params: Vec<KeyValueRow>,
    tags: Vec<KeyValueRow>,
    metrics: Vec<MetricRow>,
    artifact_path: String,
    artifact_parent_href: Option<String>,
    artifacts: Option<Vec<ArtifactRow>>,
    versions: Vec<VersionLink>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = QueryPairs::parse(raw.as_deref());
    let run = state.store.get_run(&run_id).await?;
    let experiment_id = run.info.experiment_id.to_string();
    require_read(&state, &caller, ResourceType::Experiment, &experiment_id).await?;
    let info = &run.info;
    let run_href = format!("/runs/{}", segment(&info.run_id));

    let mut params: Vec<KeyValueRow> = run
        .params
        .iter()
        .map(|param| KeyValueRow {
            key: param.key.clone(),
            value: param.value.clone(),
        })
        .collect();
    params.sort_by(|left, right| left.key.cmp(&right.key));
    let mut tags: Vec<KeyValueRow> = run
        .tags
        .iter()
        .map(|tag| KeyValueRow {
            key: tag.key.clone(),
            value: tag.value.clone(),
        })
        .collect();
    tags.sort_by(|left, right| left.key.cmp(&right.key));
    let mut metrics: Vec<MetricRow> = run
        .metrics
        .iter()
        .map(|metric| MetricRow {
            key: metric.key.clone(),
            value: format_number(metric.value),
            step: metric.step,
            time: format_time(Some(metric.timestamp)),
            series: series_json(std::slice::from_ref(&&run), &metric.key),
        })
        .collect();
    metrics.sort_by(|left, right| left.key.cmp(&right.key));

    // The artifact browser: `?path=` is relative to the run's artifact root.
    let artifact_path = pairs.get("path").unwrap_or("").trim_matches('/').to_owned();
    let artifacts = match proxied_path(&info.artifact_uri) {
        Some(root) => {
            let full = [root.trim_matches('/'), artifact_path.as_str()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let dir = if full.is_empty() {
                ArtifactPath::root()
            } else {
                ArtifactPath::parse(&full).map_err(|error| {
                    PageError::bad_request(format!("Invalid artifact path: {error}"))
                })?
            };
            let entries = state
                .artifacts
                .list(&dir)
                .await
                .map_err(crate::error::Error::from)?;
            Some(
                entries
                    .into_iter()
                    .map(|entry| {
                        let relative = if artifact_path.is_empty() {
                            entry.path.clone()
                        } else {
                            format!("{artifact_path}/{}", entry.path)
                        };
                        let href = if entry.is_dir {
                            link(&run_href, &[("path", &relative)])
                        } else {
                            format!(
                                "{ARTIFACT_DOWNLOADS}/{}",
                                segments(format!("{full}/{}", entry.path).trim_start_matches('/'))
                            )
                        };
                        ArtifactRow {
                            name: entry.path,
                            href,
                            is_dir: entry.is_dir,
                            size: entry
                                .file_size
                                .map(|size| size.to_string())
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
            )
        }
        None => None,
    };
    let artifact_parent_href = (!artifact_path.is_empty()).then(|| {
        let parent = artifact_path
            .rsplit_once('/')
            .map(|(parent, _)| parent)
            .unwrap_or("");
        link(&run_href, &[("path", parent)])
    });

    let filter = format!("run_id = {}", quoted(&info.run_id));
    let versions = state
        .store
        .search_model_versions(SearchModels {
            filter: &filter,
            max_results: Some(1000),
            order_by: &[],
            page_token: None,
        })
        .await?
        .items
        .into_iter()
        .map(|version| VersionLink {
            label: format!("{} v{}", version.name, version.version),
            href: format!("/models/{}", segment(&version.name)),
            stage: version.current_stage,
        })
        .collect();

    render(&RunPage {
        run_id: info.run_id.clone(),
        run_name: info.run_name.clone(),
        experiment_id: info.experiment_id,
        experiment_href: format!("/experiments/{}", info.experiment_id),
        status: info.status.as_str(),
        lifecycle: info.lifecycle_stage.as_str(),
        start: format_time(Some(info.start_time)),
        end: format_time(info.end_time),
        user: info.user_id.clone(),
        artifact_uri: info.artifact_uri.clone(),
        params,
        tags,
        metrics,
        artifact_path,
        artifact_parent_href,
        artifacts,
        versions,
    })
}

/// The `data-series` of a chart of `key` over `runs`: one entry per run that logged it.
fn series_json(runs: &[&Run], key: &str) -> String {
    let entries: Vec<_> = runs
        .iter()
        .filter(|run| run.metrics.iter().any(|metric| metric.key == key))
        .map(|run| json!({ "label": run.info.run_name, "run_id": run.info.run_id, "key": key }))
        .collect();
    serde_json::Value::Array(entries).to_string()
}

struct ComparedRun {
    run_id: String,
    name: String,
    href: String,
}

struct CompareRow {
    key: String,
    values: Vec<String>,
    differs: bool,
}

struct MetricCompareRow {
    key: String,
    /// Per run: last, min, max (blank where the run did not log the metric).
    values: Vec<(String, String, String)>,
}

struct ChartSpec {
    key: String,
    series: String,
}

struct AxisOption {
    value: String,
    selected_x: bool,
    selected_y: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    runs: Vec<ComparedRun>,
    run_ids_joined: String,
    diff_only: bool,
    differences_href: String,
    all_href: String,
    params: Vec<CompareRow>,
    hidden_equal: usize,
    metrics: Vec<MetricCompareRow>,
    charts: Vec<ChartSpec>,
    axes: Vec<AxisOption>,
    x_label: String,
    y_label: String,
    points: String,
    point_count: usize,
}

pub(super) async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = QueryPairs::parse(raw.as_deref());
    let mut run_ids: Vec<String> = Vec::new();
    for value in pairs.all("runs") {
        for id in value.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if !run_ids.iter().any(|seen| seen == id) {
                run_ids.push(id.to_owned());
            }
        }
    }
    if run_ids.len() < MIN_COMPARED || run_ids.len() > MAX_COMPARED {
        return Err(PageError::bad_request(format!(
            "Compare takes {MIN_COMPARED} to {MAX_COMPARED} distinct runs (?runs=ID&runs=ID or ?runs=ID,ID); {} given.",
            run_ids.len()
        )));
    }
    let runs = state.store.get_runs(&run_ids).await?;
    for run in &runs {
        let experiment_id = run.info.experiment_id.to_string();
        require_read(&state, &caller, ResourceType::Experiment, &experiment_id).await?;
    }
    let run_refs: Vec<&Run> = runs.iter().collect();
    let diff_only = pairs.get("diff").is_some_and(|value| value != "0");

    // Params: one row per key any run has; a missing value differs from every present one.
    let param_keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.params.iter().map(|param| param.key.as_str()))
        .collect();
    let mut params = Vec::new();
    let mut hidden_equal = 0;
    for key in param_keys {
        let values: Vec<Option<&str>> = runs
            .iter()
            .map(|run| {
                run.params
                    .iter()
                    .find(|param| param.key == key)
                    .map(|param| param.value.as_str())
            })
            .collect();
        let differs = values.iter().any(|value| *value != values[0]);
        if diff_only && !differs {
            hidden_equal += 1;
            continue;
        }
        params.push(CompareRow {
            key: key.to_owned(),
            values: values
                .iter()
                .map(|value| value.unwrap_or("").to_owned())
                .collect(),
            differs,
        });
    }

    // Metrics: last from the latest values, min and max from the whole history.
    let ranges = state.store.metric_ranges(&run_ids).await?;
    let metric_keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.metrics.iter().map(|metric| metric.key.as_str()))
        .collect();
    let metrics = metric_keys
        .iter()
        .map(|key| MetricCompareRow {
            key: (*key).to_owned(),
            values: runs
                .iter()
                .map(|run| {
                    let last = run
                        .metrics
                        .iter()
                        .find(|metric| metric.key == *key)
                        .map(|metric| format_number(metric.value))
                        .unwrap_or_default();
                    let (min, max) = ranges
                        .get(&(run.info.run_id.clone(), (*key).to_owned()))
                        .map(|(min, max)| (format_number(*min), format_number(*max)))
                        .unwrap_or_default();
                    (last, min, max)
                })
                .collect(),
        })
        .collect();
    let charts = metric_keys
        .iter()
        .map(|key| ChartSpec {
            key: (*key).to_owned(),
            series: series_json(&run_refs, key),
        })
        .collect();

    // Scatter: any two params or metrics; only runs where both are numbers become points.
    let mut axis_names: Vec<String> = BTreeSet::<&str>::from_iter(
        runs.iter()
            .flat_map(|run| run.params.iter().map(|param| param.key.as_str())),
    )
    .into_iter()
    .map(|key| format!("params.{key}"))
    .collect();
    axis_names.extend(metric_keys.iter().map(|key| format!("metrics.{key}")));
    let x_label = pairs
        .get("x")
        .map(str::to_owned)
        .or_else(|| axis_names.first().cloned())
        .unwrap_or_default();
    let y_label = pairs
        .get("y")
        .map(str::to_owned)
        .or_else(|| {
            axis_names
                .iter()
                .find(|name| name.starts_with("metrics."))
                .or(axis_names.last())
                .cloned()
        })
        .unwrap_or_default();
    let points: Vec<_> = runs
        .iter()
        .filter_map(|run| {
            let x = numeric_value(run, &x_label)?;
            let y = numeric_value(run, &y_label)?;
            Some(json!({ "label": run.info.run_name, "run_id": run.info.run_id, "x": x, "y": y }))
        })
        .collect();
    let axes = axis_names
        .iter()
        .map(|name| AxisOption {
            value: name.clone(),
            selected_x: *name == x_label,
            selected_y: *name == y_label,
        })
        .collect();

    let run_ids_joined = run_ids.join(",");
    let compare_base = |diff: &str| {
        link(
            "/compare",
            &[
                ("runs", run_ids_joined.as_str()),
                ("x", pairs.get("x").unwrap_or("")),
                ("y", pairs.get("y").unwrap_or("")),
                ("diff", diff),
            ],
        )
    };
    let differences_href = compare_base("1");
    let all_href = compare_base("");
    render(&ComparePage {
        runs: runs
            .iter()
            .map(|run| ComparedRun {
                run_id: run.info.run_id.clone(),
                name: run.info.run_name.clone(),
                href: format!("/runs/{}", segment(&run.info.run_id)),
            })
            .collect(),
        run_ids_joined,
        diff_only,
        differences_href,
        all_href,
        params,
        hidden_equal,
        metrics,
        charts,
        axes,
        x_label,
        y_label,
        point_count: points.len(),
        points: serde_json::Value::Array(points).to_string(),
    })
}

/// The finite number a run holds for `params.KEY` or `metrics.KEY` (the latest metric value).
fn numeric_value(run: &Run, name: &str) -> Option<f64> {
    let value = if let Some(key) = name.strip_prefix("params.") {
        run.params
            .iter()
            .find(|param| param.key == key)?
            .value
            .trim()
            .parse::<f64>()
            .ok()?
    } else if let Some(key) = name.strip_prefix("metrics.") {
        run.metrics.iter().find(|metric| metric.key == key)?.value
    } else {
        return None;
    };
    value.is_finite().then_some(value)
}
