//! The HTTP front-ends of the real binary: V2 REST and TF Serving REST over plain HTTP (reqwest),
//! answers compared with `reference.py`'s onnxruntime outputs, the error statuses and bodies, the
//! request size limit, `/metrics`, version labels, and the real `tritonclient.http` package
//! (`serving/tests/triton_http.py`).

use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::{GzEncoder, ZlibEncoder};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{
    ADMIN_TOKEN, Server, example_models, run_python, run_python_env, wait_until, workspace_root,
};

/// A repository with the example and test models, plus `labelled`: the pricing model as
/// versions 1 and 2, both served, with labels `stable` = 1 and `canary` = 2.
fn repository() -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let link = |source: &Path, name: &str| {
        std::os::unix::fs::symlink(source, dir.path().join(name)).expect("symlink a model");
    };
    for model in ["pricing", "lead_scoring", "pricing_mlp"] {
        link(&example_models().join(model), model);
    }
    for model in ["dtypes", "lead_scoring_sklearn"] {
        link(
            &workspace_root().join("serving/tests/models").join(model),
            model,
        );
    }
    let labelled = dir.path().join("labelled");
    for version in ["1", "2"] {
        std::fs::create_dir_all(labelled.join(version)).expect("version directory");
        std::os::unix::fs::symlink(
            example_models().join("pricing/1/model.onnx"),
            labelled.join(version).join("model.onnx"),
        )
        .expect("symlink the model file");
    }
    std::fs::write(
        labelled.join("config.toml"),
        "[version_policy]\nall = {}\n\n[labels]\nstable = 1\ncanary = 2\n",
    )
    .expect("write config.toml");
    dir
}

/// `reference.py`'s sample inputs for `model` and the outputs onnxruntime gives for them, as
/// V2 JSON tensors keyed by name.
fn reference(model: &str, rows: usize) -> (Value, Value) {
    let stdout = run_python("reference.py", &[model, "--rows", &rows.to_string()]);
    let document: Value = serde_json::from_str(&stdout).expect("reference.py prints JSON");
    (document["inputs"].clone(), document["outputs"].clone())
}

fn floats(value: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flatten(value, &mut out);
    out
}

fn flatten(value: &Value, out: &mut Vec<f64>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        Value::Number(n) => out.push(n.as_f64().expect("a finite number")),
        Value::Bool(b) => out.push(f64::from(u8::from(*b))),
        other => panic!("not a number: {other}"),
    }
}

fn assert_close(label: &str, got: &Value, want: &Value) {
    let (got, want) = (floats(got), floats(want));
    assert_eq!(got.len(), want.len(), "{label}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
            "{label}[{i}]: got {g}, want {w}"
        );
    }
}

/// Rows `row` of a flat V2 tensor with `shape`, as a flat list.
fn row_of(tensor: &Value, row: usize) -> Vec<f64> {
    let shape: Vec<usize> = serde_json::from_value(tensor["shape"].clone()).expect("shape");
    let row_len: usize = shape[1..].iter().product();
    floats(&tensor["data"])[row * row_len..(row + 1) * row_len].to_vec()
}

async fn post(url: String, body: &Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

async fn get(url: String) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.expect("request sent");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn v2_request(inputs: &Value) -> Value {
    let inputs: Vec<Value> = inputs
        .as_object()
        .expect("inputs object")
        .iter()
        .map(|(name, tensor)| {
            json!({
                "name": name,
                "shape": tensor["shape"],
                "datatype": tensor["datatype"],
                "data": tensor["data"],
            })
        })
        .collect();
    json!({ "id": "req-1", "inputs": inputs })
}

#[tokio::test]
async fn v2_json_infer_matches_onnxruntime() {
    let repository = repository();
    let server = Server::start(repository.path());
    for model in ["pricing", "lead_scoring"] {
        let (inputs, outputs) = reference(model, 4);
        let (status, body) = post(
            format!("{}/v2/models/{model}/infer", server.http),
            &v2_request(&inputs),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["model_name"], model);
        assert_eq!(body["model_version"], "1");
        assert_eq!(body["id"], "req-1");
        let returned = body["outputs"].as_array().expect("outputs");
        assert_eq!(returned.len(), outputs.as_object().unwrap().len(), "{body}");
        for output in returned {
            let name = output["name"].as_str().unwrap();
            let want = &outputs[name];
            assert_eq!(output["datatype"], want["datatype"], "{name}");
            assert_eq!(output["shape"], want["shape"], "{name}");
            assert_close(name, &output["data"], &want["data"]);
        }
    }
    // Nested data is read in row-major order, like flat data.
    let (inputs, outputs) = reference("pricing", 2);
    let flat = floats(&inputs["features"]["data"]);
    let nested = json!({"inputs": [{"name": "features", "shape": [2, 8], "datatype": "FP32",
        "data": [flat[..8], flat[8..]]}]});
    let (status, body) = post(format!("{}/v2/models/pricing/infer", server.http), &nested).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_close(
        "nested",
        &body["outputs"][0]["data"],
        &outputs["variable"]["data"],
    );
}

#[tokio::test]
async fn tfserving_rows_and_columns_on_single_and_multi_output_models() {
    let repository = repository();
    let server = Server::start(repository.path());
    let rows = 3;

    let (inputs, outputs) = reference("pricing", rows);
    let features = &inputs["features"];
    let instances: Vec<Vec<f64>> = (0..rows).map(|row| row_of(features, row)).collect();
    let url = format!("{}/v1/models/pricing:predict", server.http);
    let (status, body) = post(url.clone(), &json!({ "instances": instances })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let predictions = body["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), rows);
    for (row, prediction) in predictions.iter().enumerate() {
        // One output of shape [-1, 1]: each prediction is that row, `[price]`.
        assert_close(
            "pricing row",
            prediction,
            &json!(row_of(&outputs["variable"], row)),
        );
    }
    let named: Vec<Value> = instances
        .iter()
        .map(|row| json!({"features": row}))
        .collect();
    let (status, body) = post(url.clone(), &json!({ "instances": named })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_close(
        "pricing named",
        &body["predictions"],
        &outputs["variable"]["data"],
    );
    let (status, body) = post(url, &json!({ "inputs": instances })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_close(
        "pricing columns",
        &body["outputs"],
        &outputs["variable"]["data"],
    );

    let (inputs, outputs) = reference("lead_scoring", rows);
    let instances: Vec<Vec<f64>> = (0..rows)
        .map(|row| row_of(&inputs["features"], row))
        .collect();
    let url = format!("{}/v1/models/lead_scoring/versions/1:predict", server.http);
    let (status, body) = post(url.clone(), &json!({ "instances": instances })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let predictions = body["predictions"].as_array().expect("predictions");
    for (row, prediction) in predictions.iter().enumerate() {
        assert_eq!(
            prediction["label"], outputs["label"]["data"][row],
            "row {row}: {prediction}"
        );
        assert_close(
            "probabilities",
            &prediction["probabilities"],
            &json!(row_of(&outputs["probabilities"], row)),
        );
    }
    let (status, body) = post(url, &json!({ "inputs": {"features": instances} })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"]["label"], outputs["label"]["data"]);
    assert_close(
        "columns probabilities",
        &body["outputs"]["probabilities"],
        &outputs["probabilities"]["data"],
    );

    let (status, body) = get(format!("{}/v1/models/lead_scoring", server.http)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})
    );
    let (status, body) = get(format!("{}/v1/models/lead_scoring/metadata", server.http)).await;
    assert_eq!(status, StatusCode::OK);
    let signature = &body["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(
        signature["inputs"]["features"]["dtype"], "DT_FLOAT",
        "{body}"
    );
    assert_eq!(signature["outputs"]["label"]["dtype"], "DT_INT64", "{body}");
}

#[tokio::test]
async fn labels_and_versions_pick_the_version() {
    let repository = repository();
    let server = Server::start(repository.path());
    let features = json!([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]);
    let v2 = |version: &str| {
        format!(
            "{}/v2/models/labelled/versions/{version}/infer",
            server.http
        )
    };
    let request = json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": features}]});
    for (selector, version) in [("stable", "1"), ("canary", "2"), ("1", "1"), ("2", "2")] {
        let (status, body) = post(v2(selector), &request).await;
        assert_eq!(status, StatusCode::OK, "{selector}: {body}");
        assert_eq!(body["model_version"], version, "{selector}");
    }
    let (status, body) = post(v2("beta"), &request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("beta"), "{body}");

    let tf = |path: &str| format!("{}/v1/models/labelled{path}", server.http);
    let (status, body) = post(
        tf("/labels/stable:predict"),
        &json!({"instances": features}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["predictions"].as_array().map(Vec::len), Some(1));
    let (status, body) = post(tf("/labels/nope:predict"), &json!({"instances": features})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(tf("/labels/canary")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model_version_status"][0]["version"], "2", "{body}");
    let (status, body) = get(tf("")).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&str> = body["model_version_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|status| status["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["2", "1"], "{body}");
    let (status, body) = get(tf("/labels/stable/metadata")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model_spec"]["version"], "1", "{body}");
}

#[tokio::test]
async fn client_mistakes_get_exact_statuses_and_name_the_input() {
    let repository = repository();
    let server = Server::start(repository.path());
    let infer = format!("{}/v2/models/pricing/infer", server.http);
    let features = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        (
            features(json!([1, 7]), "FP32", json!([0, 0, 0, 0, 0, 0, 0])),
            "features",
        ),
        (
            features(json!([1, 8]), "FP32", json!([0, 0, 0])),
            "'features': shape [1, 8] holds 8 elements but 'data' has 3",
        ),
        (
            features(json!([1, 8]), "FP64", json!([0, 0, 0, 0, 0, 0, 0, 0])),
            "'features': expected datatype FP32, got FP64",
        ),
        (
            features(json!([1, 8]), "FP32", json!([0, 0, 0, 0, 0, 0, 0, "x"])),
            "'features'",
        ),
        (
            json!({"inputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            "'other'",
        ),
        (json!({"inputs": []}), "missing input 'features'"),
        (json!({"nothing": []}), "inputs"),
    ];
    for (body, fragment) in cases {
        let (status, answer) = post(infer.clone(), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let message = answer["error"].as_str().expect("an error message");
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }

    // Binary framing that does not add up.
    let client = reqwest::Client::new();
    let header = br#"{"inputs":[{"name":"features","shape":[1,8],"datatype":"FP32","parameters":{"binary_data_size":32}}]}"#;
    for (length, tail) in [
        (header.len() + 100, 32),
        (header.len(), 16),
        (header.len(), 40),
    ] {
        let mut body = header.to_vec();
        body.extend(std::iter::repeat_n(0u8, tail));
        let response = client
            .post(&infer)
            .header("Inference-Header-Content-Length", length.to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{answer}");
    }
    let response = client.post(&infer).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let ok = features(json!([1, 8]), "FP32", json!([0, 0, 0, 0, 0, 0, 0, 0]));
    for url in [
        format!("{}/v2/models/no_such_model/infer", server.http),
        format!("{}/v2/models/pricing/versions/9/infer", server.http),
    ] {
        let (status, answer) = post(url, &ok).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert!(answer["error"].is_string());
    }
    for url in [
        format!("{}/v2/models/no_such_model", server.http),
        format!("{}/v2/models/pricing/versions/9", server.http),
        format!("{}/v1/models/no_such_model", server.http),
        format!("{}/v1/models/pricing/versions/9", server.http),
    ] {
        let (status, answer) = get(url.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {answer}");
        assert!(answer["error"].is_string(), "{url}: {answer}");
    }
    let (status, _) = get(format!("{}/v2/models/no_such_model/ready", server.http)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let predict = format!("{}/v1/models/pricing:predict", server.http);
    let tf_cases = [
        (json!({"instances": [[1, 2, 3]]}), "features"),
        (
            json!({"instances": [[1, 2, 3, 4, 5, 6, 7, 8], [1]]}),
            "'features'",
        ),
        (
            json!({"instances": [["a", 2, 3, 4, 5, 6, 7, 8]]}),
            "'features'",
        ),
        (json!({"inputs": {"other": [[1]]}}), "'other'"),
        (json!({"neither": 1}), "exactly one of"),
    ];
    for (body, fragment) in tf_cases {
        let (status, answer) = post(predict.clone(), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let message = answer["error"].as_str().expect("an error message");
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
    let (status, answer) = post(
        format!("{}/v1/models/no_such_model:predict", server.http),
        &json!({"instances": [[1]]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_a_json_error() {
    let repository = repository();
    let server = Server::start_with(repository.path(), &["--max-request-bytes", "1024"]);
    let data = vec![0.5f32; 8 * 64];
    let body = json!({"inputs": [{"name": "features", "shape": [64, 8], "datatype": "FP32",
        "data": data}]});
    for url in [
        format!("{}/v2/models/pricing/infer", server.http),
        format!("{}/v1/models/pricing:predict", server.http),
    ] {
        let (status, answer) = post(url.clone(), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains("--max-request-bytes"), "{url}: {answer}");
    }
}

/// Sends `body` as it is, with a Content-Encoding and optionally an Accept-Encoding.
async fn post_encoded(
    url: &str,
    content_encoding: &str,
    accept_encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("content-encoding", content_encoding)
        .body(body);
    if let Some(accept) = accept_encoding {
        request = request.header("accept-encoding", accept);
    }
    request.send().await.expect("request sent")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("zlib");
    encoder.finish().expect("zlib")
}

#[tokio::test]
async fn compressed_bodies_are_decoded_within_the_size_limit() {
    let repository = repository();
    let server = Server::start_with(repository.path(), &["--max-request-bytes", "16384"]);
    let url = format!("{}/v2/models/pricing/infer", server.http);
    let request = json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]});
    let plain = serde_json::to_vec(&request).unwrap();
    let (status, expected) = post(url.clone(), &request).await;
    assert_eq!(status, StatusCode::OK, "{expected}");

    for (encoding, body) in [("gzip", gzip(&plain)), ("deflate", zlib(&plain))] {
        let response = post_encoded(&url, encoding, None, body).await;
        assert_eq!(response.status(), StatusCode::OK, "{encoding}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer["outputs"], expected["outputs"], "{encoding}");
    }

    // 200 rows answer with more than a kilobyte, which a client accepting gzip gets gzipped.
    let rows = json!({"inputs": [{"name": "features", "shape": [200, 8], "datatype": "FP32",
        "data": vec![1.5f32; 200 * 8]}]});
    let response = post_encoded(
        &url,
        "gzip",
        Some("gzip"),
        gzip(&serde_json::to_vec(&rows).unwrap()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    GzDecoder::new(&response.bytes().await.unwrap()[..])
        .read_to_string(&mut text)
        .expect("a gzip answer");
    let answer: Value = serde_json::from_str(&text).expect("JSON inside");
    assert_eq!(answer["outputs"][0]["shape"], json!([200, 1]), "{answer}");

    // Padding that compresses to almost nothing still counts against the limit once decoded.
    let mut padded = plain.clone();
    padded.extend(std::iter::repeat_n(b' ', 100_000));
    let response = post_encoded(&url, "gzip", None, gzip(&padded)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.expect("JSON error");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("--max-request-bytes"), "{answer}");

    let response = post_encoded(&url, "gzip", None, b"not gzip at all".to_vec()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.expect("JSON error");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot read the request body"), "{answer}");

    let response = post_encoded(&url, "br", None, plain).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let answer: Value = response.json().await.expect("JSON error");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("'br'") && error.contains("gzip"), "{answer}");
}

/// The node's `/metrics` page.
async fn metrics_text(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.http))
        .await
        .expect("the node answers /metrics")
        .text()
        .await
        .expect("a text body")
}

#[tokio::test]
async fn health_index_and_metrics() {
    let repository = repository();
    let server = Server::start(repository.path());
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/pricing/ready",
    ] {
        let response = reqwest::get(format!("{}{path}", server.http))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let (status, body) = get(format!("{}/v2", server.http)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "okla-serving");
    let (status, body) = post(
        format!("{}/v2/repository/index", server.http),
        &json!({"ready": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pricing") && names.contains(&"labelled"),
        "{body}"
    );

    let request = json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": [0, 0, 0, 0, 0, 0, 0, 0]}]});
    let (status, _) = post(format!("{}/v2/models/pricing/infer", server.http), &request).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics_text(&server).await;
    let line = metrics
        .lines()
        .find(|line| {
            line.starts_with("okla_serving_requests_total")
                && line.contains("model=\"pricing\"")
                && line.contains("protocol=\"http\"")
        })
        .unwrap_or_else(|| panic!("no pricing request counter in\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
}

#[tokio::test]
async fn failures_for_unknown_models_share_one_metric_label() {
    let repository = repository();
    let server = Server::start(repository.path());
    let request = json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": [0, 0, 0, 0, 0, 0, 0, 0]}]});
    for attempt in 0..20 {
        let url = format!("{}/v2/models/made-up-{attempt}/infer", server.http);
        let (status, _) = post(url, &request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let wrong_shape = json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32",
        "data": [0, 0, 0]}]});
    let (status, _) = post(
        format!("{}/v2/models/pricing/infer", server.http),
        &wrong_shape,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let metrics = metrics_text(&server).await;
    assert!(!metrics.contains("made-up"), "{metrics}");
    let counter = |labels: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with("okla_serving_requests_total") && line.contains(labels))
            .unwrap_or_else(|| panic!("no counter with {labels} in\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        counter(r#"model="",version="",protocol="http",status="not_found""#),
        "20"
    );
    assert_eq!(
        counter(r#"model="pricing",version="",protocol="http",status="invalid_argument""#),
        "1"
    );
}

#[test]
fn tritonclient_http_works_unchanged() {
    let repository = repository();
    let server = Server::start_controlled(repository.path(), &[]);
    let address = server.http.strip_prefix("http://").expect("an http:// URL");
    let stdout = run_python_env(
        "triton_http.py",
        &[address],
        &[("OKLA_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// SIGTERM, as Kubernetes stops a pod: the server turns unready at once, still answers during
/// the grace period, then stops and exits cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_unready_answers_through_the_grace_period_and_exits() {
    let mut server = Server::start_with(&example_models(), &["--drain-grace-seconds", "3"]);
    let client = reqwest::Client::new();
    let http = server.http.clone();
    let ready = || {
        let (client, url) = (client.clone(), format!("{http}/v2/health/ready"));
        async move { client.get(url).send().await.map(|r| r.status()).ok() }
    };
    assert_eq!(ready().await, Some(StatusCode::OK));
    server.terminate();
    // Triton answers an unready server with 400.
    wait_until("the server reports unready", || async {
        ready().await == Some(StatusCode::BAD_REQUEST)
    })
    .await;
    let answer = client
        .post(format!("{http}/v2/models/pricing/infer"))
        .json(&crate::support::pricing_request())
        .send()
        .await
        .expect("still answering while draining");
    assert_eq!(answer.status(), StatusCode::OK);
    wait_until("the server exits", || {
        let exited = server.exit_status();
        async move { exited.is_some() }
    })
    .await;
    let status = server.exit_status().expect("exited");
    assert!(status.success(), "{status:?}");
}
