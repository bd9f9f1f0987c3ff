//! Multi-layer perceptrons stored as safetensors, run with candle on the CPU.
//!
//! A version directory holds `model.safetensors` (the weights) and `config.json` (how they form a
//! network). Layers follow PyTorch's `nn.Linear` convention, `y = x W^T + b` with `W` of shape
//! `[out, in]`, so a `state_dict` saved with `safetensors.torch.save_file` loads as is:
//!
//! ```json
//! {
//!   "input": {"name": "features", "features": 8},
//!   "output": {"name": "price", "features": 1},
//!   "layers": [
//!     {"weight": "layers.0.weight", "bias": "layers.0.bias", "activation": "relu"},
//!     {"weight": "layers.1.weight", "bias": "layers.1.bias", "activation": "none"}
//!   ]
//! }
//! ```
//!
//! `output.features` is optional (it is checked against the last layer when given), `bias` is
//! optional, and `activation` is one of `relu`, `tanh`, `sigmoid`, `gelu` (exact, erf-based, as
//! PyTorch's default `nn.GELU`), `softmax` (last layer only) or `none` (the default). The model
//! serves one FP32 input `[-1, input.features]` and one FP32 output `[-1, out]`.
//!
//! Everything that can be wrong with the files is found at load time. candle tensors are
//! immutable and `Send + Sync`, so concurrent `run` calls share one copy of the weights.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor as CandleTensor};
use serde::Deserialize;

use super::{Backend, BackendError, Model};
use crate::tensor::{DataType, Tensor, TensorData, TensorSpec};

const PLATFORM: &str = "candle_safetensors";

pub struct CandleBackend;

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn recognizes(&self, dir: &Path) -> bool {
        dir.join("model.safetensors").is_file()
    }

    fn load(&self, dir: &Path, _sessions: usize) -> Result<Arc<dyn Model>, BackendError> {
        Ok(Arc::new(MlpModel::load(dir)?))
    }
}

/// The `config.json` next to the weights.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub input: InputConfig,
    pub output: OutputConfig,
    pub layers: Vec<LayerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub name: String,
    pub features: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub name: String,
    #[serde(default)]
    pub features: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// Name of the `[out, in]` weight tensor in the safetensors file.
    pub weight: String,
    /// Name of the `[out]` bias tensor, if the layer has one.
    #[serde(default)]
    pub bias: Option<String>,
    #[serde(default)]
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    None,
    Relu,
    Tanh,
    Sigmoid,
    Gelu,
    Softmax,
}

impl Activation {
    fn apply(self, x: CandleTensor) -> candle_core::Result<CandleTensor> {
        match self {
            Activation::None => Ok(x),
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(&x),
            Activation::Gelu => x.gelu_erf(),
            Activation::Softmax => candle_nn::ops::softmax_last_dim(&x),
        }
    }
}

/// One dense layer, weights kept transposed (`[in, out]`, contiguous) so `run` multiplies
/// without re-laying memory out on every call.
struct Layer {
    weight_t: CandleTensor,
    bias: Option<CandleTensor>,
    activation: Activation,
}

struct MlpModel {
    layers: Vec<Layer>,
    in_features: usize,
    out_features: usize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

fn load_error(dir: &Path, message: impl std::fmt::Display) -> BackendError {
    BackendError::Load(format!("{}: {message}", dir.display()))
}

impl MlpModel {
    fn load(dir: &Path) -> Result<MlpModel, BackendError> {
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|err| {
            load_error(
                dir,
                format!(
                    "cannot read config.json ({err}); a candle model needs model.safetensors and a config.json describing its layers"
                ),
            )
        })?;
        let config: MlpConfig = serde_json::from_str(&config_text)
            .map_err(|err| load_error(dir, format!("invalid config.json: {err}")))?;
        let weights_path = dir.join("model.safetensors");
        let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|err| load_error(dir, format!("cannot read model.safetensors: {err}")))?;
        MlpModel::build(&config, weights).map_err(|message| load_error(dir, message))
    }

    /// Checks `config` against the tensors and assembles the layers; the error names what is
    /// wrong, for the caller to prefix with the directory.
    fn build(
        config: &MlpConfig,
        mut weights: HashMap<String, CandleTensor>,
    ) -> Result<MlpModel, String> {
        if config.layers.is_empty() {
            return Err("config.json lists no layers".into());
        }
        if config.input.features == 0 {
            return Err("config.json: input.features must be at least 1".into());
        }
        let mut layers = Vec::with_capacity(config.layers.len());
        let mut width = config.input.features;
        let last = config.layers.len() - 1;
        for (index, layer) in config.layers.iter().enumerate() {
            let mut take = |name: &str| {
                weights.remove(name).ok_or_else(|| {
                    format!("layer {index}: tensor '{name}' is not in model.safetensors")
                })
            };
            let weight = as_f32(take(&layer.weight)?, &layer.weight)?;
            let &[out_features, in_features] = weight.dims() else {
                return Err(format!(
                    "layer {index}: weight '{}' has shape {:?}, expected [out, in]",
                    layer.weight,
                    weight.dims()
                ));
            };
            if in_features != width {
                let source = if index == 0 {
                    "input.features is".to_owned()
                } else {
                    format!("layer {} produces", index - 1)
                };
                return Err(format!(
                    "layer {index}: weight '{}' has shape [{out_features}, {in_features}], so it takes {in_features} features, but {source} {width}",
                    layer.weight
                ));
            }
            if out_features == 0 {
                return Err(format!(
                    "layer {index}: weight '{}' has no output features",
                    layer.weight
                ));
            }
            let bias = match &layer.bias {
                Some(name) => {
                    let bias = as_f32(take(name)?, name)?;
                    if bias.dims() != [out_features] {
                        return Err(format!(
                            "layer {index}: bias '{name}' has shape {:?}, expected [{out_features}]",
                            bias.dims()
                        ));
                    }
                    Some(bias)
                }
                None => None,
            };
            if layer.activation == Activation::Softmax && index != last {
                return Err(format!(
                    "layer {index}: softmax is only supported on the last layer"
                ));
            }
            let weight_t = weight
                .t()
                .and_then(|t| t.contiguous())
                .map_err(|err| format!("layer {index}: {err}"))?;
            layers.push(Layer {
                weight_t,
                bias,
                activation: layer.activation,
            });
            width = out_features;
        }
        if let Some(expected) = config.output.features
            && expected != width
        {
            return Err(format!(
                "config.json: output.features is {expected} but the last layer produces {width}"
            ));
        }
        let inputs = vec![TensorSpec {
            name: config.input.name.clone(),
            dtype: DataType::Fp32,
            shape: vec![None, Some(config.input.features)],
        }];
        let outputs = vec![TensorSpec {
            name: config.output.name.clone(),
            dtype: DataType::Fp32,
            shape: vec![None, Some(width)],
        }];
        Ok(MlpModel {
            layers,
            in_features: config.input.features,
            out_features: width,
            inputs,
            outputs,
        })
    }

    fn forward(&self, data: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        let mut x = CandleTensor::from_slice(data, (rows, self.in_features), &Device::Cpu)?;
        for layer in &self.layers {
            x = x.matmul(&layer.weight_t)?;
            if let Some(bias) = &layer.bias {
                x = x.broadcast_add(bias)?;
            }
            x = layer.activation.apply(x)?;
        }
        x.flatten_all()?.to_vec1::<f32>()
    }
}

/// Weights saved as f16, bf16 or f64 are served in f32, the precision of the V2 input.
fn as_f32(tensor: CandleTensor, name: &str) -> Result<CandleTensor, String> {
    if tensor.dtype() == DType::F32 {
        return Ok(tensor);
    }
    if !tensor.dtype().is_float() {
        return Err(format!(
            "tensor '{name}' has dtype {:?}; weights must be floating point",
            tensor.dtype()
        ));
    }
    tensor
        .to_dtype(DType::F32)
        .map_err(|err| format!("tensor '{name}': {err}"))
}

impl Model for MlpModel {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        let [input] = inputs else {
            return Err(BackendError::Run(format!(
                "the model takes 1 input, got {}",
                inputs.len()
            )));
        };
        let TensorData::Fp32(data) = &input.data else {
            return Err(BackendError::Run(format!(
                "input '{}' must be FP32, got {}",
                input.name,
                input.dtype()
            )));
        };
        let &[rows, features] = input.shape.as_slice() else {
            return Err(BackendError::Run(format!(
                "input '{}' must have shape [-1, {}], got {:?}",
                input.name, self.in_features, input.shape
            )));
        };
        if features != self.in_features {
            return Err(BackendError::Run(format!(
                "input '{}' must have shape [-1, {}], got {:?}",
                input.name, self.in_features, input.shape
            )));
        }
        // candle has no use for an empty matrix; the answer is known without it.
        let values = if rows == 0 {
            Vec::new()
        } else {
            self.forward(data, rows)
                .map_err(|err| BackendError::Run(format!("candle: {err}")))?
        };
        let output = Tensor::new(
            self.outputs[0].name.clone(),
            vec![rows, self.out_features],
            TensorData::Fp32(values),
        )
        .map_err(|err| BackendError::Run(format!("output: {err}")))?;
        Ok(vec![output])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> MlpConfig {
        serde_json::from_str(json).unwrap()
    }

    fn tensor(values: &[f32], shape: &[usize]) -> CandleTensor {
        CandleTensor::from_slice(values, shape, &Device::Cpu).unwrap()
    }

    /// A 2 -> 2 -> 1 network with hand-picked weights.
    fn weights() -> HashMap<String, CandleTensor> {
        HashMap::from([
            ("l0.w".to_owned(), tensor(&[1.0, 0.0, 0.0, -1.0], &[2, 2])),
            ("l0.b".to_owned(), tensor(&[0.5, 0.5], &[2])),
            ("l1.w".to_owned(), tensor(&[2.0, 3.0], &[1, 2])),
            ("l1.b".to_owned(), tensor(&[1.0], &[1])),
        ])
    }

    const TWO_LAYERS: &str = r#"{
        "input": {"name": "x", "features": 2},
        "output": {"name": "y", "features": 1},
        "layers": [
            {"weight": "l0.w", "bias": "l0.b", "activation": "relu"},
            {"weight": "l1.w", "bias": "l1.b"}
        ]
    }"#;

    #[test]
    fn runs_a_batch_like_pytorch_linear_layers() {
        let model = MlpModel::build(&config(TWO_LAYERS), weights()).unwrap();
        assert_eq!(model.inputs()[0].wire_shape(), vec![-1, 2]);
        assert_eq!(model.outputs()[0].wire_shape(), vec![-1, 1]);
        let input = Tensor::new(
            "x",
            vec![2, 2],
            TensorData::Fp32(vec![1.0, 2.0, -3.0, -4.0]),
        )
        .unwrap();
        let output = model.run(&[input]).unwrap();
        // Row 1: hidden relu([1.5, -1.5]) = [1.5, 0] -> 2 * 1.5 + 1 = 4.
        // Row 2: hidden relu([-2.5, 4.5]) = [0, 4.5] -> 3 * 4.5 + 1 = 14.5.
        assert_eq!(output[0].name, "y");
        assert_eq!(output[0].shape, vec![2, 1]);
        assert_eq!(output[0].data, TensorData::Fp32(vec![4.0, 14.5]));
        let empty = Tensor::new("x", vec![0, 2], TensorData::Fp32(vec![])).unwrap();
        assert_eq!(model.run(&[empty]).unwrap()[0].shape, vec![0, 1]);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let json = r#"{"input": {"name": "x", "features": 2}, "output": {"name": "p"},
            "layers": [{"weight": "l0.w", "bias": "l0.b", "activation": "softmax"}]}"#;
        let model = MlpModel::build(&config(json), weights()).unwrap();
        let input = Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![0.3, 0.7])).unwrap();
        let TensorData::Fp32(p) = &model.run(&[input]).unwrap()[0].data else {
            panic!("fp32 output");
        };
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn every_activation_name_parses_and_unknown_ones_are_refused() {
        for name in ["relu", "tanh", "sigmoid", "gelu", "softmax", "none"] {
            let json = format!(r#"{{"weight": "w", "activation": "{name}"}}"#);
            serde_json::from_str::<LayerConfig>(&json).unwrap();
        }
        let err = serde_json::from_str::<LayerConfig>(r#"{"weight": "w", "activation": "swish"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("swish"), "{err}");
    }

    #[test]
    fn missing_tensor_is_named() {
        let mut tensors = weights();
        tensors.remove("l1.b");
        let err = MlpModel::build(&config(TWO_LAYERS), tensors).err().unwrap();
        assert!(err.contains("'l1.b'") && err.contains("layer 1"), "{err}");
    }

    #[test]
    fn layer_widths_must_chain() {
        let mut tensors = weights();
        tensors.insert("l1.w".into(), tensor(&[1.0, 2.0, 3.0], &[1, 3]));
        let err = MlpModel::build(&config(TWO_LAYERS), tensors).err().unwrap();
        assert!(err.contains("layer 1") && err.contains("takes 3"), "{err}");

        let json = TWO_LAYERS.replace(r#""features": 2"#, r#""features": 5"#);
        let err = MlpModel::build(&config(&json), weights()).err().unwrap();
        assert!(err.contains("input.features is 5"), "{err}");
    }

    #[test]
    fn bias_and_output_shapes_are_checked() {
        let mut tensors = weights();
        tensors.insert("l0.b".into(), tensor(&[1.0, 2.0, 3.0], &[3]));
        let err = MlpModel::build(&config(TWO_LAYERS), tensors).err().unwrap();
        assert!(err.contains("'l0.b'") && err.contains("[2]"), "{err}");

        let json = TWO_LAYERS.replace(r#""features": 1"#, r#""features": 4"#);
        let err = MlpModel::build(&config(&json), weights()).err().unwrap();
        assert!(err.contains("output.features is 4"), "{err}");
    }

    #[test]
    fn softmax_before_the_last_layer_and_empty_networks_are_refused() {
        let json = TWO_LAYERS.replace("relu", "softmax");
        let err = MlpModel::build(&config(&json), weights()).err().unwrap();
        assert!(err.contains("softmax"), "{err}");
        let json =
            r#"{"input": {"name": "x", "features": 2}, "output": {"name": "y"}, "layers": []}"#;
        let err = MlpModel::build(&config(json), weights()).err().unwrap();
        assert!(err.contains("no layers"), "{err}");
    }

    #[test]
    fn missing_files_are_load_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = CandleBackend.load(dir.path(), 1).err().unwrap();
        assert!(
            matches!(&err, BackendError::Load(m) if m.contains("config.json")),
            "{err}"
        );
        std::fs::write(dir.path().join("config.json"), TWO_LAYERS).unwrap();
        let err = CandleBackend.load(dir.path(), 1).err().unwrap();
        assert!(
            matches!(&err, BackendError::Load(m) if m.contains("model.safetensors")),
            "{err}"
        );
        std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
        let err = CandleBackend.load(dir.path(), 1).err().unwrap();
        assert!(
            matches!(&err, BackendError::Load(m) if m.contains("model.safetensors")),
            "{err}"
        );
    }
}
