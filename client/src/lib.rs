//! `okla-client`: an async, typed Rust client of `okla-registry` for training jobs.
//!
//! One [`Client`] per registry (cheap to clone) covers:
//!
//! - **Tracking** (MLflow's API): [`Client::get_or_create_experiment`], [`Client::create_run`]
//!   returning a [`Run`] with [`Run::log_param`], [`Run::set_tag`] and [`Run::end_run`]. Metrics
//!   go through [`Run::metrics`], a [`MetricLogger`] whose [`MetricLogger::log`] only queues the
//!   point; a background task sends them as `runs/log-batch` calls of up to 1000 points, and
//!   [`MetricLogger::flush`] waits for them and reports a failed batch.
//! - **Artifacts** through the registry's artifact proxy, streamed and sha256-hashed both ways:
//!   [`Client::upload_file`], [`Client::upload_dir`], [`Client::download_file`].
//! - **Model registry**: [`Client::register_model_dir`] (upload a run's model directory, create
//!   the version, check each file's size and sha256 against what the registry recorded),
//!   stages, aliases, [`Client::search_model_versions`], [`Client::get_registered_model`].
//! - **Deployments**: [`Client::get_deployment`], [`Client::put_deployment`],
//!   [`Client::rollback`], the fleet's reports with [`Client::nodes`], and
//!   [`Client::wait_until_served`].
//! - **Predictions** from okla-serving (or any KServe V2 server) over gRPC: a [`Predictor`]
//!   per server, [`Predictor::predict`] with [`InputTensor`]s, answered by a [`Prediction`]
//!   naming the version that answered; [`Predictor::with_routing_key`] for sticky deployments.
//! - **Users and permissions** (MLflow's auth API): [`Client::create_user`],
//!   [`Client::list_users`], [`Client::update_admin`], and grants on experiments and registered
//!   models with [`Client::grant_permission`], [`Client::revoke_permission`] and
//!   [`Client::list_permissions`].
//!
//! Versions are `u64` here (MLflow sends them as strings). Every failure is an [`Error`]; a
//! registry refusal is [`Error::Api`] with MLflow's `error_code`. GETs, artifact PUTs and the
//! few writes that repeat harmlessly (each says so) are retried with exponential backoff on
//! transport errors and 5xx/429 ([`RetryPolicy`]); other calls are never retried.
//!
//! ```no_run
//! # async fn train() -> okla_client::Result<()> {
//! use okla_client::{Client, RunStatus, Stage};
//!
//! let client = Client::new("http://registry:5000")?;
//! let experiment = client.get_or_create_experiment("pricing").await?;
//! let run = client.create_run(&experiment, "nightly", &[("team", "pricing")]).await?;
//! run.log_param("alpha", "0.5").await?;
//! let metrics = run.metrics();
//! for step in 0..100 {
//!     metrics.log("rmse", 1.0 / (step + 1) as f64, step).await?;
//! }
//! metrics.flush().await?;
//! let version = client
//!     .register_model_dir("pricing", &run, std::path::Path::new("out/model"))
//!     .await?;
//! client.set_alias("pricing", "challenger", version.version).await?;
//! run.end_run(RunStatus::Finished).await?;
//! # Ok(())
//! # }
//! ```

mod artifacts;
mod deployments;
mod error;
mod http;
mod metrics;
mod predict;
mod registry;
mod search;
mod tokens;
mod tracking;
mod users;
mod wire;

pub use artifacts::{TransferredFile, UploadProgress};
pub use error::{Error, GrpcCode, Result, StatusCode};
pub use http::{Client, ClientOptions, Credentials, RetryPolicy};
pub use metrics::{FLUSH_INTERVAL, MAX_METRICS_PER_BATCH, MetricLogger};
pub use okla_proto::wire::{
    CanaryGate, Deployment, DeploymentSpec, ModelReport, Node, NodeModel, NodeReport, NodeVersion,
    Route, Sticky, TokenVerdict, VersionReport, VersionState,
};
pub use predict::{InputTensor, OutputTensor, Prediction, Predictor, TensorValues};
pub use registry::{Alias, MODEL_ARTIFACT_PATH, ModelVersion, RegisteredModel, Stage, VersionFile};
pub use search::{Experiment, RunData, RunDetails, RunQuery, name_contains_filter};
pub use tokens::{IssuedToken, NewToken, Token};
pub use tracking::{ExperimentId, Metric, Run, RunInfo, RunStatus};
pub use users::{EffectivePermission, Grant, Permission, ResourceType, User, UserPermissions};
pub use wire::KeyValue;
