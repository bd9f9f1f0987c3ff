//! TF Serving REST compatibility: model status, model metadata and `:predict` in the row
//! (`instances` → `predictions`) and columnar (`inputs` → `outputs`) formats, addressed by
//! model, `/versions/{v}` or `/labels/{l}`. `:classify` and `:regress` answer 501.
//!
//! TF Serving's paths end in `:predict` right after a path parameter, which axum's router cannot
//! express, so one catch-all route takes everything under `/v1/models/` and [`parse_path`]
//! splits it. JSON numbers become each input's declared datatype, read from the model metadata,
//! since TF Serving's JSON carries no datatypes.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::json::{self, BinaryStrings};
use crate::api::v2::{body_rejection, routing_key_header};
use crate::error::ServingError;
use crate::request::{InferRequest, Protocol, VersionSelector};
use crate::service::InferenceService;
use crate::tensor::{DataType, Tensor, TensorSpec};

pub fn router() -> Router<InferenceService> {
    Router::new().route("/v1/models/{*rest}", get(get_model).post(post_model))
}

/// What a `/v1/models/...` path addresses.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    model: String,
    version: VersionSelector,
    /// `metadata` for GETs, a method such as `predict` for POSTs, or nothing (status).
    action: Option<String>,
}

fn malformed(path: &str) -> ServingError {
    ServingError::NotFound(format!(
        "malformed request path '/v1/models/{path}' (expected /v1/models/NAME[/versions/N|/labels/LABEL][/metadata|:predict])"
    ))
}

/// Splits `NAME[/versions/N|/labels/L][/metadata]` (GET) or `NAME[/versions/N|/labels/L]:VERB`
/// (POST).
fn parse_path(rest: &str, post: bool) -> Result<Target, ServingError> {
    let (path, verb) = if post {
        let (path, verb) = rest.rsplit_once(':').ok_or_else(|| malformed(rest))?;
        (path, Some(verb.to_owned()))
    } else {
        (rest, None)
    };
    let mut segments: Vec<&str> = path.split('/').collect();
    let mut action = verb;
    if !post && segments.len() > 1 && segments.last() == Some(&"metadata") {
        segments.pop();
        action = Some("metadata".to_owned());
    }
    let version = match segments[..] {
        [_] => VersionSelector::Latest,
        [_, "versions", number] => VersionSelector::Number(number.parse().map_err(|_| {
            ServingError::InvalidArgument(format!(
                "version '{number}' is not a number (use /labels/{number} for a label)"
            ))
        })?),
        [_, "labels", label] if !label.is_empty() => VersionSelector::Label(label.to_owned()),
        _ => return Err(malformed(rest)),
    };
    let model = segments[0];
    if model.is_empty() {
        return Err(malformed(rest));
    }
    Ok(Target {
        model: model.to_owned(),
        version,
        action,
    })
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(body),
    )
        .into_response()
}

async fn get_model(
    State(service): State<InferenceService>,
    Path(rest): Path<String>,
) -> Result<Response, ServingError> {
    let target = parse_path(&rest, false)?;
    match target.action.as_deref() {
        None => model_status(&service, &target),
        Some(_) => model_metadata(&service, &target),
    }
}

/// The version number a selector picks, which must be ready.
fn resolve_number(service: &InferenceService, target: &Target) -> Result<u64, ServingError> {
    Ok(service
        .manager()
        .resolve(&target.model, &target.version)?
        .version)
}

fn model_status(service: &InferenceService, target: &Target) -> Result<Response, ServingError> {
    let wanted = match &target.version {
        VersionSelector::Latest => None,
        VersionSelector::Number(number) => Some(*number),
        VersionSelector::Label(_) => Some(resolve_number(service, target)?),
    };
    let mut rows: Vec<_> = service
        .repository_index(false)
        .into_iter()
        .filter(|entry| entry.name == target.model)
        .filter_map(|entry| Some((entry.version?, entry.state, entry.reason)))
        .filter(|(version, _, _)| wanted.is_none_or(|wanted| wanted == *version))
        .collect();
    if rows.is_empty() {
        return Err(ServingError::NotFound(match wanted {
            Some(version) => format!("Could not find version {version} of model {}", target.model),
            None => format!("Could not find any versions of model {}", target.model),
        }));
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let statuses: Vec<Value> = rows
        .into_iter()
        .map(|(version, state, reason)| {
            let (state, code, message) = match state.as_str() {
                "READY" => ("AVAILABLE", "OK", String::new()),
                "LOADING" => ("LOADING", "OK", String::new()),
                _ if reason.is_empty() || reason == "unloaded" => ("END", "OK", String::new()),
                _ => ("END", "UNKNOWN", reason),
            };
            json!({
                "version": version.to_string(),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            })
        })
        .collect();
    Ok(axum::Json(json!({ "model_version_status": statuses })).into_response())
}

fn tf_dtype(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Bool => "DT_BOOL",
        DataType::Uint8 => "DT_UINT8",
        DataType::Uint16 => "DT_UINT16",
        DataType::Uint32 => "DT_UINT32",
        DataType::Uint64 => "DT_UINT64",
        DataType::Int8 => "DT_INT8",
        DataType::Int16 => "DT_INT16",
        DataType::Int32 => "DT_INT32",
        DataType::Int64 => "DT_INT64",
        DataType::Fp32 => "DT_FLOAT",
        DataType::Fp64 => "DT_DOUBLE",
        DataType::Bytes => "DT_STRING",
    }
}

fn tensor_info(specs: &[TensorSpec]) -> Value {
    let entries: Map<String, Value> = specs
        .iter()
        .map(|spec| {
            let dims: Vec<Value> = spec
                .wire_shape()
                .into_iter()
                .map(|size| json!({"size": size.to_string(), "name": ""}))
                .collect();
            (
                spec.name.clone(),
                json!({
                    "dtype": tf_dtype(spec.dtype),
                    "tensor_shape": {"dim": dims, "unknown_rank": false},
                    "name": spec.name,
                }),
            )
        })
        .collect();
    Value::Object(entries)
}

/// TF Serving's `GetModelMetadata` answer, with the one signature every model here has.
fn model_metadata(service: &InferenceService, target: &Target) -> Result<Response, ServingError> {
    let metadata = service.model_metadata(&target.model, &target.version)?;
    let version = resolve_number(service, target)?;
    Ok(axum::Json(json!({
        "model_spec": {
            "name": target.model,
            "signature_name": "",
            "version": version.to_string(),
        },
        "metadata": {"signature_def": {
            "signature_def": {"serving_default": {
                "inputs": tensor_info(&metadata.inputs),
                "outputs": tensor_info(&metadata.outputs),
                "method_name": "tensorflow/serving/predict",
            }},
        }},
    }))
    .into_response())
}

async fn post_model(
    State(service): State<InferenceService>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    match predict(&service, &rest, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct PredictBody {
    #[serde(default)]
    signature_name: Option<String>,
    #[serde(default)]
    instances: Option<Value>,
    #[serde(default)]
    inputs: Option<Value>,
}

/// Which of the two request formats a predict call used, which decides the answer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Rows { instances: usize },
    Columns,
}

async fn predict(
    service: &InferenceService,
    rest: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ServingError> {
    let target = parse_path(rest, true)?;
    match target.action.as_deref() {
        Some("predict") => {}
        Some(verb @ ("classify" | "regress")) => {
            return Err(ServingError::Unimplemented(format!(
                "':{verb}' is not supported; use ':predict'"
            )));
        }
        Some(verb) => {
            return Err(ServingError::InvalidArgument(format!(
                "unknown method ':{verb}' (supported: predict)"
            )));
        }
        None => return Err(malformed(rest)),
    }
    let request: PredictBody = json::parse_relaxed(body).map_err(|err| {
        ServingError::InvalidArgument(format!("invalid JSON predict request: {err}"))
    })?;
    if let Some(signature) = request.signature_name.as_deref()
        && !signature.is_empty()
        && signature != "serving_default"
    {
        return Err(ServingError::InvalidArgument(format!(
            "unknown signature_name '{signature}' (models here have only 'serving_default')"
        )));
    }
    let metadata = service.model_metadata(&target.model, &target.version)?;
    let (inputs, format) = match (request.instances, request.inputs) {
        (Some(instances), None) => decode_instances(&metadata.inputs, instances)?,
        (None, Some(inputs)) => (decode_columns(&metadata.inputs, inputs)?, Format::Columns),
        _ => {
            return Err(ServingError::InvalidArgument(
                "a predict request needs exactly one of 'instances' (row format) or 'inputs' \
                 (columnar format)"
                    .to_owned(),
            ));
        }
    };
    let routing_key = routing_key_header(service, &target.model, headers);
    let response = service
        .infer(InferRequest {
            model: target.model,
            version: target.version,
            id: String::new(),
            inputs,
            outputs: Vec::new(),
            protocol: Protocol::TfServing,
            routing_key,
        })
        .await?;
    Ok(json_response(encode_predict(&response.outputs, format)?))
}

fn input_names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|spec| spec.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An object keyed by input names, as opposed to a value or a `{"b64": ...}` string.
fn is_named_object(value: &Value) -> bool {
    match value {
        Value::Object(map) => !(map.len() == 1 && map.contains_key("b64")),
        _ => false,
    }
}

fn spec_for<'a>(specs: &'a [TensorSpec], name: &str) -> Result<&'a TensorSpec, ServingError> {
    specs.iter().find(|spec| spec.name == name).ok_or_else(|| {
        ServingError::InvalidArgument(format!(
            "unknown input '{name}' (inputs: {})",
            input_names(specs)
        ))
    })
}

/// Decodes one input from nested JSON, taking the shape from the nesting.
fn decode_tensor(spec: &TensorSpec, value: Value) -> Result<Tensor, ServingError> {
    let mut shape = Vec::new();
    let mut values = Vec::new();
    json::flatten_value(&spec.name, value, &mut shape, &mut values)?;
    let data = json::to_tensor_data(&spec.name, spec.dtype, values)?;
    Tensor::new(spec.name.clone(), shape, data)
        .map_err(|err| ServingError::InvalidArgument(format!("input '{}': {err}", spec.name)))
}

/// Row format: one entry per example, stacked along a new first dimension.
fn decode_instances(
    specs: &[TensorSpec],
    instances: Value,
) -> Result<(Vec<Tensor>, Format), ServingError> {
    let Value::Array(instances) = instances else {
        return Err(ServingError::InvalidArgument(
            "'instances' must be a list with one entry per example".to_owned(),
        ));
    };
    let count = instances.len();
    if count == 0 {
        return Err(ServingError::InvalidArgument(
            "'instances' is empty".to_owned(),
        ));
    }
    let format = Format::Rows { instances: count };
    let named = instances.first().is_some_and(is_named_object);
    if !named {
        let [spec] = specs else {
            return Err(ServingError::InvalidArgument(format!(
                "the model has inputs {}: each instance must be an object keyed by input name",
                input_names(specs)
            )));
        };
        return Ok((vec![decode_tensor(spec, Value::Array(instances))?], format));
    }
    // Transpose the instances into one list of rows per input.
    let mut columns: Vec<(&TensorSpec, Vec<Value>)> = Vec::new();
    for (index, instance) in instances.into_iter().enumerate() {
        let Value::Object(fields) = instance else {
            return Err(ServingError::InvalidArgument(format!(
                "instance {index} is not an object keyed by input name, unlike instance 0"
            )));
        };
        if index > 0 && fields.len() != columns.len() {
            return Err(ServingError::InvalidArgument(format!(
                "instance {index} has {} inputs but instance 0 has {}; every instance needs the same inputs",
                fields.len(),
                columns.len()
            )));
        }
        for (name, value) in fields {
            let spec = spec_for(specs, &name)?;
            match columns.iter_mut().find(|(known, _)| known.name == name) {
                Some((_, rows)) => rows.push(value),
                None if index == 0 => columns.push((spec, vec![value])),
                None => {
                    return Err(ServingError::InvalidArgument(format!(
                        "instance {index} has input '{name}' which instance 0 lacks"
                    )));
                }
            }
        }
    }
    let tensors = columns
        .into_iter()
        .map(|(spec, rows)| decode_tensor(spec, Value::Array(rows)))
        .collect::<Result<_, _>>()?;
    Ok((tensors, format))
}

/// Columnar format: a value for the only input, or an object keyed by input name.
fn decode_columns(specs: &[TensorSpec], inputs: Value) -> Result<Vec<Tensor>, ServingError> {
    // A single-input model may take its value directly; an object is keyed by input name.
    if let [spec] = specs
        && !is_named_object(&inputs)
    {
        return Ok(vec![decode_tensor(spec, inputs)?]);
    }
    let Value::Object(fields) = inputs else {
        return Err(ServingError::InvalidArgument(format!(
            "the model has inputs {}: 'inputs' must be an object keyed by input name",
            input_names(specs)
        )));
    };
    fields
        .into_iter()
        .map(|(name, value)| decode_tensor(spec_for(specs, &name)?, value))
        .collect()
}

/// Writes `{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar format).
fn encode_predict(outputs: &[Tensor], format: Format) -> Result<Vec<u8>, ServingError> {
    let elements: usize = outputs.iter().map(|output| output.data.len()).sum();
    let mut out = Vec::with_capacity(64 + elements * 12);
    match format {
        Format::Columns => {
            out.extend_from_slice(b"{\"outputs\":");
            if let [output] = outputs {
                json::write_nested(
                    &mut out,
                    &output.data,
                    &output.shape,
                    0,
                    BinaryStrings::Base64,
                );
            } else {
                out.push(b'{');
                for (i, output) in outputs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::write_str(&mut out, &output.name);
                    out.push(b':');
                    json::write_nested(
                        &mut out,
                        &output.data,
                        &output.shape,
                        0,
                        BinaryStrings::Base64,
                    );
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        Format::Rows { instances } => {
            for output in outputs {
                if output.shape.first() != Some(&instances) {
                    return Err(ServingError::InvalidArgument(format!(
                        "output '{}' has shape {:?}, whose first dimension is not the {instances} \
                         instances; use the columnar 'inputs' format for this model",
                        output.name, output.shape
                    )));
                }
            }
            out.extend_from_slice(b"{\"predictions\":[");
            for row in 0..instances {
                if row > 0 {
                    out.push(b',');
                }
                if let [output] = outputs {
                    write_row(&mut out, output, row);
                } else {
                    out.push(b'{');
                    for (i, output) in outputs.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json::write_str(&mut out, &output.name);
                        out.push(b':');
                        write_row(&mut out, output, row);
                    }
                    out.push(b'}');
                }
            }
            out.extend_from_slice(b"]}");
        }
    }
    Ok(out)
}

fn write_row(out: &mut Vec<u8>, output: &Tensor, row: usize) {
    let row_shape = &output.shape[1..];
    let row_len: usize = row_shape.iter().product();
    json::write_nested(
        out,
        &output.data,
        row_shape,
        row * row_len,
        BinaryStrings::Base64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    fn spec(name: &str, dtype: DataType, shape: &[Option<usize>]) -> TensorSpec {
        TensorSpec {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    fn features() -> Vec<TensorSpec> {
        vec![spec("features", DataType::Fp32, &[None, Some(2)])]
    }

    fn two_inputs() -> Vec<TensorSpec> {
        vec![
            spec("a", DataType::Int64, &[None, Some(2)]),
            spec("b", DataType::Bool, &[None]),
        ]
    }

    fn message<T: std::fmt::Debug>(result: Result<T, ServingError>) -> String {
        match result {
            Err(err) => err.to_string(),
            Ok(value) => panic!("expected an error, got {value:?}"),
        }
    }

    #[test]
    fn parses_paths_with_versions_labels_and_verbs() {
        let check = |rest: &str,
                     post: bool,
                     model: &str,
                     version: VersionSelector,
                     action: Option<&str>| {
            assert_eq!(
                parse_path(rest, post).unwrap(),
                Target {
                    model: model.to_owned(),
                    version,
                    action: action.map(str::to_owned),
                },
                "{rest}"
            );
        };
        check("m", false, "m", VersionSelector::Latest, None);
        check(
            "m/metadata",
            false,
            "m",
            VersionSelector::Latest,
            Some("metadata"),
        );
        check("m/versions/3", false, "m", VersionSelector::Number(3), None);
        check(
            "m/labels/stable/metadata",
            false,
            "m",
            VersionSelector::Label("stable".into()),
            Some("metadata"),
        );
        check(
            "m:predict",
            true,
            "m",
            VersionSelector::Latest,
            Some("predict"),
        );
        check(
            "m/versions/2:predict",
            true,
            "m",
            VersionSelector::Number(2),
            Some("predict"),
        );
        check(
            "m/labels/canary:classify",
            true,
            "m",
            VersionSelector::Label("canary".into()),
            Some("classify"),
        );
        assert!(matches!(
            parse_path("m", true),
            Err(ServingError::NotFound(_))
        ));
        assert!(matches!(
            parse_path("m/other/1", false),
            Err(ServingError::NotFound(_))
        ));
        assert!(matches!(
            parse_path("m/versions/x:predict", true),
            Err(ServingError::InvalidArgument(_))
        ));
    }

    #[test]
    fn row_format_stacks_instances_for_one_input() {
        let (tensors, format) =
            decode_instances(&features(), json!([[1, 2], [3, 4], [5, 6]])).unwrap();
        assert_eq!(format, Format::Rows { instances: 3 });
        assert_eq!(tensors[0].shape, vec![3, 2]);
        assert_eq!(
            tensors[0].data,
            TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        let (named, _) = decode_instances(&features(), json!([{"features": [1, 2]}])).unwrap();
        assert_eq!(named[0].shape, vec![1, 2]);
    }

    #[test]
    fn row_format_transposes_named_instances() {
        let (tensors, _) = decode_instances(
            &two_inputs(),
            json!([{"a": [1, 2], "b": true}, {"b": false, "a": [3, 4]}]),
        )
        .unwrap();
        assert_eq!(tensors[0].name, "a");
        assert_eq!(tensors[0].data, TensorData::Int64(vec![1, 2, 3, 4]));
        assert_eq!(tensors[1].shape, vec![2]);
        assert_eq!(tensors[1].data, TensorData::Bool(vec![true, false]));
    }

    #[test]
    fn row_format_errors_name_the_problem() {
        let err = message(decode_instances(&two_inputs(), json!([[1, 2]])));
        assert!(err.contains("object keyed by input name"), "{err}");
        let err = message(decode_instances(
            &two_inputs(),
            json!([{"a": [1, 2], "c": 1}]),
        ));
        assert!(err.contains("unknown input 'c'"), "{err}");
        let err = message(decode_instances(
            &two_inputs(),
            json!([{"a": [1, 2], "b": true}, {"a": [1, 2]}]),
        ));
        assert!(err.contains("instance 1"), "{err}");
        let err = message(decode_instances(&features(), json!([[1, 2], [3]])));
        assert!(
            err.contains("input 'features': nested arrays are ragged"),
            "{err}"
        );
        let err = message(decode_instances(&features(), json!([[1, "x"]])));
        assert!(
            err.contains("input 'features'") && err.contains("FP32"),
            "{err}"
        );
        let err = message(decode_instances(&features(), json!([])));
        assert!(err.contains("empty"), "{err}");
        let err = message(decode_instances(
            &two_inputs(),
            json!([{"a": [1.5, 2], "b": true}]),
        ));
        assert!(err.contains("input 'a'") && err.contains("INT64"), "{err}");
    }

    #[test]
    fn columnar_format_takes_a_value_or_an_object() {
        let tensors = decode_columns(&features(), json!([[1, 2], [3, 4]])).unwrap();
        assert_eq!(tensors[0].shape, vec![2, 2]);
        let tensors = decode_columns(&features(), json!({"features": [[1, 2]]})).unwrap();
        assert_eq!(tensors[0].shape, vec![1, 2]);
        let tensors = decode_columns(&two_inputs(), json!({"a": [[1, 2]], "b": [true]})).unwrap();
        assert_eq!(tensors.len(), 2);
        let err = message(decode_columns(&two_inputs(), json!([[1, 2]])));
        assert!(
            err.contains("must be an object keyed by input name"),
            "{err}"
        );
        let err = message(decode_columns(&features(), json!({"other": [[1, 2]]})));
        assert!(err.contains("unknown input 'other'"), "{err}");
    }

    fn outputs() -> Vec<Tensor> {
        vec![
            Tensor::new("label", vec![2], TensorData::Int64(vec![1, 0])).unwrap(),
            Tensor::new(
                "probabilities",
                vec![2, 2],
                TensorData::Fp32(vec![0.25, 0.75, 0.5, 0.5]),
            )
            .unwrap(),
        ]
    }

    fn encoded(outputs: &[Tensor], format: Format) -> Value {
        serde_json::from_slice(&encode_predict(outputs, format).unwrap()).unwrap()
    }

    #[test]
    fn encodes_predictions_and_outputs() {
        let all = outputs();
        assert_eq!(
            encoded(&all, Format::Rows { instances: 2 }),
            json!({"predictions": [
                {"label": 1, "probabilities": [0.25, 0.75]},
                {"label": 0, "probabilities": [0.5, 0.5]},
            ]})
        );
        assert_eq!(
            encoded(&all[1..], Format::Rows { instances: 2 }),
            json!({"predictions": [[0.25, 0.75], [0.5, 0.5]]})
        );
        assert_eq!(
            encoded(&all, Format::Columns),
            json!({"outputs": {"label": [1, 0], "probabilities": [[0.25, 0.75], [0.5, 0.5]]}})
        );
        assert_eq!(
            encoded(&all[..1], Format::Columns),
            json!({"outputs": [1, 0]})
        );
        let err = message(encode_predict(&all, Format::Rows { instances: 3 }));
        assert!(err.contains("output 'label'"), "{err}");
    }
}
