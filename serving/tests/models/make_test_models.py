"""Builds okla-serving's test-only ONNX models (committed next to this script).

Run from the workspace root:

    .venv/bin/python serving/tests/models/make_test_models.py

Writes:

    serving/tests/models/dtypes/1/model.onnx
        inputs  x_fp32 FP32 [-1, 2], x_fp64 FP64 [-1, 2], x_int32 INT32 [-1, 2],
                x_int64 INT64 [-1, 2], x_bool BOOL [-1, 2]
        outputs y_fp32 = x_fp32 * 2, y_fp64 = x_fp64 + 1, y_int32 = x_int32 * 3,
                y_int64 = x_int64 + 7, y_bool = not x_bool   (same shapes and datatypes)

    serving/tests/models/lead_scoring_sklearn/1/model.onnx
        scikit-learn LogisticRegression via skl2onnx with zipmap disabled
        input   features       FP32  [-1, 6]   (the lead-scoring columns of examples/okla_data.py)
        outputs label          INT64 [-1]
                probabilities  FP32  [-1, 2]

    serving/tests/fixtures/zipmap_classifier.onnx
        the same classifier exported with skl2onnx's default ZipMap, whose `output_probability`
        is a sequence of maps rather than a tensor: the ONNX backend must refuse it at load time.
        Kept outside models/ so no test serves it as a repository model by accident.

    serving/tests/fixtures/strings_identity.onnx
        input `text` STRING [-1] -> output `same` STRING [-1] (Identity): BYTES in and out of
        the ONNX backend. Also outside models/, as a fixture of the backend tests only.

    serving/tests/fixtures/fails_on_real_input.onnx
        input `features` FP32 [-1, 8] (the pricing model's input) -> output `price` FP32 [-1, 1],
        a lookup in a one-entry table by the first feature: all-zero input (what warm-up
        sends) answers, any request whose first feature is 1 or more fails inside ONNX Runtime.
        A version that loads and then errors, for the canary gate's tests.

Opset and IR version are pinned so onnxruntime 1.2x-1.3x load the files.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
sys.path.insert(0, str(ROOT / "examples"))
from okla_data import lead_dataset  # noqa: E402

OPSET = 17
IR_VERSION = 8


def dtypes_model():
    kinds = [
        ("fp32", TensorProto.FLOAT, "Mul", np.array(2.0, dtype=np.float32)),
        ("fp64", TensorProto.DOUBLE, "Add", np.array(1.0, dtype=np.float64)),
        ("int32", TensorProto.INT32, "Mul", np.array(3, dtype=np.int32)),
        ("int64", TensorProto.INT64, "Add", np.array(7, dtype=np.int64)),
    ]
    inputs, outputs, nodes, initializers = [], [], [], []
    for suffix, elem, op, constant in kinds:
        inputs.append(helper.make_tensor_value_info(f"x_{suffix}", elem, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"y_{suffix}", elem, ["batch", 2]))
        initializers.append(onnx.numpy_helper.from_array(constant, name=f"c_{suffix}"))
        nodes.append(helper.make_node(op, [f"x_{suffix}", f"c_{suffix}"], [f"y_{suffix}"]))
    inputs.append(helper.make_tensor_value_info("x_bool", TensorProto.BOOL, ["batch", 2]))
    outputs.append(helper.make_tensor_value_info("y_bool", TensorProto.BOOL, ["batch", 2]))
    nodes.append(helper.make_node("Not", ["x_bool"], ["y_bool"]))
    graph = helper.make_graph(nodes, "okla_dtypes", inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="okla make_test_models.py",
    )
    onnx.checker.check_model(model)
    return model


def strings_model():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "okla_strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="okla make_test_models.py",
    )
    onnx.checker.check_model(model)
    return model


def fails_on_real_input_model():
    starts = onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), name="starts")
    ends = onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), name="ends")
    axes = onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), name="axes")
    table = onnx.numpy_helper.from_array(np.array([42.0], dtype=np.float32), name="table")
    nodes = [
        helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["first"]),
        helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["price"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "okla_fails_on_real_input",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("price", TensorProto.FLOAT, ["batch", 1])],
        [starts, ends, axes, table],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="okla make_test_models.py",
    )
    onnx.checker.check_model(model)
    return model


def sklearn_classifier(zipmap):
    features, converted = lead_dataset(rows=2000, seed=23)
    model = LogisticRegression(max_iter=2000).fit(features, converted)
    options = {id(model): {"zipmap": zipmap}}
    onnx_model = to_onnx(model, features[:1], options=options, target_opset=OPSET)
    for value in onnx_model.graph.input:
        if value.name == "X":
            value.name = "features"
    for node in onnx_model.graph.node:
        node.input[:] = ["features" if name == "X" else name for name in node.input]
    return onnx_model


def write(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main():
    write(dtypes_model(), HERE / "dtypes" / "1" / "model.onnx")
    write(sklearn_classifier(False), HERE / "lead_scoring_sklearn" / "1" / "model.onnx")
    write(sklearn_classifier(True), HERE.parent / "fixtures" / "zipmap_classifier.onnx")
    write(strings_model(), HERE.parent / "fixtures" / "strings_identity.onnx")
    write(fails_on_real_input_model(), HERE.parent / "fixtures" / "fails_on_real_input.onnx")


if __name__ == "__main__":
    main()
