"""Reference inputs and outputs for okla-serving's example and test models.

Other test scripts import this module (it sits next to them in serving/tests/):

    from reference import EXAMPLE_MODELS, TEST_MODELS, sample_inputs, reference_outputs
    inputs = sample_inputs("pricing", rows=4, seed=0)            # {"features": float32 [4, 8]}
    expected = reference_outputs(EXAMPLE_MODELS / "pricing", inputs)  # {"variable": float32 [4, 1]}

`reference_outputs` computes what the server should answer without the server: ONNX models with
onnxruntime (Python), the candle MLP with numpy from its safetensors weights and config.json.

As a script it prints one JSON document with the inputs and the reference outputs, which the Rust
integration tests (serving/tests/it/backends.rs) compare the backends against:

    .venv/bin/python serving/tests/reference.py pricing --rows 4 --seed 0
    -> {"model_dir": ..., "inputs": {"features": {"datatype": "FP32", "shape": [4, 8], "data": [...]}},
        "outputs": {"variable": {"datatype": "FP32", "shape": [4, 1], "data": [...]}}}
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent.parent
EXAMPLE_MODELS = ROOT / "examples" / "models"
TEST_MODELS = TESTS / "models"

sys.path.insert(0, str(ROOT / "examples"))
import okla_data  # noqa: E402

# Model name -> the repository that holds it.
MODEL_DIRS = {
    "pricing": EXAMPLE_MODELS / "pricing",
    "lead_scoring": EXAMPLE_MODELS / "lead_scoring",
    "pricing_mlp": EXAMPLE_MODELS / "pricing_mlp",
    "dtypes": TEST_MODELS / "dtypes",
    "lead_scoring_sklearn": TEST_MODELS / "lead_scoring_sklearn",
}

DATATYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


def model_dir(model_name):
    """The model directory (holding version directories) of a known model name."""
    try:
        return MODEL_DIRS[model_name]
    except KeyError:
        raise ValueError(f"unknown model {model_name!r}; known: {sorted(MODEL_DIRS)}") from None


def sample_inputs(model_name, rows=4, seed=0):
    """A batch of `rows` realistic inputs for `model_name`: {input name: numpy array}."""
    if model_name in ("pricing", "pricing_mlp"):
        return {"features": okla_data.pricing_features(rows, seed)}
    if model_name in ("lead_scoring", "lead_scoring_sklearn"):
        return {"features": okla_data.lead_features(rows, seed)}
    if model_name == "dtypes":
        rng = np.random.default_rng(seed)
        return {
            "x_fp32": rng.normal(0, 10, (rows, 2)).astype(np.float32),
            "x_fp64": rng.normal(0, 10, (rows, 2)).astype(np.float64),
            "x_int32": rng.integers(-1000, 1000, (rows, 2)).astype(np.int32),
            "x_int64": rng.integers(-(2**40), 2**40, (rows, 2)).astype(np.int64),
            "x_bool": rng.integers(0, 2, (rows, 2)).astype(np.bool_),
        }
    raise ValueError(f"unknown model {model_name!r}; known: {sorted(MODEL_DIRS)}")


def version_dir(path):
    """`path` itself if it holds a model file, else its highest numbered version directory."""
    path = Path(path)
    if (path / "model.onnx").is_file() or (path / "model.safetensors").is_file():
        return path
    versions = [child for child in path.iterdir() if child.is_dir() and child.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"{path} holds neither a model file nor version directories")
    return max(versions, key=lambda child: int(child.name))


def reference_outputs(model_dir, inputs):
    """Every output of the model in `model_dir` (a model or version directory) for `inputs`."""
    directory = version_dir(model_dir)
    if (directory / "model.onnx").is_file():
        return _onnx_outputs(directory / "model.onnx", inputs)
    return _mlp_outputs(directory, inputs)


def _onnx_outputs(path, inputs):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    values = session.run(names, inputs)
    return dict(zip(names, values))


def _activation(name, x):
    if name == "none":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "gelu":
        from scipy.special import erf

        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if name == "softmax":
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def _mlp_outputs(directory, inputs):
    from safetensors.numpy import load_file

    config = json.loads((directory / "config.json").read_text())
    weights = load_file(str(directory / "model.safetensors"))
    x = np.asarray(inputs[config["input"]["name"]], dtype=np.float64)
    for layer in config["layers"]:
        weight = weights[layer["weight"]].astype(np.float64)
        x = x @ weight.T
        if layer.get("bias") is not None:
            x = x + weights[layer["bias"]].astype(np.float64)
        x = _activation(layer.get("activation", "none"), x)
    return {config["output"]["name"]: x.astype(np.float32)}


def to_json(array):
    """A numpy array as the V2 JSON tensor form: {"datatype", "shape", "data" (flat)}."""
    array = np.asarray(array)
    data = array.reshape(-1).tolist()
    return {"datatype": DATATYPES[array.dtype], "shape": list(array.shape), "data": data}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help=f"one of {sorted(MODEL_DIRS)}, or a model directory path")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--inputs-like", help="model name whose sample inputs to use when MODEL is a path"
    )
    args = parser.parse_args()
    if args.model in MODEL_DIRS:
        directory = MODEL_DIRS[args.model]
        inputs = sample_inputs(args.model, args.rows, args.seed)
    else:
        directory = Path(args.model)
        inputs = sample_inputs(args.inputs_like, args.rows, args.seed)
    outputs = reference_outputs(directory, inputs)
    print(
        json.dumps(
            {
                "model_dir": str(version_dir(directory)),
                "inputs": {name: to_json(value) for name, value in inputs.items()},
                "outputs": {name: to_json(value) for name, value in outputs.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
