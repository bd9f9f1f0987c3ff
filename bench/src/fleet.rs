//! `fleet-bench`: what following the registry costs a serving fleet, measured from outside over
//! HTTP against one okla-registry and N okla-serving nodes that follow it (`--registry`).
//!
//! Setup registers `--model-file` (an ONNX model) as versions 1, 2 and 3 of `--model` the way a
//! training job without the mlflow client would: a run per version, the file uploaded through the
//! artifact proxy (`PUT /api/2.0/mlflow-artifacts/artifacts/<run>/artifacts/model/model.onnx`),
//! then `model-versions/create` with source `<run artifact uri>/model`. All three hold the same
//! bytes; a node's answer tells them apart by `model_version`. Version 3 exists only to be a
//! shadow (a shadow cannot also be a route). Then the scenarios (`--scenarios`, in this order):
//!
//! * `promotion`: `--promotions` promotions alternating v1/v2 (`PUT
//!   /api/okla/v1/deployments/{model}`, one route at 100%); after each, every node's unversioned
//!   V2 infer is probed every `--probe-ms` until all nodes answer the new version. Time from
//!   sending the PUT to the last node's first new answer: p50/p99/max.
//! * `swaps`: `--clients` closed-loop clients (one keep-alive pool, V2 JSON infer, requests
//!   alternating over the nodes) run while `--swaps` promotions alternate v1/v2, each waiting until
//!   every node serves the new version. Total and failed requests (non-200 or transport error).
//! * `share`: routes v1 90 / v2 10, then `--share-requests` unversioned requests spread over the
//!   nodes: observed share of v2. Then sticky 50/50 on `x-okla-routing-key` with
//!   `--sticky-keys` distinct keys: share of v2, and `--repeated-keys` of those keys sent again
//!   to every node, which must answer the version the key got the first time.
//! * `overhead`: `--clients` closed-loop clients for `--seconds` (after `--warmup-seconds`)
//!   on (1) `/v2/models/{model}/versions/1/infer` under a one-route deployment, (2) the
//!   unversioned URL under that deployment, (3) the unversioned URL under routes v1 90 / v2 10
//!   with v3 as shadow; requests/s and p50/p99, and the difference from (1).
//!
//! Before each scenario's measurement the deployment it needs is put and the bench waits until
//! every node answers with a version the previous deployment did not route to (a node switches
//! a deployment's routes all at once, when all its versions are ready).
//!
//! Run: `bench/run_fleet.sh` (starts the registry and the nodes); by hand:
//! `cargo run -p okla-bench --release --bin fleet-bench -- --registry http://127.0.0.1:5000
//! --nodes http://127.0.0.1:8000,http://127.0.0.1:8100 --model-file examples/models/pricing/1/model.onnx`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The header sticky deployments hash (the deployment names it; any header works).
const ROUTING_KEY_HEADER: &str = "x-okla-routing-key";
/// Error messages kept per load, so a failing run shows what went wrong.
const KEPT_ERROR_SAMPLES: usize = 3;
/// One row of the pricing model's 8 features (examples/models/README.md).
const FEATURES: [f32; 8] = [3.0, 2019.0, 60000.0, 1.6, 0.0, 1.0, 4.0, 12.0];

#[derive(Debug, Parser)]
#[command(
    name = "fleet-bench",
    about = "Promotion, swap, traffic-share and routing-overhead figures of a serving fleet that follows okla-registry"
)]
struct Args {
    /// Base URL of okla-registry.
    #[arg(long)]
    registry: String,
    /// Base HTTP URLs of the serving nodes, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Registered model name (the nodes serve it under the same name).
    #[arg(long, default_value = "pricing")]
    model: String,
    /// The ONNX file registered as every version.
    #[arg(long)]
    model_file: PathBuf,
    /// How the nodes learn of changes, printed with the figures (e.g. poll-1s, amqp).
    #[arg(long, default_value = "poll")]
    label: String,
    /// Scenarios to run, comma separated, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Scenario::Promotion, Scenario::Swaps, Scenario::Share, Scenario::Overhead]
    )]
    scenarios: Vec<Scenario>,
    /// Promotions timed by the promotion scenario.
    #[arg(long, default_value_t = 30)]
    promotions: usize,
    /// Promotions performed under load by the swaps scenario.
    #[arg(long, default_value_t = 100)]
    swaps: usize,
    /// Concurrent closed-loop clients (swaps, overhead; also the share requests' concurrency).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Unversioned requests counted under the 90/10 deployment.
    #[arg(long, default_value_t = 10_000)]
    share_requests: usize,
    /// Distinct routing keys sent under the sticky 50/50 deployment.
    #[arg(long, default_value_t = 10_000)]
    sticky_keys: usize,
    /// Keys sent again, to every node, to check they keep their version.
    #[arg(long, default_value_t = 200)]
    repeated_keys: usize,
    /// Measured seconds of each overhead variant.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Untimed load before each overhead variant.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Interval between probes while waiting for the nodes to answer a new version.
    #[arg(long, default_value_t = 5)]
    probe_ms: u64,
    /// Longest wait for the nodes to converge on a deployment.
    #[arg(long, default_value_t = 120)]
    converge_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Promotion,
    Swaps,
    Share,
    Overhead,
}

/// Which infer URL a request goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `/v2/models/{model}/infer`: the node's routing picks the version.
    Routed,
    /// `/v2/models/{model}/versions/{version}/infer`: routing is bypassed.
    Explicit(u64),
}

#[derive(Deserialize)]
struct InferAnswer {
    model_version: String,
}

// ---------------------------------------------------------------------------------------------
// The fleet: the registry's API and the nodes' V2 infer
// ---------------------------------------------------------------------------------------------

/// Clients of the registry and the nodes. Cloning is cheap and shares the connection pool.
#[derive(Clone)]
struct Fleet {
    http: reqwest::Client,
    registry: Arc<str>,
    nodes: Arc<[String]>,
    model: Arc<str>,
    body: &'static str,
}

impl Fleet {
    fn new(args: &Args) -> anyhow::Result<Fleet> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(args.clients.max(1) * 2)
            // Every target is local; an HTTP(S)_PROXY in the environment must not apply.
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let body = json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
            "data": FEATURES}]})
        .to_string();
        Ok(Fleet {
            http,
            registry: args.registry.trim_end_matches('/').into(),
            nodes: args
                .nodes
                .iter()
                .map(|node| node.trim_end_matches('/').to_owned())
                .collect(),
            model: args.model.as_str().into(),
            // Built once and shared by every request of the run.
            body: Box::leak(body.into_boxed_str()),
        })
    }

    /// An MLflow REST call; fails on any answer but 200.
    async fn mlflow(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.registry);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        json_answer(response, &url).await
    }

    /// Sets the model's explicit deployment.
    async fn put_deployment(&self, spec: Value) -> anyhow::Result<()> {
        let url = format!("{}/api/okla/v1/deployments/{}", self.registry, self.model);
        let response = self
            .http
            .put(&url)
            .header("x-okla-actor", "fleet-bench")
            .json(&spec)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        json_answer(response, &url).await.map(drop)
    }

    fn infer_url(&self, node: usize, target: Target) -> String {
        let node = &self.nodes[node % self.nodes.len()];
        match target {
            Target::Routed => format!("{node}/v2/models/{}/infer", self.model),
            Target::Explicit(version) => {
                format!("{node}/v2/models/{}/versions/{version}/infer", self.model)
            }
        }
    }

    fn infer_request(
        &self,
        node: usize,
        target: Target,
        routing_key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.infer_url(node, target))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body);
        if let Some(key) = routing_key {
            request = request.header(ROUTING_KEY_HEADER, key);
        }
        request
    }

    /// One infer call that must answer 200; the body is read (so the connection is reused) but
    /// not parsed.
    async fn send(&self, node: usize, target: Target) -> anyhow::Result<()> {
        let response = self.infer_request(node, target, None).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        ensure!(
            status == reqwest::StatusCode::OK,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// One infer call; the version that answered.
    async fn answering_version(
        &self,
        node: usize,
        target: Target,
        routing_key: Option<&str>,
    ) -> anyhow::Result<u64> {
        let response = self.infer_request(node, target, routing_key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        ensure!(
            status == reqwest::StatusCode::OK,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        let answer: InferAnswer = serde_json::from_slice(&body).context("V2 infer answer")?;
        answer
            .model_version
            .parse()
            .with_context(|| format!("model_version {:?}", answer.model_version))
    }

    /// Probes every node every `probe` until each has answered an unversioned request with
    /// `version` (each probe carries a fresh routing key, so sticky deployments spread them too);
    /// returns the time until the last node did.
    async fn wait_until_answering(
        &self,
        version: u64,
        probe: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let waits = (0..self.nodes.len()).map(|node| async move {
            let mut attempt = 0u64;
            loop {
                let key = format!("probe-{attempt}");
                attempt += 1;
                if self
                    .answering_version(node, Target::Routed, Some(&key))
                    .await
                    .is_ok_and(|answered| answered == version)
                {
                    return Ok(());
                }
                if started.elapsed() > timeout {
                    bail!(
                        "{} did not answer with version {version} within {timeout:?}",
                        self.nodes[node]
                    );
                }
                tokio::time::sleep(probe).await;
            }
        });
        futures::future::try_join_all(waits).await?;
        Ok(started.elapsed())
    }
}

async fn json_answer(response: reqwest::Response, url: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    ensure!(status == reqwest::StatusCode::OK, "{url}: {status} {text}");
    serde_json::from_str(&text).with_context(|| format!("{url}: not JSON: {text}"))
}

fn single_route(version: u64) -> Value {
    json!({"routes": [{"version": version, "weight": 100}], "comment": "fleet-bench"})
}

// ---------------------------------------------------------------------------------------------
// Setup: versions registered through the artifact proxy
// ---------------------------------------------------------------------------------------------

/// Registers the model and `count` versions of `model_file`, each logged in a run of its own.
async fn register_versions(
    fleet: &Fleet,
    model_file: &std::path::Path,
    count: usize,
) -> anyhow::Result<Vec<u64>> {
    let bytes =
        std::fs::read(model_file).with_context(|| format!("reading {}", model_file.display()))?;
    fleet
        .mlflow("registered-models/create", json!({"name": &*fleet.model}))
        .await
        .context("the registry must not hold the model yet (use a fresh database)")?;
    let experiment = fleet
        .mlflow(
            "experiments/create",
            json!({"name": format!("fleet-bench-{}", now_ms())}),
        )
        .await?;
    let experiment_id = experiment["experiment_id"]
        .as_str()
        .context("experiments/create answered no experiment_id")?;
    let mut versions = Vec::with_capacity(count);
    for _ in 0..count {
        let run = fleet
            .mlflow(
                "runs/create",
                json!({"experiment_id": experiment_id, "start_time": now_ms()}),
            )
            .await?;
        let info = &run["run"]["info"];
        let (Some(run_id), Some(artifact_uri)) =
            (info["run_id"].as_str(), info["artifact_uri"].as_str())
        else {
            bail!("runs/create answered no run_id or artifact_uri: {run}");
        };
        let Some(proxied) = artifact_uri.strip_prefix("mlflow-artifacts:/") else {
            bail!("run artifacts at {artifact_uri}, not behind the artifact proxy");
        };
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/model/model.onnx",
            fleet.registry,
            proxied.trim_start_matches('/')
        );
        let response = fleet
            .http
            .put(&url)
            .body(bytes.clone())
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        json_answer(response, &url).await?;
        let created = fleet
            .mlflow(
                "model-versions/create",
                json!({"name": &*fleet.model, "source": format!("{artifact_uri}/model"),
                       "run_id": run_id}),
            )
            .await?;
        let version = created["model_version"]["version"]
            .as_str()
            .and_then(|version| version.parse().ok())
            .with_context(|| format!("model-versions/create answered {created}"))?;
        versions.push(version);
    }
    Ok(versions)
}

// ---------------------------------------------------------------------------------------------
// Closed-loop load
// ---------------------------------------------------------------------------------------------

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// What one or all clients of a load saw.
struct LoadResult {
    requests: u64,
    failed: u64,
    latency_us: Histogram<u64>,
    error_samples: Vec<String>,
    elapsed: Duration,
}

impl LoadResult {
    fn empty() -> LoadResult {
        LoadResult {
            requests: 0,
            failed: 0,
            latency_us: new_histogram(),
            error_samples: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: LoadResult) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms of equal bounds");
        let room = KEPT_ERROR_SAMPLES.saturating_sub(self.error_samples.len());
        self.error_samples
            .extend(other.error_samples.into_iter().take(room));
    }

    fn requests_per_second(&self) -> f64 {
        (self.requests - self.failed) as f64 / self.elapsed.as_secs_f64()
    }

    fn print_errors(&self) {
        for sample in &self.error_samples {
            println!("    error: {sample}");
        }
    }
}

/// `clients` tasks sending requests back to back, alternating over the nodes, until finished.
struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    clients: Vec<JoinHandle<LoadResult>>,
}

impl Load {
    fn start(fleet: &Fleet, clients: usize, target: Target) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move { run_client(&fleet, client, target, &stop).await })
            })
            .collect();
        Load {
            stop,
            started: Instant::now(),
            clients,
        }
    }

    async fn finish(self) -> anyhow::Result<LoadResult> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadResult::empty();
        for client in self.clients {
            total.merge(client.await.context("load client task")?);
        }
        total.elapsed = self.started.elapsed();
        Ok(total)
    }

    async fn run_for(
        fleet: &Fleet,
        clients: usize,
        target: Target,
        seconds: u64,
    ) -> anyhow::Result<LoadResult> {
        let load = Load::start(fleet, clients, target);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        load.finish().await
    }
}

async fn run_client(fleet: &Fleet, client: usize, target: Target, stop: &AtomicBool) -> LoadResult {
    let mut result = LoadResult::empty();
    let mut node = client;
    while !stop.load(Ordering::Relaxed) {
        node += 1;
        let started = Instant::now();
        let outcome = fleet.send(node, target).await;
        result.requests += 1;
        match outcome {
            Ok(()) => result
                .latency_us
                .saturating_record(micros(started.elapsed())),
            Err(error) => {
                result.failed += 1;
                if result.error_samples.len() < KEPT_ERROR_SAMPLES {
                    result
                        .error_samples
                        .push(format!("{}: {error:#}", fleet.infer_url(node, target)));
                }
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

struct Bench {
    fleet: Fleet,
    args: Args,
}

impl Bench {
    fn probe(&self) -> Duration {
        Duration::from_millis(self.args.probe_ms)
    }

    fn converge_timeout(&self) -> Duration {
        Duration::from_secs(self.args.converge_timeout_seconds)
    }

    /// Puts `spec` and waits until every node answers with `version` (which must be new to
    /// the fleet, or the wait proves nothing); the time from the PUT to the last node.
    async fn deploy(&self, spec: Value, version: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.fleet.put_deployment(spec).await?;
        self.fleet
            .wait_until_answering(version, self.probe(), self.converge_timeout())
            .await?;
        Ok(started.elapsed())
    }

    /// Back to v1 alone, from whatever the previous scenario left. Through v3 alone first: no
    /// other deployment here routes to v3, so its answer proves the previous deployment gone
    /// (v1 answering would prove nothing after a split that includes v1).
    async fn reset_to_v1(&self) -> anyhow::Result<()> {
        self.deploy(single_route(3), 3).await?;
        self.deploy(single_route(1), 1).await.map(drop)
    }

    /// Promotions alternating v1/v2, starting from v1 alone; the histogram of their
    /// promotion-to-serving times.
    async fn alternate(&self, promotions: usize) -> anyhow::Result<Histogram<u64>> {
        let mut times = new_histogram();
        for promotion in 0..promotions {
            let version = if promotion.is_multiple_of(2) { 2 } else { 1 };
            let took = self.deploy(single_route(version), version).await?;
            times.saturating_record(micros(took));
        }
        Ok(times)
    }

    async fn promotion(&self) -> anyhow::Result<()> {
        self.reset_to_v1().await?;
        let times = self.alternate(self.args.promotions).await?;
        println!(
            "== a) promotion to serving: PUT deployment (one route, 100%) until all {} nodes answer the new version (probed every {} ms)",
            self.fleet.nodes.len(),
            self.args.probe_ms
        );
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>10}",
            "path", "promotions", "p50 ms", "p99 ms", "max ms"
        );
        println!(
            "{:<12} {:>10} {:>10.1} {:>10.1} {:>10.1}",
            self.args.label,
            times.len(),
            ms(&times, 0.5),
            ms(&times, 0.99),
            times.max() as f64 / 1000.0
        );
        Ok(())
    }

    async fn swaps(&self) -> anyhow::Result<()> {
        self.reset_to_v1().await?;
        let load = Load::start(&self.fleet, self.args.clients, Target::Routed);
        let swapped = self.alternate(self.args.swaps).await;
        let result = load.finish().await?;
        let times = swapped?;
        println!(
            "== b) {} swaps (v1/v2 alternating, each until all nodes serve it) under {} closed-loop clients over {} nodes",
            self.args.swaps,
            self.args.clients,
            self.fleet.nodes.len()
        );
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}",
            "path", "requests", "failed", "seconds", "req/s", "swap p50 ms", "swap p99 ms"
        );
        println!(
            "{:<12} {:>10} {:>10} {:>10.1} {:>12.0} {:>12.1} {:>12.1}",
            self.args.label,
            result.requests,
            result.failed,
            result.elapsed.as_secs_f64(),
            result.requests_per_second(),
            ms(&times, 0.5),
            ms(&times, 0.99)
        );
        result.print_errors();
        Ok(())
    }

    /// Sends `count` unversioned requests over the nodes, request `i` to node `i` with the routing
    /// key `key(i)`; the version each answered.
    async fn versions_answered(
        &self,
        count: usize,
        node_of: impl Fn(usize) -> usize,
        key: impl Fn(usize) -> Option<String>,
    ) -> anyhow::Result<Vec<u64>> {
        let requests = (0..count).map(|index| {
            let (node, key) = (node_of(index), key(index));
            async move {
                self.fleet
                    .answering_version(node, Target::Routed, key.as_deref())
                    .await
            }
        });
        futures::stream::iter(requests)
            .buffered(self.args.clients.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn share(&self) -> anyhow::Result<()> {
        let nodes = self.fleet.nodes.len();
        self.reset_to_v1().await?;
        self.deploy(
            json!({"routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}),
            2,
        )
        .await?;
        let weighted = self
            .versions_answered(self.args.share_requests, |index| index % nodes, |_| None)
            .await?;

        self.reset_to_v1().await?;
        self.deploy(
            json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
                   "sticky": {"routing_key_header": ROUTING_KEY_HEADER}}),
            2,
        )
        .await?;
        let key = |index: usize| Some(format!("key-{index}"));
        let sticky = self
            .versions_answered(self.args.sticky_keys, |index| index % nodes, key)
            .await?;
        let repeated = self.args.repeated_keys.min(sticky.len());
        let mut moved = 0;
        for round in 1..=nodes {
            let again = self
                .versions_answered(repeated, |index| (index + round) % nodes, key)
                .await?;
            moved += again
                .iter()
                .zip(&sticky)
                .filter(|(again, first)| again != first)
                .count();
        }

        println!(
            "== c) traffic share of v2 over {nodes} nodes (unversioned requests, {} concurrent)",
            self.args.clients
        );
        println!(
            "{:<26} {:>10} {:>12} {:>12} {:>10}",
            "deployment", "requests", "configured %", "observed %", "delta pt"
        );
        for (label, answers, configured) in [
            ("v1 90 / v2 10", &weighted, 10.0),
            ("sticky v1 50 / v2 50", &sticky, 50.0),
        ] {
            let observed = share_of(answers, 2);
            println!(
                "{label:<26} {:>10} {configured:>12.1} {observed:>12.2} {:>+10.2}",
                answers.len(),
                observed - configured
            );
        }
        println!(
            "sticky: {repeated} keys sent again to each of the {nodes} nodes: {moved} of {} answers changed version",
            repeated * nodes
        );
        Ok(())
    }

    async fn overhead(&self) -> anyhow::Result<()> {
        self.reset_to_v1().await?;
        let explicit = self.measure(Target::Explicit(1)).await?;
        let routed = self.measure(Target::Routed).await?;
        self.deploy(
            json!({"routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
                   "shadow": 3}),
            2,
        )
        .await?;
        let shadowed = self.measure(Target::Routed).await?;

        println!(
            "== d) routing overhead: {} closed-loop clients over {} nodes, {} s each (after {} s warm-up)",
            self.args.clients,
            self.fleet.nodes.len(),
            self.args.seconds,
            self.args.warmup_seconds
        );
        println!(
            "{:<36} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "variant", "req/s", "failed", "p50 ms", "p99 ms", "Δ req/s", "Δ p50", "Δ p99"
        );
        for (label, result) in [
            ("(1) explicit /versions/1/infer", &explicit),
            ("(2) routed, v1 100%", &routed),
            ("(3) routed, v1 90 / v2 10, shadow v3", &shadowed),
        ] {
            println!(
                "{label:<36} {:>9.0} {:>7} {:>9.3} {:>9.3} {:>+8.1}% {:>+8.1}% {:>+8.1}%",
                result.requests_per_second(),
                result.failed,
                ms(&result.latency_us, 0.5),
                ms(&result.latency_us, 0.99),
                percent_change(explicit.requests_per_second(), result.requests_per_second()),
                percent_change(ms(&explicit.latency_us, 0.5), ms(&result.latency_us, 0.5)),
                percent_change(ms(&explicit.latency_us, 0.99), ms(&result.latency_us, 0.99)),
            );
            result.print_errors();
        }
        Ok(())
    }

    /// Warm-up, then the measured window, of closed-loop load on `target`.
    async fn measure(&self, target: Target) -> anyhow::Result<LoadResult> {
        let (clients, args) = (self.args.clients, &self.args);
        Load::run_for(&self.fleet, clients, target, args.warmup_seconds).await?;
        Load::run_for(&self.fleet, clients, target, args.seconds).await
    }
}

fn share_of(answers: &[u64], version: u64) -> f64 {
    let hits = answers.iter().filter(|answer| **answer == version).count();
    100.0 * hits as f64 / answers.len().max(1) as f64
}

fn percent_change(base: f64, value: f64) -> f64 {
    100.0 * (value - base) / base
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

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
    ensure!(
        args.clients > 0 && args.seconds > 0,
        "--clients and --seconds must be at least 1"
    );
    let fleet = Fleet::new(&args)?;
    println!("command: {}", command_line());
    println!("registry: {}", fleet.registry);
    println!(
        "nodes:    {} ({})",
        fleet.nodes.len(),
        fleet.nodes.join(", ")
    );
    println!("path:     {}", args.label);

    let versions = register_versions(&fleet, &args.model_file, 3).await?;
    ensure!(
        versions == [1, 2, 3],
        "expected versions 1, 2, 3 of a new model, got {versions:?}"
    );
    let bench = Bench { fleet, args };
    let first = bench.deploy(single_route(1), 1).await?;
    println!(
        "setup:    {} registered as versions 1-3; v1 served by every node {:.1} s after its deployment",
        bench.args.model,
        first.as_secs_f64()
    );

    for scenario in bench.args.scenarios.clone() {
        match scenario {
            Scenario::Promotion => bench.promotion().await,
            Scenario::Swaps => bench.swaps().await,
            Scenario::Share => bench.share().await,
            Scenario::Overhead => bench.overhead().await,
        }
        .with_context(|| format!("scenario {scenario:?}"))?;
    }
    Ok(())
}
