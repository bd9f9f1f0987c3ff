//! A loaded version (its backend model, the batcher running it, its metrics) and how one comes
//! to be: pick the backend that recognizes the directory, load on a blocking thread, start the
//! batcher, and warm it up before it takes traffic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, BackendError, Model};
use crate::batcher::{BatchSettings, Batcher};
use crate::metrics::{Metrics, VersionMetrics};
use crate::repository::{DEFAULT_MAX_BATCH_SIZE, ModelConfig};
use crate::tensor::{DataType, Tensor, TensorData};

/// A version that is loaded, warmed up and answering.
pub struct LoadedVersion {
    pub version: u64,
    pub model: Arc<dyn Model>,
    batcher: Batcher,
    metrics: VersionMetrics,
    /// How long loading and warming up took.
    pub load_seconds: f64,
}

impl LoadedVersion {
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    pub fn metrics(&self) -> &VersionMetrics {
        &self.metrics
    }
}

/// Loads versions through the first backend that recognizes their directory.
pub struct Loader {
    backends: Vec<Arc<dyn Backend>>,
    /// Sessions (and worker threads) per version unless its config says otherwise.
    default_instances: usize,
    /// Requests that may wait per version.
    max_queue_size: usize,
    metrics: Arc<Metrics>,
}

impl Loader {
    pub fn new(
        backends: Vec<Arc<dyn Backend>>,
        default_instances: usize,
        max_queue_size: usize,
        metrics: Arc<Metrics>,
    ) -> Loader {
        Loader {
            backends,
            default_instances,
            max_queue_size,
            metrics,
        }
    }

    /// Loads `dir` as version `version` of model `name` and starts its batcher; it is not warmed
    /// up yet (see [`Loader::warm_up`]).
    pub async fn load(
        &self,
        name: &str,
        version: u64,
        dir: &Path,
        config: &ModelConfig,
    ) -> Result<LoadedVersion, BackendError> {
        let backend = self
            .backends
            .iter()
            .find(|backend| backend.recognizes(dir))
            .cloned()
            .ok_or_else(|| {
                BackendError::Load(format!(
                    "{} holds no model file this server can load (model.onnx, or model.safetensors with config.json)",
                    dir.display()
                ))
            })?;
        let instances = self.instances(config);
        let dir = dir.to_owned();
        let model = tokio::task::spawn_blocking(move || backend.load(&dir, instances))
            .await
            .map_err(|err| BackendError::Load(format!("the loading thread failed: {err}")))??;

        let batchable = model.inputs().iter().all(|spec| spec.is_batchable());
        let max_batch_size = match config.max_batch_size {
            Some(size) if size > 1 && !batchable => {
                return Err(BackendError::Load(format!(
                    "max_batch_size is {size} but the model's inputs have no variable first dimension to batch along"
                )));
            }
            Some(size) => size,
            None if batchable => DEFAULT_MAX_BATCH_SIZE,
            None => 0,
        };
        let settings = BatchSettings {
            max_batch_size,
            max_queue_delay: Duration::from_micros(config.max_queue_delay_micros),
            workers: instances,
            max_queue_size: self.max_queue_size,
        };
        let batcher = Batcher::start(model.clone(), settings, &format!("{name}:{version}"))?;
        Ok(LoadedVersion {
            version,
            model,
            batcher,
            metrics: self.metrics.for_version(name, version),
            load_seconds: 0.0,
        })
    }

    /// Runs the model on zeros once per session on a blocking thread (backends deal successive
    /// calls to successive sessions), so no first real request pays for lazy initialisation.
    /// A model that cannot run on zeros still serves; the failure is only logged.
    pub async fn warm_up(&self, loaded: &LoadedVersion) {
        let model = loaded.model.clone();
        let sessions = loaded.batcher.settings().workers;
        if let Err(err) =
            tokio::task::spawn_blocking(move || warm_up(model.as_ref(), sessions)).await
        {
            tracing::warn!(error = %err, "the warm-up thread failed");
        }
    }

    fn instances(&self, config: &ModelConfig) -> usize {
        config.instances.unwrap_or(self.default_instances).max(1)
    }
}

fn warm_up(model: &dyn Model, sessions: usize) {
    let inputs: Result<Vec<Tensor>, _> = model
        .inputs()
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec.shape.iter().map(|dim| dim.unwrap_or(1)).collect();
            let count = shape.iter().product();
            let data = zeros(spec.dtype, count);
            Tensor::new(spec.name.clone(), shape, data)
        })
        .collect();
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(err) => {
            tracing::warn!(error = %err, "cannot build warm-up inputs");
            return;
        }
    };
    for _ in 0..sessions {
        if let Err(err) = model.run(&inputs) {
            tracing::warn!(error = %err, "warm-up run failed");
            return;
        }
    }
}

fn zeros(dtype: DataType, count: usize) -> TensorData {
    match dtype {
        DataType::Bool => TensorData::Bool(vec![false; count]),
        DataType::Uint8 => TensorData::Uint8(vec![0; count]),
        DataType::Uint16 => TensorData::Uint16(vec![0; count]),
        DataType::Uint32 => TensorData::Uint32(vec![0; count]),
        DataType::Uint64 => TensorData::Uint64(vec![0; count]),
        DataType::Int8 => TensorData::Int8(vec![0; count]),
        DataType::Int16 => TensorData::Int16(vec![0; count]),
        DataType::Int32 => TensorData::Int32(vec![0; count]),
        DataType::Int64 => TensorData::Int64(vec![0; count]),
        DataType::Fp32 => TensorData::Fp32(vec![0.0; count]),
        DataType::Fp64 => TensorData::Fp64(vec![0.0; count]),
        DataType::Bytes => TensorData::Bytes(vec![bytes::Bytes::new(); count]),
    }
}
