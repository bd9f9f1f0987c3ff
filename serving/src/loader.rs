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

/// What a model may declare, what its warm-up may allocate and what its queue may hold, so no
/// model (or burst of requests to it) can take the node down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Most elements a declared input or output may hold, counting its fixed dimensions; a
    /// model declaring more is refused.
    pub max_declared_elements: u64,
    /// Most bytes the warm-up inputs of a version may take; a bigger warm-up is skipped.
    pub max_warmup_bytes: u64,
    /// Most input bytes that may wait in a version's queue.
    pub max_queue_bytes: u64,
}

impl Default for ModelLimits {
    fn default() -> ModelLimits {
        ModelLimits {
            max_declared_elements: 1 << 28,
            max_warmup_bytes: 64 << 20,
            max_queue_bytes: 256 << 20,
        }
    }
}

/// Loads versions through the first backend that recognizes their directory.
pub struct Loader {
    backends: Vec<Arc<dyn Backend>>,
    /// Sessions (and worker threads) per version unless its config says otherwise.
    default_instances: usize,
    /// Requests that may wait per version.
    max_queue_size: usize,
    limits: ModelLimits,
    metrics: Arc<Metrics>,
}

impl Loader {
    pub fn new(
        backends: Vec<Arc<dyn Backend>>,
        default_instances: usize,
        max_queue_size: usize,
        limits: ModelLimits,
        metrics: Arc<Metrics>,
    ) -> Loader {
        Loader {
            backends,
            default_instances,
            max_queue_size,
            limits,
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

        check_declared_sizes(model.as_ref(), self.limits.max_declared_elements)?;
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
            max_queue_bytes: usize::try_from(self.limits.max_queue_bytes).unwrap_or(usize::MAX),
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
        let max_bytes = self.limits.max_warmup_bytes;
        if let Err(err) =
            tokio::task::spawn_blocking(move || warm_up(model.as_ref(), sessions, max_bytes)).await
        {
            tracing::warn!(error = %err, "the warm-up thread failed");
        }
    }

    fn instances(&self, config: &ModelConfig) -> usize {
        config.instances.unwrap_or(self.default_instances).max(1)
    }
}

/// Refuses a model whose declared inputs or outputs hold more than `max_elements` elements in
/// their fixed dimensions: running it could never fit, and its warm-up or first request would
/// try to allocate it.
fn check_declared_sizes(model: &dyn Model, max_elements: u64) -> Result<(), BackendError> {
    for (kind, spec) in model
        .inputs()
        .iter()
        .map(|spec| ("input", spec))
        .chain(model.outputs().iter().map(|spec| ("output", spec)))
    {
        let elements = spec
            .shape
            .iter()
            .flatten()
            .try_fold(1u64, |product, &dim| product.checked_mul(dim as u64));
        if elements.is_none_or(|elements| elements > max_elements) {
            return Err(BackendError::Load(format!(
                "{kind} '{}' declares shape {:?}: more than --max-declared-elements ({max_elements}) elements",
                spec.name,
                spec.wire_shape()
            )));
        }
    }
    Ok(())
}

/// Bytes the warm-up inputs take (variable dimensions as 1); `None` past `u64`.
fn warm_up_bytes(model: &dyn Model) -> Option<u64> {
    model.inputs().iter().try_fold(0u64, |total, spec| {
        let elements = spec.shape.iter().try_fold(1u64, |product, dim| {
            product.checked_mul(dim.unwrap_or(1) as u64)
        })?;
        let element_size = spec
            .dtype
            .element_size()
            .unwrap_or(std::mem::size_of::<bytes::Bytes>()) as u64;
        total.checked_add(elements.checked_mul(element_size)?)
    })
}

fn warm_up(model: &dyn Model, sessions: usize, max_bytes: u64) {
    match warm_up_bytes(model) {
        Some(bytes) if bytes <= max_bytes => {}
        bytes => {
            tracing::warn!(
                bytes,
                max_bytes,
                "warm-up skipped: its inputs would take more than --max-warmup-bytes"
            );
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::tensor::TensorSpec;

    /// A model that only declares its shapes and counts its runs.
    struct Declared {
        inputs: Vec<TensorSpec>,
        runs: AtomicUsize,
    }

    impl Declared {
        fn new(shape: &[Option<usize>]) -> Declared {
            Declared {
                inputs: vec![TensorSpec {
                    name: "x".to_owned(),
                    dtype: DataType::Fp32,
                    shape: shape.to_vec(),
                }],
                runs: AtomicUsize::new(0),
            }
        }
    }

    impl Model for Declared {
        fn platform(&self) -> &'static str {
            "declared"
        }
        fn inputs(&self) -> &[TensorSpec] {
            &self.inputs
        }
        fn outputs(&self) -> &[TensorSpec] {
            &[]
        }
        fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
            self.runs.fetch_add(1, Ordering::Relaxed);
            Ok(Vec::new())
        }
    }

    #[test]
    fn declared_shapes_beyond_the_budget_are_refused() {
        let budget = 1000;
        for (shape, allowed) in [
            (vec![None, Some(1000)], true),
            (vec![None, Some(1001)], false),
            (vec![Some(10), Some(10), Some(11)], false),
            (vec![Some(1), Some(1 << 36)], false),
            (vec![Some(usize::MAX), Some(usize::MAX)], false),
        ] {
            let checked = check_declared_sizes(&Declared::new(&shape), budget);
            assert_eq!(checked.is_ok(), allowed, "{shape:?}: {checked:?}");
        }
    }

    #[test]
    fn a_warm_up_beyond_its_budget_is_skipped() {
        // 1 x 256 floats: 1 KiB.
        let model = Declared::new(&[None, Some(256)]);
        assert_eq!(warm_up_bytes(&model), Some(1024));
        warm_up(&model, 2, 1023);
        assert_eq!(model.runs.load(Ordering::Relaxed), 0, "skipped");
        warm_up(&model, 2, 1024);
        assert_eq!(model.runs.load(Ordering::Relaxed), 2, "once per session");
    }
}
