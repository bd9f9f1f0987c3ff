//! The one request path every API (V2 gRPC, V2 REST, TF Serving REST) calls: resolve the model
//! and version through the manager (following the model's routing), check the inputs against
//! the signature, hand the work to the version's batcher, copy it to the deployment's shadow,
//! and record metrics. The API modules only translate between their wire format and the
//! [`crate::request`] types.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::backend::Model;
use crate::batcher::BatchSettings;
use crate::error::ServingError;
use crate::loader::LoadedVersion;
use crate::manager::{ModelManager, ModelRouting, join};
use crate::metrics::{Metrics, RequestTiming, ShadowLabels, VersionLabels};
/// Kept at its old path for the registry source.
pub use crate::request::VersionSelector;
use crate::request::{InferRequest, InferResponse, ModelMetadata, RepositoryEntry, ServerMetadata};
use crate::router::random_u64;
use crate::tensor::{Tensor, TensorData};

/// Shadow copies of one model's requests that may run at once; more are dropped, so a slow
/// shadow version can never pile up work (or memory) behind the answers that matter.
pub const MAX_SHADOW_IN_FLIGHT: usize = 64;

#[derive(Clone)]
pub struct InferenceService {
    manager: Arc<ModelManager>,
    metrics: Arc<Metrics>,
}

/// Gives back a shadow slot however the shadow task ends.
struct ShadowSlot(Arc<ModelRouting>);

impl Drop for ShadowSlot {
    fn drop(&mut self) {
        self.0.shadow_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InferenceService {
    pub fn new(manager: Arc<ModelManager>, metrics: Arc<Metrics>) -> InferenceService {
        InferenceService { manager, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics for a task that outlives this handle (the registry source).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn manager(&self) -> &Arc<ModelManager> {
        &self.manager
    }

    pub fn server_metadata(&self) -> ServerMetadata {
        ServerMetadata {
            name: "okla-serving",
            version: env!("CARGO_PKG_VERSION"),
            extensions: vec!["binary_tensor_data", "model_repository"],
        }
    }

    /// The process is up and answering.
    pub fn live(&self) -> bool {
        true
    }

    /// Every configured model has a ready version.
    pub fn ready(&self) -> bool {
        self.manager.all_ready()
    }

    /// Whether the selected version is ready; unknown models and versions are `NotFound`.
    pub fn model_ready(
        &self,
        model: &str,
        version: &VersionSelector,
    ) -> Result<bool, ServingError> {
        self.manager.is_ready(model, version)
    }

    pub fn model_metadata(
        &self,
        model: &str,
        version: &VersionSelector,
    ) -> Result<ModelMetadata, ServingError> {
        let loaded = self.manager.resolve(model, version)?;
        Ok(ModelMetadata {
            name: model.to_owned(),
            versions: self.manager.ready_versions(model),
            platform: loaded.model.platform().to_owned(),
            inputs: loaded.model.inputs().to_vec(),
            outputs: loaded.model.outputs().to_vec(),
        })
    }

    /// The header (lower case) that carries the routing key of the model's sticky deployment.
    pub fn sticky_header(&self, model: &str) -> Option<String> {
        self.manager.sticky_header(model)
    }

    pub fn repository_index(&self, ready_only: bool) -> Vec<RepositoryEntry> {
        self.manager.index(ready_only)
    }

    /// Loads (or reloads) a model from the repository, returning when it is ready or failed.
    pub async fn load_model(&self, model: &str) -> Result<(), ServingError> {
        self.manager.load_model(model).await
    }

    pub async fn unload_model(&self, model: &str) -> Result<(), ServingError> {
        self.manager.unload_model(model).await
    }

    /// Runs one request: resolve, check inputs, batch, pick outputs, record metrics.
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, ServingError> {
        let started = Instant::now();
        let protocol = request.protocol;
        let model = request.model.clone();
        let routed = match request.version {
            VersionSelector::Latest => self.manager.routed(&request.model),
            _ => None,
        };
        let routed = routed.map(|routed| {
            let version = routed
                .routing
                .pick(request.routing_key.as_deref(), random_u64());
            (routed, version)
        });
        let picked = routed.as_ref().map(|(_, version)| *version);
        let result = self.infer_inner(request, routed.clone()).await;
        if let Some((routed, picked)) = routed {
            // Client mistakes say nothing about a version's health; the canary gate compares
            // what went wrong on our side.
            let (answered, failed) = match &result {
                Ok((response, ..)) => (response.version, false),
                Err(err) => (picked, err.is_server_fault()),
            };
            routed.traffic.record(answered, started.elapsed(), failed);
        }
        match result {
            Ok((response, mut timing, loaded)) => {
                timing.total = started.elapsed();
                loaded.metrics().record_success(protocol, &timing);
                Ok(response)
            }
            Err(err) => {
                // Client-supplied names must not grow the metrics without bound: requests for
                // models this node does not hold share the empty model label.
                let model = if self.manager.knows(&model) {
                    model.as_str()
                } else {
                    ""
                };
                self.metrics
                    .record_failure(model, picked, protocol, err.metric_label());
                Err(err)
            }
        }
    }

    /// `routed`: the model's routing and the version it picked, for a request that follows it.
    async fn infer_inner(
        &self,
        request: InferRequest,
        routed: Option<(Arc<ModelRouting>, u64)>,
    ) -> Result<(InferResponse, RequestTiming, Arc<LoadedVersion>), ServingError> {
        let loaded = match &routed {
            Some((_, version)) => {
                let version = *version;
                // A routing only goes live once its versions are ready, but a version can fail
                // or be unloaded through the API afterwards; the latest ready one still answers.
                self.manager
                    .resolve(&request.model, &VersionSelector::Number(version))
                    .or_else(|_| {
                        self.manager
                            .resolve(&request.model, &VersionSelector::Latest)
                    })?
            }
            None => self.manager.resolve(&request.model, &request.version)?,
        };
        let shadow =
            routed.and_then(|(routed, _)| self.shadow_target(&request.model, routed, &loaded));
        let shadow_inputs = shadow.as_ref().map(|_| request.inputs.clone());
        let (inputs, rows) = check_inputs(
            &request.model,
            loaded.model.as_ref(),
            request.inputs,
            &loaded.batcher().settings(),
        )?;
        let selected = select_outputs(&request.model, loaded.model.as_ref(), &request.outputs)?;
        let output = loaded.batcher().submit(inputs, rows).await?;
        if let (Some((slot, target)), Some(inputs)) = (shadow, shadow_inputs) {
            let copy = ShadowCopy {
                slot,
                target,
                model: request.model.clone(),
                inputs,
                answer: output.outputs.clone(),
            };
            tokio::spawn(copy.run(self.metrics.clone()));
        }
        let timing = RequestTiming {
            rows,
            total: Duration::ZERO,
            queued: output.queued,
            compute: output.compute,
            batch_rows: output.batch_rows,
        };
        let mut all = output.outputs;
        let outputs = match selected {
            None => all,
            Some(indices) => indices
                .iter()
                .map(|&i| std::mem::replace(&mut all[i], empty_tensor()))
                .collect(),
        };
        Ok((
            InferResponse {
                model: request.model,
                version: loaded.version,
                id: request.id,
                outputs,
            },
            timing,
            loaded,
        ))
    }
    /// The shadow version a routed request is copied to, with a slot reserved for the copy;
    /// `None` when there is no shadow, it is the version that answers, it is not ready, or too
    /// many copies are in flight (counted as dropped).
    fn shadow_target(
        &self,
        model: &str,
        routed: Arc<ModelRouting>,
        answering: &LoadedVersion,
    ) -> Option<(ShadowSlot, Arc<LoadedVersion>)> {
        let version = routed.routing.shadow?;
        if version == answering.version {
            return None;
        }
        let target = self
            .manager
            .resolve(model, &VersionSelector::Number(version))
            .ok()?;
        if routed.shadow_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_SHADOW_IN_FLIGHT {
            drop(ShadowSlot(routed));
            count_shadow(&self.metrics, model, version, "dropped");
            return None;
        }
        Some((ShadowSlot(routed), target))
    }
}

/// A copy of an answered request for the deployment's shadow version.
struct ShadowCopy {
    slot: ShadowSlot,
    target: Arc<LoadedVersion>,
    model: String,
    inputs: Vec<Tensor>,
    /// Every output of the answer the client got, to compare the shadow's with.
    answer: Vec<Tensor>,
}

impl ShadowCopy {
    /// Runs the copy; its outputs are only compared with the answer and the outcome counted.
    async fn run(self, metrics: Arc<Metrics>) {
        let ShadowCopy {
            slot,
            target,
            model,
            inputs,
            answer,
        } = self;
        let started = Instant::now();
        let result = match check_inputs(
            &model,
            target.model.as_ref(),
            inputs,
            &target.batcher().settings(),
        ) {
            Ok((inputs, rows)) => target.batcher().submit(inputs, rows).await,
            Err(err) => Err(err),
        };
        drop(slot);
        let status = match result {
            Ok(output) => {
                metrics
                    .shadow_duration
                    .get_or_create(&VersionLabels {
                        model: model.clone(),
                        version: target.version.to_string(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                // Outputs only the shadow has (a new output) are not compared.
                let agree = answer.iter().all(|expected| {
                    output
                        .outputs
                        .iter()
                        .find(|tensor| tensor.name == expected.name)
                        .is_some_and(|tensor| tensor.agrees_with(expected))
                });
                if agree { "agree" } else { "disagree" }
            }
            Err(err) => {
                tracing::debug!(model = model.as_str(), version = target.version, error = %err,
                    "shadow request failed");
                "error"
            }
        };
        count_shadow(&metrics, &model, target.version, status);
    }
}

fn count_shadow(metrics: &Metrics, model: &str, version: u64, status: &'static str) {
    metrics
        .shadow_requests
        .get_or_create(&ShadowLabels {
            model: model.to_owned(),
            version: version.to_string(),
            status,
        })
        .inc();
}

fn empty_tensor() -> Tensor {
    Tensor {
        name: String::new(),
        shape: vec![0],
        data: TensorData::Fp32(Vec::new()),
    }
}

/// Checks a request's inputs against the model's signature and puts them in declaration order.
/// Returns the inputs and the request's row count (its first dimension).
fn check_inputs(
    model_name: &str,
    model: &dyn Model,
    mut given: Vec<Tensor>,
    settings: &BatchSettings,
) -> Result<(Vec<Tensor>, usize), ServingError> {
    let specs = model.inputs();
    let expected_names = || join(specs.iter().map(|spec| spec.name.as_str()));
    for (i, tensor) in given.iter().enumerate() {
        if !specs.iter().any(|spec| spec.name == tensor.name) {
            return Err(ServingError::InvalidArgument(format!(
                "unknown input '{}' for model '{model_name}' (inputs: {})",
                tensor.name,
                expected_names()
            )));
        }
        if given[..i].iter().any(|earlier| earlier.name == tensor.name) {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}' is given twice",
                tensor.name
            )));
        }
    }
    let mut ordered = Vec::with_capacity(specs.len());
    for spec in specs {
        let position = given
            .iter()
            .position(|tensor| tensor.name == spec.name)
            .ok_or_else(|| {
                ServingError::InvalidArgument(format!(
                    "missing input '{}' for model '{model_name}' (inputs: {})",
                    spec.name,
                    expected_names()
                ))
            })?;
        let tensor = given.swap_remove(position);
        if tensor.dtype() != spec.dtype {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': expected datatype {}, got {}",
                spec.name,
                spec.dtype,
                tensor.dtype()
            )));
        }
        if !spec.accepts_shape(&tensor.shape) {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': expected shape {:?}, got {:?}",
                spec.name,
                spec.wire_shape(),
                tensor.shape
            )));
        }
        ordered.push(tensor);
    }
    let rows = ordered.first().map_or(1, Tensor::rows);
    if settings.max_batch_size > 1 {
        if let Some(other) = ordered.iter().find(|tensor| tensor.rows() != rows) {
            return Err(ServingError::InvalidArgument(format!(
                "inputs disagree on the batch dimension: '{}' has {rows} rows, '{}' has {}",
                ordered[0].name,
                other.name,
                other.rows()
            )));
        }
        if rows > settings.max_batch_size {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': a batch of {rows} rows exceeds model '{model_name}' max_batch_size {}",
                ordered[0].name, settings.max_batch_size
            )));
        }
    }
    Ok((ordered, rows))
}

/// Indices of the requested outputs in the model's declaration order; `None` means all.
fn select_outputs(
    model_name: &str,
    model: &dyn Model,
    requested: &[String],
) -> Result<Option<Vec<usize>>, ServingError> {
    if requested.is_empty() {
        return Ok(None);
    }
    let specs = model.outputs();
    requested
        .iter()
        .map(|name| {
            specs
                .iter()
                .position(|spec| &spec.name == name)
                .ok_or_else(|| {
                    ServingError::InvalidArgument(format!(
                        "unknown output '{name}' for model '{model_name}' (outputs: {})",
                        join(specs.iter().map(|spec| spec.name.as_str()))
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
