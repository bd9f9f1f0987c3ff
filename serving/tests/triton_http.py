"""Drives okla-serving with the real `tritonclient.http` (sync and aio) and checks every answer.

    .venv/bin/python serving/tests/triton_http.py 127.0.0.1:8000

The server must serve the example models (pricing, lead_scoring, pricing_mlp) and the test models
(dtypes, lead_scoring_sklearn). Run by serving/tests/it/http.rs; exits non-zero on the first
failed check. Covers: health, server and model metadata, the repository index, inference at
batch 1 and 32 in tritonclient's default binary form and with `binary_data=False` (JSON), every
datatype through `dtypes`, gzip and deflate request and response compression, the async client (which sends no Content-Type), error statuses, and
unload/load.
"""

import os
import asyncio
import sys

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from reference import MODEL_DIRS, reference_outputs, sample_inputs

MODELS = ["pricing", "lead_scoring", "pricing_mlp", "dtypes", "lead_scoring_sklearn"]


def make_inputs(inputs, binary):
    tensors = []
    for name, array in inputs.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    return tensors


def requested_outputs(names, binary):
    # Without named outputs tritonclient asks for binary outputs, so JSON needs them named.
    return [httpclient.InferRequestedOutput(name, binary_data=binary) for name in names]


def check_outputs(label, result, expected, binary):
    response = result.get_response()
    returned = {output["name"]: output for output in response["outputs"]}
    assert set(returned) == set(expected), f"{label}: outputs {sorted(returned)} != {sorted(expected)}"
    for name, want in expected.items():
        got = result.as_numpy(name)
        assert got is not None, f"{label}: no output {name}"
        in_binary = "binary_data_size" in (returned[name].get("parameters") or {})
        assert in_binary == binary, f"{label}: output {name} binary={in_binary}, asked {binary}"
        assert got.shape == want.shape, f"{label}: {name} shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{label}: {name} dtype {got.dtype} != {want.dtype}"
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{label}: {name}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{label}: {name}")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# The server's admin token (--admin-token-file), for loading and unloading.
ADMIN = bearer(os.environ["OKLA_ADMIN_TOKEN"])


def expect_error(label, status, call, *fragments):
    try:
        call()
    except InferenceServerException as err:
        assert err.status() == status, f"{label}: status {err.status()} != {status}: {err}"
        for fragment in fragments:
            assert fragment in err.message(), f"{label}: {fragment!r} not in {err.message()!r}"
        return
    raise AssertionError(f"{label}: no error raised")


def check_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "okla-serving", metadata
    assert "binary_tensor_data" in metadata["extensions"], metadata
    index = client.get_model_repository_index()
    ready = {entry["name"] for entry in index if entry["state"] == "READY"}
    assert set(MODELS) <= ready, index
    for model in MODELS:
        assert client.is_model_ready(model)
        assert client.is_model_ready(model, "1")
        model_metadata = client.get_model_metadata(model)
        assert model_metadata["name"] == model
        assert model_metadata["versions"] == ["1"], model_metadata
    pricing = client.get_model_metadata("pricing", "1")
    assert pricing["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 8]}], pricing
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("pricing", "99")


def check_inference(client):
    for model in MODELS:
        for rows in (1, 32):
            inputs = sample_inputs(model, rows, seed=rows)
            expected = reference_outputs(MODEL_DIRS[model], inputs)
            # tritonclient's defaults: binary inputs, no outputs named (so all, in binary).
            result = client.infer(model, make_inputs(inputs, True))
            check_outputs(f"{model} rows={rows} binary", result, expected, True)
            result = client.infer(
                model,
                make_inputs(inputs, False),
                outputs=requested_outputs(expected, False),
                request_id=f"{model}-{rows}",
            )
            assert result.get_response()["id"] == f"{model}-{rows}"
            check_outputs(f"{model} rows={rows} json", result, expected, False)
        # Asking for one output returns only that one.
        first = next(iter(expected))
        result = client.infer(
            model, make_inputs(inputs, True), outputs=requested_outputs([first], True)
        )
        assert [o["name"] for o in result.get_response()["outputs"]] == [first]


def check_compression(client):
    # Every pairing of tritonclient's request and response compression, at a batch whose
    # answer is small enough to come back plain and one large enough to come back compressed.
    for rows in (1, 200):
        inputs = sample_inputs("pricing", rows, seed=rows)
        expected = reference_outputs(MODEL_DIRS["pricing"], inputs)
        for request in (None, "gzip", "deflate"):
            for response in (None, "gzip", "deflate"):
                for binary in (True, False):
                    result = client.infer(
                        "pricing",
                        make_inputs(inputs, binary),
                        outputs=requested_outputs(expected, binary),
                        request_compression_algorithm=request,
                        response_compression_algorithm=response,
                    )
                    label = f"pricing rows={rows} request={request} response={response}"
                    check_outputs(f"{label} binary={binary}", result, expected, binary)


def check_dtypes(client):
    inputs = sample_inputs("dtypes", 5, seed=7)
    expected = {
        "y_fp32": inputs["x_fp32"] * np.float32(2),
        "y_fp64": inputs["x_fp64"] + 1,
        "y_int32": inputs["x_int32"] * np.int32(3),
        "y_int64": inputs["x_int64"] + 7,
        "y_bool": np.logical_not(inputs["x_bool"]),
    }
    for binary in (True, False):
        result = client.infer(
            "dtypes", make_inputs(inputs, binary), outputs=requested_outputs(expected, binary)
        )
        check_outputs(f"dtypes binary={binary}", result, expected, binary)
    # Mixed: JSON inputs, binary outputs, and the other way round.
    result = client.infer(
        "dtypes", make_inputs(inputs, False), outputs=requested_outputs(expected, True)
    )
    check_outputs("dtypes json in, binary out", result, expected, True)
    result = client.infer(
        "dtypes", make_inputs(inputs, True), outputs=requested_outputs(expected, False)
    )
    check_outputs("dtypes binary in, json out", result, expected, False)


def check_errors(client):
    features = np.zeros((1, 8), dtype=np.float32)
    expect_error(
        "unknown model",
        "404",
        lambda: client.infer("no_such_model", make_inputs({"features": features}, True)),
        "no_such_model",
    )
    expect_error(
        "unknown version",
        "404",
        lambda: client.infer("pricing", make_inputs({"features": features}, True), model_version="99"),
    )
    for binary in (True, False):
        expect_error(
            f"wrong shape binary={binary}",
            "400",
            lambda: client.infer(
                "pricing", make_inputs({"features": np.zeros((1, 7), np.float32)}, binary)
            ),
            "features",
        )
        expect_error(
            f"wrong datatype binary={binary}",
            "400",
            lambda: client.infer(
                "pricing", make_inputs({"features": np.zeros((1, 8), np.float64)}, binary)
            ),
            "features",
            "FP32",
        )
        expect_error(
            f"unknown input binary={binary}",
            "400",
            lambda: client.infer("pricing", make_inputs({"wrong": features}, binary)),
            "wrong",
        )
    expect_error(
        "unknown output",
        "400",
        lambda: client.infer(
            "pricing",
            make_inputs({"features": features}, True),
            outputs=requested_outputs(["nope"], True),
        ),
        "nope",
    )
    expect_error("metadata of unknown model", "404", lambda: client.get_model_metadata("no_such_model"))
    expect_error("metadata of unknown version", "404", lambda: client.get_model_metadata("pricing", "99"))


def check_unload_and_load(client):
    # Model control needs the admin token (okla-serving: --model-control explicit).
    expect_error("unload without a token", "401", lambda: client.unload_model("pricing_mlp"), "admin token")
    expect_error("unload with a wrong token", "401", lambda: client.unload_model("pricing_mlp", headers=bearer("wrong")))
    assert client.is_model_ready("pricing_mlp")
    client.unload_model("pricing_mlp", headers=ADMIN)
    assert not client.is_model_ready("pricing_mlp")
    client.load_model("pricing_mlp", headers=ADMIN)
    assert client.is_model_ready("pricing_mlp")
    expect_error("load unknown model", "404", lambda: client.load_model("no_such_model", headers=ADMIN))


async def check_aio(url):
    client = aiohttpclient.InferenceServerClient(url)
    try:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert (await client.get_model_metadata("lead_scoring"))["name"] == "lead_scoring"
        for model in ("pricing", "lead_scoring"):
            inputs = sample_inputs(model, 32, seed=3)
            expected = reference_outputs(MODEL_DIRS[model], inputs)
            result = await client.infer(model, make_inputs(inputs, True))
            check_outputs(f"aio {model} binary", result, expected, True)
            result = await client.infer(
                model, make_inputs(inputs, False), outputs=requested_outputs(expected, False)
            )
            check_outputs(f"aio {model} json", result, expected, False)
        try:
            await client.infer(
                "pricing", make_inputs({"features": np.zeros((2, 3), np.float32)}, False)
            )
        except InferenceServerException as err:
            assert err.status() == "400" and "features" in err.message(), err
        else:
            raise AssertionError("aio: wrong shape was accepted")
    finally:
        await client.close()


def main():
    url = sys.argv[1]
    client = httpclient.InferenceServerClient(url)
    check_health_and_metadata(client)
    check_inference(client)
    check_compression(client)
    check_dtypes(client)
    check_errors(client)
    asyncio.run(check_aio(url))
    check_unload_and_load(client)
    client.close()
    print("triton_http: all checks passed")


if __name__ == "__main__":
    main()
