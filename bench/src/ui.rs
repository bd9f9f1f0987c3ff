//! `ui-bench`: how long okla-registry takes to answer the web UI's heaviest pages.
//!
//! Setup, over the MLflow REST API (untimed): an experiment of `--runs` runs, each with 7 params,
//! 7 metrics and 6 tags (20 table columns); a metric history of `--compare-points` steps for the
//! first `--compare` runs; and one run with a `--points`-point metric. Then each page is fetched
//! `--requests` times one after the other, after `--warmup` untimed fetches, as one data
//! scientist clicking through would, and the time to the last byte of the body is reported:
//!
//! * runs page, default view (first page, default columns and order);
//! * runs page with all 20 columns chosen, filtered on a metric and sorted by another, at the
//!   UI's page size and at 1000 rows;
//! * compare page of the `--compare` runs;
//! * run page of the run with the long metric;
//! * the chart data that page's script then fetches (the series endpoint, 1000 buckets).
//!
//! Every answer must be a 200 whose body shows what setup wrote (row counts, run names), so a
//! fast error page never passes for a fast page.
//!
//! Run: `bash bench/run_ui.sh` (fresh PostgreSQL database, release build), or against any
//! running registry: `cargo run -p okla-bench --release --bin ui-bench -- --registry-uri URL`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

const PARAMS: usize = 7;
const METRICS: usize = 7;
const TAGS: usize = 6;
/// MLflow refuses log-batch calls with more than 1000 metrics.
const MAX_METRICS_PER_BATCH: usize = 1000;
/// What `charts.js` asks for on a wide screen (it asks for the chart's width in pixels).
const CHART_POINTS: usize = 1000;
/// The metric with a long history, on the compared runs and on the long run.
const HISTORY_KEY: &str = "loss";

#[derive(Debug, Parser)]
#[command(
    name = "ui-bench",
    about = "Times okla-registry's web UI pages over a large experiment"
)]
struct Args {
    /// Base URL of the registry.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    registry_uri: String,

    /// Runs in the benchmark's experiment.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,

    /// Runs on the compare page (the UI compares 2 to 50).
    #[arg(long, default_value_t = 50)]
    compare: usize,

    /// Steps of the `loss` history of each compared run.
    #[arg(long, default_value_t = 1000)]
    compare_points: usize,

    /// Points of the long run's `loss` metric.
    #[arg(long, default_value_t = 100_000)]
    points: usize,

    /// Timed fetches per page.
    #[arg(long, default_value_t = 50)]
    requests: usize,

    /// Untimed fetches per page before the timed ones.
    #[arg(long, default_value_t = 5)]
    warmup: usize,

    /// Concurrent requests during setup.
    #[arg(long, default_value_t = 8)]
    setup_clients: usize,

    /// Print the results as one JSON line after the table.
    #[arg(long)]
    json: bool,
}

/// The registry over HTTP: the MLflow API for setup, plain GETs for the pages.
struct Registry {
    http: reqwest::Client,
    base: String,
}

impl Registry {
    fn new(base: &str, clients: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(clients.max(1))
            // The target is always local; an HTTP(S)_PROXY in the environment must not apply.
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn post(&self, endpoint: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        ensure!(status.is_success(), "POST {url}: HTTP {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("POST {url}: body is not JSON"))
    }

    /// Fetches `path` whole; returns the body and the time to its last byte.
    async fn page(&self, path: &str) -> anyhow::Result<(String, Duration)> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.text().await.context("reading the page")?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            let shown: String = body.chars().take(300).collect();
            bail!("GET {url}: HTTP {status}: {shown}");
        }
        Ok((body, elapsed))
    }

    async fn create_run(&self, experiment_id: &str, name: &str) -> anyhow::Result<String> {
        let created = self
            .post(
                "runs/create",
                &json!({
                    "experiment_id": experiment_id,
                    "run_name": name,
                    "start_time": now_ms(),
                    "tags": [{ "key": "mlflow.runName", "value": name }],
                }),
            )
            .await?;
        created["run"]["info"]["run_id"]
            .as_str()
            .map(str::to_owned)
            .context("runs/create answered without a run id")
    }

    async fn log_history(&self, run_id: &str, key: &str, points: usize) -> anyhow::Result<()> {
        let timestamp = now_ms();
        for start in (0..points).step_by(MAX_METRICS_PER_BATCH) {
            let metrics: Vec<Value> = (start..(start + MAX_METRICS_PER_BATCH).min(points))
                .map(|step| {
                    json!({
                        "key": key,
                        "value": 1.0 / (1.0 + step as f64 / 100.0),
                        "timestamp": timestamp + step as i64,
                        "step": step,
                    })
                })
                .collect();
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "metrics": metrics }),
            )
            .await?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Params, metrics and tags of run `index`: values vary so filters, sorts and the compare
/// page's highlighting have something to work on.
fn run_batch(run_id: &str, index: usize) -> Value {
    let params: Vec<Value> = (0..PARAMS)
        .map(|p| json!({ "key": format!("p{p}"), "value": format!("{}", (index * (p + 3)) % 17) }))
        .collect();
    let metrics: Vec<Value> = (0..METRICS)
        .map(|m| {
            json!({
                "key": format!("m{m}"),
                "value": ((index * 7919 + m * 104_729) % 10_000) as f64 / 10_000.0,
                "timestamp": now_ms(),
                "step": 0,
            })
        })
        .collect();
    let tags: Vec<Value> = (0..TAGS)
        .map(|t| json!({ "key": format!("t{t}"), "value": format!("team-{}", (index + t) % 5) }))
        .collect();
    json!({ "run_id": run_id, "params": params, "metrics": metrics, "tags": tags })
}

/// What setup created.
struct Fixture {
    experiment_id: String,
    compared: Vec<String>,
    long_run: String,
}

async fn set_up(registry: &Arc<Registry>, args: &Args) -> anyhow::Result<Fixture> {
    let name = format!("ui-bench-{}", now_ms());
    let created = registry
        .post("experiments/create", &json!({ "name": name }))
        .await?;
    let experiment_id = created["experiment_id"]
        .as_str()
        .context("experiments/create answered without an id")?
        .to_owned();

    let started = Instant::now();
    let run_ids: Vec<String> = futures::stream::iter(0..args.runs)
        .map(|index| {
            let registry = Arc::clone(registry);
            let experiment_id = experiment_id.clone();
            async move {
                let run_id = registry
                    .create_run(&experiment_id, &format!("run-{index:05}"))
                    .await?;
                registry
                    .post("runs/log-batch", &run_batch(&run_id, index))
                    .await?;
                anyhow::Ok(run_id)
            }
        })
        .buffered(args.setup_clients)
        .try_collect()
        .await?;
    eprintln!(
        "setup: {} runs with {PARAMS} params, {METRICS} metrics, {TAGS} tags in {:.1} s",
        run_ids.len(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let compared: Vec<String> = run_ids.iter().take(args.compare).cloned().collect();
    futures::stream::iter(&compared)
        .map(|run_id| registry.log_history(run_id, HISTORY_KEY, args.compare_points))
        .buffer_unordered(args.setup_clients)
        .try_collect::<()>()
        .await?;
    let long_run = registry.create_run(&experiment_id, "long-history").await?;
    registry
        .log_history(&long_run, HISTORY_KEY, args.points)
        .await?;
    eprintln!(
        "setup: {} compared runs with {} {HISTORY_KEY} points each, one run with {} points, in {:.1} s",
        compared.len(),
        args.compare_points,
        args.points,
        started.elapsed().as_secs_f64()
    );
    Ok(Fixture {
        experiment_id,
        compared,
        long_run,
    })
}

/// Checks that a page's body shows what setup wrote.
type BodyCheck = Box<dyn Fn(&str) -> anyhow::Result<()>>;

/// One page the benchmark times, and what its body must show.
struct Page {
    label: &'static str,
    path: String,
    check: BodyCheck,
}

fn pages(fixture: &Fixture) -> Vec<Page> {
    let experiment = format!("/experiments/{}", fixture.experiment_id);
    let columns: Vec<String> = (0..PARAMS)
        .map(|p| format!("params.p{p}"))
        .chain((0..METRICS).map(|m| format!("metrics.m{m}")))
        .chain((0..TAGS).map(|t| format!("tags.t{t}")))
        .collect();
    let query = encode_query(&[
        ("columns", &columns.join(",")),
        ("filter", "metrics.m0 < 0.5"),
        ("order_by", "metrics.m1 DESC"),
    ]);
    let compared = fixture.compared.clone();
    let compared_count = compared.len();
    vec![
        Page {
            label: "runs page, default view",
            path: experiment.clone(),
            check: Box::new(|body| expect_rows(body, 1)),
        },
        Page {
            label: "runs page, 20 columns, filter + sort",
            path: format!("{experiment}?{query}"),
            check: Box::new(|body| {
                expect_rows(body, 1)?;
                ensure!(
                    body.contains("tags.t5"),
                    "the page lacks the column tags.t5"
                );
                Ok(())
            }),
        },
        Page {
            label: "runs page, 1000 rows, 20 columns",
            path: format!("{experiment}?{query}&max_results=1000"),
            check: Box::new(|body| expect_rows(body, 1000)),
        },
        Page {
            label: "compare page",

            path: format!("/compare?runs={}", fixture.compared.join(",")),
            check: Box::new(move |body| {
                let shown = compared.iter().filter(|id| body.contains(*id)).count();
                ensure!(
                    shown == compared_count,
                    "the compare page shows {shown} of {compared_count} runs"
                );
                Ok(())
            }),
        },
        Page {
            label: "run page, long metric",
            path: format!("/runs/{}", fixture.long_run),
            check: Box::new(|body| {
                ensure!(
                    body.contains("long-history"),
                    "the run page lacks the run's name"
                );
                Ok(())
            }),
        },
        Page {
            label: "  its chart data (series endpoint)",
            path: format!(
                "/api/okla/v1/runs/{}/metrics/{HISTORY_KEY}/series?max_points={CHART_POINTS}",
                fixture.long_run
            ),
            check: Box::new(|body| {
                let series: Value = serde_json::from_str(body).context("series is not JSON")?;
                let points = series["points"].as_array().map_or(0, Vec::len);
                ensure!(
                    points > CHART_POINTS / 2 && points <= CHART_POINTS,
                    "the series holds {points} points, not about {CHART_POINTS}"
                );
                ensure!(
                    series["total_points"].as_u64() > Some(CHART_POINTS as u64),
                    "the series summarises {} points",
                    series["total_points"]
                );
                Ok(())
            }),
        },
    ]
}

fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("static URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

/// The runs table shows at least `min` run rows (each row links its run page).
fn expect_rows(body: &str, min: usize) -> anyhow::Result<()> {
    let rows = body.matches("href=\"/runs/").count();
    ensure!(rows >= min, "the runs table shows {rows} runs");
    Ok(())
}

#[derive(Debug, Serialize)]
struct PageResult {
    page: &'static str,
    path: String,
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    max_ms: f64,
    body_bytes: usize,
}

async fn time_page(registry: &Registry, page: &Page, args: &Args) -> anyhow::Result<PageResult> {
    let mut body_bytes = 0;
    for _ in 0..args.warmup {
        let (body, _) = registry.page(&page.path).await?;
        (page.check)(&body).with_context(|| format!("{}: {}", page.label, page.path))?;
        body_bytes = body.len();
    }
    let mut times = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let (body, elapsed) = registry.page(&page.path).await?;
        (page.check)(&body).with_context(|| format!("{}: {}", page.label, page.path))?;
        body_bytes = body.len();
        times.push(elapsed.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let percentile = |q: f64| {
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1]
    };
    Ok(PageResult {
        page: page.label,
        path: page.path.clone(),
        requests: times.len(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        max_ms: times.last().copied().unwrap_or_default(),
        body_bytes,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(
        (2..=50).contains(&args.compare) && args.compare <= args.runs,
        "--compare must be 2 to 50 and at most --runs"
    );
    let registry = Arc::new(Registry::new(&args.registry_uri, args.setup_clients)?);
    let fixture = set_up(&registry, &args).await?;

    println!(
        "ui-bench --runs {} --compare {} --compare-points {} --points {} --requests {} against {}",
        args.runs, args.compare, args.compare_points, args.points, args.requests, args.registry_uri
    );
    println!(
        "{:38}{:>10}{:>10}{:>10}{:>10}{:>12}",
        "page", "p50 ms", "p99 ms", "mean ms", "max ms", "body KiB"
    );
    let mut results = Vec::new();
    for page in pages(&fixture) {
        let result = time_page(&registry, &page, &args).await?;
        println!(
            "{:38}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>12.1}",
            result.page,
            result.p50_ms,
            result.p99_ms,
            result.mean_ms,
            result.max_ms,
            result.body_bytes as f64 / 1024.0
        );
        results.push(result);
    }
    if args.json {
        println!("{}", json!({ "pages": results }));
    }
    Ok(())
}
