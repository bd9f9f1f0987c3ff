//! `tracking-bench`: a load generator for any MLflow-compatible tracking server, over REST.
//!
//! It knows nothing of okla-registry: it speaks the documented MLflow REST API with the JSON
//! bodies the official `mlflow` client sends (shared/reference/mlflow-rest-api.md), so the same
//! binary measures the reference `mlflow server` and ours. Each scenario has an untimed setup,
//! then `--clients` tokio tasks (sharing one connection pool) send requests for `--seconds`:
//!
//! * `log-metric`: `POST runs/log-metric`, one run per client; requests/s.
//! * `log-batch`: `POST runs/log-batch` with `--batch-size` metrics, one run per client; calls/s.
//! * `search-runs`: `POST runs/search` over an experiment of `--runs` runs (created during setup
//!   with runs/create + runs/log-batch) with a metric+param filter, ordered by a metric, 100 per
//!   page; p50/p99.
//! * `metric-history`: `GET metrics/get-history` of a `--history-points` metric; p50/p99.
//!
//! Before the scenarios, a few rounds of concurrent calls warm up the server's workers, and each
//! measured window follows `--warmup-seconds` of the same load, untimed. Latency covers requests
//! started in the window, throughput the successes finished in it.
//!
//! Any answer other than 200, a transport error or a body that contradicts what setup wrote
//! counts as an error of its scenario; more than `--max-error-percent` fails the process.
//!
//! Run: `cargo run -p okla-bench --release --bin tracking-bench -- --tracking-uri http://127.0.0.1:5000`
//! (`--runs 500 --seconds 3` for a quick check; `bench/run_tracking.sh` compares two servers).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The filter of the search-runs scenario: a metric and a param, as in the MLflow docs.
const SEARCH_FILTER: &str = "metrics.rmse < 0.5 and params.alpha = '0.1'";
const SEARCH_ORDER_BY: &str = "metrics.rmse ASC";
const SEARCH_PAGE_SIZE: usize = 100;
/// What the official client asks for per page of metric history.
const HISTORY_PAGE_SIZE: usize = 25_000;
/// MLflow refuses log-batch calls with more than 1000 metrics.
const MAX_METRICS_PER_BATCH: usize = 1000;
/// Error messages kept per scenario, so a failing run shows what went wrong.
const KEPT_ERROR_SAMPLES: usize = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tracking-bench",
    about = "Load generator for MLflow-compatible tracking servers (REST API)"
)]
struct Args {
    /// Base URL of the tracking server, as given to MLFLOW_TRACKING_URI.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    tracking_uri: String,

    /// Concurrent clients (tokio tasks sharing one connection pool).
    #[arg(long, default_value_t = 8)]
    clients: usize,

    /// Length of each scenario's measured phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,

    /// Untimed load before each measured phase. A fresh `mlflow server` worker answers its
    /// first requests seconds late (lazy store setup), which would otherwise land in p99.
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,

    /// Runs in the experiment that search-runs queries (created during setup, not timed).
    #[arg(long, default_value_t = 10_000)]
    runs: usize,

    /// Points of the metric that metric-history reads back.
    #[arg(long, default_value_t = 10_000)]
    history_points: usize,

    /// Points per write while metric-history sets up its metric: up to 1000 per runs/log-batch
    /// call, as a buffered logger sends them, or 1, a runs/log-metric call per point, as
    /// `mlflow.log_metric` in a training loop does.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    history_points_per_write: u16,

    /// Metrics per runs/log-batch call in the log-batch scenario (MLflow allows 1..=1000).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,

    /// Scenarios to run, comma separated, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Scenario::LogMetric, Scenario::LogBatch, Scenario::SearchRuns, Scenario::MetricHistory]
    )]
    scenarios: Vec<Scenario>,

    /// Exit non-zero when more than this percentage of a scenario's requests fail.
    #[arg(long, default_value_t = 2.0)]
    max_error_percent: f64,

    /// Per-request timeout in seconds; a request that takes longer counts as an error.
    #[arg(long, default_value_t = 120)]
    request_timeout: u64,

    /// Prefix of the experiment names this run creates (default: tracking-bench-<unix ms>).
    #[arg(long)]
    experiment_prefix: Option<String>,

    /// Also print all results as one JSON object, alone on the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    LogMetric,
    LogBatch,
    SearchRuns,
    MetricHistory,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::LogMetric => "log-metric",
            Scenario::LogBatch => "log-batch",
            Scenario::SearchRuns => "search-runs",
            Scenario::MetricHistory => "metric-history",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST client
// ---------------------------------------------------------------------------------------------

/// A thin MLflow REST client. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
struct Tracking {
    http: reqwest::Client,
    base: Arc<str>,
}

impl Tracking {
    fn new(tracking_uri: &str, request_timeout: Duration, clients: usize) -> anyhow::Result<Self> {
        // Credentials as the mlflow client takes them, so the same exports bench a server with
        // authentication on.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(username) = std::env::var("MLFLOW_TRACKING_USERNAME") {
            use base64::Engine;
            let password = std::env::var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {encoded}"))
                .context("MLFLOW_TRACKING_USERNAME/PASSWORD hold characters a header cannot")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            // One idle connection per client, so the measured phase reuses connections.
            .pool_max_idle_per_host(clients.max(1))
            // The target is always local; an HTTP(S)_PROXY in the environment must not apply.
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: Arc::from(tracking_uri.trim_end_matches('/')),
        })
    }

    fn api_url(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.base)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &impl Serialize,
    ) -> Result<T, String> {
        self.send(self.http.post(self.api_url(endpoint)).json(body), endpoint)
            .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, String> {
        self.send(self.http.get(self.api_url(endpoint)).query(query), endpoint)
            .await
    }

    /// Sends one request; anything but a 200 with a JSON body of shape `T` is an error.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        endpoint: &str,
    ) -> Result<T, String> {
        let response = request
            .send()
            .await
            .map_err(|error| format!("{endpoint}: {}", error_chain(&error)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("{endpoint}: reading body: {}", error_chain(&error)))?;
        if status != reqwest::StatusCode::OK {
            let shown = String::from_utf8_lossy(&body[..body.len().min(300)]);
            return Err(format!("{endpoint}: HTTP {status}: {}", shown.trim()));
        }
        serde_json::from_slice(&body)
            .map_err(|error| format!("{endpoint}: unexpected response body: {error}"))
    }

    /// Plain-text endpoints outside the API prefix (`/health`, `/version`).
    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}: {}", text.trim());
        }
        Ok(text.trim().to_owned())
    }

    async fn create_experiment(&self, name: &str) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Created {
            experiment_id: String,
        }
        let created: Created = self
            .post("experiments/create", &json!({ "name": name }))
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(created.experiment_id)
    }

    /// Creates a run the way `MlflowClient.create_run` does; returns its id.
    async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(&str, String)],
    ) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Created {
            run: CreatedRun,
        }
        #[derive(Deserialize)]
        struct CreatedRun {
            info: CreatedRunInfo,
        }
        #[derive(Deserialize)]
        struct CreatedRunInfo {
            run_id: String,
        }
        let mut tag_list: Vec<Value> = tags
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect();
        tag_list.push(json!({ "key": "mlflow.runName", "value": run_name }));
        tag_list.push(json!({ "key": "mlflow.user", "value": "tracking-bench" }));
        let body = json!({
            "experiment_id": experiment_id,
            "user_id": "tracking-bench",
            "run_name": run_name,
            "start_time": now_ms(),
            "tags": tag_list,
        });
        let created: Created = self.post("runs/create", &body).await?;
        Ok(created.run.info.run_id)
    }

    async fn log_batch(&self, run_id: &str, batch: &Value) -> Result<(), String> {
        let mut body = batch.clone();
        body["run_id"] = json!(run_id);
        self.post::<IgnoredAny>("runs/log-batch", &body)
            .await
            .map(|_| ())
    }
}

/// reqwest's Display omits the cause ("error sending request"); the chain says what happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

/// Outcomes of one scenario's measured phase, per client task and then merged.
///
/// Latency and the ok/error counts cover requests that *started* in the measured window;
/// throughput counts successes that *finished* in it. With calls that take seconds (MLflow's
/// log-batch), counting by start time would credit the window with work done after it.
struct Stats {
    latency_us: Histogram<u64>,
    ok: u64,
    errors: u64,
    /// Successful requests that finished inside the measured window.
    completed_in_window: u64,
    /// Items (metrics written, runs or points read) of those requests.
    items_in_window: u64,
    error_samples: Vec<String>,
}

impl Stats {
    fn new() -> Self {
        Self {
            // 1 µs to 1 hour at 3 significant digits: covers any request timeout we allow.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            ok: 0,
            errors: 0,
            completed_in_window: 0,
            items_in_window: 0,
            error_samples: Vec::new(),
        }
    }

    fn record(&mut self, timing: RequestTiming, outcome: Result<u64, String>) {
        match outcome {
            Ok(items) => {
                if timing.finished_in_window {
                    self.completed_in_window += 1;
                    self.items_in_window += items;
                }
                if timing.started_in_window {
                    self.ok += 1;
                    let micros = u64::try_from(timing.elapsed.as_micros()).unwrap_or(u64::MAX);
                    self.latency_us.saturating_record(micros.max(1));
                }
            }
            Err(message) => {
                if !timing.started_in_window {
                    return;
                }
                self.errors += 1;
                if self.error_samples.len() < KEPT_ERROR_SAMPLES {
                    self.error_samples.push(message);
                }
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.completed_in_window += other.completed_in_window;
        self.items_in_window += other.items_in_window;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds merge");
        for message in other.error_samples {
            if self.error_samples.len() < KEPT_ERROR_SAMPLES {
                self.error_samples.push(message);
            }
        }
    }
}

/// When one request ran, relative to the measured window.
#[derive(Debug, Clone, Copy)]
struct RequestTiming {
    elapsed: Duration,
    started_in_window: bool,
    finished_in_window: bool,
}

/// How long `drive` loads the server, untimed and then timed.
#[derive(Debug, Clone, Copy)]
struct Phases {
    warmup: Duration,
    measured: Duration,
}

/// Runs `operation(client_index, iteration)` in a loop on `clients` tasks for the warm-up and
/// then the measured window, and returns the merged stats (see `Stats`) with the window's length.
/// No request starts after the window; those in flight at its end are awaited.
/// `operation` returns the number of items its request moved, or an error message.
async fn drive<F, Fut>(
    clients: usize,
    phases: Phases,
    operation: F,
) -> anyhow::Result<(Stats, Duration)>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let measured_start = Instant::now() + phases.warmup;
    let deadline = measured_start + phases.measured;
    let mut tasks = Vec::with_capacity(clients);
    for client_index in 0..clients {
        let operation = operation.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new();
            let mut iteration = 0_u64;
            while Instant::now() < deadline {
                let request_started = Instant::now();
                let outcome = operation(client_index, iteration).await;
                let finished = Instant::now();
                let failed = outcome.is_err();
                let timing = RequestTiming {
                    elapsed: finished - request_started,
                    started_in_window: request_started >= measured_start,
                    finished_in_window: finished >= measured_start && finished <= deadline,
                };
                stats.record(timing, outcome);
                iteration += 1;
                if failed {
                    // A dead or refusing server answers at once: don't spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for task in tasks {
        total.merge(task.await.context("a client task panicked")?);
    }
    Ok((total, phases.measured))
}

/// One result line; also the JSON shape of `--json`.
#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: &'static str,
    /// What one request is ("req", "call", "query", "read"), for readers of the JSON.
    unit: &'static str,
    clients: usize,
    seconds: f64,
    setup_seconds: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    error_percent: f64,
    /// Successful requests finished per second of the measured window.
    per_second: f64,
    /// Items (metrics, runs, points) per second moved by those requests.
    items_per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Scenario facts needed to compare two result sets (runs searched, points read...).
    detail: String,
    error_samples: Vec<String>,
}

impl ScenarioResult {
    fn new(
        scenario: Scenario,
        unit: &'static str,
        clients: usize,
        setup: Duration,
        measured: (Stats, Duration),
        detail: String,
    ) -> Self {
        let (stats, elapsed) = measured;
        let seconds = elapsed.as_secs_f64();
        let requests = stats.ok + stats.errors;
        let quantile_ms = |quantile: f64| {
            if stats.ok == 0 {
                0.0
            } else {
                stats.latency_us.value_at_quantile(quantile) as f64 / 1000.0
            }
        };
        Self {
            scenario: scenario.name(),
            unit,
            clients,
            seconds,
            setup_seconds: setup.as_secs_f64(),
            requests,
            ok: stats.ok,
            errors: stats.errors,
            error_percent: if requests == 0 {
                0.0
            } else {
                100.0 * stats.errors as f64 / requests as f64
            },
            per_second: stats.completed_in_window as f64 / seconds,
            items_per_second: stats.items_in_window as f64 / seconds,
            p50_ms: quantile_ms(0.50),
            p90_ms: quantile_ms(0.90),
            p99_ms: quantile_ms(0.99),
            max_ms: if stats.ok == 0 {
                0.0
            } else {
                stats.latency_us.max() as f64 / 1000.0
            },
            detail,
            error_samples: stats.error_samples,
        }
    }

    fn human_line(&self) -> String {
        let headline = match self.scenario {
            "log-metric" => format!("{:10.1} req/s  ", self.per_second),
            "log-batch" => format!(
                "{:10.2} calls/s ({:.0} metrics/s)",
                self.per_second, self.items_per_second
            ),
            "search-runs" => format!("{:10.2} queries/s", self.per_second),
            _ => format!("{:10.2} reads/s  ", self.per_second),
        };
        format!(
            "{:<15} {headline}  p50 {:9.2} ms  p99 {:9.2} ms  max {:9.2} ms | {} ok, {} errors ({:.2}%) in {:.1} s, {} clients, setup {:.1} s; {}",
            self.scenario,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.ok,
            self.errors,
            self.error_percent,
            self.seconds,
            self.clients,
            self.setup_seconds,
            self.detail,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// What every scenario needs; built once in `main`.
struct Bench {
    tracking: Tracking,
    args: Args,
    prefix: String,
    /// Experiment for the per-client runs of the logging scenarios and the history run.
    logging_experiment_opt: Option<String>,
}

impl Bench {
    fn phases(&self) -> Phases {
        Phases {
            warmup: Duration::from_secs(self.args.warmup_seconds),
            measured: Duration::from_secs(self.args.seconds),
        }
    }

    async fn logging_experiment(&mut self) -> anyhow::Result<String> {
        if let Some(id) = &self.logging_experiment_opt {
            return Ok(id.clone());
        }
        let id = self
            .tracking
            .create_experiment(&format!("{}-logging", self.prefix))
            .await?;
        self.logging_experiment_opt = Some(id.clone());
        Ok(id)
    }

    /// One fresh run per client, so clients don't contend on one run's rows.
    async fn runs_per_client(&mut self, scenario: Scenario) -> anyhow::Result<Arc<Vec<String>>> {
        let experiment_id = self.logging_experiment().await?;
        let mut run_ids = Vec::with_capacity(self.args.clients);
        for client_index in 0..self.args.clients {
            let name = format!("{}-{client_index}", scenario.name());
            let run_id = self
                .tracking
                .create_run(&experiment_id, &name, &[])
                .await
                .map_err(anyhow::Error::msg)?;
            run_ids.push(run_id);
        }
        Ok(Arc::new(run_ids))
    }

    async fn log_metric(&mut self) -> anyhow::Result<ScenarioResult> {
        let setup_started = Instant::now();
        let run_ids = self.runs_per_client(Scenario::LogMetric).await?;
        let setup = setup_started.elapsed();
        let tracking = self.tracking.clone();
        let measured = drive(
            self.args.clients,
            self.phases(),
            move |client, iteration| {
                let tracking = tracking.clone();
                let run_ids = Arc::clone(&run_ids);
                async move {
                    let run_id = &run_ids[client];
                    // The legacy run_uuid duplicate is what the official client sends too.
                    let body = json!({
                        "run_uuid": run_id,
                        "run_id": run_id,
                        "key": "loss",
                        "value": 1.0 / (iteration as f64 + 1.0),
                        "timestamp": now_ms(),
                        "step": iteration,
                    });
                    tracking
                        .post::<IgnoredAny>("runs/log-metric", &body)
                        .await
                        .map(|_| 1)
                }
            },
        )
        .await?;
        Ok(ScenarioResult::new(
            Scenario::LogMetric,
            "req",
            self.args.clients,
            setup,
            measured,
            "1 metric per request".to_owned(),
        ))
    }

    async fn log_batch(&mut self) -> anyhow::Result<ScenarioResult> {
        let setup_started = Instant::now();
        let run_ids = self.runs_per_client(Scenario::LogBatch).await?;
        let setup = setup_started.elapsed();
        let batch_size = self.args.batch_size;
        // Ten keys, each getting batch_size / 10 new steps per call: a training loop that
        // flushes a buffer of per-step metrics.
        let keys: Arc<Vec<String>> = Arc::new((0..10).map(|k| format!("metric_{k}")).collect());
        let tracking = self.tracking.clone();
        let measured = drive(
            self.args.clients,
            self.phases(),
            move |client, iteration| {
                let tracking = tracking.clone();
                let run_ids = Arc::clone(&run_ids);
                let keys = Arc::clone(&keys);
                async move {
                    let timestamp = now_ms();
                    let first_step = iteration * batch_size as u64;
                    // Typed rather than a `json!` tree: the load generator shares the cores with
                    // the server, and a thousand small maps per call cost it several times more.
                    let metrics: Vec<BatchMetric> = (0..batch_size)
                        .map(|index| BatchMetric {
                            key: &keys[index % keys.len()],
                            value: (index as f64).sqrt(),
                            timestamp,
                            step: first_step + index as u64,
                        })
                        .collect();
                    let body = BatchBody {
                        run_id: &run_ids[client],
                        metrics,
                    };
                    tracking
                        .post::<IgnoredAny>("runs/log-batch", &body)
                        .await
                        .map(|_| batch_size as u64)
                }
            },
        )
        .await?;
        Ok(ScenarioResult::new(
            Scenario::LogBatch,
            "call",
            self.args.clients,
            setup,
            measured,
            format!("{batch_size} metrics per call"),
        ))
    }

    async fn search_runs(&mut self) -> anyhow::Result<ScenarioResult> {
        let setup_started = Instant::now();
        let experiment_id = self
            .tracking
            .create_experiment(&format!("{}-search", self.prefix))
            .await?;
        let run_count = self.args.runs;
        eprintln!("search-runs setup: creating {run_count} runs in experiment {experiment_id}");
        let mut created = 0_usize;
        let mut last_report = Instant::now();
        // Two requests per run (runs/create, runs/log-batch), `clients` runs in flight.
        let mut creations = futures::stream::iter(0..run_count)
            .map(|index| {
                let tracking = self.tracking.clone();
                let experiment_id = experiment_id.clone();
                async move { create_search_run(&tracking, &experiment_id, index).await }
            })
            .buffer_unordered(self.args.clients.max(1));
        while let Some(outcome) = creations.next().await {
            outcome
                .map_err(anyhow::Error::msg)
                .context("search-runs setup failed")?;
            created += 1;
            if last_report.elapsed() >= Duration::from_secs(10) {
                let rate = created as f64 / setup_started.elapsed().as_secs_f64();
                eprintln!("  {created}/{run_count} runs ({rate:.0} runs/s)");
                last_report = Instant::now();
            }
        }
        let setup = setup_started.elapsed();
        eprintln!(
            "  {created} runs in {:.1} s ({:.0} runs/s)",
            setup.as_secs_f64(),
            created as f64 / setup.as_secs_f64()
        );

        let matching = (0..run_count)
            .filter(|&index| {
                let run = SearchRun::new(index);
                run.rmse < 0.5 && run.alpha == "0.1"
            })
            .count();
        let expected = matching.min(SEARCH_PAGE_SIZE);
        let body = Arc::new(json!({
            "experiment_ids": [experiment_id],
            "filter": SEARCH_FILTER,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": SEARCH_PAGE_SIZE,
            "order_by": [SEARCH_ORDER_BY],
        }));
        let tracking = self.tracking.clone();
        let measured = drive(self.args.clients, self.phases(), move |_, _| {
            let tracking = tracking.clone();
            let body = Arc::clone(&body);
            async move {
                #[derive(Deserialize)]
                struct Page {
                    #[serde(default)]
                    runs: Vec<IgnoredAny>,
                }
                let page: Page = tracking.post("runs/search", &*body).await?;
                if page.runs.len() != expected {
                    return Err(format!(
                        "runs/search: expected {expected} runs, got {}",
                        page.runs.len()
                    ));
                }
                Ok(page.runs.len() as u64)
            }
        })
        .await?;
        Ok(ScenarioResult::new(
            Scenario::SearchRuns,
            "query",
            self.args.clients,
            setup,
            measured,
            format!(
                "{run_count} runs, {matching} match `{SEARCH_FILTER}`, order_by {SEARCH_ORDER_BY}, max_results {SEARCH_PAGE_SIZE}"
            ),
        ))
    }

    async fn metric_history(&mut self) -> anyhow::Result<ScenarioResult> {
        let setup_started = Instant::now();
        let experiment_id = self.logging_experiment().await?;
        let run_id = self
            .tracking
            .create_run(&experiment_id, "metric-history", &[])
            .await
            .map_err(anyhow::Error::msg)?;
        let points = self.args.history_points;
        let per_write = usize::from(self.args.history_points_per_write);
        let timestamp = now_ms();
        let point = |step: usize| {
            json!({
                "key": "history",
                "value": 1.0 / (step as f64 + 1.0),
                "timestamp": timestamp + step as i64,
                "step": step,
            })
        };
        if per_write == 1 {
            // The clients log concurrently, as the setup of the other scenarios does.
            futures::stream::iter(0..points)
                .map(|step| {
                    let mut body = point(step);
                    body["run_id"] = json!(run_id);
                    let tracking = &self.tracking;
                    async move { tracking.post::<IgnoredAny>("runs/log-metric", &body).await }
                })
                .buffer_unordered(self.args.clients)
                .try_collect::<Vec<_>>()
                .await
                .map_err(anyhow::Error::msg)
                .context("metric-history setup failed")?;
        } else {
            for first in (0..points).step_by(per_write) {
                let metrics: Vec<Value> =
                    (first..points.min(first + per_write)).map(point).collect();
                self.tracking
                    .log_batch(&run_id, &json!({ "metrics": metrics }))
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("metric-history setup failed")?;
            }
        }
        let setup = setup_started.elapsed();

        let expected = points.min(HISTORY_PAGE_SIZE);
        let run_id: Arc<str> = Arc::from(run_id);
        let tracking = self.tracking.clone();
        let measured = drive(self.args.clients, self.phases(), move |_, _| {
            let tracking = tracking.clone();
            let run_id = Arc::clone(&run_id);
            async move {
                #[derive(Deserialize)]
                struct Page {
                    #[serde(default)]
                    metrics: Vec<IgnoredAny>,
                }
                let page_size = HISTORY_PAGE_SIZE.to_string();
                let query = [
                    ("run_uuid", &*run_id),
                    ("run_id", &*run_id),
                    ("metric_key", "history"),
                    ("max_results", page_size.as_str()),
                ];
                let page: Page = tracking.get("metrics/get-history", &query).await?;
                if page.metrics.len() != expected {
                    return Err(format!(
                        "metrics/get-history: expected {expected} points, got {}",
                        page.metrics.len()
                    ));
                }
                Ok(page.metrics.len() as u64)
            }
        })
        .await?;
        Ok(ScenarioResult::new(
            Scenario::MetricHistory,
            "read",
            self.args.clients,
            setup,
            measured,
            format!(
                "{points} points per history, {per_write} per write, max_results {HISTORY_PAGE_SIZE}"
            ),
        ))
    }
}

/// The params, metrics and tags of search run number `index`; deterministic, so the number
/// of runs matching the filter is known without asking the server.
struct SearchRun {
    alpha: &'static str,
    l1_ratio: &'static str,
    rmse: f64,
    framework: &'static str,
    team: String,
}

impl SearchRun {
    fn new(index: usize) -> Self {
        Self {
            alpha: ["0.1", "0.5", "0.9"][index % 3],
            l1_ratio: ["0.2", "0.5", "0.8"][(index / 3) % 3],
            // Spread over [0, 1) independently of alpha's cycle.
            rmse: ((index * 7919) % 1000) as f64 / 1000.0,
            framework: ["sklearn", "xgboost", "lightgbm", "torch"][index % 4],
            team: format!("team-{}", index % 10),
        }
    }
}

/// A `runs/log-batch` body of metrics only.
#[derive(Serialize)]
struct BatchBody<'a> {
    run_id: &'a str,
    metrics: Vec<BatchMetric<'a>>,
}

#[derive(Serialize)]
struct BatchMetric<'a> {
    key: &'a str,
    value: f64,
    timestamp: i64,
    step: u64,
}

/// Sends a few rounds of concurrent cheap API calls and waits for every answer. Each worker
/// process of a fresh `mlflow server` sets up its store on its first API request, which takes
/// seconds; without this, those stalls land in the first scenario's numbers.
async fn warm_up_workers(tracking: &Tracking, clients: usize) -> anyhow::Result<()> {
    const ROUNDS: usize = 4;
    let started = Instant::now();
    let body = json!({ "max_results": 1, "view_type": "ACTIVE_ONLY" });
    for _ in 0..ROUNDS {
        let calls =
            (0..clients.max(4)).map(|_| tracking.post::<IgnoredAny>("experiments/search", &body));
        for outcome in futures::future::join_all(calls).await {
            outcome
                .map_err(anyhow::Error::msg)
                .context("warming up the server")?;
        }
    }
    eprintln!(
        "warm-up: {ROUNDS} rounds of {} concurrent experiments/search in {:.1} s",
        clients.max(4),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn create_search_run(
    tracking: &Tracking,
    experiment_id: &str,
    index: usize,
) -> Result<(), String> {
    let run = SearchRun::new(index);
    let run_id = tracking
        .create_run(
            experiment_id,
            &format!("search-{index}"),
            &[("framework", run.framework.to_owned()), ("team", run.team)],
        )
        .await?;
    let timestamp = now_ms();
    let batch = json!({
        "params": [
            { "key": "alpha", "value": run.alpha },
            { "key": "l1_ratio", "value": run.l1_ratio },
            { "key": "max_iter", "value": "100" },
        ],
        "metrics": [
            { "key": "rmse", "value": run.rmse, "timestamp": timestamp, "step": 0 },
            { "key": "r2", "value": 1.0 - run.rmse, "timestamp": timestamp, "step": 0 },
            { "key": "mae", "value": run.rmse * 0.8, "timestamp": timestamp, "step": 0 },
        ],
        "tags": [{ "key": "stage", "value": "benchmark" }],
    });
    tracking.log_batch(&run_id, &batch).await
}

// ---------------------------------------------------------------------------------------------

/// The command line as typed, quoted where a shell would need it, for the report header.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.seconds == 0 {
        bail!("--clients and --seconds must be at least 1");
    }
    if args.batch_size == 0 || args.batch_size > MAX_METRICS_PER_BATCH {
        bail!("--batch-size must be within 1..={MAX_METRICS_PER_BATCH} (MLflow's log-batch limit)");
    }
    let tracking = Tracking::new(
        &args.tracking_uri,
        Duration::from_secs(args.request_timeout),
        args.clients,
    )?;

    println!("command: {}", command_line());
    println!("target:  {}", args.tracking_uri);
    let health = tracking
        .get_text("/health")
        .await
        .context("the tracking server does not answer /health")?;
    let version = tracking
        .get_text("/version")
        .await
        .unwrap_or_else(|error| format!("unknown ({error})"));
    println!("server:  /health {health:?}, /version {version:?}");
    warm_up_workers(&tracking, args.clients).await?;

    let prefix = args
        .experiment_prefix
        .clone()
        .unwrap_or_else(|| format!("tracking-bench-{}", now_ms()));
    let scenarios = args.scenarios.clone();
    let mut bench = Bench {
        tracking,
        args,
        prefix,
        logging_experiment_opt: None,
    };
    let mut results = Vec::new();
    for scenario in scenarios {
        let result = match scenario {
            Scenario::LogMetric => bench.log_metric().await,
            Scenario::LogBatch => bench.log_batch().await,
            Scenario::SearchRuns => bench.search_runs().await,
            Scenario::MetricHistory => bench.metric_history().await,
        }
        .with_context(|| format!("scenario {}", scenario.name()))?;
        println!("{}", result.human_line());
        for sample in &result.error_samples {
            println!("    error: {sample}");
        }
        results.push(result);
    }

    if bench.args.json {
        let report = json!({
            "command": command_line(),
            "target": bench.args.tracking_uri,
            "server_version": version,
            "clients": bench.args.clients,
            "seconds": bench.args.seconds,
            "warmup_seconds": bench.args.warmup_seconds,
            "runs": bench.args.runs,
            "history_points": bench.args.history_points,
            "history_points_per_write": bench.args.history_points_per_write,
            "batch_size": bench.args.batch_size,
            "scenarios": results,
        });
        println!("{report}");
    }

    let failed: Vec<String> = results
        .iter()
        .filter(|result| result.ok == 0 || result.error_percent > bench.args.max_error_percent)
        .map(|result| {
            format!(
                "{}: {} of {} requests failed ({:.2}%)",
                result.scenario, result.errors, result.requests, result.error_percent
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "too many errors (limit {}%): {}",
            bench.args.max_error_percent,
            failed.join("; ")
        );
    }
    Ok(())
}
