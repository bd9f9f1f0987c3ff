//! `/experiments` (the list, searchable by name) and `/experiments/{id}` (its runs: the API's
//! filter grammar, server-side sorting by any column, paging by the store's page token).

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{
    PageError, PageResult, QueryPairs, format_number, format_time, link, name_filter, render,
    render_with_status, require_read, segment,
};
use crate::auth::Caller;
use crate::domain::ViewType;
use crate::domain::auth::ResourceType;
use crate::domain::tracking::{Experiment, Run};
use crate::error::Error;
use crate::state::AppState;
use crate::store::tracking::{SearchExperiments, SearchRuns};

/// At most this many default columns (params, then metrics) on the runs table.
const MAX_DEFAULT_COLUMNS: usize = 20;
/// Runs per page unless `max_results` says otherwise: a screenful of rows, as the MLflow UI
/// loads them, rather than the API's default of 1000.
const RUNS_PER_PAGE: i64 = 100;

struct ExperimentRow {
    id: i64,
    name: String,
    href: String,
    runs: String,
    lifecycle: &'static str,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    query: String,
    rows: Vec<ExperimentRow>,
    next_href: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = QueryPairs::parse(raw.as_deref());
    let query = pairs.get("q").unwrap_or("").to_owned();
    let filter = name_filter(&query);
    let mut page = state
        .store
        .search_experiments(SearchExperiments {
            filter: &filter,
            view_type: ViewType::ActiveOnly,
            max_results: Some(100),
            order_by: &["name ASC".to_owned()],
            page_token: pairs.get("page_token"),
        })
        .await?;
    page.items = caller
        .readable(
            &state.auth,
            ResourceType::Experiment,
            page.items,
            |experiment| experiment.experiment_id.to_string(),
        )
        .await?;
    let ids: Vec<i64> = page.items.iter().map(|e| e.experiment_id).collect();
    let counts = state.store.count_active_runs(&ids).await?;
    let rows = page
        .items
        .iter()
        .map(|experiment: &Experiment| ExperimentRow {
            id: experiment.experiment_id,
            name: experiment.name.clone(),
            href: format!("/experiments/{}", experiment.experiment_id),
            runs: counts
                .get(&experiment.experiment_id)
                .copied()
                .unwrap_or(0)
                .to_string(),
            lifecycle: experiment.lifecycle_stage.as_str(),
        })
        .collect();
    let next_href = page
        .next_page_token
        .map(|token| link("/experiments", &[("q", &query), ("page_token", &token)]));
    render(&ExperimentsPage {
        query,
        rows,
        next_href,
    })
}

/// One column of the runs table beyond the fixed ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Column {
    Param(String),
    Metric(String),
    Tag(String),
}

impl Column {
    fn parse(text: &str) -> Result<Column, String> {
        let text = text.trim();
        let (prefix, key) = text.split_once('.').ok_or_else(|| {
            format!("Invalid column '{text}': use params.KEY, metrics.KEY or tags.KEY")
        })?;
        let key = key.trim_matches('`').to_owned();
        if key.is_empty() {
            return Err(format!("Invalid column '{text}': the key is empty"));
        }
        match prefix {
            "params" | "param" | "parameters" | "parameter" => Ok(Column::Param(key)),
            "metrics" | "metric" => Ok(Column::Metric(key)),
            "tags" | "tag" => Ok(Column::Tag(key)),
            _ => Err(format!(
                "Invalid column '{text}': use params.KEY, metrics.KEY or tags.KEY"
            )),
        }
    }

    /// The column as `columns=` names it.
    fn name(&self) -> String {
        match self {
            Column::Param(key) => format!("params.{key}"),
            Column::Metric(key) => format!("metrics.{key}"),
            Column::Tag(key) => format!("tags.{key}"),
        }
    }

    /// The column as `order_by` names it (key quoted, so any key sorts).
    fn order_field(&self) -> String {
        let (prefix, key) = match self {
            Column::Param(key) => ("params", key),
            Column::Metric(key) => ("metrics", key),
            Column::Tag(key) => ("tags", key),
        };
        format!("{prefix}.`{key}`")
    }

    fn cell(&self, run: &Run) -> (String, bool) {
        match self {
            Column::Param(key) => (find_value(&run.params, key), false),
            Column::Tag(key) => (find_value(&run.tags, key), false),
            Column::Metric(key) => (
                run.metrics
                    .iter()
                    .find(|metric| &metric.key == key)
                    .map(|metric| format_number(metric.value))
                    .unwrap_or_default(),
                true,
            ),
        }
    }
}

fn find_value(pairs: &[crate::domain::KeyValue], key: &str) -> String {
    pairs
        .iter()
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.clone())
        .unwrap_or_default()
}

struct Header {
    label: String,
    href: String,
    /// `▲`/`▼` when the table is sorted by this column.
    arrow: &'static str,
}

struct Cell {
    text: String,
    numeric: bool,
}

struct RunRow {
    run_id: String,
    name: String,
    href: String,
    status: &'static str,
    start: String,
    user: String,
    cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    experiment_id: i64,
    experiment_name: String,
    filter: String,
    order_by: String,
    columns: String,
    max_results: String,
    error: Option<String>,
    fixed_headers: Vec<Header>,
    headers: Vec<Header>,
    rows: Vec<RunRow>,
    next_href: Option<String>,
    first_href: Option<String>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(experiment_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = QueryPairs::parse(raw.as_deref());
    let experiment = match experiment_id.trim().parse::<i64>() {
        Ok(id) => {
            require_read(&state, &caller, ResourceType::Experiment, &id.to_string()).await?;
            state.store.get_experiment(id).await?
        }
        Err(_) => {
            return Err(PageError::not_found(format!(
                "No experiment with id '{experiment_id}'."
            )));
        }
    };
    let filter = pairs.get("filter").unwrap_or("").to_owned();
    let order_by = pairs.get("order_by").unwrap_or("").to_owned();
    let columns_text = pairs.get("columns").unwrap_or("").to_owned();
    let max_results_text = pairs.get("max_results").unwrap_or("").to_owned();
    let page_token = pairs.get("page_token").map(str::to_owned);

    let mut page = ExperimentPage {
        experiment_id: experiment.experiment_id,
        experiment_name: experiment.name.clone(),
        filter,
        order_by,
        columns: columns_text,
        max_results: max_results_text,
        error: None,
        fixed_headers: Vec::new(),
        headers: Vec::new(),
        rows: Vec::new(),
        next_href: None,
        first_href: None,
    };
    let view = ViewState::of(&page);
    page.fixed_headers = [
        ("Name", "attributes.run_name"),
        ("Status", "attributes.status"),
        ("Started", "attributes.start_time"),
        ("User", "attributes.user_id"),
    ]
    .into_iter()
    .map(|(label, field)| view.header(label, field))
    .collect();
    if page_token.is_some() {
        page.first_href = Some(view.href(&[]));
    }

    let outcome = load_runs(&state, &page, page_token.as_deref()).await;
    let (runs, next_token, columns) = match outcome {
        Ok(found) => found,
        Err(PageError { status, message }) if status.is_client_error() => {
            page.error = Some(message);
            return Ok(render_with_status(StatusCode::BAD_REQUEST, &page));
        }
        Err(error) => return Err(error),
    };
    page.headers = columns
        .iter()
        .map(|column| view.header(&column.name(), &column.order_field()))
        .collect();
    page.rows = runs
        .iter()
        .map(|run| RunRow {
            run_id: run.info.run_id.clone(),
            name: run.info.run_name.clone(),
            href: format!("/runs/{}", segment(&run.info.run_id)),
            status: run.info.status.as_str(),
            start: format_time(Some(run.info.start_time)),
            user: run.info.user_id.clone(),
            cells: columns
                .iter()
                .map(|column| {
                    let (text, numeric) = column.cell(run);
                    Cell { text, numeric }
                })
                .collect(),
        })
        .collect();
    page.next_href = next_token.map(|token| view.href(&[("page_token", &token)]));
    Ok(page.into_response())
}

impl IntoResponse for ExperimentPage {
    fn into_response(self) -> axum::response::Response {
        render_with_status(StatusCode::OK, &self)
    }
}

type LoadedRuns = (Vec<Run>, Option<String>, Vec<Column>);

async fn load_runs(
    state: &AppState,
    page: &ExperimentPage,
    page_token: Option<&str>,
) -> Result<LoadedRuns, PageError> {
    let max_results = if page.max_results.is_empty() {
        Some(RUNS_PER_PAGE)
    } else {
        Some(page.max_results.trim().parse::<i64>().map_err(|_| {
            PageError::bad_request(format!(
                "Invalid value '{}' for max_results: use a whole number",
                page.max_results
            ))
        })?)
    };
    let explicit_columns = page
        .columns
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(Column::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PageError::bad_request)?;
    let order_by: Vec<String> = if page.order_by.is_empty() {
        Vec::new()
    } else {
        vec![page.order_by.clone()]
    };
    let found = state
        .store
        .search_runs(SearchRuns {
            experiment_ids: &[page.experiment_id],
            filter: &page.filter,
            view_type: ViewType::ActiveOnly,
            max_results,
            order_by: &order_by,
            page_token,
        })
        .await
        .map_err(|error| match error {
            Error::InvalidParameter(message) => PageError::bad_request(message),
            other => PageError::from(other),
        })?;
    let columns = if explicit_columns.is_empty() {
        default_columns(&found.items)
    } else {
        explicit_columns
    };
    Ok((found.items, found.next_page_token, columns))
}

/// Every param key, then every metric key, of the page's runs, up to `MAX_DEFAULT_COLUMNS`.
fn default_columns(runs: &[Run]) -> Vec<Column> {
    let params: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.params.iter().map(|param| param.key.as_str()))
        .collect();
    let metrics: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.metrics.iter().map(|metric| metric.key.as_str()))
        .collect();
    params
        .into_iter()
        .map(|key| Column::Param(key.to_owned()))
        .chain(
            metrics
                .into_iter()
                .map(|key| Column::Metric(key.to_owned())),
        )
        .take(MAX_DEFAULT_COLUMNS)
        .collect()
}

/// The view state of the runs page, all of it in the URL.
struct ViewState {
    base: String,
    filter: String,
    order_by: String,
    columns: String,
    max_results: String,
}

impl ViewState {
    fn of(page: &ExperimentPage) -> ViewState {
        ViewState {
            base: format!("/experiments/{}", page.experiment_id),
            filter: page.filter.clone(),
            order_by: page.order_by.clone(),
            columns: page.columns.clone(),
            max_results: page.max_results.clone(),
        }
    }

    /// This view's URL with `changes` replacing (or adding) parameters.
    fn href(&self, changes: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("filter", &self.filter),
            ("order_by", &self.order_by),
            ("columns", &self.columns),
            ("max_results", &self.max_results),
        ];
        for (name, value) in changes {
            match pairs.iter_mut().find(|(existing, _)| existing == name) {
                Some(pair) => pair.1 = value,
                None => pairs.push((name, value)),
            }
        }
        link(&self.base, &pairs)
    }

    /// A header linking to this column sorted ascending, or descending when it already is.
    fn header(&self, label: &str, field: &str) -> Header {
        let ascending = format!("{field} ASC");
        let descending = format!("{field} DESC");
        let current = self.order_by.trim();
        let (target, arrow) = if current == ascending || current == field {
            (descending, " ▲")
        } else if current == descending {
            (ascending, " ▼")
        } else {
            (ascending, "")
        };
        Header {
            label: label.to_owned(),
            href: self.href(&[("order_by", &target)]),
            arrow,
        }
    }
}
