//! The ONNX and candle backends called directly (no server), on the committed example and test
//! models, against the outputs `serving/tests/reference.py` computes with onnxruntime (Python)
//! and numpy. Also the ways loading must fail: corrupt files, a missing runtime library, and
//! outputs the V2 protocol cannot carry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use okla_serving::backend::candle::CandleBackend;
use okla_serving::backend::onnx::OnnxBackend;
use okla_serving::backend::{Backend, BackendError, Model};
use okla_serving::tensor::{DataType, Tensor, TensorData};
use serde_json::Value;

use crate::support::{example_models, required_env, run_python, workspace_root};

fn onnx_backend() -> OnnxBackend {
    let library = required_env("ORT_DYLIB_PATH");
    OnnxBackend::new(Some(Path::new(&library)))
        .unwrap_or_else(|err| panic!("ONNX Runtime from ORT_DYLIB_PATH={library}: {err}"))
}

fn test_models() -> PathBuf {
    workspace_root().join("serving/tests/models")
}

fn load(backend: &dyn Backend, dir: &Path, sessions: usize) -> Arc<dyn Model> {
    assert!(
        backend.recognizes(dir),
        "{} backend does not recognise {}",
        backend.name(),
        dir.display()
    );
    backend
        .load(dir, sessions)
        .unwrap_or_else(|err| panic!("loading {}: {err}", dir.display()))
}

/// `reference.py`'s sample batch for `model` and the outputs it expects.
struct Reference {
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

fn reference(model: &str, rows: usize, seed: u64) -> Reference {
    let stdout = run_python(
        "reference.py",
        &[
            model,
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ],
    );
    let document: Value = serde_json::from_str(&stdout).expect("reference.py prints JSON");
    let tensors = |key: &str| -> Vec<Tensor> {
        document[key]
            .as_object()
            .unwrap_or_else(|| panic!("reference.py output has no '{key}' object"))
            .iter()
            .map(|(name, tensor)| tensor_from_json(name, tensor))
            .collect()
    };
    Reference {
        inputs: tensors("inputs"),
        outputs: tensors("outputs"),
    }
}

fn tensor_from_json(name: &str, tensor: &Value) -> Tensor {
    let dtype: DataType = tensor["datatype"].as_str().unwrap().parse().unwrap();
    let shape: Vec<usize> = tensor["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dim| dim.as_u64().unwrap() as usize)
        .collect();
    let values = tensor["data"].as_array().unwrap();
    let float = |v: &Value| v.as_f64().unwrap();
    let int = |v: &Value| v.as_i64().unwrap();
    let data = match dtype {
        DataType::Bool => TensorData::Bool(values.iter().map(|v| v.as_bool().unwrap()).collect()),
        DataType::Int32 => TensorData::Int32(values.iter().map(|v| int(v) as i32).collect()),
        DataType::Int64 => TensorData::Int64(values.iter().map(int).collect()),
        DataType::Fp32 => TensorData::Fp32(values.iter().map(|v| float(v) as f32).collect()),
        DataType::Fp64 => TensorData::Fp64(values.iter().map(float).collect()),
        other => panic!("reference.py sent {other}, which this test does not decode"),
    };
    Tensor::new(name, shape, data).unwrap()
}

/// Puts the reference inputs in the model's declared order, as the manager does.
fn ordered_inputs(model: &dyn Model, inputs: &[Tensor]) -> Vec<Tensor> {
    model
        .inputs()
        .iter()
        .map(|spec| {
            inputs
                .iter()
                .find(|tensor| tensor.name == spec.name)
                .unwrap_or_else(|| panic!("reference.py has no input '{}'", spec.name))
                .clone()
        })
        .collect()
}

/// Floats agree to a relative 1e-4 (prices are in the thousands; probabilities near 1), every
/// other datatype exactly.
fn assert_close(actual: &Tensor, expected: &Tensor) {
    let name = &expected.name;
    assert_eq!(actual.name, *name);
    assert_eq!(actual.shape, expected.shape, "shape of '{name}'");
    assert_eq!(actual.dtype(), expected.dtype(), "datatype of '{name}'");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
    match (&actual.data, &expected.data) {
        (TensorData::Fp32(a), TensorData::Fp32(b)) => {
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                assert!(
                    close(f64::from(*a), f64::from(*b)),
                    "'{name}'[{index}]: got {a}, reference {b}"
                );
            }
        }
        (TensorData::Fp64(a), TensorData::Fp64(b)) => {
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                assert!(close(*a, *b), "'{name}'[{index}]: got {a}, reference {b}");
            }
        }
        (a, b) => assert_eq!(a, b, "values of '{name}'"),
    }
}

/// Loads `dir` with `backend`, runs `reference.py`'s batch for `model` through it, and compares
/// every declared output.
fn check_against_reference(backend: &dyn Backend, dir: &Path, model_name: &str, rows: usize) {
    let model = load(backend, dir, 2);
    let reference = reference(model_name, rows, 42);
    let outputs = model
        .run(&ordered_inputs(model.as_ref(), &reference.inputs))
        .unwrap_or_else(|err| panic!("running {model_name}: {err}"));
    let declared: Vec<&str> = model.outputs().iter().map(|s| s.name.as_str()).collect();
    let returned: Vec<&str> = outputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(returned, declared, "outputs of {model_name}");
    assert_eq!(outputs.len(), reference.outputs.len(), "{model_name}");
    for expected in &reference.outputs {
        let actual = outputs
            .iter()
            .find(|tensor| tensor.name == expected.name)
            .unwrap_or_else(|| panic!("{model_name} returned no '{}'", expected.name));
        assert_close(actual, expected);
    }
}

/// (name, datatype, wire shape) of each input, then of each output.
type Signature = Vec<(String, DataType, Vec<i64>)>;

fn signature(model: &dyn Model) -> (Signature, Signature) {
    let describe = |specs: &[okla_serving::tensor::TensorSpec]| {
        specs
            .iter()
            .map(|spec| (spec.name.clone(), spec.dtype, spec.wire_shape()))
            .collect()
    };
    (describe(model.inputs()), describe(model.outputs()))
}

fn spec(name: &str, dtype: DataType, shape: &[i64]) -> (String, DataType, Vec<i64>) {
    (name.to_owned(), dtype, shape.to_vec())
}

#[test]
fn example_models_declare_the_documented_signatures() {
    let onnx = onnx_backend();
    let pricing = load(&onnx, &example_models().join("pricing/1"), 1);
    assert_eq!(pricing.platform(), "onnxruntime_onnx");
    assert_eq!(
        signature(pricing.as_ref()),
        (
            vec![spec("features", DataType::Fp32, &[-1, 8])],
            vec![spec("variable", DataType::Fp32, &[-1, 1])]
        )
    );
    let lead_scoring = load(&onnx, &example_models().join("lead_scoring/1"), 1);
    assert_eq!(
        signature(lead_scoring.as_ref()),
        (
            vec![spec("features", DataType::Fp32, &[-1, 6])],
            vec![
                spec("label", DataType::Int64, &[-1]),
                spec("probabilities", DataType::Fp32, &[-1, 2])
            ]
        )
    );
    let mlp = load(&CandleBackend, &example_models().join("pricing_mlp/1"), 1);
    assert_eq!(mlp.platform(), "candle_safetensors");
    assert_eq!(
        signature(mlp.as_ref()),
        (
            vec![spec("features", DataType::Fp32, &[-1, 8])],
            vec![spec("price", DataType::Fp32, &[-1, 1])]
        )
    );
    let dtypes = load(&onnx, &test_models().join("dtypes/1"), 1);
    let (inputs, outputs) = signature(dtypes.as_ref());
    let expected = |prefix: &str| -> Signature {
        [
            ("fp32", DataType::Fp32),
            ("fp64", DataType::Fp64),
            ("int32", DataType::Int32),
            ("int64", DataType::Int64),
            ("bool", DataType::Bool),
        ]
        .iter()
        .map(|(suffix, dtype)| spec(&format!("{prefix}_{suffix}"), *dtype, &[-1, 2]))
        .collect()
    };
    assert_eq!(inputs, expected("x"));
    assert_eq!(outputs, expected("y"));
}

#[test]
fn pricing_gradient_boosting_matches_onnxruntime_python() {
    let dir = example_models().join("pricing/1");
    check_against_reference(&onnx_backend(), &dir, "pricing", 32);
}

#[test]
fn lead_scoring_xgboost_matches_onnxruntime_python() {
    let dir = example_models().join("lead_scoring/1");
    check_against_reference(&onnx_backend(), &dir, "lead_scoring", 32);
}

#[test]
fn lead_scoring_sklearn_without_zipmap_matches_onnxruntime_python() {
    let dir = test_models().join("lead_scoring_sklearn/1");
    check_against_reference(&onnx_backend(), &dir, "lead_scoring_sklearn", 32);
}

#[test]
fn every_numeric_datatype_round_trips_through_onnx_runtime() {
    let dir = test_models().join("dtypes/1");
    check_against_reference(&onnx_backend(), &dir, "dtypes", 8);
}

#[test]
fn pricing_mlp_on_candle_matches_numpy() {
    let dir = example_models().join("pricing_mlp/1");
    check_against_reference(&CandleBackend, &dir, "pricing_mlp", 32);
}

#[test]
fn one_row_and_empty_batches_keep_rank_one_outputs() {
    let model = load(&onnx_backend(), &example_models().join("lead_scoring/1"), 1);
    for rows in [1, 0] {
        let input = Tensor::new(
            "features",
            vec![rows, 6],
            TensorData::Fp32(vec![1.0; rows * 6]),
        )
        .unwrap();
        let outputs = model.run(&[input]).unwrap();
        assert_eq!(outputs[0].shape, vec![rows], "label for {rows} rows");
        assert_eq!(
            outputs[1].shape,
            vec![rows, 2],
            "probabilities for {rows} rows"
        );
    }
}

#[test]
fn concurrent_runs_share_the_session_pool() {
    let onnx = onnx_backend();
    let models = [
        load(&onnx, &example_models().join("pricing/1"), 2),
        load(&CandleBackend, &example_models().join("pricing_mlp/1"), 2),
    ];
    let input = Tensor::new(
        "features",
        vec![2, 8],
        TensorData::Fp32(vec![
            3.0, 2019.0, 60_000.0, 1.6, 0.0, 1.0, 4.0, 12.0, //
            8.0, 2012.0, 180_000.0, 2.0, 1.0, 3.0, 0.0, 45.0,
        ]),
    )
    .unwrap();
    for model in models {
        let expected = model.run(std::slice::from_ref(&input)).unwrap();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        (0..50)
                            .map(|_| model.run(std::slice::from_ref(&input)).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for handle in handles {
                for outputs in handle.join().unwrap() {
                    assert_eq!(outputs, expected, "{}", model.platform());
                }
            }
        });
    }
}

#[test]
fn corrupt_onnx_file_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic junk: not a protobuf ONNX Runtime can parse.
    let junk: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("model.onnx"), junk).unwrap();
    match onnx_backend().load(dir.path(), 2) {
        Err(BackendError::Load(message)) => {
            assert!(message.contains("model.onnx"), "{message}")
        }
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(_) => panic!("random bytes loaded as an ONNX model"),
    }
}

#[test]
fn zipmap_classifier_is_refused_with_the_export_option_to_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        workspace_root().join("serving/tests/fixtures/zipmap_classifier.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    match onnx_backend().load(dir.path(), 1) {
        Err(BackendError::Load(message)) => {
            assert!(message.contains("'output_probability'"), "{message}");
            assert!(message.contains(r#"{"zipmap": False}"#), "{message}");
        }
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(_) => panic!("a ZipMap output was accepted"),
    }
}

#[test]
fn missing_explicit_library_is_a_runtime_error_naming_the_path() {
    let missing = Path::new("/nonexistent/okla/libonnxruntime.so.1.32.0");
    match OnnxBackend::new(Some(missing)) {
        Err(BackendError::Runtime(message)) => {
            assert!(
                message.contains(&missing.display().to_string()),
                "{message}"
            );
            assert!(message.contains("pip install onnxruntime"), "{message}");
        }
        Err(other) => panic!("expected a runtime error, got {other:?}"),
        Ok(_) => panic!("a missing library was accepted"),
    }
}

#[test]
fn a_file_that_is_not_a_library_is_a_runtime_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    match OnnxBackend::new(Some(&fake)) {
        Err(BackendError::Runtime(message)) => {
            assert!(message.contains("libonnxruntime.so.1.32.0"), "{message}");
        }
        Err(other) => panic!("expected a runtime error, got {other:?}"),
        Ok(_) => panic!("a text file was accepted as ONNX Runtime"),
    }
}

#[test]
fn candle_refuses_a_config_that_does_not_match_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let example = example_models().join("pricing_mlp/1");
    std::fs::copy(
        example.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(example.join("config.json"))
        .unwrap()
        .replace(r#""features": 8"#, r#""features": 9"#);
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    match CandleBackend.load(dir.path(), 1) {
        Err(BackendError::Load(message)) => {
            assert!(message.contains("layers.0.weight"), "{message}");
        }
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(_) => panic!("mismatched config.json was accepted"),
    }
}

#[test]
fn bytes_tensors_travel_as_onnx_strings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        workspace_root().join("serving/tests/fixtures/strings_identity.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let model = load(&onnx_backend(), dir.path(), 1);
    assert_eq!(
        signature(model.as_ref()),
        (
            vec![spec("text", DataType::Bytes, &[-1])],
            vec![spec("same", DataType::Bytes, &[-1])]
        )
    );
    let text = TensorData::Bytes(vec![
        "Škoda Octavia".into(),
        bytes::Bytes::new(),
        "Kia Río".into(),
    ]);
    let input = Tensor::new("text", vec![3], text.clone()).unwrap();
    let outputs = model.run(&[input]).unwrap();
    assert_eq!(outputs[0].shape, vec![3]);
    assert_eq!(outputs[0].data, text);

    let not_utf8 = Tensor::new(
        "text",
        vec![1],
        TensorData::Bytes(vec![bytes::Bytes::from_static(&[0xff, 0xfe])]),
    )
    .unwrap();
    match model.run(&[not_utf8]) {
        Err(BackendError::Run(message)) => assert!(message.contains("UTF-8"), "{message}"),
        other => panic!("expected a run error for non-UTF-8 bytes, got {other:?}"),
    }
}
