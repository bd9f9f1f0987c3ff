//! Predictions over KServe V2 gRPC (`inference.GRPCInferenceService`) from okla-serving, or any
//! V2 server (Triton, MLServer, KServe).
//!
//! Tensors go out as `raw_input_contents` (little-endian, row-major; each BYTES element prefixed
//! by its 4-byte little-endian length), as `tritonclient` sends them, and come back either as
//! `raw_output_contents` or as typed `contents`: both are decoded into [`TensorValues`]. Nothing
//! here is retried: a refused prediction is [`Error::Grpc`] with the server's status code.

use std::time::Duration;

use okla_proto::inference as pb;
use okla_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use okla_proto::tensor::{self, DataType, RawError};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// The largest message sent or accepted, as okla-serving's default `--max-request-bytes`.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long [`Predictor::connect`] waits for the server to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The V2 request parameter okla-serving reads to route a request of a sticky deployment.
const ROUTING_KEY_PARAMETER: &str = "routing_key";

/// A handle on one V2 gRPC server. Cheap to clone; clones share the connection (HTTP/2
/// multiplexes concurrent calls on it), and the channel reconnects by itself if the server
/// goes away and comes back.
#[derive(Debug, Clone)]
pub struct Predictor {
    url: String,
    client: GrpcInferenceServiceClient<Channel>,
    routing_key: Option<String>,
    timeout: Option<Duration>,
}

impl Predictor {
    /// Connects to the V2 gRPC endpoint at `url`, e.g. `http://127.0.0.1:8001` (okla-serving's
    /// `--grpc-port`). A malformed URL is [`Error::Invalid`]; a server that does not accept the
    /// connection within 5 s is [`Error::Connect`] naming `url`.
    pub async fn connect(url: &str) -> Result<Predictor> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|err| Error::Invalid(format!("invalid gRPC URL '{url}': {err}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            url: url.to_owned(),
            source,
        })?;
        let client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Predictor {
            url: url.to_owned(),
            client,
            routing_key: None,
            timeout: None,
        })
    }

    /// This predictor, sending `key` as the V2 parameter `routing_key` with every request: on a
    /// sticky deployment, okla-serving sends every request with the same key to the same
    /// version (on every node). An explicit version in [`Predictor::predict`] bypasses routing.
    pub fn with_routing_key(mut self, key: impl Into<String>) -> Predictor {
        self.routing_key = Some(key.into());
        self
    }

    /// This predictor, giving up on each prediction after `timeout` (the server sees the gRPC
    /// deadline too); the failure is [`Error::Grpc`] with `DEADLINE_EXCEEDED`. Default: none.
    pub fn with_timeout(mut self, timeout: Duration) -> Predictor {
        self.timeout = Some(timeout);
        self
    }

    /// The URL this predictor connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `model` on `inputs` and returns every output. `version: None` lets the server choose
    /// (okla-serving: the deployment's routes, by weight or by routing key); the answering
    /// version is [`Prediction::model_version`].
    ///
    /// An input whose element count does not match its shape is [`Error::Invalid`] before
    /// anything is sent; the server's refusals (unknown model or version: `NOT_FOUND`; a wrong
    /// input name, datatype or shape: `INVALID_ARGUMENT`; a full queue: `RESOURCE_EXHAUSTED`;
    /// a model still loading: `UNAVAILABLE`) are [`Error::Grpc`].
    /// The datatype of each input the model declares (`FP32`, `INT64`, ...), by name, in the
    /// model's order: what a caller holding untyped numbers (a command line) needs.
    pub async fn input_datatypes(&self, model: &str) -> Result<Vec<(String, String)>> {
        let request = pb::ModelMetadataRequest {
            name: model.to_owned(),
            version: String::new(),
        };
        let metadata = self
            .client
            .clone()
            .model_metadata(request)
            .await
            .map_err(|status| Error::grpc(model, status))?
            .into_inner();
        Ok(metadata
            .inputs
            .into_iter()
            .map(|input| (input.name, input.datatype))
            .collect())
    }

    pub async fn predict(
        &self,
        model: &str,
        version: Option<u64>,
        inputs: Vec<InputTensor>,
    ) -> Result<Prediction> {
        let wire = self.request(model, version, inputs)?;
        let mut request = tonic::Request::new(wire);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        let response = self
            .client
            .clone()
            .model_infer(request)
            .await
            .map_err(|status| Error::grpc(model, status))?;
        decode_response(model, response.into_inner())
    }

    fn request(
        &self,
        model: &str,
        version: Option<u64>,
        inputs: Vec<InputTensor>,
    ) -> Result<pb::ModelInferRequest> {
        let mut parameters = std::collections::HashMap::new();
        if let Some(key) = &self.routing_key {
            parameters.insert(
                ROUTING_KEY_PARAMETER.to_owned(),
                pb::InferParameter {
                    parameter_choice: Some(pb::infer_parameter::ParameterChoice::StringParam(
                        key.clone(),
                    )),
                },
            );
        }
        let mut wire_inputs = Vec::with_capacity(inputs.len());
        let mut raw_input_contents = Vec::with_capacity(inputs.len());
        for input in inputs {
            input.check()?;
            let InputTensor { name, shape, data } = input;
            raw_input_contents.push(data.to_raw());
            wire_inputs.push(pb::model_infer_request::InferInputTensor {
                name,
                datatype: data.datatype().to_owned(),
                shape,
                parameters: Default::default(),
                contents: None,
            });
        }
        Ok(pb::ModelInferRequest {
            model_name: model.to_owned(),
            model_version: version.map(|v| v.to_string()).unwrap_or_default(),
            id: String::new(),
            parameters,
            inputs: wire_inputs,
            outputs: Vec::new(),
            raw_input_contents,
        })
    }
}

/// The elements of a tensor, one variant per V2 datatype (FP16 and BF16 are not supported).
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    Bool(Vec<bool>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    /// BYTES: each element an arbitrary byte string (often UTF-8 text).
    Bytes(Vec<Vec<u8>>),
}

/// Defines `TensorValues::as_<type>` accessors, each `Some` only for its own variant.
macro_rules! accessors {
    ($($method:ident => $variant:ident: $element:ty),* $(,)?) => {
        $(
            #[doc = concat!("The elements if the tensor is ", stringify!($variant), ", else `None`.")]
            pub fn $method(&self) -> Option<&[$element]> {
                match self {
                    TensorValues::$variant(values) => Some(values),
                    _ => None,
                }
            }
        )*
    };
}

impl TensorValues {
    accessors! {
        as_bool => Bool: bool,
        as_int8 => Int8: i8,
        as_int16 => Int16: i16,
        as_int32 => Int32: i32,
        as_int64 => Int64: i64,
        as_uint8 => Uint8: u8,
        as_uint16 => Uint16: u16,
        as_uint32 => Uint32: u32,
        as_uint64 => Uint64: u64,
        as_fp32 => Fp32: f32,
        as_fp64 => Fp64: f64,
        as_bytes => Bytes: Vec<u8>,
    }

    /// The V2 datatype name: `FP32`, `INT64`, `BYTES`, ...
    pub fn datatype(&self) -> &'static str {
        self.dtype().as_str()
    }

    fn dtype(&self) -> DataType {
        match self {
            TensorValues::Bool(_) => DataType::Bool,
            TensorValues::Int8(_) => DataType::Int8,
            TensorValues::Int16(_) => DataType::Int16,
            TensorValues::Int32(_) => DataType::Int32,
            TensorValues::Int64(_) => DataType::Int64,
            TensorValues::Uint8(_) => DataType::Uint8,
            TensorValues::Uint16(_) => DataType::Uint16,
            TensorValues::Uint32(_) => DataType::Uint32,
            TensorValues::Uint64(_) => DataType::Uint64,
            TensorValues::Fp32(_) => DataType::Fp32,
            TensorValues::Fp64(_) => DataType::Fp64,
            TensorValues::Bytes(_) => DataType::Bytes,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorValues::Bool(v) => v.len(),
            TensorValues::Int8(v) => v.len(),
            TensorValues::Int16(v) => v.len(),
            TensorValues::Int32(v) => v.len(),
            TensorValues::Int64(v) => v.len(),
            TensorValues::Uint8(v) => v.len(),
            TensorValues::Uint16(v) => v.len(),
            TensorValues::Uint32(v) => v.len(),
            TensorValues::Uint64(v) => v.len(),
            TensorValues::Fp32(v) => v.len(),
            TensorValues::Fp64(v) => v.len(),
            TensorValues::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as one `raw_input_contents` entry (see [`okla_proto::tensor`]).
    fn to_raw(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        match self {
            TensorValues::Bool(v) => tensor::write_bools(v, &mut raw),
            TensorValues::Int8(v) => tensor::write_le(v, &mut raw),
            TensorValues::Int16(v) => tensor::write_le(v, &mut raw),
            TensorValues::Int32(v) => tensor::write_le(v, &mut raw),
            TensorValues::Int64(v) => tensor::write_le(v, &mut raw),
            TensorValues::Uint8(v) => raw.extend_from_slice(v),
            TensorValues::Uint16(v) => tensor::write_le(v, &mut raw),
            TensorValues::Uint32(v) => tensor::write_le(v, &mut raw),
            TensorValues::Uint64(v) => tensor::write_le(v, &mut raw),
            TensorValues::Fp32(v) => tensor::write_le(v, &mut raw),
            TensorValues::Fp64(v) => tensor::write_le(v, &mut raw),
            TensorValues::Bytes(v) => tensor::write_bytes(v, &mut raw),
        }
        raw
    }

    /// Decodes one `raw_output_contents` entry of `datatype`.
    fn from_raw(datatype: &str, raw: &[u8]) -> std::result::Result<TensorValues, String> {
        let dtype = datatype
            .parse::<DataType>()
            .map_err(|err| err.to_string())?;
        Self::decode_raw(dtype, raw).map_err(|err| match err {
            RawError::TruncatedLength => "BYTES contents end inside an element's length".to_owned(),
            RawError::TruncatedElement {
                index,
                declared,
                remaining,
            } => {
                format!("BYTES element {index} claims {declared} bytes but only {remaining} remain")
            }
            ragged @ RawError::Ragged { .. } => ragged.to_string(),
        })
    }

    fn decode_raw(dtype: DataType, raw: &[u8]) -> std::result::Result<TensorValues, RawError> {
        Ok(match dtype {
            DataType::Bool => TensorValues::Bool(tensor::read_bools(raw)),
            DataType::Int8 => TensorValues::Int8(tensor::read_le(raw)?),
            DataType::Int16 => TensorValues::Int16(tensor::read_le(raw)?),
            DataType::Int32 => TensorValues::Int32(tensor::read_le(raw)?),
            DataType::Int64 => TensorValues::Int64(tensor::read_le(raw)?),
            DataType::Uint8 => TensorValues::Uint8(raw.to_vec()),
            DataType::Uint16 => TensorValues::Uint16(tensor::read_le(raw)?),
            DataType::Uint32 => TensorValues::Uint32(tensor::read_le(raw)?),
            DataType::Uint64 => TensorValues::Uint64(tensor::read_le(raw)?),
            DataType::Fp32 => TensorValues::Fp32(tensor::read_le(raw)?),
            DataType::Fp64 => TensorValues::Fp64(tensor::read_le(raw)?),
            DataType::Bytes => TensorValues::Bytes(
                tensor::read_bytes(raw)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
        })
    }

    /// Takes the elements of `datatype` out of typed `contents`, narrowing the protocol's 32-bit
    /// fields for INT8/INT16/UINT8/UINT16.
    fn from_contents(
        datatype: &str,
        contents: pb::InferTensorContents,
    ) -> std::result::Result<TensorValues, String> {
        fn narrow<Wide: Copy + std::fmt::Display, Narrow: TryFrom<Wide>>(
            values: Vec<Wide>,
            datatype: &str,
        ) -> std::result::Result<Vec<Narrow>, String> {
            values
                .into_iter()
                .map(|value| {
                    Narrow::try_from(value)
                        .map_err(|_| format!("{value} is out of range for {datatype}"))
                })
                .collect()
        }
        let dtype = datatype
            .parse::<DataType>()
            .map_err(|err| err.to_string())?;
        Ok(match dtype {
            DataType::Bool => TensorValues::Bool(contents.bool_contents),
            DataType::Int8 => TensorValues::Int8(narrow(contents.int_contents, datatype)?),
            DataType::Int16 => TensorValues::Int16(narrow(contents.int_contents, datatype)?),
            DataType::Int32 => TensorValues::Int32(contents.int_contents),
            DataType::Int64 => TensorValues::Int64(contents.int64_contents),
            DataType::Uint8 => TensorValues::Uint8(narrow(contents.uint_contents, datatype)?),
            DataType::Uint16 => TensorValues::Uint16(narrow(contents.uint_contents, datatype)?),
            DataType::Uint32 => TensorValues::Uint32(contents.uint_contents),
            DataType::Uint64 => TensorValues::Uint64(contents.uint64_contents),
            DataType::Fp32 => TensorValues::Fp32(contents.fp32_contents),
            DataType::Fp64 => TensorValues::Fp64(contents.fp64_contents),
            DataType::Bytes => TensorValues::Bytes(contents.bytes_contents),
        })
    }
}

/// The element count a shape holds, or `None` for a negative or overflowing dimension.
fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |count, &dim| {
        count.checked_mul(usize::try_from(dim).ok()?)
    })
}

/// One input of a prediction: a name from the model's signature, a shape with no `-1`, and
/// its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorValues,
}

impl InputTensor {
    /// An input of any datatype. Nothing is checked until [`Predictor::predict`].
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: TensorValues) -> Self {
        InputTensor {
            name: name.into(),
            shape: shape.into(),
            data,
        }
    }

    /// An FP32 input, e.g. `InputTensor::fp32("features", [1, 8], row.to_vec())`.
    pub fn fp32(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: Vec<f32>) -> Self {
        InputTensor::new(name, shape, TensorValues::Fp32(data))
    }

    pub fn fp64(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: Vec<f64>) -> Self {
        InputTensor::new(name, shape, TensorValues::Fp64(data))
    }

    pub fn int32(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: Vec<i32>) -> Self {
        InputTensor::new(name, shape, TensorValues::Int32(data))
    }

    pub fn int64(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: Vec<i64>) -> Self {
        InputTensor::new(name, shape, TensorValues::Int64(data))
    }

    pub fn bool(name: impl Into<String>, shape: impl Into<Vec<i64>>, data: Vec<bool>) -> Self {
        InputTensor::new(name, shape, TensorValues::Bool(data))
    }

    /// A BYTES input: each element a byte string, e.g. UTF-8 text.
    pub fn bytes<E: Into<Vec<u8>>>(
        name: impl Into<String>,
        shape: impl Into<Vec<i64>>,
        data: impl IntoIterator<Item = E>,
    ) -> Self {
        let elements = data.into_iter().map(Into::into).collect();
        InputTensor::new(name, shape, TensorValues::Bytes(elements))
    }

    /// Refuses a shape with a negative dimension or one whose element count is not the data's.
    fn check(&self) -> Result<()> {
        let given = self.data.len();
        match element_count(&self.shape) {
            Some(expected) if expected == given => Ok(()),
            Some(expected) => Err(Error::Invalid(format!(
                "input '{}' with shape {:?} needs {expected} elements but holds {given}",
                self.name, self.shape
            ))),
            None => Err(Error::Invalid(format!(
                "input '{}' has shape {:?}; every dimension must be a size (no -1)",
                self.name, self.shape
            ))),
        }
    }
}

/// One output of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    /// The V2 datatype name (`FP32`, ...), as [`TensorValues::datatype`] of `data`.
    pub datatype: String,
    pub shape: Vec<i64>,
    pub data: TensorValues,
}

impl OutputTensor {
    pub fn as_bool(&self) -> Option<&[bool]> {
        self.data.as_bool()
    }
    pub fn as_int32(&self) -> Option<&[i32]> {
        self.data.as_int32()
    }
    pub fn as_int64(&self) -> Option<&[i64]> {
        self.data.as_int64()
    }
    pub fn as_uint64(&self) -> Option<&[u64]> {
        self.data.as_uint64()
    }
    pub fn as_fp32(&self) -> Option<&[f32]> {
        self.data.as_fp32()
    }
    pub fn as_fp64(&self) -> Option<&[f64]> {
        self.data.as_fp64()
    }
    pub fn as_bytes(&self) -> Option<&[Vec<u8>]> {
        self.data.as_bytes()
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub model_name: String,
    /// The version that answered: with a deployment splitting traffic, the one the request was
    /// routed to.
    pub model_version: u64,
    /// In the order the server sent them (okla-serving: the model's signature order).
    pub outputs: Vec<OutputTensor>,
}

impl Prediction {
    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&OutputTensor> {
        self.outputs.iter().find(|output| output.name == name)
    }
}

fn decode_response(model: &str, response: pb::ModelInferResponse) -> Result<Prediction> {
    let invalid = |what: String| {
        Error::Invalid(format!(
            "the server's answer for model '{model}' makes no sense: {what}"
        ))
    };
    let pb::ModelInferResponse {
        model_name,
        model_version,
        outputs: wire_outputs,
        raw_output_contents,
        ..
    } = response;
    let model_version = model_version
        .parse::<u64>()
        .map_err(|_| invalid(format!("model_version '{model_version}' is not a number")))?;
    if !raw_output_contents.is_empty() && raw_output_contents.len() != wire_outputs.len() {
        return Err(invalid(format!(
            "{} raw_output_contents entries for {} outputs",
            raw_output_contents.len(),
            wire_outputs.len()
        )));
    }
    let mut raw_entries = raw_output_contents.into_iter();
    let mut outputs = Vec::with_capacity(wire_outputs.len());
    for output in wire_outputs {
        let pb::model_infer_response::InferOutputTensor {
            name,
            datatype,
            shape,
            contents,
            ..
        } = output;
        let data = match raw_entries.next() {
            Some(raw) => TensorValues::from_raw(&datatype, &raw),
            None => TensorValues::from_contents(&datatype, contents.unwrap_or_default()),
        }
        .map_err(|err| invalid(format!("output '{name}': {err}")))?;
        if element_count(&shape) != Some(data.len()) {
            return Err(invalid(format!(
                "output '{name}' has shape {shape:?} but {} elements",
                data.len()
            )));
        }
        outputs.push(OutputTensor {
            name,
            datatype,
            shape,
            data,
        });
    }
    Ok(Prediction {
        model_name,
        model_version,
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<TensorValues> {
        vec![
            TensorValues::Bool(vec![true, false]),
            TensorValues::Int8(vec![i8::MIN, i8::MAX]),
            TensorValues::Int16(vec![i16::MIN, i16::MAX]),
            TensorValues::Int32(vec![i32::MIN, i32::MAX]),
            TensorValues::Int64(vec![i64::MIN, i64::MAX]),
            TensorValues::Uint8(vec![0, u8::MAX]),
            TensorValues::Uint16(vec![0, u16::MAX]),
            TensorValues::Uint32(vec![0, u32::MAX]),
            TensorValues::Uint64(vec![0, u64::MAX]),
            TensorValues::Fp32(vec![1.5, -0.25]),
            TensorValues::Fp64(vec![1e300, -2.5]),
            TensorValues::Bytes(vec![b"kia ora".to_vec(), Vec::new()]),
        ]
    }

    #[test]
    fn predict_raw_contents_round_trip_for_every_datatype() {
        for values in samples() {
            let raw = values.to_raw();
            let decoded = TensorValues::from_raw(values.datatype(), &raw)
                .unwrap_or_else(|err| panic!("{}: {err}", values.datatype()));
            assert_eq!(decoded, values);
        }
    }

    #[test]
    fn predict_raw_contents_are_little_endian() {
        assert_eq!(
            TensorValues::Fp32(vec![1.0]).to_raw(),
            1.0f32.to_le_bytes().to_vec()
        );
        assert_eq!(TensorValues::Int32(vec![1]).to_raw(), vec![1, 0, 0, 0]);
        assert_eq!(
            TensorValues::Bytes(vec![b"ab".to_vec()]).to_raw(),
            vec![2, 0, 0, 0, b'a', b'b']
        );
    }

    #[test]
    fn predict_refuses_truncated_raw_contents() {
        assert!(TensorValues::from_raw("FP32", &[0, 0, 0]).is_err());
        assert!(TensorValues::from_raw("BYTES", &[5, 0, 0, 0, b'a']).is_err());
        assert!(TensorValues::from_raw("BYTES", &[5, 0]).is_err());
        assert!(TensorValues::from_raw("FP16", &[0, 0]).is_err());
    }

    #[test]
    fn predict_decodes_typed_contents_and_checks_shapes() {
        let response = |shape: Vec<i64>| pb::ModelInferResponse {
            model_name: "m".to_owned(),
            model_version: "3".to_owned(),
            outputs: vec![pb::model_infer_response::InferOutputTensor {
                name: "label".to_owned(),
                datatype: "INT8".to_owned(),
                shape,
                parameters: Default::default(),
                contents: Some(pb::InferTensorContents {
                    int_contents: vec![1, -2],
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let prediction = decode_response("m", response(vec![2])).unwrap();
        assert_eq!(prediction.model_version, 3);
        let label = prediction.output("label").unwrap();
        assert_eq!(label.data.as_int8(), Some(&[1i8, -2][..]));
        assert_eq!(label.as_fp32(), None);
        assert!(matches!(
            decode_response("m", response(vec![3])),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn predict_checks_input_shapes_before_sending() {
        assert!(InputTensor::fp32("x", [2, 2], vec![0.0; 4]).check().is_ok());
        let error = InputTensor::fp32("x", [2, 2], vec![0.0; 3])
            .check()
            .unwrap_err();
        assert!(error.to_string().contains("'x'"), "{error}");
        assert!(
            InputTensor::fp32("x", [-1, 2], vec![0.0; 2])
                .check()
                .is_err()
        );
    }
}
