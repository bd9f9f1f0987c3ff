//! KServe V2 REST (the Open Inference Protocol over HTTP), wire-compatible with Triton's HTTP
//! API so `tritonclient.http` works unchanged: health, server and model metadata, inference with
//! JSON tensors and Triton's binary tensor extension, and the model repository extension.
//!
//! Bodies are read whatever their Content-Type says, because tritonclient's async client sends
//! none. Binary requests carry `Inference-Header-Content-Length: N`: the first N bytes are the
//! JSON header and the rest are the raw tensors of the inputs that set
//! `parameters.binary_data_size`, in input order.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::api::json::{self, BinaryStrings, FlatValues};
use crate::error::ServingError;
use crate::request::{InferRequest, InferResponse, ModelMetadata, Protocol, VersionSelector};
use crate::service::InferenceService;
use crate::tensor::{
    Tensor, TensorData, TensorSpec, element_count, parse_datatype, shape_from_wire,
};

/// Triton's header giving the length of the JSON part of a binary request or response.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

pub fn router() -> Router<InferenceService> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata_latest))
        .route("/v2/models/{model}/ready", get(model_ready_latest))
        .route("/v2/models/{model}/infer", post(infer_latest))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{model}/versions/{version}/infer", post(infer))
}

/// Model control: the repository index, load and unload.
pub fn repository_router() -> Router<InferenceService> {
    Router::new()
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load_model))
        .route("/v2/repository/models/{model}/unload", post(unload_model))
}

/// Turns a body that could not be read (too large, connection dropped) into the protocol's
/// `{"error": "..."}` form.
pub(crate) fn body_rejection(rejection: BytesRejection) -> Response {
    // An oversize body is the client's mistake like any other bad input: 400, as the protocol's
    // clients expect for INVALID_ARGUMENT, with the limit named.
    let (status, message) = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the request body is larger than this server accepts (--max-request-bytes): {}",
                rejection.body_text()
            ),
        )
    } else {
        (
            rejection.status(),
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    };
    // What is left of the body goes unread, so hyper closes the connection after the answer;
    // saying so keeps the client from reusing it.
    (
        status,
        [(header::CONNECTION, "close")],
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(body),
    )
        .into_response()
}

async fn server_metadata(State(service): State<InferenceService>) -> Response {
    let metadata = service.server_metadata();
    axum::Json(json!({
        "name": metadata.name,
        "version": metadata.version,
        "extensions": metadata.extensions,
    }))
    .into_response()
}

/// Triton answers 200 when live or ready and 400 otherwise; tritonclient only checks for 200.
fn health(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn live(State(service): State<InferenceService>) -> StatusCode {
    health(service.live())
}

async fn ready(State(service): State<InferenceService>) -> StatusCode {
    health(service.ready())
}

async fn model_ready_latest(
    State(service): State<InferenceService>,
    Path(model): Path<String>,
) -> Result<StatusCode, ServingError> {
    Ok(health(
        service.model_ready(&model, &VersionSelector::Latest)?,
    ))
}

async fn model_ready(
    State(service): State<InferenceService>,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ServingError> {
    Ok(health(
        service.model_ready(&model, &VersionSelector::parse(&version))?,
    ))
}

async fn model_metadata_latest(
    State(service): State<InferenceService>,
    Path(model): Path<String>,
) -> Result<Response, ServingError> {
    let metadata = service.model_metadata(&model, &VersionSelector::Latest)?;
    Ok(axum::Json(metadata_json(&metadata)).into_response())
}

async fn model_metadata(
    State(service): State<InferenceService>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ServingError> {
    let metadata = service.model_metadata(&model, &VersionSelector::parse(&version))?;
    Ok(axum::Json(metadata_json(&metadata)).into_response())
}

fn metadata_json(metadata: &ModelMetadata) -> serde_json::Value {
    let specs = |specs: &[TensorSpec]| -> Vec<serde_json::Value> {
        specs
            .iter()
            .map(|spec| {
                json!({
                    "name": spec.name,
                    "datatype": spec.dtype.as_str(),
                    "shape": spec.wire_shape(),
                })
            })
            .collect()
    };
    json!({
        "name": metadata.name,
        "versions": metadata.versions.iter().map(u64::to_string).collect::<Vec<_>>(),
        "platform": metadata.platform,
        "inputs": specs(&metadata.inputs),
        "outputs": specs(&metadata.outputs),
    })
}

#[derive(Debug, Default, Deserialize)]
struct IndexBody {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(
    State(service): State<InferenceService>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    // tritonclient posts an empty body; `{"ready": true}` narrows the list.
    let request: IndexBody = match parse_optional_body(&body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let entries: Vec<serde_json::Value> = service
        .repository_index(request.ready)
        .into_iter()
        .map(|entry| {
            let mut row =
                json!({ "name": entry.name, "state": entry.state, "reason": entry.reason });
            if let Some(version) = entry.version {
                row["version"] = json!(version.to_string());
            }
            row
        })
        .collect();
    axum::Json(entries).into_response()
}

fn parse_optional_body<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ServingError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|err| ServingError::InvalidArgument(format!("invalid JSON request body: {err}")))
}

#[derive(Debug, Default, Deserialize)]
struct RepositoryBody {
    #[serde(default)]
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

async fn load_model(
    State(service): State<InferenceService>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    let result = async {
        let request: RepositoryBody = parse_optional_body(&body)?;
        // Triton lets a load override the model's config or files; this server loads only what
        // the repository holds, so refuse rather than silently ignore an override.
        if let Some(key) = request.parameters.iter().flat_map(|p| p.keys()).find(|key| {
            key.as_str() == "config" || key.starts_with("file:")
        }) {
            return Err(ServingError::InvalidArgument(format!(
                "load parameter '{key}' is not supported: models load from the repository as they are"
            )));
        }
        service.load_model(&model).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn unload_model(
    State(service): State<InferenceService>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    // `unload_dependents` has no meaning without ensembles, so the parameters are only checked
    // for being JSON.
    let result = match parse_optional_body::<RepositoryBody>(&body) {
        Ok(_) => service.unload_model(&model).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct InferBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<RequestParameters>,
    inputs: Vec<InputBody>,
    #[serde(default)]
    outputs: Option<Vec<OutputBody>>,
}

#[derive(Debug, Default, Deserialize)]
struct RequestParameters {
    #[serde(default)]
    binary_data_output: Option<bool>,
    /// Keeps the client on one version of a sticky deployment; a string. Other types are
    /// ignored rather than refused, as Triton ignores parameters it does not know.
    #[serde(default)]
    routing_key: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct InputBody {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<InputParameters>,
    #[serde(default)]
    data: Option<FlatValues>,
}

#[derive(Debug, Default, Deserialize)]
struct InputParameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
    #[serde(default)]
    shared_memory_region: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OutputBody {
    name: String,
    #[serde(default)]
    parameters: Option<OutputParameters>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputParameters {
    #[serde(default)]
    binary_data: Option<bool>,
    #[serde(default)]
    classification: Option<u64>,
    #[serde(default)]
    shared_memory_region: Option<String>,
}

/// A decoded infer request plus, per requested output, whether to answer it in binary.
#[derive(Debug)]
struct DecodedInfer {
    id: String,
    inputs: Vec<Tensor>,
    outputs: Vec<String>,
    /// One flag per requested output, in request order.
    binary_outputs: Vec<bool>,
    /// Applies to every output when none are named.
    binary_default: bool,
    routing_key: Option<String>,
}

/// Splits a request body into its JSON header and binary tail using Triton's header.
fn split_binary<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<(&'a [u8], Option<&'a [u8]>), ServingError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok((body, None));
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ServingError::InvalidArgument(format!(
                "the Inference-Header-Content-Length header must be a non-negative integer, got {value:?}"
            ))
        })?;
    if length > body.len() {
        return Err(ServingError::InvalidArgument(format!(
            "Inference-Header-Content-Length is {length} but the body holds only {} bytes",
            body.len()
        )));
    }
    let (header, tail) = body.split_at(length);
    Ok((header, Some(tail)))
}

fn decode_infer(headers: &HeaderMap, body: &[u8]) -> Result<DecodedInfer, ServingError> {
    let (header, binary) = split_binary(headers, body)?;
    let request: InferBody = json::parse_relaxed(header).map_err(|err| {
        ServingError::InvalidArgument(format!("invalid JSON inference request: {err}"))
    })?;
    let mut tail = binary.unwrap_or_default();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let name = input.name;
        let parameters = input.parameters.unwrap_or_default();
        if parameters.shared_memory_region.is_some() {
            return Err(ServingError::InvalidArgument(format!(
                "input '{name}': shared memory is not supported over HTTP by this server"
            )));
        }
        let dtype = parse_datatype(&input.datatype)
            .map_err(|err| ServingError::InvalidArgument(format!("input '{name}': {err}")))?;
        let shape = shape_from_wire(&name, &input.shape)?;
        let count = element_count(&shape).map_err(|err| {
            ServingError::InvalidArgument(format!("input '{name}': shape {shape:?}: {err}"))
        })?;
        let data = match (input.data, parameters.binary_data_size) {
            (Some(_), Some(_)) => {
                return Err(ServingError::InvalidArgument(format!(
                    "input '{name}' has both 'data' and parameters.binary_data_size"
                )));
            }
            (Some(values), None) => {
                if values.0.len() != count {
                    return Err(ServingError::InvalidArgument(format!(
                        "input '{name}': shape {shape:?} holds {count} elements but 'data' has {}",
                        values.0.len()
                    )));
                }
                json::to_tensor_data(&name, dtype, values.0)?
            }
            (None, Some(size)) => {
                if binary.is_none() {
                    return Err(ServingError::InvalidArgument(format!(
                        "input '{name}' sets binary_data_size but the request has no \
                         Inference-Header-Content-Length header"
                    )));
                }
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > tail.len() {
                    return Err(ServingError::InvalidArgument(format!(
                        "input '{name}': binary_data_size is {size} but only {} bytes of binary \
                         data remain",
                        tail.len()
                    )));
                }
                let (raw, rest) = tail.split_at(size);
                tail = rest;
                TensorData::from_raw(dtype, raw, count).map_err(|err| {
                    ServingError::InvalidArgument(format!("input '{name}': {err}"))
                })?
            }
            (None, None) => {
                return Err(ServingError::InvalidArgument(format!(
                    "input '{name}' has neither 'data' nor parameters.binary_data_size"
                )));
            }
        };
        inputs.push(
            Tensor::new(name.clone(), shape, data)
                .map_err(|err| ServingError::InvalidArgument(format!("input '{name}': {err}")))?,
        );
    }
    if !tail.is_empty() {
        return Err(ServingError::InvalidArgument(format!(
            "{} bytes of binary data follow the last binary input; the binary_data_size values \
             must add up to the body length minus Inference-Header-Content-Length",
            tail.len()
        )));
    }
    let parameters = request.parameters.unwrap_or_default();
    let binary_default = parameters.binary_data_output.unwrap_or(false);
    let routing_key = match parameters.routing_key {
        Some(serde_json::Value::String(key)) => Some(key),
        _ => None,
    };
    let requested = request.outputs.unwrap_or_default();
    let mut outputs = Vec::with_capacity(requested.len());
    let mut binary_outputs = Vec::with_capacity(requested.len());
    for output in requested {
        let parameters = output.parameters.unwrap_or_default();
        if parameters.classification.is_some_and(|count| count > 0) {
            return Err(ServingError::InvalidArgument(format!(
                "output '{}': the classification extension is not supported",
                output.name
            )));
        }
        if parameters.shared_memory_region.is_some() {
            return Err(ServingError::InvalidArgument(format!(
                "output '{}': shared memory is not supported over HTTP by this server",
                output.name
            )));
        }
        binary_outputs.push(parameters.binary_data.unwrap_or(binary_default));
        outputs.push(output.name);
    }
    Ok(DecodedInfer {
        id: request.id.unwrap_or_default(),
        inputs,
        outputs,
        binary_outputs,
        binary_default,
        routing_key,
    })
}

/// Writes the response: JSON only, or Triton's JSON header followed by raw output tensors.
fn encode_infer(response: &InferResponse, binary: &[bool], binary_default: bool) -> Response {
    let is_binary = |i: usize| binary.get(i).copied().unwrap_or(binary_default);
    let raw_total: usize = response
        .outputs
        .iter()
        .enumerate()
        .filter(|(i, _)| is_binary(*i))
        .map(|(_, output)| json::raw_size(&output.data))
        .sum();
    let json_estimate: usize = response
        .outputs
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_binary(*i))
        .map(|(_, output)| output.data.len() * 12)
        .sum();
    let mut out = Vec::with_capacity(256 + json_estimate + raw_total);
    out.extend_from_slice(b"{\"model_name\":");
    json::write_str(&mut out, &response.model);
    out.extend_from_slice(b",\"model_version\":\"");
    json::write_int(&mut out, response.version);
    out.push(b'"');
    if !response.id.is_empty() {
        out.extend_from_slice(b",\"id\":");
        json::write_str(&mut out, &response.id);
    }
    out.extend_from_slice(b",\"outputs\":[");
    for (i, output) in response.outputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        json::write_str(&mut out, &output.name);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(output.dtype().as_str().as_bytes());
        out.extend_from_slice(b"\",\"shape\":[");
        for (d, dim) in output.shape.iter().enumerate() {
            if d > 0 {
                out.push(b',');
            }
            json::write_int(&mut out, *dim);
        }
        out.push(b']');
        if is_binary(i) {
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            json::write_int(&mut out, json::raw_size(&output.data));
            out.extend_from_slice(b"}}");
        } else {
            out.extend_from_slice(b",\"data\":");
            json::write_flat(&mut out, &output.data, BinaryStrings::Lossy);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"]}");
    let header_length = out.len();
    let any_binary = (0..response.outputs.len()).any(is_binary);
    if !any_binary {
        return json_response(StatusCode::OK, out);
    }
    for (i, output) in response.outputs.iter().enumerate() {
        if is_binary(i) {
            output.data.write_raw(&mut out);
        }
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::HeaderName::from_static(HEADER_LENGTH),
                HeaderValue::from(header_length),
            ),
        ],
        Body::from(out),
    )
        .into_response()
}

async fn infer_latest(
    State(service): State<InferenceService>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_infer(service, model, VersionSelector::Latest, headers, body).await
}

async fn infer(
    State(service): State<InferenceService>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let version = VersionSelector::parse(&version);
    run_infer(service, model, version, headers, body).await
}

async fn run_infer(
    service: InferenceService,
    model: String,
    version: VersionSelector,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    let decoded = match decode_infer(&headers, &body) {
        Ok(decoded) => decoded,
        Err(err) => return err.into_response(),
    };
    // The decoded tensors own their data, so the request body can go before inference runs.
    drop(body);
    let routing_key = routing_key_header(&service, &model, &headers).or(decoded.routing_key);
    let request = InferRequest {
        model,
        version,
        id: decoded.id,
        inputs: decoded.inputs,
        outputs: decoded.outputs,
        protocol: Protocol::Http,
        routing_key,
    };
    match service.infer(request).await {
        Ok(response) => encode_infer(&response, &decoded.binary_outputs, decoded.binary_default),
        Err(err) => err.into_response(),
    }
}

/// The value of the model's sticky routing-key header, if it has one and the request carries
/// it. `HeaderMap` lookups ignore case, as header names do.
pub(crate) fn routing_key_header(
    service: &InferenceService,
    model: &str,
    headers: &HeaderMap,
) -> Option<String> {
    let name = service.sticky_header(model)?;
    headers
        .get(name.as_str())
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DataType;

    fn headers(length: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert(HEADER_LENGTH, HeaderValue::from_str(length).unwrap());
        }
        headers
    }

    fn binary_body(header: &serde_json::Value, raw: &[&[u8]]) -> (HeaderMap, Vec<u8>) {
        let mut body = serde_json::to_vec(header).unwrap();
        let length = body.len();
        for part in raw {
            body.extend_from_slice(part);
        }
        (headers(Some(&length.to_string())), body)
    }

    fn error(result: Result<DecodedInfer, ServingError>) -> String {
        match result {
            Err(ServingError::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn decodes_json_tensors_flat_and_nested() {
        let body = json!({
            "id": "r1",
            "inputs": [
                {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]},
                {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]},
                {"name": "c", "shape": [1, 2], "datatype": "BOOL", "data": [true, false]},
            ],
            "outputs": [{"name": "o", "parameters": {"binary_data": true}}, {"name": "p"}],
        });
        let decoded = decode_infer(&headers(None), &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(decoded.id, "r1");
        assert_eq!(decoded.inputs[0].shape, vec![2, 2]);
        assert_eq!(
            decoded.inputs[0].data,
            TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.5])
        );
        assert_eq!(decoded.inputs[1].dtype(), DataType::Bytes);
        assert_eq!(decoded.inputs[2].data, TensorData::Bool(vec![true, false]));
        assert_eq!(decoded.outputs, vec!["o", "p"]);
        assert_eq!(decoded.binary_outputs, vec![true, false]);
    }

    #[test]
    fn decodes_binary_tensors_in_input_order() {
        let a: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = [7i64].iter().flat_map(|x| x.to_le_bytes()).collect();
        let header = json!({
            "inputs": [
                {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                {"name": "j", "shape": [1], "datatype": "INT32", "data": [5]},
                {"name": "b", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}},
            ],
            "parameters": {"binary_data_output": true},
        });
        let (headers, body) = binary_body(&header, &[&a, &b]);
        let decoded = decode_infer(&headers, &body).unwrap();
        assert_eq!(decoded.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0]));
        assert_eq!(decoded.inputs[1].data, TensorData::Int32(vec![5]));
        assert_eq!(decoded.inputs[2].data, TensorData::Int64(vec![7]));
        assert!(decoded.binary_default);
        assert!(decoded.outputs.is_empty());
    }

    #[test]
    fn bad_binary_framing_is_named() {
        let header = json!({"inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
        ]});
        let (_, body) = binary_body(&header, &[&[0; 8]]);
        let err = error(decode_infer(&headers(Some("100000")), &body));
        assert!(
            err.contains("Inference-Header-Content-Length is 100000"),
            "{err}"
        );
        let err = error(decode_infer(&headers(Some("abc")), &body));
        assert!(err.contains("non-negative integer"), "{err}");
        let (h, body) = binary_body(&header, &[&[0; 4]]);
        let err = error(decode_infer(&h, &body));
        assert!(
            err.contains("input 'a'") && err.contains("only 4 bytes"),
            "{err}"
        );
        let (h, body) = binary_body(&header, &[&[0; 12]]);
        let err = error(decode_infer(&h, &body));
        assert!(err.contains("4 bytes of binary data follow"), "{err}");
        let wrong = json!({"inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 4}},
        ]});
        let (h, body) = binary_body(&wrong, &[&[0; 4]]);
        let err = error(decode_infer(&h, &body));
        assert!(
            err.contains("input 'a'") && err.contains("8 bytes"),
            "{err}"
        );
        let body = serde_json::to_vec(&header).unwrap();
        let err = error(decode_infer(&headers(None), &body));
        assert!(err.contains("no Inference-Header-Content-Length"), "{err}");
    }

    #[test]
    fn bad_json_inputs_name_the_input_and_expected_vs_given() {
        let cases = [
            (
                json!({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}),
                "input 'a': shape [1, 3] holds 3 elements but 'data' has 2",
            ),
            (
                json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FP16", "data": [1]}]}),
                "input 'a': unsupported datatype 'FP16'",
            ),
            (
                json!({"inputs": [{"name": "a", "shape": [-1], "datatype": "FP32", "data": [1]}]}),
                "input 'a' has a negative dimension",
            ),
            (
                json!({"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1000]}]}),
                "input 'a': element 0 (number 1000) is out of range for datatype INT8",
            ),
            (
                json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]}),
                "input 'a' has neither 'data' nor parameters.binary_data_size",
            ),
            (
                json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1],
                        "parameters": {"binary_data_size": 4}}]}),
                "input 'a' has both",
            ),
            (
                json!({"inputs": [], "outputs": [{"name": "o", "parameters": {"classification": 2}}]}),
                "output 'o': the classification extension is not supported",
            ),
            (json!({"input": []}), "missing field `inputs`"),
        ];
        for (body, expected) in cases {
            let err = error(decode_infer(
                &headers(None),
                &serde_json::to_vec(&body).unwrap(),
            ));
            assert!(err.contains(expected), "{err} does not contain {expected}");
        }
        let err = error(decode_infer(&headers(None), b"not json"));
        assert!(err.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn accepts_nan_and_infinity_tokens() {
        let body =
            br#"{"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [NaN, Infinity, -Infinity]}]}"#;
        let decoded = decode_infer(&headers(None), body).unwrap();
        let TensorData::Fp64(values) = &decoded.inputs[0].data else {
            panic!("FP64 data");
        };
        assert!(values[0].is_nan() && values[1] == f64::INFINITY && values[2] == f64::NEG_INFINITY);
    }

    fn response() -> InferResponse {
        InferResponse {
            model: "m".into(),
            version: 3,
            id: "r".into(),
            outputs: vec![
                Tensor::new("y", vec![1, 2], TensorData::Fp32(vec![1.5, 2.0])).unwrap(),
                Tensor::new(
                    "s",
                    vec![1],
                    TensorData::Bytes(vec![Bytes::from_static(b"ab")]),
                )
                .unwrap(),
            ],
        }
    }

    async fn body_of(response: Response) -> (HeaderMap, Vec<u8>) {
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (headers, body.to_vec())
    }

    #[tokio::test]
    async fn encodes_json_responses() {
        let (headers, body) = body_of(encode_infer(&response(), &[], false)).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(headers.get(HEADER_LENGTH).is_none());
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"model_name": "m", "model_version": "3", "id": "r", "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.0]},
                {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["ab"]},
            ]})
        );
    }

    #[tokio::test]
    async fn encodes_binary_responses_after_the_json_header() {
        let (headers, body) = body_of(encode_infer(&response(), &[true, false], false)).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        let length: usize = headers[HEADER_LENGTH].to_str().unwrap().parse().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body[..length]).unwrap();
        assert_eq!(parsed["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(parsed["outputs"][0].get("data").is_none());
        assert_eq!(parsed["outputs"][1]["data"], json!(["ab"]));
        let raw: Vec<u8> = [1.5f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(&body[length..], &raw[..]);

        let (headers, body) = body_of(encode_infer(&response(), &[], true)).await;
        let length: usize = headers[HEADER_LENGTH].to_str().unwrap().parse().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body[..length]).unwrap();
        assert_eq!(parsed["outputs"][1]["parameters"]["binary_data_size"], 6);
        assert_eq!(body.len(), length + 8 + 6);
        assert_eq!(&body[length + 8..], b"\x02\0\0\0ab");
    }
}
