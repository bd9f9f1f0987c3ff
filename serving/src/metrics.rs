//! Prometheus metrics (prometheus-client), named the Prometheus way: `okla_serving_` prefix,
//! base units (seconds), `_total` on counters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::request::Protocol;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub version: String,
    pub protocol: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub model: String,
    pub version: String,
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub model: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    pub model: String,
    pub version: String,
    /// `agree` or `disagree` (its outputs against the answer's), `error`, or `dropped` (too
    /// many shadow copies in flight).
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 10 µs .. ~20 s: the fastest models answer in microseconds, a cold load takes seconds.
    Histogram::new(exponential_buckets(0.00001, 2.0, 22))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub inferences: Family<ProtocolLabels, Counter>,
    pub request_duration: HistogramFamily<ProtocolLabels>,
    pub queue_duration: HistogramFamily<VersionLabels>,
    pub compute_duration: HistogramFamily<VersionLabels>,
    pub batch_size: HistogramFamily<VersionLabels>,
    pub load_duration: HistogramFamily<ModelLabels>,
    pub load_failures: Family<ModelLabels, Counter>,
    pub loaded_versions: Family<ModelLabels, Gauge>,
    /// Registry source: versions whose download or checksum check failed.
    pub download_failures: Family<ModelLabels, Counter>,
    /// Registry source: polls that could not learn what to serve (registry unreachable).
    pub registry_poll_failures: Counter,
    /// Registry source: model events received from RabbitMQ (`--amqp-url`), followed or not.
    pub registry_events: Counter,
    /// Registry source: models served although the registry names nothing for them to serve
    /// (not in the registry, no deployment); they keep serving until explicitly undeployed.
    pub unconfirmed_models: Gauge,
    /// Copies of routed requests sent to a deployment's shadow version, by outcome.
    pub shadow_requests: Family<ShadowLabels, Counter>,
    /// How long the shadow version took per copy, to set against the answering version's.
    pub shadow_duration: HistogramFamily<VersionLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("okla_serving");
        let requests = Family::default();
        registry.register(
            "requests",
            "Inference requests by model, version, protocol and outcome",
            requests.clone(),
        );
        let inferences = Family::default();
        registry.register(
            "inferences",
            "Inferences (rows of the batch dimension) served successfully",
            inferences.clone(),
        );
        let request_duration =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "Time from a decoded request to its answer, queueing included",
            request_duration.clone(),
        );
        let queue_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "queue_duration_seconds",
            "Time a request waited for a batch and a free session",
            queue_duration.clone(),
        );
        let compute_duration =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "compute_duration_seconds",
            "Time the backend spent running one batch",
            compute_duration.clone(),
        );
        let batch_size = HistogramFamily::new_with_constructor(batch_histogram as fn() -> _);
        registry.register(
            "batch_size",
            "Rows in each batch handed to the backend",
            batch_size.clone(),
        );
        let load_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "model_load_duration_seconds",
            "Time to load and warm up a model version",
            load_duration.clone(),
        );
        let load_failures = Family::default();
        registry.register(
            "model_load_failures",
            "Model version loads that failed",
            load_failures.clone(),
        );
        let loaded_versions = Family::default();
        registry.register(
            "loaded_versions",
            "Model versions loaded and ready",
            loaded_versions.clone(),
        );
        let download_failures = Family::default();
        registry.register(
            "model_download_failures",
            "Model versions whose download from the registry or sha256 check failed",
            download_failures.clone(),
        );
        let registry_poll_failures = Counter::default();
        registry.register(
            "registry_poll_failures",
            "Polls of the model registry that failed",
            registry_poll_failures.clone(),
        );
        let registry_events = Counter::default();
        registry.register(
            "registry_events",
            "Model events received from the registry over RabbitMQ",
            registry_events.clone(),
        );
        let unconfirmed_models = Gauge::default();
        registry.register(
            "unconfirmed_models",
            "Models served although the registry names nothing for them to serve; they keep serving until undeployed",
            unconfirmed_models.clone(),
        );
        let shadow_requests = Family::default();
        registry.register(
            "shadow_requests",
            "Copies of requests sent to a deployment's shadow version, by outcome",
            shadow_requests.clone(),
        );
        let shadow_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "shadow_duration_seconds",
            "Time a deployment's shadow version took per copied request, queueing included",
            shadow_duration.clone(),
        );
        Metrics {
            registry,
            requests,
            inferences,
            request_duration,
            queue_duration,
            compute_duration,
            batch_size,
            load_duration,
            load_failures,
            loaded_versions,
            download_failures,
            registry_poll_failures,
            registry_events,
            unconfirmed_models,
            shadow_requests,
            shadow_duration,
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// One protocol's request metrics of one model version.
struct ProtocolMetrics {
    ok: Counter,
    inferences: Counter,
    duration: Histogram,
}

/// Handles to one model version's metrics, created when the version loads, so that a
/// successful request records its figures without hashing labels or allocating.
pub struct VersionMetrics {
    per_protocol: [ProtocolMetrics; 3],
    queue: Histogram,
    compute: Histogram,
    batch: Histogram,
}

/// What one successful request records.
pub struct RequestTiming {
    pub rows: usize,
    pub total: std::time::Duration,
    pub queued: std::time::Duration,
    pub compute: std::time::Duration,
    pub batch_rows: usize,
}

impl VersionMetrics {
    pub fn record_success(&self, protocol: Protocol, timing: &RequestTiming) {
        let metrics = &self.per_protocol[protocol.index()];
        metrics.ok.inc();
        metrics.inferences.inc_by(timing.rows as u64);
        metrics.duration.observe(timing.total.as_secs_f64());
        self.queue.observe(timing.queued.as_secs_f64());
        self.compute.observe(timing.compute.as_secs_f64());
        self.batch.observe(timing.batch_rows as f64);
    }
}

impl Metrics {
    pub fn for_version(&self, model: &str, version: u64) -> VersionMetrics {
        let version = version.to_string();
        let per_protocol = Protocol::ALL.map(|protocol| {
            let labels = ProtocolLabels {
                model: model.to_owned(),
                version: version.clone(),
                protocol: protocol.as_str(),
            };
            let ok = RequestLabels {
                model: model.to_owned(),
                version: version.clone(),
                protocol: protocol.as_str(),
                status: "ok",
            };
            ProtocolMetrics {
                ok: self.requests.get_or_create(&ok).clone(),
                inferences: self.inferences.get_or_create(&labels).clone(),
                duration: self.request_duration.get_or_create(&labels).clone(),
            }
        });
        let labels = VersionLabels {
            model: model.to_owned(),
            version,
        };
        VersionMetrics {
            per_protocol,
            queue: self.queue_duration.get_or_create(&labels).clone(),
            compute: self.compute_duration.get_or_create(&labels).clone(),
            batch: self.batch_size.get_or_create(&labels).clone(),
        }
    }

    /// Counts a request that failed before or during inference: `model` is empty for a model
    /// the node does not hold, `version` the version routing picked (`None` for a request that
    /// named its version or failed before routing), so a canary's errors show by version.
    pub fn record_failure(
        &self,
        model: &str,
        version: Option<u64>,
        protocol: Protocol,
        status: &'static str,
    ) {
        let labels = RequestLabels {
            model: model.to_owned(),
            version: version
                .map(|version| version.to_string())
                .unwrap_or_default(),
            protocol: protocol.as_str(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }
}
