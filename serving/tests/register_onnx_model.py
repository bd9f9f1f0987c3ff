#!/usr/bin/env python3
"""Registers an ONNX model version the way a training job does, with the official `mlflow`
client: `mlflow.onnx.log_model` in a run, `mlflow.register_model`, then a stage transition
or an alias. Used by serving's follow-the-registry test.

Usage: register_onnx_model.py TRACKING_URI MODEL_NAME ONNX_FILE (--stage STAGE | --alias ALIAS)
                              [--as-plain-artifact]
`--as-plain-artifact` logs ONNX_FILE as `model/model.onnx` with `mlflow.log_artifact` instead of
`mlflow.onnx.log_model`, so a file that is no ONNX model at all can be registered.
Prints the new version number on the last line of stdout.
"""

import argparse
import os
import shutil
import tempfile
import warnings

# A 5xx must fail at once instead of being retried for minutes.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import mlflow  # noqa: E402
import mlflow.onnx  # noqa: E402
import onnx  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

# Stage APIs are deprecated in MLflow 3 but still part of the wire contract.
warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tracking_uri")
    parser.add_argument("model_name")
    parser.add_argument("onnx_file")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stage")
    target.add_argument("--alias")
    parser.add_argument("--as-plain-artifact", action="store_true")
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment("serving-follows-registry")
    client = MlflowClient()
    with mlflow.start_run() as run:
        if args.as_plain_artifact:
            with tempfile.TemporaryDirectory() as directory:
                shutil.copy(args.onnx_file, os.path.join(directory, "model.onnx"))
                mlflow.log_artifact(os.path.join(directory, "model.onnx"), artifact_path="model")
        else:
            info = mlflow.onnx.log_model(onnx.load(args.onnx_file), name="model")
    if args.as_plain_artifact:
        # MLflow 3 registers `runs:/` URIs only for logged models; a plain directory is
        # registered by its storage location.
        version = client.create_model_version(
            args.model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
    else:
        version = mlflow.register_model(info.model_uri, args.model_name)
    if args.stage:
        client.transition_model_version_stage(
            args.model_name, version.version, args.stage, archive_existing_versions=True
        )
    else:
        client.set_registered_model_alias(args.model_name, args.alias, version.version)
    print(version.version)


if __name__ == "__main__":
    main()
