"""Writes ONNX models that must not take a serving node down, as a model repository:

- huge_shape/1: an Identity whose input and output declare shape [1, 2^36] (256 GiB of floats);
- escaping_data/1: an initializer whose external data location is '../../secret.bin', a file
  outside the model's directory (written beside the repository).

Usage: make_hostile_models.py REPOSITORY
"""

import pathlib
import sys

import onnx
from onnx import TensorProto, helper


def identity(shape):
    tensor = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [tensor("x", TensorProto.FLOAT, shape)],
        [tensor("y", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    repository = pathlib.Path(sys.argv[1])
    huge = repository / "huge_shape" / "1"
    huge.mkdir(parents=True)
    onnx.save(identity([1, 2**36]), huge / "model.onnx")

    escaping = repository / "escaping_data" / "1"
    escaping.mkdir(parents=True)
    (repository.parent / "secret.bin").write_bytes(b"\0" * 32)
    model = identity([1, 8])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [8], [0.0] * 8)
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../secret.bin"), ("offset", "0"), ("length", "32")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    model.graph.initializer.append(weights)
    onnx.save(model, escaping / "model.onnx")


if __name__ == "__main__":
    main()
