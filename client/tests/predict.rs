//! `Predictor` against a real okla-serving in-process, serving the committed example models
//! (`examples/models`) on ONNX Runtime: answers compared with onnxruntime (Python) on the same
//! input, the routing key, and the server's refusals as `Error::Grpc` codes.
//!
//! Needs `ORT_DYLIB_PATH` and `OKLA_TEST_PYTHON`, which `bash scripts/test` sets.

use okla_client::{Error, GrpcCode, InputTensor, Predictor};
use serde_json::Value;

mod common;
use common::{Serving, workspace_root};
use okla_test_support::run_python;

/// `reference.py`'s rows for `pricing` and the prices onnxruntime (Python) gives them.
fn reference_pricing(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let stdout = run_python(
        &workspace_root().join("serving/tests/reference.py"),
        &["pricing", "--rows", &rows.to_string(), "--seed", "0"],
        &[],
    );
    let document: Value = serde_json::from_str(&stdout).expect("reference.py prints JSON");
    let floats = |tensor: &Value| -> Vec<f32> {
        tensor["data"]
            .as_array()
            .expect("data is an array")
            .iter()
            .map(|value| value.as_f64().expect("a number") as f32)
            .collect()
    };
    (
        floats(&document["inputs"]["features"]),
        floats(&document["outputs"]["variable"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_pricing_matches_onnxruntime() {
    let serving = Serving::start().await;
    let predictor = Predictor::connect(&serving.grpc_url)
        .await
        .expect("connect");
    let rows = 3;
    let (features, expected) = reference_pricing(rows);
    let prediction = predictor
        .predict(
            "pricing",
            None,
            vec![InputTensor::fp32("features", [rows as i64, 8], features)],
        )
        .await
        .expect("prediction");
    assert_eq!(prediction.model_name, "pricing");
    assert_eq!(prediction.model_version, 1);
    let price = prediction.output("variable").expect("output 'variable'");
    assert_eq!(price.datatype, "FP32");
    assert_eq!(price.shape, vec![rows as i64, 1]);
    let prices = price.as_fp32().expect("FP32 values");
    assert_eq!(prices.len(), expected.len());
    for (got, want) in prices.iter().zip(&expected) {
        assert!(got.is_finite() && *got > 0.0, "price {got}");
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "got {prices:?}, onnxruntime gives {expected:?}"
        );
    }

    // The README's example row, with an explicit version and a routing key (ignored without a
    // sticky deployment, but it must be accepted).
    let prediction = predictor
        .clone()
        .with_routing_key("user-42")
        .predict(
            "pricing",
            Some(1),
            vec![InputTensor::fp32(
                "features",
                [1, 8],
                vec![3.0, 2019.0, 60000.0, 1.6, 0.0, 1.0, 4.0, 12.0],
            )],
        )
        .await
        .expect("prediction with a routing key");
    assert_eq!(prediction.model_version, 1);
    let price = prediction.outputs[0].as_fp32().expect("FP32")[0];
    assert!(price.is_finite() && price > 0.0, "price {price}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_refusals_carry_grpc_codes() {
    let serving = Serving::start().await;
    let predictor = Predictor::connect(&serving.grpc_url)
        .await
        .expect("connect");
    let row = || vec![3.0, 2019.0, 60000.0, 1.6, 0.0, 1.0, 4.0, 12.0];

    let error = predictor
        .predict(
            "pricing",
            None,
            vec![InputTensor::fp32("featurez", [1, 8], row())],
        )
        .await
        .expect_err("a wrong input name is refused");
    match &error {
        Error::Grpc {
            model,
            code,
            message,
        } => {
            assert_eq!(model, "pricing");
            assert_eq!(*code, GrpcCode::InvalidArgument, "{error}");
            assert!(message.contains("featurez"), "{error}");
        }
        other => panic!("expected Error::Grpc, got {other:?}"),
    }
    assert!(error.to_string().contains("INVALID_ARGUMENT"), "{error}");

    let error = predictor
        .predict(
            "no_such_model",
            None,
            vec![InputTensor::fp32("features", [1, 8], row())],
        )
        .await
        .expect_err("an unknown model is refused");
    assert_eq!(error.grpc_code(), Some(GrpcCode::NotFound), "{error}");

    let error = predictor
        .predict(
            "pricing",
            Some(99),
            vec![InputTensor::fp32("features", [1, 8], row())],
        )
        .await
        .expect_err("an unknown version is refused");
    assert_eq!(error.grpc_code(), Some(GrpcCode::NotFound), "{error}");

    // Checked here, before anything is sent.
    let error = predictor
        .predict(
            "pricing",
            None,
            vec![InputTensor::fp32("features", [2, 8], row())],
        )
        .await
        .expect_err("too few elements for the shape");
    assert!(matches!(error, Error::Invalid(_)), "{error:?}");
}

#[tokio::test]
async fn predict_on_an_unreachable_server_is_a_connect_error() {
    // A port that was free a moment ago: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    drop(listener);
    let error = Predictor::connect(&url)
        .await
        .expect_err("nothing listens there");
    match &error {
        Error::Connect { url: named, .. } => assert_eq!(named, &url),
        other => panic!("expected Error::Connect, got {other:?}"),
    }
    assert!(error.to_string().starts_with(&url), "{error}");

    let error = Predictor::connect("not a url")
        .await
        .expect_err("a malformed URL");
    assert!(matches!(error, Error::Invalid(_)), "{error:?}");
}
