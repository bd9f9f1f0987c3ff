//! Backends turn a version directory into a runnable [`Model`]. Every backend is behind the
//! same two traits, so the manager, batcher and APIs never know which runtime answers.

use std::path::Path;
use std::sync::Arc;

use crate::tensor::{Tensor, TensorSpec};

pub mod candle;
mod external_data;
pub mod onnx;

/// A loaded model version, ready to run.
///
/// `run` is called from the batcher's worker threads (never from the async executor), possibly
/// from several threads at once: implementations keep whatever per-thread state they need
/// (ONNX Runtime sessions take `&mut self`, so the ONNX backend keeps a pool of them).
pub trait Model: Send + Sync {
    /// Platform name reported in model metadata (`onnxruntime_onnx`, `candle_safetensors`).
    fn platform(&self) -> &'static str;
    fn inputs(&self) -> &[TensorSpec];
    fn outputs(&self) -> &[TensorSpec];
    /// Runs the model on `inputs`, which are already checked against [`Model::inputs`]: one
    /// tensor per declared input, in declaration order, with matching datatype and shape.
    /// Returns every declared output, in declaration order.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError>;
}

/// Knows how to load one kind of model file.
pub trait Backend: Send + Sync {
    /// Short name used in logs and errors (`onnx`, `candle`).
    fn name(&self) -> &'static str;
    /// Whether `dir` (a version directory) holds a model this backend loads.
    fn recognizes(&self, dir: &Path) -> bool;
    /// Loads the model in `dir`. `sessions` is how many concurrent `run` calls to provision for.
    fn load(&self, dir: &Path, sessions: usize) -> Result<Arc<dyn Model>, BackendError>;
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime itself is missing or unusable (e.g. no ONNX Runtime library).
    #[error("{0}")]
    Runtime(String),
    /// The model files are missing, corrupt or use something the runtime cannot run.
    #[error("{0}")]
    Load(String),
    /// Running the model failed.
    #[error("{0}")]
    Run(String),
}
