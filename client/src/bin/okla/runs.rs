//! `okla runs list` and `okla runs compare`: params and latest metrics side by side, rows
//! whose values differ marked with `*`.

use std::collections::BTreeSet;

use anyhow::Context as _;
use clap::Subcommand;
use okla_client::{RunDetails, RunQuery};
use serde::Serialize;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List an experiment's runs.
    List {
        /// The experiment's name.
        experiment: String,
        /// MLflow's filter, e.g. "metrics.rmse < 1 and params.alpha = '0.5'".
        #[arg(long)]
        filter: Option<String>,
        /// Order, e.g. "metrics.rmse ASC"; repeat for ties.
        #[arg(long)]
        order_by: Vec<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        max: u64,
    },
    /// Compare runs: their params and the latest value of their metrics.
    Compare {
        /// Two or more run ids.
        #[arg(required = true, num_args = 2..)]
        run_ids: Vec<String>,
        /// Only the rows whose values differ.
        #[arg(long)]
        diff_only: bool,
    },
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List {
            experiment,
            filter,
            order_by,
            max,
        } => list(context, &experiment, filter, order_by, max).await,
        Command::Compare { run_ids, diff_only } => compare(context, &run_ids, diff_only).await,
    }
}

async fn list(
    context: &Context,
    experiment: &str,
    filter: Option<String>,
    order_by: Vec<String>,
    max: u64,
) -> anyhow::Result<()> {
    let found = context
        .client
        .get_experiment_by_name(experiment)
        .await
        .with_context(|| format!("experiment '{experiment}'"))?;
    let query = RunQuery {
        experiment_ids: vec![found.experiment_id],
        filter: filter.unwrap_or_default(),
        order_by,
        max_results: max,
    };
    let runs = context.client.search_runs(&query).await?;
    if context.json {
        return print_json(&runs);
    }
    let mut shown = table(["RUN ID", "NAME", "STATUS", "STARTED", "METRICS"]);
    for run in &runs {
        let metrics: Vec<String> = run
            .data
            .metrics
            .iter()
            .map(|metric| format!("{}={}", metric.key, metric.value))
            .collect();
        shown.add_row([
            run.info.run_id.clone(),
            run.info.run_name.clone(),
            format!("{:?}", run.info.status).to_uppercase(),
            timestamp(run.info.start_time),
            metrics.join(", "),
        ]);
    }
    out!("{shown}");
    Ok(())
}

/// One param or metric across the compared runs.
#[derive(Debug, Serialize)]
struct Row {
    key: String,
    /// One per run, in the order given; `None` where the run has no such key.
    values: Vec<Option<String>>,
    differs: bool,
}

#[derive(Debug, Serialize)]
struct Comparison {
    runs: Vec<RunDetails>,
    params: Vec<Row>,
    metrics: Vec<Row>,
}

fn rows<'a>(
    runs: &'a [RunDetails],
    keys: impl Fn(&'a RunDetails) -> Vec<&'a str>,
    value: impl Fn(&RunDetails, &str) -> Option<String>,
) -> Vec<Row> {
    let all: BTreeSet<&str> = runs.iter().flat_map(&keys).collect();
    all.into_iter()
        .map(|key| {
            let values: Vec<Option<String>> = runs.iter().map(|run| value(run, key)).collect();
            let differs = values.iter().any(|other| other != &values[0]);
            Row {
                key: key.to_owned(),
                values,
                differs,
            }
        })
        .collect()
}

async fn compare(context: &Context, run_ids: &[String], diff_only: bool) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(run_ids.len());
    for run_id in run_ids {
        let run = context
            .client
            .get_run_details(run_id)
            .await
            .with_context(|| format!("run '{run_id}'"))?;
        runs.push(run);
    }
    let keep = |row: &Row| !diff_only || row.differs;
    let params: Vec<Row> = rows(
        &runs,
        |run| run.data.params.iter().map(|p| p.key.as_str()).collect(),
        |run, key| run.param(key).map(str::to_owned),
    )
    .into_iter()
    .filter(keep)
    .collect();
    let metrics: Vec<Row> = rows(
        &runs,
        |run| run.data.metrics.iter().map(|m| m.key.as_str()).collect(),
        |run, key| run.metric(key).map(|value| value.to_string()),
    )
    .into_iter()
    .filter(keep)
    .collect();
    if context.json {
        return print_json(&Comparison {
            runs,
            params,
            metrics,
        });
    }
    let columns: Vec<String> = runs
        .iter()
        .map(|run| {
            let short: String = run.info.run_id.chars().take(8).collect();
            if run.info.run_name.is_empty() {
                short
            } else {
                format!("{} ({short})", run.info.run_name)
            }
        })
        .collect();
    for (title, rows) in [("PARAM", &params), ("METRIC", &metrics)] {
        let mut shown = table(
            ["".to_owned(), title.to_owned()]
                .into_iter()
                .chain(columns.iter().cloned()),
        );
        for row in rows {
            let mark = if row.differs { "*" } else { "" };
            shown.add_row(
                [mark.to_owned(), row.key.clone()].into_iter().chain(
                    row.values
                        .iter()
                        .map(|value| value.clone().unwrap_or_else(|| "-".to_owned())),
                ),
            );
        }
        out!("{shown}");
    }
    Ok(())
}
