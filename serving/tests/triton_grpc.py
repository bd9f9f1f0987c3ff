"""Drives okla-serving's gRPC API with the real `tritonclient.grpc`, unchanged, and checks it
behaves as Triton does. Prints `OK` as its last line when every check passed.

    .venv/bin/python serving/tests/triton_grpc.py --url 127.0.0.1:8001

The server must serve the repository serving/tests/it/grpc.rs builds:
  pricing, lead_scoring, pricing_mlp  the example models (examples/models), version 1
  dtypes                              serving/tests/models/dtypes, version 1
  pricing_small                       pricing with `max_batch_size = 4`
  pricing_versions                    pricing as versions 1 and 2, label `stable` = 1
  scratch                             pricing again, loaded and unloaded by this script

Expected outputs come from onnxruntime (or numpy, for the candle MLP) on the same model files,
through reference.py. tritonclient's own API only sends raw tensors, so typed `contents`
requests are built as protobuf messages and sent through the generated stub.
"""

import argparse
import os
import queue
from functools import partial

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from reference import EXAMPLE_MODELS, TEST_MODELS, reference_outputs, sample_inputs

def bearer(token):
    return {"authorization": f"Bearer {token}"}


# The server's admin token (--admin-token-file), for loading and unloading.
ADMIN = bearer(os.environ["OKLA_ADMIN_TOKEN"])

MODEL_DIRS = {
    "pricing": EXAMPLE_MODELS / "pricing",
    "lead_scoring": EXAMPLE_MODELS / "lead_scoring",
    "pricing_mlp": EXAMPLE_MODELS / "pricing_mlp",
    "dtypes": TEST_MODELS / "dtypes",
}

# (name, datatype, shape) of every input and output, as model metadata must report them.
SIGNATURES = {
    "pricing": (
        [("features", "FP32", [-1, 8])],
        [("variable", "FP32", [-1, 1])],
    ),
    "lead_scoring": (
        [("features", "FP32", [-1, 6])],
        [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 2])],
    ),
    "pricing_mlp": (
        [("features", "FP32", [-1, 8])],
        [("price", "FP32", [-1, 1])],
    ),
    "dtypes": (
        [(f"x_{t}", t.upper(), [-1, 2]) for t in ("fp32", "fp64", "int32", "int64", "bool")],
        [(f"y_{t}", t.upper(), [-1, 2]) for t in ("fp32", "fp64", "int32", "int64", "bool")],
    ),
}

# The candle MLP runs in float32 while its reference is computed in float64.
TOLERANCE = {"pricing_mlp": 1e-4}
DEFAULT_TOLERANCE = 1e-5

# The InferTensorContents field of each datatype, and the numpy type to read it back as.
CONTENTS_FIELD = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int8),
    "INT16": ("int_contents", np.int16),
    "INT32": ("int_contents", np.int32),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint8),
    "UINT16": ("uint_contents", np.uint16),
    "UINT32": ("uint_contents", np.uint32),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
}


def infer_inputs(inputs):
    """tritonclient InferInputs (raw form, as tritonclient sends by default) for {name: array}."""
    result = []
    for name, array in inputs.items():
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        result.append(tensor)
    return result


def assert_close(model, name, got, want):
    assert got is not None, f"{model}: output {name} missing"
    assert got.dtype == want.dtype, f"{model}.{name}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{model}.{name}: shape {got.shape}, expected {want.shape}"
    if np.issubdtype(want.dtype, np.floating):
        tolerance = TOLERANCE.get(model, DEFAULT_TOLERANCE)
        np.testing.assert_allclose(
            got, want, rtol=tolerance, atol=tolerance, err_msg=f"{model}.{name}"
        )
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{model}.{name}")


def check_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "okla-serving", metadata
    assert metadata.version, metadata
    assert "model_repository" in metadata.extensions, metadata
    as_json = client.get_server_metadata(as_json=True)
    assert as_json["name"] == "okla-serving", as_json


def check_model_metadata(client):
    for model, (inputs, outputs) in SIGNATURES.items():
        assert client.is_model_ready(model), model
        assert client.is_model_ready(model, "1"), model
        metadata = client.get_model_metadata(model)
        assert metadata.name == model, metadata
        assert list(metadata.versions) == ["1"], metadata
        assert metadata.platform, metadata
        got_inputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
        got_outputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs]
        assert got_inputs == inputs, (model, got_inputs)
        assert got_outputs == outputs, (model, got_outputs)
    as_json = client.get_model_metadata("pricing", as_json=True)
    assert as_json["inputs"][0]["shape"] == ["-1", "8"], as_json
    versions = client.get_model_metadata("pricing_versions")
    assert list(versions.versions) == ["1", "2"], versions


def check_repository_index(client):
    index = client.get_model_repository_index()
    rows = {(m.name, m.version): m.state for m in index.models}
    for model in [*SIGNATURES, "pricing_small", "scratch"]:
        assert rows.get((model, "1")) == "READY", (model, rows)
    assert rows.get(("pricing_versions", "2")) == "READY", rows
    assert all(m.reason == "" for m in index.models), index


def check_raw_inference(client, model, rows):
    inputs = sample_inputs(model, rows=rows, seed=rows)
    expected = reference_outputs(MODEL_DIRS[model], inputs)
    result = client.infer(model, infer_inputs(inputs), request_id=f"raw-{model}-{rows}")
    response = result.get_response()
    assert response.model_name == model, response.model_name
    assert response.model_version == "1", response.model_version
    assert response.id == f"raw-{model}-{rows}", response.id
    assert len(response.raw_output_contents) == len(expected), response
    assert [o.name for o in response.outputs] == [name for name, _, _ in SIGNATURES[model][1]]
    for name, want in expected.items():
        assert_close(model, name, result.as_numpy(name), want)
    return inputs, expected


def check_compression(client):
    # Requests compressed as tritonclient's `compression_algorithm` sends them.
    for algorithm in ("gzip", "deflate"):
        inputs = sample_inputs("pricing", rows=32, seed=11)
        expected = reference_outputs(MODEL_DIRS["pricing"], inputs)
        result = client.infer("pricing", infer_inputs(inputs), compression_algorithm=algorithm)
        for name, want in expected.items():
            assert_close("pricing", name, result.as_numpy(name), want)


def check_output_subset(client):
    inputs = sample_inputs("lead_scoring", rows=3, seed=7)
    expected = reference_outputs(MODEL_DIRS["lead_scoring"], inputs)
    requested = [grpcclient.InferRequestedOutput("probabilities")]
    result = client.infer("lead_scoring", infer_inputs(inputs), outputs=requested)
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("label") is None
    probabilities = result.as_numpy("probabilities")
    assert_close("lead_scoring", "probabilities", probabilities, expected["probabilities"])
    # Requested in the opposite of declaration order: the response follows the request.
    requested = [grpcclient.InferRequestedOutput(n) for n in ("probabilities", "label")]
    result = client.infer("lead_scoring", infer_inputs(inputs), outputs=requested)
    assert [o.name for o in result.get_response().outputs] == ["probabilities", "label"]
    assert_close("lead_scoring", "label", result.as_numpy("label"), expected["label"])


def typed_request(model, inputs, outputs=(), version="", datatypes=None):
    datatypes = datatypes or {}
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version, id="typed")
    for name, array in inputs.items():
        datatype = datatypes.get(name, np_to_triton_dtype(array.dtype))
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        field, _ = CONTENTS_FIELD[datatype]
        getattr(tensor.contents, field).extend(array.reshape(-1).tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def typed_outputs(response):
    assert len(response.raw_output_contents) == 0, "a typed request got raw outputs"
    result = {}
    for output in response.outputs:
        field, dtype = CONTENTS_FIELD[output.datatype]
        values = np.array(getattr(output.contents, field), dtype=dtype)
        result[output.name] = values.reshape(list(output.shape))
    return result


def check_typed_inference(stub):
    for model in SIGNATURES:
        for rows in (1, 32):
            inputs = sample_inputs(model, rows=rows, seed=100 + rows)
            expected = reference_outputs(MODEL_DIRS[model], inputs)
            response = stub.ModelInfer(typed_request(model, inputs))
            assert response.model_version == "1" and response.id == "typed", response
            got = typed_outputs(response)
            assert sorted(got) == sorted(expected), (model, sorted(got))
            for name, want in expected.items():
                assert_close(model, name, got[name], want)
    inputs = sample_inputs("lead_scoring", rows=2, seed=3)
    got = typed_outputs(stub.ModelInfer(typed_request("lead_scoring", inputs, outputs=["label"])))
    assert list(got) == ["label"], got


def check_dtypes(client, stub):
    inputs, expected = check_raw_inference(client, "dtypes", 5)
    # The reference is onnxruntime on the same file; check the model's definition too.
    assert_close("dtypes", "y_fp32", expected["y_fp32"], inputs["x_fp32"] * 2)
    assert_close("dtypes", "y_fp64", expected["y_fp64"], inputs["x_fp64"] + 1)
    assert_close("dtypes", "y_int32", expected["y_int32"], inputs["x_int32"] * 3)
    assert_close("dtypes", "y_int64", expected["y_int64"], inputs["x_int64"] + 7)
    assert_close("dtypes", "y_bool", expected["y_bool"], np.logical_not(inputs["x_bool"]))
    got = typed_outputs(stub.ModelInfer(typed_request("dtypes", inputs)))
    for name, want in expected.items():
        assert_close("dtypes", name, got[name], want)


def expect_error(call, status, *words):
    """Runs `call`, which must raise InferenceServerException with `status` (e.g.
    "INVALID_ARGUMENT") and a message containing every word."""
    try:
        call()
    except InferenceServerException as e:
        assert e.status() == f"StatusCode.{status}", (e.status(), e.message())
        for word in words:
            assert word in e.message(), (word, e.message())
        return e.message()
    raise AssertionError(f"expected {status} mentioning {words}, but the call succeeded")


def expect_rpc_error(call, status, *words):
    """Same as expect_error for the raw generated stub, which raises grpc.RpcError."""
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == getattr(grpc.StatusCode, status), (e.code(), e.details())
        for word in words:
            assert word in e.details(), (word, e.details())
        return e.details()
    raise AssertionError(f"expected {status} mentioning {words}, but the call succeeded")


def check_still_serving(client):
    assert client.is_server_live()
    inputs = sample_inputs("pricing", rows=1, seed=0)
    result = client.infer("pricing", infer_inputs(inputs))
    assert result.as_numpy("variable").shape == (1, 1)


def check_bad_requests(client, stub):
    pricing = sample_inputs("pricing", rows=2, seed=1)
    features = pricing["features"]
    checks = [
        # A datatype the model does not take.
        lambda: client.infer("pricing", infer_inputs({"features": features.astype(np.float64)})),
        # A wrong row length.
        lambda: client.infer("pricing", infer_inputs({"features": features[:, :7].copy()})),
        # Raw bytes that do not match the declared shape.
        lambda: client.infer("pricing", [raw_mismatch(features)]),
        # An input the model does not have.
        lambda: client.infer("pricing", infer_inputs({"feature": features})),
    ]
    words = [
        ("features", "FP32", "FP64"),
        ("features", "[-1, 8]"),
        ("features", "bytes"),
        ("feature",),
    ]
    for call, expected_words in zip(checks, words):
        expect_error(call, "INVALID_ARGUMENT", *expected_words)
        check_still_serving(client)

    dtypes = sample_inputs("dtypes", rows=2, seed=2)
    del dtypes["x_bool"]
    expect_error(lambda: client.infer("dtypes", infer_inputs(dtypes)), "INVALID_ARGUMENT", "x_bool")
    check_still_serving(client)

    def infer_pricing(model="pricing", version=""):
        return client.infer(model, infer_inputs(pricing), model_version=version)

    expect_error(lambda: infer_pricing(model="no_such_model"), "NOT_FOUND", "no_such_model")
    expect_error(lambda: infer_pricing(version="9"), "NOT_FOUND", "9")
    expect_error(lambda: infer_pricing(version="canary"), "NOT_FOUND", "canary")
    expect_error(lambda: client.is_model_ready("no_such_model"), "NOT_FOUND", "no_such_model")
    expect_error(lambda: client.get_model_metadata("no_such_model"), "NOT_FOUND", "no_such_model")
    expect_error(lambda: client.get_model_metadata("pricing", "9"), "NOT_FOUND", "9")
    check_still_serving(client)

    # The batch limit of pricing_small is 4 rows.
    four = sample_inputs("pricing", rows=4, seed=4)
    result = client.infer("pricing_small", infer_inputs(four))
    assert result.as_numpy("variable").shape == (4, 1)
    five = sample_inputs("pricing", rows=5, seed=5)
    expect_error(
        lambda: client.infer("pricing_small", infer_inputs(five)),
        "INVALID_ARGUMENT", "features", "5", "4",
    )
    check_still_serving(client)

    # Typed contents: a value out of range for its datatype, and a count that does not match.
    too_big = {"x_int32": np.array([[300, 1]], dtype=np.int32)}
    narrow = typed_request("dtypes", too_big, datatypes={"x_int32": "INT8"})
    expect_rpc_error(lambda: stub.ModelInfer(narrow), "INVALID_ARGUMENT", "x_int32", "300", "INT8")
    short = typed_request("pricing", {"features": features})
    del short.inputs[0].contents.fp32_contents[-1]
    expect_rpc_error(lambda: stub.ModelInfer(short), "INVALID_ARGUMENT", "features", "16", "15")
    negative = typed_request("pricing", {"features": features})
    negative.inputs[0].shape[0] = -2
    expect_rpc_error(lambda: stub.ModelInfer(negative), "INVALID_ARGUMENT", "features", "negative")
    unknown_dtype = typed_request("pricing", {"features": features})
    unknown_dtype.inputs[0].datatype = "FP16"
    expect_rpc_error(lambda: stub.ModelInfer(unknown_dtype), "INVALID_ARGUMENT", "features", "FP16")
    mixed = typed_request("pricing", {"features": features})
    mixed.raw_input_contents.append(features.tobytes())
    expect_rpc_error(
        lambda: stub.ModelInfer(mixed), "INVALID_ARGUMENT", "features", "raw_input_contents"
    )
    check_still_serving(client)


def raw_mismatch(features):
    """An FP32 input declaring `features`' shape but carrying one element fewer."""
    tensor = grpcclient.InferInput("features", list(features.shape), "FP32")
    # set_data_from_numpy would refuse the mismatch, so set the bytes tritonclient sends.
    tensor._raw_content = features.reshape(-1)[:-1].tobytes()
    return tensor


def check_labels(client):
    inputs = sample_inputs("pricing", rows=2, seed=9)
    expected = reference_outputs(MODEL_DIRS["pricing"], inputs)
    assert client.is_model_ready("pricing_versions", "stable")
    latest = client.infer("pricing_versions", infer_inputs(inputs))
    assert latest.get_response().model_version == "2"
    stable = client.infer("pricing_versions", infer_inputs(inputs), model_version="stable")
    assert stable.get_response().model_version == "1"
    first = client.infer("pricing_versions", infer_inputs(inputs), model_version="1")
    assert first.get_response().model_version == "1"
    for result in (latest, stable, first):
        assert_close("pricing", "variable", result.as_numpy("variable"), expected["variable"])


def check_load_unload(client):
    inputs = sample_inputs("pricing", rows=1, seed=0)
    assert client.is_model_ready("scratch")
    # Model control needs the admin token (okla-serving: --model-control explicit).
    expect_error(lambda: client.unload_model("scratch"), "UNAUTHENTICATED", "admin token")
    expect_error(lambda: client.unload_model("scratch", headers=bearer("wrong-token")), "UNAUTHENTICATED", "token")
    assert client.is_model_ready("scratch")
    client.unload_model("scratch", headers=ADMIN)
    rows = {(m.name, m.version): m for m in client.get_model_repository_index().models}
    assert rows[("scratch", "")].state == "UNAVAILABLE", rows
    assert ("scratch", "1") not in rows, rows
    expect_error(lambda: client.infer("scratch", infer_inputs(inputs)), "NOT_FOUND", "scratch")
    client.load_model("scratch", headers=ADMIN)
    assert client.is_model_ready("scratch")
    result = client.infer("scratch", infer_inputs(inputs))
    assert result.get_response().model_version == "1"
    expect_error(lambda: client.load_model("no_such_model", headers=ADMIN), "NOT_FOUND", "no_such_model")
    expect_error(lambda: client.unload_model("no_such_model", headers=ADMIN), "NOT_FOUND", "no_such_model")
    check_still_serving(client)


def check_stream(client):
    responses = queue.Queue()

    def callback(responses, result, error):
        responses.put((result, error))

    inputs = sample_inputs("pricing", rows=3, seed=11)
    expected = reference_outputs(MODEL_DIRS["pricing"], inputs)
    client.start_stream(callback=partial(callback, responses))
    try:
        client.async_stream_infer("pricing", infer_inputs(inputs), request_id="s1")
        too_narrow = {"features": inputs["features"][:, :7].copy()}
        client.async_stream_infer("pricing", infer_inputs(too_narrow), request_id="s2")
        client.async_stream_infer("pricing", infer_inputs(inputs), request_id="s3")
        answers = [responses.get(timeout=30) for _ in range(3)]
    finally:
        client.stop_stream()
    (first, first_error), (_, bad_error), (third, third_error) = answers
    assert first_error is None and third_error is None, (first_error, third_error)
    assert first.get_response().id == "s1" and third.get_response().id == "s3"
    assert_close("pricing", "variable", first.as_numpy("variable"), expected["variable"])
    assert bad_error is not None and "features" in bad_error.message(), bad_error


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="HOST:PORT of the gRPC listener")
    args = parser.parse_args()
    client = grpcclient.InferenceServerClient(url=args.url)
    channel = grpc.insecure_channel(args.url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        check_health(client)
        check_model_metadata(client)
        check_repository_index(client)
        for model in ("pricing", "lead_scoring", "pricing_mlp"):
            for rows in (1, 32):
                check_raw_inference(client, model, rows)
        check_output_subset(client)
        check_compression(client)
        check_typed_inference(stub)
        check_dtypes(client, stub)
        check_bad_requests(client, stub)
        check_labels(client)
        check_stream(client)
        check_load_unload(client)
    finally:
        client.close()
        channel.close()
    print("OK")


if __name__ == "__main__":
    main()
