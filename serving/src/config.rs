//! Command-line flags (Triton's and TF Serving's names where they have one), each also read
//! from an environment variable.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use crate::loader::ModelLimits;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "okla-serving",
    version,
    about = "KServe V2 model server (gRPC + HTTP) on ONNX Runtime and candle",
    group(ArgGroup::new("source").required(true).args(["model_repository", "registry"]))
)]
pub struct ServingConfig {
    /// Address to bind both listeners to.
    #[arg(long, env = "OKLA_SERVING_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// HTTP port (V2 REST, TF Serving REST, /metrics); 0 picks a free one.
    #[arg(long, env = "OKLA_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,
    /// gRPC port (inference.GRPCInferenceService); 0 picks a free one.
    #[arg(long, env = "OKLA_GRPC_PORT", default_value_t = 8001)]
    pub grpc_port: u16,
    /// Directory laid out as `<model>/<version>/model.onnx` (or model.safetensors + config.json).
    /// Exactly one of this and `--registry` is required.
    #[arg(long, env = "OKLA_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
    /// okla-registry to follow, e.g. `http://registry:5000`: each model serves its `champion`
    /// alias, else its latest Production version, downloaded into `--cache-dir`.
    #[arg(long, env = "OKLA_REGISTRY_URL")]
    pub registry: Option<String>,
    /// File holding this node's registry credential (a node token: `okla tokens create
    /// --node-id ID`); else the `OKLA_REGISTRY_TOKEN` environment variable. Never a flag value,
    /// so it does not show in the process list.
    #[arg(long, env = "OKLA_REGISTRY_TOKEN_FILE")]
    pub registry_token_file: Option<PathBuf>,
    /// Registered models to follow (comma-separated); default: every model that has a
    /// Production version or a `champion` alias.
    #[arg(long, env = "OKLA_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Ask the registry for changes every N seconds (at least 1).
    #[arg(long, env = "OKLA_REGISTRY_POLL_SECONDS", default_value_t = 5)]
    pub registry_poll_seconds: u64,
    /// RabbitMQ the registry publishes its model events to, e.g.
    /// `amqp://user:pass@host:5672/vhost`: a change to a followed model is polled at once
    /// instead of at the next `--registry-poll-seconds` tick, which stays as the fallback.
    /// Only with `--registry`.
    // `requires = "registry"` is not enforced while `--model-repository`, its alternative in
    // the required `source` group, is given; refusing that pairing is the same rule.
    #[arg(
        long,
        env = "OKLA_AMQP_URL",
        hide_env_values = true,
        requires = "registry",
        conflicts_with = "model_repository"
    )]
    pub amqp_url: Option<String>,
    /// This node's name in its reports to the registry (what serves where, canary figures);
    /// default: `<hostname>:<http port>`.
    #[arg(long, env = "OKLA_NODE_ID")]
    pub node_id: Option<String>,
    /// The URL clients reach this node's HTTP API at, shown in the registry's node list;
    /// default: `http://<hostname>:<http port>`.
    #[arg(long, env = "OKLA_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Report this node's state and per-version traffic to the registry every N seconds (at
    /// least 1): the registry's canary gates judge these figures.
    #[arg(long, env = "OKLA_REPORT_SECONDS", default_value_t = 2)]
    pub report_seconds: u64,
    /// Where versions downloaded from the registry are kept, laid out as a model repository.
    #[arg(
        long,
        env = "OKLA_CACHE_DIR",
        default_value = "./okla-data/serving-cache"
    )]
    pub cache_dir: PathBuf,
    /// Bytes of downloaded model files kept in `--cache-dir` after no version serves them, so
    /// a rollback needs no download (least recently used go first).
    #[arg(long, env = "OKLA_CONTENT_CACHE_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub content_cache_bytes: u64,
    /// Path of ONNX Runtime's shared library (libonnxruntime.so.1.x). Without it, the library
    /// of the `onnxruntime` Python package in ./.venv or in the activated virtualenv
    /// ($VIRTUAL_ENV) is used if found.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub onnxruntime_library: Option<PathBuf>,
    /// Sessions (and inference threads) per model version; default: one per core.
    #[arg(long, env = "OKLA_INSTANCES")]
    pub instances: Option<usize>,
    /// Largest request body (HTTP) or message (gRPC) accepted, in bytes.
    #[arg(long, env = "OKLA_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Re-scan the model repository every N seconds and load new or changed models and versions
    /// (availability-preserving), unload models whose directory is gone; 0 turns it off.
    #[arg(long, env = "OKLA_REPOSITORY_POLL_SECONDS", default_value_t = 0)]
    pub repository_poll_seconds: u64,
    /// Whether models may be loaded and unloaded over the API (Triton's model control mode):
    /// `none` (the default: the repository or the registry decides) or `explicit` (with an
    /// admin token: `--admin-token-file`, or a registry admin's token).
    #[arg(long, env = "OKLA_MODEL_CONTROL", value_enum, default_value = "none")]
    pub model_control: crate::access::ModelControl,
    /// File holding a token that may load and unload models (`--model-control explicit`).
    #[arg(long, env = "OKLA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Inference and model metadata need a registry token that may read the model
    /// (`Authorization: Bearer`); verdicts are cached briefly. Needs `--registry`.
    #[arg(long, env = "OKLA_REQUIRE_TOKEN", requires = "registry")]
    pub require_token: bool,
    /// How long the registry's verdict on a token is reused: a revoked token keeps working on
    /// a node for at most this long.
    #[arg(long, env = "OKLA_TOKEN_CACHE_SECONDS", default_value_t = 30)]
    pub token_cache_seconds: u64,
    /// Requests that may wait per model version before new ones are refused.
    #[arg(long, env = "OKLA_MAX_QUEUE_SIZE", default_value_t = 4096)]
    pub max_queue_size: usize,
    /// A model whose declared inputs or outputs hold more elements than this (fixed
    /// dimensions) is refused at load; the version it would replace keeps serving.
    #[arg(long, env = "OKLA_MAX_DECLARED_ELEMENTS", default_value_t = ModelLimits::default().max_declared_elements)]
    pub max_declared_elements: u64,
    /// On SIGTERM or Ctrl-C the server reports unready at once and keeps answering for this
    /// many seconds (so load balancers and Kubernetes endpoints stop sending), then stops
    /// accepting and finishes what is in flight. A second signal skips the wait.
    #[arg(long, env = "OKLA_DRAIN_GRACE_SECONDS", default_value_t = 5)]
    pub drain_grace_seconds: u64,
    /// After the grace period, requests still in flight this many seconds later are abandoned
    /// and the process exits.
    #[arg(long, env = "OKLA_DRAIN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub drain_timeout_seconds: u64,
    /// Input bytes that may wait per model version before new requests are refused (429,
    /// RESOURCE_EXHAUSTED), besides --max-queue-size.
    #[arg(long, env = "OKLA_MAX_QUEUE_BYTES", default_value_t = ModelLimits::default().max_queue_bytes)]
    pub max_queue_bytes: u64,
    /// A version's warm-up is skipped when its inputs would take more bytes than this.
    #[arg(long, env = "OKLA_MAX_WARMUP_BYTES", default_value_t = ModelLimits::default().max_warmup_bytes)]
    pub max_warmup_bytes: u64,
}

impl ServingConfig {
    /// The node's registry credential: `--registry-token-file`, else `OKLA_REGISTRY_TOKEN`
    /// from `env`; `None` when neither is set (a registry running with `--no-auth`).
    pub fn registry_token(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        if let Some(path) = &self.registry_token_file {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --registry-token-file {}", path.display()))?;
            return Ok(Some(token.trim().to_owned()).filter(|token| !token.is_empty()));
        }
        Ok(env("OKLA_REGISTRY_TOKEN").filter(|token| !token.trim().is_empty()))
    }

    /// The directory the manager loads from: the repository, or the registry's cache.
    pub fn repository_root(&self) -> &std::path::Path {
        self.model_repository.as_deref().unwrap_or(&self.cache_dir)
    }

    pub fn model_limits(&self) -> ModelLimits {
        ModelLimits {
            max_declared_elements: self.max_declared_elements,
            max_warmup_bytes: self.max_warmup_bytes,
            max_queue_bytes: self.max_queue_bytes,
        }
    }

    pub fn instances(&self) -> usize {
        self.instances
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
