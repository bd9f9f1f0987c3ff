//! KServe V2 gRPC in Triton's superset (`inference.GRPCInferenceService`), so the real
//! `tritonclient.grpc` works unchanged.
//!
//! This module only translates: protobuf messages to [`crate::request`] types and back. Tensors
//! arrive either as typed `contents` (one repeated field per element family) or as
//! `raw_input_contents` (little-endian bytes, one entry per input, tritonclient's default); the
//! response answers in the same form. Rpcs not implemented here (model config, statistics,
//! shared memory, tracing, logging) answer UNIMPLEMENTED through the generated default stubs.

use std::fmt::Display;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use okla_proto::inference as pb;
use okla_proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use tonic::codec::CompressionEncoding;
use tonic::codegen::BoxStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::access::{self, Access, Need};
use crate::error::ServingError;
use crate::request::{InferRequest, InferResponse, Protocol, RepositoryEntry, VersionSelector};
use crate::service::InferenceService;
use crate::tensor::{
    DataType, Tensor, TensorData, TensorSpec, element_count, parse_datatype, shape_from_wire,
};

pub struct GrpcApi {
    service: InferenceService,
    access: Arc<Access>,
}

/// The bearer token of a call's `authorization` metadata.
fn bearer(metadata: &MetadataMap) -> Option<&str> {
    access::bearer(
        metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok()),
    )
}

impl GrpcApi {
    /// Admits a call as `access` says (see `crate::access`).
    async fn admit<T>(&self, request: &Request<T>, need: Need<'_>) -> Result<(), Status> {
        Ok(self.access.check(bearer(request.metadata()), need).await?)
    }
}

pub fn server(
    service: InferenceService,
    access: Arc<Access>,
    max_message_bytes: usize,
) -> GrpcInferenceServiceServer<GrpcApi> {
    // The decoding limit holds for a compressed message's decompressed size too.
    GrpcInferenceServiceServer::new(GrpcApi { service, access })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
        // Requests compressed by tritonclient's `compression_algorithm` (gzip or deflate).
        // Replies stay uncompressed: gRPC clients advertise gzip whether or not they want it,
        // and compressing every reply would cost each prediction more CPU than it saves.
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Deflate)
}

/// Stream requests answered concurrently per stream; responses still leave in request order.
const STREAM_CONCURRENCY: usize = 16;

#[tonic::async_trait]
impl GrpcInferenceService for GrpcApi {
    async fn server_live(
        &self,
        _request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse {
            live: self.service.live(),
        }))
    }

    async fn server_ready(
        &self,
        _request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.service.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        self.admit(&request, Need::Model(&request.get_ref().name))
            .await?;
        let request = request.into_inner();
        let ready = self
            .service
            .model_ready(&request.name, &VersionSelector::parse(&request.version))?;
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        let metadata = self.service.server_metadata();
        Ok(Response::new(pb::ServerMetadataResponse {
            name: metadata.name.to_owned(),
            version: metadata.version.to_owned(),
            extensions: metadata
                .extensions
                .iter()
                .map(|extension| (*extension).to_owned())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        self.admit(&request, Need::Model(&request.get_ref().name))
            .await?;
        let request = request.into_inner();
        let metadata = self
            .service
            .model_metadata(&request.name, &VersionSelector::parse(&request.version))?;
        Ok(Response::new(pb::ModelMetadataResponse {
            name: metadata.name,
            versions: metadata.versions.iter().map(u64::to_string).collect(),
            platform: metadata.platform,
            inputs: metadata.inputs.iter().map(tensor_metadata).collect(),
            outputs: metadata.outputs.iter().map(tensor_metadata).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        self.admit(&request, Need::Model(&request.get_ref().model_name))
            .await?;
        let routing_key = routing_key_metadata(&self.service, &request);
        let response = infer(&self.service, request.into_inner(), routing_key).await?;
        Ok(Response::new(response))
    }

    async fn model_stream_infer(
        &self,
        request: Request<tonic::Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<BoxStream<pb::ModelStreamInferResponse>>, Status> {
        let service = self.service.clone();
        let access = self.access.clone();
        // Stream messages carry no metadata of their own: the call's metadata applies to all.
        let metadata = request.metadata().clone();
        let responses = request
            .into_inner()
            .map(move |message| {
                let service = service.clone();
                let access = access.clone();
                let metadata = metadata.clone();
                async move {
                    // A bad request on a stream is reported in its response and the stream goes
                    // on, as Triton does; only a broken stream itself ends it.
                    let request = message?;
                    let routing_key = routing_key_from(&service, &request.model_name, &metadata);
                    let admitted = access
                        .check(bearer(&metadata), Need::Model(&request.model_name))
                        .await
                        .map_err(Status::from);
                    let answered = match admitted {
                        Ok(()) => infer(&service, request, routing_key).await,
                        Err(status) => Err(status),
                    };
                    Ok(match answered {
                        Ok(response) => pb::ModelStreamInferResponse {
                            error_message: String::new(),
                            infer_response: Some(response),
                        },
                        Err(status) => pb::ModelStreamInferResponse {
                            error_message: status.message().to_owned(),
                            infer_response: None,
                        },
                    })
                }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(responses)))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        self.admit(&request, Need::AnyToken).await?;
        let request = request.into_inner();
        let models = self
            .service
            .repository_index(request.ready)
            .into_iter()
            .map(model_index)
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        self.admit(&request, Need::ModelControl).await?;
        let request = request.into_inner();
        // Triton lets a load override the model's config or files; silently ignoring them would
        // load something other than what the client asked for.
        if let Some(key) = request
            .parameters
            .keys()
            .find(|key| key.as_str() == "config" || key.starts_with("file:"))
        {
            return Err(ServingError::Unimplemented(format!(
                "load parameter '{key}' is not supported: models load from the repository as they are on disk"
            ))
            .into());
        }
        self.service.load_model(&request.model_name).await?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        self.admit(&request, Need::ModelControl).await?;
        let request = request.into_inner();
        self.service.unload_model(&request.model_name).await?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }
}

async fn infer(
    service: &InferenceService,
    request: pb::ModelInferRequest,
    routing_key: Option<String>,
) -> Result<pb::ModelInferResponse, Status> {
    let (mut request, form) = decode_request(request)?;
    // The sticky header wins over the request parameter, as over REST.
    if routing_key.is_some() {
        request.routing_key = routing_key;
    }
    let response = service.infer(request).await?;
    Ok(encode_response(response, form))
}

/// The V2 request parameter `routing_key`, when it is a string.
fn routing_key_parameter(
    parameters: &std::collections::HashMap<String, pb::InferParameter>,
) -> Option<String> {
    match parameters.get("routing_key")?.parameter_choice.as_ref()? {
        pb::infer_parameter::ParameterChoice::StringParam(key) => Some(key.clone()),
        _ => None,
    }
}

fn routing_key_metadata(
    service: &InferenceService,
    request: &Request<pb::ModelInferRequest>,
) -> Option<String> {
    routing_key_from(service, &request.get_ref().model_name, request.metadata())
}

/// The value of the model's sticky routing-key header in the call's metadata (gRPC metadata
/// keys are lower case, as the registry stores the header name).
fn routing_key_from(
    service: &InferenceService,
    model: &str,
    metadata: &tonic::metadata::MetadataMap,
) -> Option<String> {
    let name = service.sticky_header(model)?;
    metadata
        .get(name.as_str())
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn tensor_metadata(spec: &TensorSpec) -> pb::model_metadata_response::TensorMetadata {
    pb::model_metadata_response::TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.dtype.as_str().to_owned(),
        shape: spec.wire_shape(),
    }
}

fn model_index(entry: RepositoryEntry) -> pb::repository_index_response::ModelIndex {
    pb::repository_index_response::ModelIndex {
        name: entry.name,
        version: entry.version.map(|v| v.to_string()).unwrap_or_default(),
        state: entry.state,
        reason: entry.reason,
    }
}

/// How a request carried its tensors, and so how its response carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TensorForm {
    Raw,
    Typed,
}

fn invalid(message: String) -> ServingError {
    ServingError::InvalidArgument(message)
}

/// Turns a wire request into the service's request, decoding every input tensor.
fn decode_request(
    request: pb::ModelInferRequest,
) -> Result<(InferRequest, TensorForm), ServingError> {
    let pb::ModelInferRequest {
        model_name,
        model_version,
        id,
        inputs: wire_inputs,
        outputs: wire_outputs,
        raw_input_contents,
        parameters,
        ..
    } = request;
    let form = if raw_input_contents.is_empty() {
        TensorForm::Typed
    } else {
        TensorForm::Raw
    };
    if form == TensorForm::Raw && raw_input_contents.len() != wire_inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents holds {} entries but the request has {} inputs ({}); give one raw entry per input, in order",
            raw_input_contents.len(),
            wire_inputs.len(),
            input_names(&wire_inputs),
        )));
    }
    let mut raw_entries = raw_input_contents.into_iter();
    let inputs = wire_inputs
        .into_iter()
        .map(|input| decode_input(input, raw_entries.next()))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = wire_outputs.into_iter().map(|output| output.name).collect();
    Ok((
        InferRequest {
            model: model_name,
            version: VersionSelector::parse(&model_version),
            id,
            inputs,
            outputs,
            protocol: Protocol::Grpc,
            routing_key: routing_key_parameter(&parameters),
        },
        form,
    ))
}

fn input_names(inputs: &[pb::model_infer_request::InferInputTensor]) -> String {
    let names: Vec<String> = inputs
        .iter()
        .map(|input| format!("'{}'", input.name))
        .collect();
    names.join(", ")
}

/// Decodes one input from its raw entry (raw requests) or from its typed `contents`.
fn decode_input(
    input: pb::model_infer_request::InferInputTensor,
    raw: Option<Vec<u8>>,
) -> Result<Tensor, ServingError> {
    let pb::model_infer_request::InferInputTensor {
        name,
        datatype,
        shape: wire_shape,
        contents,
        ..
    } = input;
    let dtype =
        parse_datatype(&datatype).map_err(|err| invalid(format!("input '{name}': {err}")))?;
    let shape = shape_from_wire(&name, &wire_shape)?;
    let expected = element_count(&shape)
        .map_err(|err| invalid(format!("input '{name}' with shape {wire_shape:?}: {err}")))?;
    let data = match raw {
        Some(raw) => {
            if let Some(field) = contents.as_ref().and_then(populated_field) {
                return Err(invalid(format!(
                    "input '{name}' has typed contents ({field}) but the request also uses raw_input_contents; use one form for every input"
                )));
            }
            TensorData::from_raw(dtype, &raw, expected).map_err(|err| {
                invalid(format!("input '{name}' with shape {wire_shape:?}: {err}"))
            })?
        }
        None => decode_contents(&name, dtype, contents.unwrap_or_default(), expected)?,
    };
    // Both decoders already checked the element count against the shape.
    debug_assert_eq!(data.len(), expected);
    Ok(Tensor { name, shape, data })
}

/// The wire fields of `InferTensorContents`, with how many values each holds.
fn field_lengths(contents: &pb::InferTensorContents) -> [(&'static str, usize); 8] {
    [
        ("bool_contents", contents.bool_contents.len()),
        ("int_contents", contents.int_contents.len()),
        ("int64_contents", contents.int64_contents.len()),
        ("uint_contents", contents.uint_contents.len()),
        ("uint64_contents", contents.uint64_contents.len()),
        ("fp32_contents", contents.fp32_contents.len()),
        ("fp64_contents", contents.fp64_contents.len()),
        ("bytes_contents", contents.bytes_contents.len()),
    ]
}

fn populated_field(contents: &pb::InferTensorContents) -> Option<&'static str> {
    field_lengths(contents)
        .into_iter()
        .find(|(_, len)| *len > 0)
        .map(|(field, _)| field)
}

/// The `InferTensorContents` field that carries a datatype's elements.
fn contents_field(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
    }
}

/// Decodes typed contents, moving the vector when the wire type is the tensor's element type
/// and range-checking it when the tensor's type is narrower (INT8/INT16/UINT8/UINT16).
fn decode_contents(
    name: &str,
    dtype: DataType,
    contents: pb::InferTensorContents,
    expected: usize,
) -> Result<TensorData, ServingError> {
    let wanted = contents_field(dtype);
    let mut given = 0;
    for (field, len) in field_lengths(&contents) {
        if field == wanted {
            given = len;
        } else if len > 0 {
            return Err(invalid(format!(
                "input '{name}' has datatype {dtype}, whose elements go in contents.{wanted}, but contents.{field} holds {len} values"
            )));
        }
    }
    if given != expected {
        return Err(invalid(format!(
            "input '{name}': its shape needs {expected} elements but contents.{wanted} holds {given}"
        )));
    }
    let data = match dtype {
        DataType::Bool => TensorData::Bool(contents.bool_contents),
        DataType::Int8 => TensorData::Int8(narrow(name, dtype, contents.int_contents)?),
        DataType::Int16 => TensorData::Int16(narrow(name, dtype, contents.int_contents)?),
        DataType::Int32 => TensorData::Int32(contents.int_contents),
        DataType::Int64 => TensorData::Int64(contents.int64_contents),
        DataType::Uint8 => TensorData::Uint8(narrow(name, dtype, contents.uint_contents)?),
        DataType::Uint16 => TensorData::Uint16(narrow(name, dtype, contents.uint_contents)?),
        DataType::Uint32 => TensorData::Uint32(contents.uint_contents),
        DataType::Uint64 => TensorData::Uint64(contents.uint64_contents),
        DataType::Fp32 => TensorData::Fp32(contents.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(contents.fp64_contents),
        DataType::Bytes => TensorData::Bytes(
            contents
                .bytes_contents
                .into_iter()
                .map(Bytes::from)
                .collect(),
        ),
    };
    Ok(data)
}

/// Converts wire values to a narrower element type, refusing values that do not fit.
fn narrow<Wide, Narrow>(
    name: &str,
    dtype: DataType,
    values: Vec<Wide>,
) -> Result<Vec<Narrow>, ServingError>
where
    Wide: Copy + Display,
    Narrow: TryFrom<Wide>,
{
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            Narrow::try_from(value).map_err(|_| {
                invalid(format!(
                    "input '{name}': element {index} is {value}, out of range for {dtype}"
                ))
            })
        })
        .collect()
}

/// Builds the wire response, with outputs in the form the request used for its inputs.
fn encode_response(response: InferResponse, form: TensorForm) -> pb::ModelInferResponse {
    let InferResponse {
        model,
        version,
        id,
        outputs: tensors,
    } = response;
    let mut outputs = Vec::with_capacity(tensors.len());
    let mut raw_output_contents = Vec::new();
    if form == TensorForm::Raw {
        raw_output_contents.reserve_exact(tensors.len());
    }
    for tensor in tensors {
        let Tensor { name, shape, data } = tensor;
        let datatype = data.dtype().as_str().to_owned();
        let contents = match form {
            TensorForm::Raw => {
                raw_output_contents.push(data.to_raw());
                None
            }
            TensorForm::Typed => Some(encode_contents(data)),
        };
        outputs.push(pb::model_infer_response::InferOutputTensor {
            name,
            datatype,
            shape: wire_shape(&shape),
            parameters: Default::default(),
            contents,
        });
    }
    pb::ModelInferResponse {
        model_name: model,
        model_version: version.to_string(),
        id,
        parameters: Default::default(),
        outputs,
        raw_output_contents,
    }
}

fn wire_shape(shape: &[usize]) -> Vec<i64> {
    shape
        .iter()
        .map(|&dim| i64::try_from(dim).unwrap_or(i64::MAX))
        .collect()
}

/// Puts a tensor's elements in the typed field for its datatype, widening INT8/INT16 and
/// UINT8/UINT16 to the protocol's 32-bit fields.
fn encode_contents(data: TensorData) -> pb::InferTensorContents {
    let mut contents = pb::InferTensorContents::default();
    match data {
        TensorData::Bool(v) => contents.bool_contents = v,
        TensorData::Int8(v) => contents.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => contents.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => contents.int_contents = v,
        TensorData::Int64(v) => contents.int64_contents = v,
        TensorData::Uint8(v) => contents.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => contents.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => contents.uint_contents = v,
        TensorData::Uint64(v) => contents.uint64_contents = v,
        TensorData::Fp32(v) => contents.fp32_contents = v,
        TensorData::Fp64(v) => contents.fp64_contents = v,
        TensorData::Bytes(v) => contents.bytes_contents = v.into_iter().map(Vec::from).collect(),
    }
    contents
}

#[cfg(test)]
mod tests {
    use super::*;

    use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};

    fn typed_input(
        name: &str,
        datatype: &str,
        shape: &[i64],
        contents: pb::InferTensorContents,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape: shape.to_vec(),
            parameters: Default::default(),
            contents: Some(contents),
        }
    }

    fn raw_input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape: shape.to_vec(),
            parameters: Default::default(),
            contents: None,
        }
    }

    fn request(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> pb::ModelInferRequest {
        pb::ModelInferRequest {
            model_name: "m".to_owned(),
            model_version: String::new(),
            id: "req-1".to_owned(),
            parameters: Default::default(),
            inputs,
            outputs: Vec::new(),
            raw_input_contents: raw,
        }
    }

    fn decode_one(input: InferInputTensor, raw: Option<Vec<u8>>) -> Result<Tensor, String> {
        let raw = raw.into_iter().collect();
        decode_request(request(vec![input], raw))
            .map(|(mut request, _)| request.inputs.remove(0))
            .map_err(|err| err.to_string())
    }

    fn refuse(wire: pb::ModelInferRequest) -> ServingError {
        match decode_request(wire) {
            Ok(_) => panic!("the request decodes but should not"),
            Err(err) => err,
        }
    }

    /// Every datatype with sample values, their typed contents and their wire name.
    fn samples() -> Vec<(TensorData, pb::InferTensorContents)> {
        let c = pb::InferTensorContents::default;
        vec![
            (
                TensorData::Bool(vec![true, false]),
                pb::InferTensorContents {
                    bool_contents: vec![true, false],
                    ..c()
                },
            ),
            (
                TensorData::Int8(vec![-128, 127]),
                pb::InferTensorContents {
                    int_contents: vec![-128, 127],
                    ..c()
                },
            ),
            (
                TensorData::Int16(vec![-32768, 32767]),
                pb::InferTensorContents {
                    int_contents: vec![-32768, 32767],
                    ..c()
                },
            ),
            (
                TensorData::Int32(vec![i32::MIN, i32::MAX]),
                pb::InferTensorContents {
                    int_contents: vec![i32::MIN, i32::MAX],
                    ..c()
                },
            ),
            (
                TensorData::Int64(vec![i64::MIN, i64::MAX]),
                pb::InferTensorContents {
                    int64_contents: vec![i64::MIN, i64::MAX],
                    ..c()
                },
            ),
            (
                TensorData::Uint8(vec![0, 255]),
                pb::InferTensorContents {
                    uint_contents: vec![0, 255],
                    ..c()
                },
            ),
            (
                TensorData::Uint16(vec![0, 65535]),
                pb::InferTensorContents {
                    uint_contents: vec![0, 65535],
                    ..c()
                },
            ),
            (
                TensorData::Uint32(vec![0, u32::MAX]),
                pb::InferTensorContents {
                    uint_contents: vec![0, u32::MAX],
                    ..c()
                },
            ),
            (
                TensorData::Uint64(vec![0, u64::MAX]),
                pb::InferTensorContents {
                    uint64_contents: vec![0, u64::MAX],
                    ..c()
                },
            ),
            (
                TensorData::Fp32(vec![1.5, -0.25]),
                pb::InferTensorContents {
                    fp32_contents: vec![1.5, -0.25],
                    ..c()
                },
            ),
            (
                TensorData::Fp64(vec![1e300, -2.5]),
                pb::InferTensorContents {
                    fp64_contents: vec![1e300, -2.5],
                    ..c()
                },
            ),
            (
                TensorData::Bytes(vec![Bytes::from_static(b"kia ora"), Bytes::new()]),
                pb::InferTensorContents {
                    bytes_contents: vec![b"kia ora".to_vec(), Vec::new()],
                    ..c()
                },
            ),
        ]
    }

    #[test]
    fn samples_cover_every_datatype() {
        let mut covered: Vec<&str> = samples()
            .iter()
            .map(|(data, _)| data.dtype().as_str())
            .collect();
        let mut all: Vec<&str> = DataType::ALL.iter().map(|dtype| dtype.as_str()).collect();
        covered.sort_unstable();
        all.sort_unstable();
        assert_eq!(covered, all);
    }

    #[test]
    fn typed_contents_decode_for_every_datatype() {
        for (data, contents) in samples() {
            let dtype = data.dtype();
            let tensor = decode_one(typed_input("x", dtype.as_str(), &[1, 2], contents), None)
                .unwrap_or_else(|err| panic!("{dtype}: {err}"));
            assert_eq!(tensor.name, "x");
            assert_eq!(tensor.shape, vec![1, 2]);
            assert_eq!(tensor.data, data, "{dtype}");
        }
    }

    #[test]
    fn raw_contents_decode_for_every_datatype() {
        for (data, _) in samples() {
            let dtype = data.dtype();
            let tensor = decode_one(raw_input("x", dtype.as_str(), &[2]), Some(data.to_raw()))
                .unwrap_or_else(|err| panic!("{dtype}: {err}"));
            assert_eq!(tensor.shape, vec![2]);
            assert_eq!(tensor.data, data, "{dtype}");
        }
    }

    #[test]
    fn raw_fp32_is_read_little_endian_in_request_order() {
        let a: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = 7i64.to_le_bytes().to_vec();
        let (decoded, form) = decode_request(request(
            vec![
                raw_input("a", "FP32", &[1, 2]),
                raw_input("b", "INT64", &[1]),
            ],
            vec![a, b],
        ))
        .unwrap();
        assert_eq!(form, TensorForm::Raw);
        assert_eq!(decoded.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0]));
        assert_eq!(decoded.inputs[1].data, TensorData::Int64(vec![7]));
        assert_eq!(decoded.protocol, Protocol::Grpc);
        assert_eq!(decoded.id, "req-1");
        assert_eq!(decoded.version, VersionSelector::Latest);
    }

    #[test]
    fn request_fields_carry_over() {
        let mut wire = request(
            vec![typed_input(
                "x",
                "FP32",
                &[1],
                pb::InferTensorContents {
                    fp32_contents: vec![1.0],
                    ..Default::default()
                },
            )],
            Vec::new(),
        );
        wire.model_version = "stable".to_owned();
        wire.outputs = ["b", "a"]
            .iter()
            .map(|name| InferRequestedOutputTensor {
                name: (*name).to_owned(),
                parameters: Default::default(),
            })
            .collect();
        let (decoded, form) = decode_request(wire).unwrap();
        assert_eq!(form, TensorForm::Typed);
        assert_eq!(decoded.model, "m");
        assert_eq!(decoded.version, VersionSelector::Label("stable".into()));
        assert_eq!(decoded.outputs, vec!["b".to_owned(), "a".to_owned()]);
    }

    #[test]
    fn narrowing_refuses_values_out_of_range() {
        let cases = [
            ("INT8", 300i64),
            ("INT8", -129),
            ("INT16", 40000),
            ("UINT8", 256),
            ("UINT16", 70000),
        ];
        for (datatype, value) in cases {
            let contents = if datatype.starts_with('U') {
                pb::InferTensorContents {
                    uint_contents: vec![1, u32::try_from(value).unwrap()],
                    ..Default::default()
                }
            } else {
                pb::InferTensorContents {
                    int_contents: vec![1, i32::try_from(value).unwrap()],
                    ..Default::default()
                }
            };
            let err = decode_one(typed_input("small", datatype, &[2], contents), None).unwrap_err();
            assert!(
                err.contains("'small'")
                    && err.contains(&format!("element 1 is {value}"))
                    && err.contains(datatype),
                "{datatype}: {err}"
            );
        }
    }

    #[test]
    fn element_count_must_match_the_shape() {
        let contents = pb::InferTensorContents {
            fp32_contents: vec![1.0, 2.0, 3.0],
            ..Default::default()
        };
        let err = decode_one(typed_input("features", "FP32", &[1, 8], contents), None).unwrap_err();
        assert!(
            err.contains("'features'") && err.contains("8 elements") && err.contains("holds 3"),
            "{err}"
        );
        let err =
            decode_one(raw_input("features", "FP32", &[1, 8]), Some(vec![0; 12])).unwrap_err();
        assert!(
            err.contains("'features'") && err.contains("32 bytes") && err.contains("got 12"),
            "{err}"
        );
        let err =
            decode_one(raw_input("s", "BYTES", &[2]), Some(vec![1, 0, 0, 0, b'a'])).unwrap_err();
        assert!(err.contains("'s'") && err.contains("2 elements"), "{err}");
        let err =
            decode_one(raw_input("s", "BYTES", &[1]), Some(vec![9, 0, 0, 0, b'a'])).unwrap_err();
        assert!(err.contains("'s'") && err.contains("BYTES"), "{err}");
    }

    #[test]
    fn typed_values_in_the_wrong_field_are_named() {
        let contents = pb::InferTensorContents {
            fp64_contents: vec![1.0, 2.0],
            ..Default::default()
        };
        let err = decode_one(typed_input("x", "FP32", &[2], contents), None).unwrap_err();
        assert!(
            err.contains("'x'") && err.contains("fp32_contents") && err.contains("fp64_contents"),
            "{err}"
        );
    }

    #[test]
    fn missing_data_is_refused_but_empty_tensors_are_fine() {
        let mut input = raw_input("x", "FP32", &[1, 2]);
        let err = decode_one(input.clone(), None).unwrap_err();
        assert!(err.contains("'x'") && err.contains("2 elements"), "{err}");
        input.shape = vec![0, 2];
        let tensor = decode_one(input, None).unwrap();
        assert_eq!(tensor.data, TensorData::Fp32(Vec::new()));
    }

    #[test]
    fn bad_datatypes_and_shapes_are_refused() {
        let err = decode_one(raw_input("x", "FP16", &[1]), Some(vec![0, 0])).unwrap_err();
        assert!(err.contains("'x'") && err.contains("'FP16'"), "{err}");
        let err = decode_one(raw_input("x", "fp32", &[1]), Some(vec![0; 4])).unwrap_err();
        assert!(err.contains("'fp32'"), "{err}");
        let err = decode_one(raw_input("x", "FP32", &[-1, 2]), Some(vec![0; 8])).unwrap_err();
        assert!(err.contains("'x'") && err.contains("negative"), "{err}");
        let err = decode_one(
            raw_input("x", "FP32", &[i64::MAX, i64::MAX]),
            Some(vec![0; 4]),
        )
        .unwrap_err();
        assert!(err.contains("'x'") && err.contains("too large"), "{err}");
    }

    #[test]
    fn raw_entries_must_match_inputs_one_to_one() {
        let err = refuse(request(
            vec![raw_input("a", "FP32", &[1]), raw_input("b", "FP32", &[1])],
            vec![vec![0; 4]],
        ));
        let message = err.to_string();
        assert!(matches!(err, ServingError::InvalidArgument(_)));
        assert!(
            message.contains("1 entries")
                && message.contains("2 inputs")
                && message.contains("'b'"),
            "{message}"
        );
        let err = refuse(request(Vec::new(), vec![vec![0; 4]]));
        assert!(err.to_string().contains("0 inputs"), "{err}");
    }

    #[test]
    fn mixing_raw_and_typed_contents_is_refused() {
        let typed = typed_input(
            "b",
            "FP32",
            &[1],
            pb::InferTensorContents {
                fp32_contents: vec![1.0],
                ..Default::default()
            },
        );
        let err = refuse(request(
            vec![raw_input("a", "FP32", &[1]), typed],
            vec![vec![0; 4], vec![0; 4]],
        ));
        let message = err.to_string();
        assert!(
            message.contains("'b'") && message.contains("raw_input_contents"),
            "{message}"
        );
    }

    #[test]
    fn decoding_errors_become_invalid_argument() {
        let err = refuse(request(
            vec![raw_input("x", "FP32", &[1])],
            vec![vec![0; 3]],
        ));
        assert_eq!(Status::from(err).code(), tonic::Code::InvalidArgument);
    }

    fn response(outputs: Vec<Tensor>) -> InferResponse {
        InferResponse {
            model: "m".to_owned(),
            version: 3,
            id: "req-9".to_owned(),
            outputs,
        }
    }

    #[test]
    fn raw_responses_round_trip_every_datatype() {
        let tensors: Vec<Tensor> = samples()
            .into_iter()
            .enumerate()
            .map(|(i, (data, _))| Tensor::new(format!("y{i}"), vec![1, 2], data).unwrap())
            .collect();
        let wire = encode_response(response(tensors.clone()), TensorForm::Raw);
        assert_eq!(wire.model_name, "m");
        assert_eq!(wire.model_version, "3");
        assert_eq!(wire.id, "req-9");
        assert_eq!(wire.raw_output_contents.len(), tensors.len());
        for ((output, raw), tensor) in wire
            .outputs
            .iter()
            .zip(&wire.raw_output_contents)
            .zip(&tensors)
        {
            assert_eq!(output.name, tensor.name);
            assert_eq!(output.datatype, tensor.dtype().as_str());
            assert_eq!(output.shape, vec![1, 2]);
            assert!(output.contents.is_none());
            let dtype: DataType = output.datatype.parse().unwrap();
            assert_eq!(TensorData::from_raw(dtype, raw, 2).unwrap(), tensor.data);
        }
    }

    #[test]
    fn typed_responses_use_the_datatype_field() {
        for (data, contents) in samples() {
            let dtype = data.dtype();
            let tensor = Tensor::new("y", vec![2], data).unwrap();
            let wire = encode_response(response(vec![tensor]), TensorForm::Typed);
            assert!(wire.raw_output_contents.is_empty());
            let output = &wire.outputs[0];
            assert_eq!(output.datatype, dtype.as_str());
            assert_eq!(output.contents.as_ref(), Some(&contents), "{dtype}");
        }
    }

    #[test]
    fn typed_request_then_typed_response_round_trips() {
        for (data, contents) in samples() {
            let dtype = data.dtype();
            let (decoded, form) = decode_request(request(
                vec![typed_input("x", dtype.as_str(), &[2], contents.clone())],
                Vec::new(),
            ))
            .unwrap();
            let wire = encode_response(response(decoded.inputs), form);
            assert_eq!(
                wire.outputs[0].contents.as_ref(),
                Some(&contents),
                "{dtype}"
            );
        }
    }

    #[test]
    fn metadata_and_index_translate() {
        let spec = TensorSpec {
            name: "features".into(),
            dtype: DataType::Fp32,
            shape: vec![None, Some(8)],
        };
        let wire = tensor_metadata(&spec);
        assert_eq!(wire.datatype, "FP32");
        assert_eq!(wire.shape, vec![-1, 8]);
        let row = model_index(RepositoryEntry {
            name: "m".into(),
            version: None,
            state: "UNAVAILABLE".into(),
            reason: "unloaded".into(),
        });
        assert_eq!(row.version, "");
        assert_eq!(row.reason, "unloaded");
        let row = model_index(RepositoryEntry {
            name: "m".into(),
            version: Some(2),
            state: "READY".into(),
            reason: String::new(),
        });
        assert_eq!(row.version, "2");
    }
}
