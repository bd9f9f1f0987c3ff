//! Stand-in backends for tests (behind the `testing` feature): a fake backend that loads
//! `model.fake` files into a tiny doubling model, so the server's load, swap and wire behaviour
//! can be tested in process without ONNX Runtime.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, BackendError, Model};
use crate::tensor::{DataType, Tensor, TensorData, TensorError, TensorSpec};

/// `x` FP32 [-1, 2] → `y` = 2x (FP32 [-1, 2]) and `n` = each row's sum truncated (INT64 [-1]).
struct Doubler {
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl Model for Doubler {
    fn platform(&self) -> &'static str {
        "fake"
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        let x = &inputs[0];
        let TensorData::Fp32(values) = &x.data else {
            return Err(BackendError::Run("x must be FP32".into()));
        };
        let doubled = values.iter().map(|v| v * 2.0).collect();
        let sums = values
            .chunks(2)
            .map(|row| row.iter().sum::<f32>() as i64)
            .collect();
        let run = |err: TensorError| BackendError::Run(err.to_string());
        Ok(vec![
            Tensor::new("y", x.shape.clone(), TensorData::Fp32(doubled)).map_err(run)?,
            Tensor::new("n", vec![x.rows()], TensorData::Int64(sums)).map_err(run)?,
        ])
    }
}

/// Loads `model.fake` files; one that reads `corrupt` fails to load.
pub struct FakeBackend;

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn recognizes(&self, dir: &Path) -> bool {
        dir.join("model.fake").is_file()
    }
    fn load(&self, dir: &Path, _sessions: usize) -> Result<Arc<dyn Model>, BackendError> {
        let text = std::fs::read_to_string(dir.join("model.fake"))
            .map_err(|err| BackendError::Load(err.to_string()))?;
        if text == "corrupt" {
            return Err(BackendError::Load("model.fake is corrupt".into()));
        }
        let spec = |name: &str, dtype, shape| TensorSpec {
            name: name.to_owned(),
            dtype,
            shape,
        };
        Ok(Arc::new(Doubler {
            inputs: vec![spec("x", DataType::Fp32, vec![None, Some(2)])],
            outputs: vec![
                spec("y", DataType::Fp32, vec![None, Some(2)]),
                spec("n", DataType::Int64, vec![None]),
            ],
        }))
    }
}
