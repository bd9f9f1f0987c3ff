"""Logs a trained model's parameters and metrics to an MLflow tracking server (okla-registry,
through the unmodified mlflow client), stores the ONNX export with `mlflow.onnx.log_model`,
registers it and points an alias at the new version: what the training scripts do with
`--register NAME`.
"""

import os

# A client mistake must fail at once rather than be retried for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def log_and_register(onnx_model, name, params, metrics, alias="champion"):
    """Returns the new version number. The tracking URI comes from MLFLOW_TRACKING_URI."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient

    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=f"{name}-training"):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        info = mlflow.onnx.log_model(onnx_model, name="model")
    version = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, alias, version.version)
    print(
        f"registered {name} version {version.version} (alias {alias}) "
        f"at {mlflow.get_tracking_uri()}"
    )
    return int(version.version)
