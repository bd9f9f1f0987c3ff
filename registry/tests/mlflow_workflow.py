#!/usr/bin/env python3
"""End-to-end MLflow workflow, driven with the official, unmodified `mlflow` client.

Plays a training job and a data scientist against the tracking server named by
`MLFLOW_TRACKING_URI` and asserts every result. It must pass against the reference
`mlflow server` (SQLite or PostgreSQL backend, `--serve-artifacts`) and against
okla-registry alike, so it only checks behaviour MLflow itself has.

Run (from the workspace root, with the venv of registry/tests/requirements.txt):

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 .venv/bin/python registry/tests/mlflow_workflow.py

Checked against the reference server (about 20-80 s there, depending on machine load):

    .venv/bin/mlflow server --host 127.0.0.1 --port 5000 --serve-artifacts \
        --backend-store-uri sqlite:////tmp/ref-mlflow/mlflow.db --artifacts-destination /tmp/ref-mlflow/artifacts
    (or --backend-store-uri postgresql+psycopg2://postgres@127.0.0.1:5432/DB; see requirements.txt)

Environment:
    MLFLOW_TRACKING_URI   required; the server under test.
    OKLA_EXTENSIONS=1     also checks what okla-registry does beyond MLflow (OR in run filters).
    WORKFLOW_BIG_MB       size of the large-artifact round trip (default 20).

Every name this script creates carries a random suffix, so it can run again against a
server that still holds the data of an earlier (possibly failed) run.
Exit status 0 means every check passed; anything else prints the failing step.
"""

import os

# A wrong 5xx from the server must fail the step at once: by default the client retries
# 408/429/5xx with exponential backoff for minutes before giving up.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
# Synchronous logging, so a rejected log call raises at the call that caused it.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# Keep the client from printing things that are not under test (git lookups, run URLs).
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import mlflow  # noqa: E402
import mlflow.onnx  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import mlflow.sklearn  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

# Stage APIs are deprecated in MLflow 3 but still part of the wire contract we must keep.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)

SUFFIX = uuid.uuid4().hex[:8]
MODEL_NAME = f"pricing-{SUFFIX}"
ONNX_MODEL_NAME = f"pricing-onnx-{SUFFIX}"
CHURN_MODEL_NAME = f"churn-{SUFFIX}"
BIG_ARTIFACT_MB = int(os.environ.get("WORKFLOW_BIG_MB", "20"))
OKLA_EXTENSIONS = os.environ.get("OKLA_EXTENSIONS") == "1"

client: MlflowClient  # set in main() once the tracking URI is known
_step_count = 0


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


class CheckFailed(AssertionError):
    """An expectation about a server answer did not hold."""


def step(message):
    """Prints one progress line per checked step."""
    global _step_count
    _step_count += 1
    print(f"  [{_step_count:3d}] {message}", flush=True)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


@contextlib.contextmanager
def expect_mlflow_error(error_code, what):
    """Asserts that the block raises MlflowException carrying `error_code`."""
    try:
        yield
    except MlflowException as error:
        if error.error_code != error_code:
            raise CheckFailed(
                f"{what}: expected error_code {error_code}, got {error.error_code}: {error.message}"
            ) from error
        return
    raise CheckFailed(f"{what}: expected MlflowException {error_code}, but the call succeeded")


def tags_of(entity_tags):
    """Drops the client's own `mlflow.*` system tags so checks see only what we set."""
    return {key: value for key, value in entity_tags.items() if not key.startswith("mlflow.")}


def run_ids(runs):
    return {run.info.run_id for run in runs}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def section(title):
    print(f"\n== {title}", flush=True)


def timed(area, *args):
    """Runs one area's checks and prints how long it took (the reference server is slow)."""
    started = time.time()
    result = area(*args)
    print(f"   -- {area.__name__}: {time.time() - started:.1f} s", flush=True)
    return result


# ---------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------


def check_experiments():
    section("experiments")

    default = client.get_experiment("0")
    check_eq(default.name, "Default", "default experiment name")
    check_eq(default.lifecycle_stage, "active", "default experiment lifecycle")
    step("default experiment '0' exists")

    name = f"wf-exp-{SUFFIX}-b"
    experiment_id = client.create_experiment(name, tags={"team": "pricing", "purpose": "workflow"})
    check(isinstance(experiment_id, str) and experiment_id.isdigit(), f"experiment id {experiment_id!r}")
    step(f"create_experiment with tags -> id {experiment_id}")

    with expect_mlflow_error("RESOURCE_ALREADY_EXISTS", "create_experiment duplicate"):
        client.create_experiment(name)
    step("duplicate experiment name rejected (RESOURCE_ALREADY_EXISTS)")

    experiment = client.get_experiment(experiment_id)
    check_eq(experiment.name, name, "get_experiment name")
    check_eq(experiment.lifecycle_stage, "active", "new experiment lifecycle")
    check_eq(tags_of(experiment.tags), {"team": "pricing", "purpose": "workflow"}, "experiment tags")
    check(
        experiment.artifact_location.startswith("mlflow-artifacts:/"),
        f"artifact_location {experiment.artifact_location!r} should be proxied",
    )
    check(experiment.creation_time and experiment.creation_time > 0, "creation_time set")
    step("get_experiment returns name, tags, artifact location")

    by_name = client.get_experiment_by_name(name)
    check(by_name is not None, "get_experiment_by_name found nothing")
    check_eq(by_name.experiment_id, experiment_id, "get_experiment_by_name id")
    check(client.get_experiment_by_name(f"no-such-experiment-{SUFFIX}") is None, "unknown name → None")
    step("get_experiment_by_name (known and unknown → None)")

    client.set_experiment_tag(experiment_id, "stage", "dev")
    check_eq(client.get_experiment(experiment_id).tags.get("stage"), "dev", "set_experiment_tag")
    step("set_experiment_tag")

    # Two more experiments so ordering has something to order.
    other_ids = [client.create_experiment(f"wf-exp-{SUFFIX}-{letter}") for letter in ("a", "c")]
    found = client.search_experiments(filter_string=f"name = '{name}'")
    check_eq([e.experiment_id for e in found], [experiment_id], "search_experiments by exact name")
    found = client.search_experiments(filter_string=f"name LIKE 'wf-exp-{SUFFIX}-%'", order_by=["name DESC"])
    check_eq(
        [e.name for e in found],
        [f"wf-exp-{SUFFIX}-c", f"wf-exp-{SUFFIX}-b", f"wf-exp-{SUFFIX}-a"],
        "search_experiments order_by name DESC",
    )
    found = client.search_experiments(filter_string=f"tags.team = 'pricing' AND name LIKE 'wf-exp-{SUFFIX}%'")
    check_eq([e.experiment_id for e in found], [experiment_id], "search_experiments by tag")
    step("search_experiments: filter by name, LIKE + order_by DESC, by tag")

    new_name = f"wf-exp-{SUFFIX}-renamed"
    client.rename_experiment(experiment_id, new_name)
    check_eq(client.get_experiment(experiment_id).name, new_name, "renamed experiment")
    check(client.get_experiment_by_name(name) is None, "old name must be gone after rename")
    step("rename_experiment (experiments/update)")

    client.delete_experiment(other_ids[0])
    check_eq(client.get_experiment(other_ids[0]).lifecycle_stage, "deleted", "deleted experiment lifecycle")
    active = client.search_experiments(filter_string=f"name LIKE 'wf-exp-{SUFFIX}-%'")
    check(other_ids[0] not in [e.experiment_id for e in active], "deleted experiment hidden from ACTIVE_ONLY")
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name LIKE 'wf-exp-{SUFFIX}-%'"
    )
    check_eq([e.experiment_id for e in deleted], [other_ids[0]], "search_experiments DELETED_ONLY")
    step("delete_experiment (soft; visible with DELETED_ONLY)")

    client.restore_experiment(other_ids[0])
    check_eq(client.get_experiment(other_ids[0]).lifecycle_stage, "active", "restored experiment lifecycle")
    step("restore_experiment")

    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_experiment unknown id"):
        client.get_experiment("987654321")
    step("get_experiment unknown id → RESOURCE_DOES_NOT_EXIST")
    return experiment_id


# ---------------------------------------------------------------------------------------
# Runs: logging
# ---------------------------------------------------------------------------------------


def check_run_logging():
    section("runs: logging")
    experiment = mlflow.set_experiment(f"wf-train-{SUFFIX}")
    step(f"set_experiment created 'wf-train-{SUFFIX}' (id {experiment.experiment_id})")

    history_length = 300
    before_start_ms = int(time.time() * 1000)
    with mlflow.start_run(run_name="train-linear", tags={"framework": "sklearn", "owner": "ds"}) as run:
        run_id = run.info.run_id
        check_eq(len(run_id), 32, "run id length")
        check_eq(run.info.run_name, "train-linear", "run name")
        check_eq(run.info.status, "RUNNING", "run status at start")
        check(run.info.artifact_uri.startswith("mlflow-artifacts:/"), f"run artifact uri {run.info.artifact_uri}")
        step(f"start_run with name and tags -> {run_id}")

        mlflow.log_param("alpha", "0.1")
        mlflow.log_params({"l1_ratio": 0.5, "solver": "lbfgs", "max_iter": 100})
        mlflow.log_param("alpha", "0.1")  # the same value again is allowed
        step("log_param / log_params (same value twice is fine)")

        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "changing a param value"):
            mlflow.log_param("alpha", "0.2")
        step("changing a param value → INVALID_PARAMETER_VALUE")

        for training_step in range(history_length):
            mlflow.log_metric("loss", 1.0 / (training_step + 1), step=training_step)
        # Non-finite values travel as the JSON strings "NaN", "Infinity", "-Infinity".
        mlflow.log_metric("nan_metric", float("nan"))
        mlflow.log_metric("inf_metric", float("inf"), step=0)
        mlflow.log_metric("inf_metric", float("-inf"), step=1)
        mlflow.log_metric("rmse", 0.9, step=0)
        mlflow.log_metric("rmse", 0.42, step=1)
        mlflow.log_metric("rmse", 0.7, step=1, timestamp=before_start_ms - 1)  # older timestamp, same step
        step(f"log_metric: {history_length}-point history for 'loss', NaN, ±Infinity, rmse over steps")

        mlflow.log_metrics({"r2": 0.81, "mae": 0.3}, step=2)
        mlflow.set_tag("stage", "experiment")
        mlflow.set_tags({"dataset": "synthetic-v1", "temp": "remove-me"})
        client.delete_tag(run_id, "temp")
        step("log_metrics, set_tag, set_tags, delete_tag")

        now_ms = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric("batch_metric", 1.5, now_ms, 0), Metric("batch_metric", 2.5, now_ms, 1)],
            params=[Param("batch_param", "yes")],
            tags=[RunTag("batch_tag", "tagged")],
        )
        step("log_batch with metrics, params and tags")

        live = client.get_run(run_id)
        check_eq(live.info.status, "RUNNING", "status before end_run")
        check(live.info.end_time is None, f"end_time before end_run: {live.info.end_time}")

    finished = client.get_run(run_id)
    check_eq(finished.info.status, "FINISHED", "status after end_run")
    check(finished.info.end_time is not None and finished.info.end_time >= finished.info.start_time, "end_time")
    check(finished.info.start_time >= before_start_ms - 5000, "start_time plausible")
    check_eq(finished.info.lifecycle_stage, "active", "lifecycle")
    check_eq(finished.info.run_name, "train-linear", "run_name in info")
    check_eq(
        finished.data.params,
        {"alpha": "0.1", "l1_ratio": "0.5", "solver": "lbfgs", "max_iter": "100", "batch_param": "yes"},
        "params",
    )
    metrics = finished.data.metrics
    check_eq(metrics["loss"], 1.0 / history_length, "latest loss (max step)")
    check(math.isnan(metrics["nan_metric"]), f"nan_metric should be NaN, got {metrics['nan_metric']}")
    # MLflow's SQL store saves ±Infinity as ±DBL_MAX (its SQL columns hold no infinities).
    check(
        metrics["inf_metric"] in (float("-inf"), -sys.float_info.max),
        f"-Infinity metric (latest step): {metrics['inf_metric']}",
    )
    check_eq(metrics["rmse"], 0.42, "rmse latest = max step, then max timestamp")
    check_eq(metrics["r2"], 0.81, "r2")
    check_eq(metrics["batch_metric"], 2.5, "batch_metric latest")
    check_eq(
        set(metrics), {"loss", "nan_metric", "inf_metric", "rmse", "r2", "mae", "batch_metric"}, "metric keys"
    )
    check_eq(
        tags_of(finished.data.tags),
        {"framework": "sklearn", "owner": "ds", "stage": "experiment", "dataset": "synthetic-v1", "batch_tag": "tagged"},
        "tags (temp deleted)",
    )
    check_eq(finished.data.tags.get("mlflow.runName"), "train-linear", "mlflow.runName tag")
    step("end_run; get_run: status FINISHED, end_time, params, latest metrics, tags")

    history = client.get_metric_history(run_id, "loss")
    check_eq(len(history), history_length, "loss history length")
    check_eq([m.step for m in history], list(range(history_length)), "history steps in order")
    check_eq([m.value for m in history], [1.0 / (s + 1) for s in range(history_length)], "history values")
    check(all(m.key == "loss" for m in history), "history keys")
    rmse_history = client.get_metric_history(run_id, "rmse")
    check_eq(sorted((m.step, m.value) for m in rmse_history), [(0, 0.9), (1, 0.42), (1, 0.7)], "rmse history")
    inf_history = [m.value for m in client.get_metric_history(run_id, "inf_metric")]
    check(
        inf_history in ([float("inf"), float("-inf")], [sys.float_info.max, -sys.float_info.max]),
        f"±Infinity history: {inf_history}",
    )
    check_eq(client.get_metric_history(run_id, "never-logged"), [], "history of unknown key")
    step("get_metric_history: length, order, values")

    # A second run through the client API only (no fluent state), then deleted.
    doomed = client.create_run(experiment.experiment_id, run_name="doomed", tags={"kind": "doomed"})
    doomed_id = doomed.info.run_id
    client.log_metric(doomed_id, "rmse", 0.5)
    client.delete_run(doomed_id)
    check_eq(client.get_run(doomed_id).info.lifecycle_stage, "deleted", "deleted run is still readable")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "log_metric to a deleted run"):
        client.log_metric(doomed_id, "rmse", 0.1)
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "log_param to a deleted run"):
        client.log_param(doomed_id, "x", "1")
    step("delete_run (soft); logging to a deleted run → INVALID_PARAMETER_VALUE")

    client.restore_run(doomed_id)
    check_eq(client.get_run(doomed_id).info.lifecycle_stage, "active", "restored run lifecycle")
    client.log_metric(doomed_id, "rmse", 0.1)
    client.set_terminated(doomed_id, status="KILLED")
    check_eq(client.get_run(doomed_id).info.status, "KILLED", "set_terminated KILLED")
    step("restore_run; logging works again; set_terminated KILLED")

    check_dataset_input(experiment.experiment_id)
    return run_id


def check_dataset_input(experiment_id):
    """Optional per the plan, but it works on the reference server, so it is checked."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    dataset = mlflow.data.from_pandas(frame, name="synthetic-train", targets="y")
    with mlflow.start_run(experiment_id=experiment_id, run_name="with-dataset") as run:
        mlflow.log_input(dataset, context="training")
    logged = client.get_run(run.info.run_id)
    inputs = logged.inputs.dataset_inputs
    check_eq(len(inputs), 1, "dataset inputs")
    check_eq(inputs[0].dataset.name, "synthetic-train", "dataset name")
    check_eq(inputs[0].dataset.digest, dataset.digest, "dataset digest")
    check_eq({t.key: t.value for t in inputs[0].tags}.get("mlflow.data.context"), "training", "dataset context")
    step("log_input with a pandas dataset (runs/log-inputs)")


# ---------------------------------------------------------------------------------------
# Runs: search
# ---------------------------------------------------------------------------------------


def check_run_search():
    section("runs: search")
    experiment_id = client.create_experiment(f"wf-search-{SUFFIX}")
    # (run name, alpha, rmse or None, framework tag)
    plan = [
        ("ridge-a", "0.1", 0.30, "sklearn"),
        ("ridge-b", "0.1", 0.60, "sklearn"),
        ("lasso-a", "0.5", 0.10, "sklearn"),
        ("Lasso-B", "0.5", 0.45, "xgboost"),
        ("enet-a", "0.1", 0.20, "xgboost"),
        ("enet-b", "0.9", None, "sklearn"),
        ("tree-a", "0.1", 0.95, "lightgbm"),
    ]
    ids_by_name = {}
    for index, (run_name, alpha, rmse, framework) in enumerate(plan):
        run = client.create_run(experiment_id, run_name=run_name, tags={"framework": framework})
        now_ms = int(time.time() * 1000)
        metrics = [Metric("rmse", rmse, now_ms, 0)] if rmse is not None else []
        metrics.append(Metric("order", float(index), now_ms, 0))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param("alpha", alpha)])
        client.set_terminated(run.info.run_id, status="FAILED" if run_name == "tree-a" else "FINISHED")
        ids_by_name[run_name] = run.info.run_id
    running = client.create_run(experiment_id, run_name="still-running")
    ids_by_name["still-running"] = running.info.run_id
    all_ids = set(ids_by_name.values())
    step(f"created {len(all_ids)} runs to search")

    def search(filter_string="", **kwargs):
        return client.search_runs([experiment_id], filter_string=filter_string, **kwargs)

    def names(runs):
        by_id = {run_id: name for name, run_id in ids_by_name.items()}
        return [by_id[run.info.run_id] for run in runs]

    check_eq(run_ids(search()), all_ids, "unfiltered search")
    check_eq(
        set(names(search("metrics.rmse < 0.5 and params.alpha = '0.1'"))),
        {"ridge-a", "enet-a"},
        "metrics.rmse < 0.5 and params.alpha = '0.1'",
    )
    check_eq(set(names(search("tags.framework = 'xgboost'"))), {"Lasso-B", "enet-a"}, "tag filter")
    check_eq(
        set(names(search("tags.framework != 'xgboost'"))),
        {"ridge-a", "ridge-b", "lasso-a", "enet-b", "tree-a"},
        "tag != (runs without the tag do not match)",
    )
    check_eq(set(names(search("attributes.status = 'FAILED'"))), {"tree-a"}, "attributes.status")
    check_eq(set(names(search("attributes.status = 'RUNNING'"))), {"still-running"}, "status RUNNING")
    check_eq(set(names(search("attributes.run_name LIKE 'lasso%'"))), {"lasso-a"}, "run_name LIKE (case-sensitive)")
    check_eq(set(names(search("attributes.run_name ILIKE 'lasso%'"))), {"lasso-a", "Lasso-B"}, "run_name ILIKE")
    wanted = [ids_by_name["ridge-a"], ids_by_name["tree-a"]]
    in_filter = "attributes.run_id IN ('" + "', '".join(wanted) + "')"
    check_eq(run_ids(search(in_filter)), set(wanted), "attributes.run_id IN (...)")
    check_eq(set(names(search("metrics.rmse >= 0.6"))), {"ridge-b", "tree-a"}, "metrics.rmse >= 0.6")
    check_eq(set(names(search("params.alpha = '0.9'"))), {"enet-b"}, "param equality")
    step("search_runs filters: metrics+params AND, tags (= and !=), status, run_name LIKE/ILIKE, run_id IN")

    descending = names(search(order_by=["metrics.rmse DESC"]))
    check_eq(descending[:6], ["tree-a", "ridge-b", "Lasso-B", "ridge-a", "enet-a", "lasso-a"], "rmse DESC")
    check_eq(set(descending[6:]), {"enet-b", "still-running"}, "runs without rmse sort last (DESC)")
    ascending = names(search(order_by=["metrics.rmse ASC"]))
    check_eq(ascending[:6], ["lasso-a", "enet-a", "ridge-a", "Lasso-B", "ridge-b", "tree-a"], "rmse ASC")
    check_eq(set(ascending[6:]), {"enet-b", "still-running"}, "runs without rmse sort last (ASC)")
    by_name = names(search(order_by=["attributes.run_name ASC"]))
    check_eq(by_name, sorted(by_name), "order by run_name ASC")
    step("search_runs order_by metric DESC/ASC (missing key last), run_name")

    collected, token, pages = [], None, 0
    while True:
        page = search(max_results=3, page_token=token, order_by=["metrics.order ASC"])
        check(len(page) <= 3, f"page larger than max_results: {len(page)}")
        collected.extend(page)
        pages += 1
        token = page.token
        if not token:
            break
        check(pages < 10, "paging does not terminate")
    check_eq(len(collected), len(all_ids), "paged total")
    check_eq(run_ids(collected), all_ids, "paged run ids")
    check_eq(pages, 3, "number of pages for 8 runs at 3 per page")
    ordered = names(collected)[:7]
    check_eq(ordered, [name for name, *_ in plan], "paging keeps order_by across pages")
    step(f"search_runs max_results=3 + page_token: {pages} pages, all {len(all_ids)} runs once")

    client.delete_run(ids_by_name["ridge-b"])
    client.delete_run(ids_by_name["tree-a"])
    deleted = search(run_view_type=ViewType.DELETED_ONLY)
    check_eq(set(names(deleted)), {"ridge-b", "tree-a"}, "DELETED_ONLY")
    check_eq(run_ids(search(run_view_type=ViewType.ALL)), all_ids, "ALL")
    check_eq(len(search()), len(all_ids) - 2, "ACTIVE_ONLY excludes deleted")
    check_eq(set(names(search("metrics.rmse >= 0.6"))), set(), "deleted runs are not searched by default")
    step("search_runs run_view_type DELETED_ONLY / ALL / ACTIVE_ONLY")

    fluent = mlflow.search_runs(experiment_ids=[experiment_id], filter_string="params.alpha = '0.5'")
    check_eq(len(fluent), 2, "fluent mlflow.search_runs DataFrame rows")
    check("metrics.rmse" in fluent.columns and "params.alpha" in fluent.columns, "DataFrame columns")
    step("fluent mlflow.search_runs returns a DataFrame")

    if OKLA_EXTENSIONS:
        check_okla_extensions(experiment_id, ids_by_name)
    return experiment_id


# ---------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------


def check_artifacts(workdir):
    section("artifacts")
    mlflow.set_experiment(f"wf-train-{SUFFIX}")
    source = workdir / "upload"
    (source / "docs" / "nested").mkdir(parents=True)
    (source / "notes.txt").write_text("training notes: alpha=0.1\n")
    (source / "docs" / "readme.md").write_text("# docs\n")
    (source / "docs" / "nested" / "deep.json").write_text('{"depth": 2}')
    big = workdir / "big.bin"
    with open(big, "wb") as handle:
        # Random bytes, so neither side can get away with compressing or truncating.
        rng = np.random.default_rng(7)
        for _ in range(BIG_ARTIFACT_MB):
            handle.write(rng.bytes(1 << 20))
    big_sha = sha256_of(big)

    with mlflow.start_run(run_name="artifacts") as run:
        run_id = run.info.run_id
        mlflow.log_artifact(str(source / "notes.txt"))
        mlflow.log_artifacts(str(source / "docs"), artifact_path="docs")
        mlflow.log_artifact(str(source / "notes.txt"), artifact_path="copies")
        step("log_artifact (file), log_artifacts (dir with nested subdir)")
        started = time.time()
        mlflow.log_artifact(str(big), artifact_path="large")
        step(f"log_artifact of {BIG_ARTIFACT_MB} MB ({time.time() - started:.1f} s)")

    root = {f.path: f for f in client.list_artifacts(run_id)}
    check_eq(set(root), {"notes.txt", "docs", "copies", "large"}, "root listing")
    check(root["docs"].is_dir and not root["notes.txt"].is_dir, "is_dir flags")
    check_eq(root["notes.txt"].file_size, len("training notes: alpha=0.1\n"), "file_size")
    docs = {f.path: f for f in client.list_artifacts(run_id, "docs")}
    check_eq(set(docs), {"docs/readme.md", "docs/nested"}, "docs listing (paths prefixed by the client)")
    nested = [f.path for f in client.list_artifacts(run_id, "docs/nested")]
    check_eq(nested, ["docs/nested/deep.json"], "nested listing")
    check_eq(client.list_artifacts(run_id, "no-such-dir"), [], "listing a missing dir is empty")
    step("list_artifacts: root, subdir, nested, missing")

    download = workdir / "download"
    file_path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="notes.txt", dst_path=str(download / "file")
    )
    check_eq(Path(file_path).read_text(), "training notes: alpha=0.1\n", "downloaded file content")
    dir_path = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="docs", dst_path=str(download / "dir"))
    )
    check_eq((dir_path / "readme.md").read_text(), "# docs\n", "downloaded dir file")
    check_eq((dir_path / "nested" / "deep.json").read_text(), '{"depth": 2}', "downloaded nested file")
    whole = Path(client.download_artifacts(run_id, "", str(download / "all")))
    check((whole / "copies" / "notes.txt").is_file(), "whole-run download has copies/notes.txt")
    step("download_artifacts: file, directory, whole run; contents match")

    started = time.time()
    big_back = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="large/big.bin", dst_path=str(download / "big")
    )
    check_eq(os.path.getsize(big_back), BIG_ARTIFACT_MB << 20, "big artifact size")
    check_eq(sha256_of(big_back), big_sha, "big artifact sha256")
    step(f"{BIG_ARTIFACT_MB} MB artifact downloaded back with identical sha256 ({time.time() - started:.1f} s)")

    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "download of a missing artifact"):
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="nope.txt", dst_path=str(download / "missing")
        )
    step("download of a missing artifact → RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------------------------------
# Models and the registry
# ---------------------------------------------------------------------------------------


def synthetic_data():
    rng = np.random.default_rng(42)
    features = rng.normal(size=(200, 3))
    target = features @ np.array([1.5, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.1, size=200)
    return features, target


def train_and_log_models():
    """The training job: logs a regression, a classifier and an ONNX export of the regression."""
    section("models: training and logging")
    import sklearn
    from sklearn.linear_model import LinearRegression, LogisticRegression

    sklearn_requirements = [f"scikit-learn=={sklearn.__version__}"]

    mlflow.set_experiment(f"wf-train-{SUFFIX}")
    features, target = synthetic_data()
    frame = pd.DataFrame(features, columns=["f0", "f1", "f2"])
    regression = LinearRegression().fit(frame, target)
    classifier = LogisticRegression().fit(frame, (target > 3.0).astype(int))

    with mlflow.start_run(run_name="train-pricing") as run:
        mlflow.log_params({"model": "LinearRegression", "n_samples": len(target)})
        rmse = float(np.sqrt(np.mean((regression.predict(frame) - target) ** 2)))
        mlflow.log_metric("rmse", rmse)
        signature = infer_signature(frame, regression.predict(frame))
        # Explicit pip requirements skip the client's requirement inference, which loads the
        # model in a subprocess (about 10 s per model here) and sends nothing over the wire.
        regression_info = mlflow.sklearn.log_model(
            regression, name="model", signature=signature, pip_requirements=sklearn_requirements
        )
        classifier_info = mlflow.sklearn.log_model(
            classifier,
            name="classifier",
            signature=infer_signature(frame, classifier.predict(frame)),
            pip_requirements=sklearn_requirements,
        )
    run_id = run.info.run_id
    check(regression_info.model_uri.startswith("models:/m-"), f"model_uri {regression_info.model_uri}")
    check_eq(regression_info.run_id, run_id, "model_info.run_id")
    logged = mlflow.get_logged_model(regression_info.model_id)
    check_eq(str(logged.status), "READY", "logged model status after log_model")
    check_eq(logged.source_run_id, run_id, "logged model source_run_id")
    check_eq(logged.name, "model", "logged model name")
    check_eq(logged.metrics[0].key if logged.metrics else None, "rmse", "run metric copied onto the logged model")
    outputs = client.get_run(run_id).outputs.model_outputs
    check_eq({o.model_id for o in outputs}, {regression_info.model_id, classifier_info.model_id}, "run outputs")
    step(f"mlflow.sklearn.log_model LinearRegression + LogisticRegression ({regression_info.model_id})")

    import onnx
    import onnxruntime
    from skl2onnx import to_onnx

    onnx_model = to_onnx(regression, features[:1].astype(np.float32), target_opset=15)
    check(isinstance(onnx_model, onnx.ModelProto), "skl2onnx produced a ModelProto")
    with mlflow.start_run(run_name="export-onnx") as onnx_run:
        onnx_info = mlflow.onnx.log_model(
            onnx_model,
            name="onnx-model",
            pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
        )
    check_eq(onnx_info.run_id, onnx_run.info.run_id, "onnx model_info.run_id")
    step("mlflow.onnx.log_model of the skl2onnx export")

    return {
        "run_id": run_id,
        "frame": frame,
        "features": features,
        "regression": regression,
        "classifier": classifier,
        "regression_info": regression_info,
        "classifier_info": classifier_info,
        "onnx_info": onnx_info,
    }


def check_registry(trained):
    section("model registry")
    run_id = trained["run_id"]
    frame = trained["frame"]
    expected_predictions = trained["regression"].predict(frame)

    def assert_predicts_like_regression(model_uri):
        model = mlflow.pyfunc.load_model(model_uri)
        predictions = np.asarray(model.predict(frame)).reshape(-1)
        check(np.allclose(predictions, expected_predictions), f"{model_uri}: predictions differ")

    # register_model creates the registered model on first use.
    version_1 = mlflow.register_model(f"runs:/{run_id}/model", MODEL_NAME)
    check_eq(version_1.name, MODEL_NAME, "register_model name")
    check_eq(version_1.version, "1", "first version number")
    check_eq(version_1.status, "READY", "version status")
    check_eq(version_1.run_id, run_id, "version run_id")
    check_eq(version_1.current_stage, "None", "new version stage")
    step("mlflow.register_model('runs:/<run>/model') -> version 1")

    version_2 = mlflow.register_model(trained["regression_info"].model_uri, MODEL_NAME)
    check_eq(version_2.version, "2", "second version number")
    check_eq(version_2.source, trained["regression_info"].model_uri, "version source is the models:/ uri")
    step("mlflow.register_model(model_info.model_uri) -> version 2")

    with expect_mlflow_error("RESOURCE_ALREADY_EXISTS", "create_registered_model duplicate"):
        client.create_registered_model(MODEL_NAME)
    step("create_registered_model duplicate → RESOURCE_ALREADY_EXISTS")

    churn = client.create_registered_model(
        CHURN_MODEL_NAME, tags={"task": "classification"}, description="churn classifier"
    )
    check_eq(churn.name, CHURN_MODEL_NAME, "created registered model name")
    fetched = client.get_registered_model(CHURN_MODEL_NAME)
    check_eq(fetched.description, "churn classifier", "description")
    check_eq(fetched.tags, {"task": "classification"}, "registered model tags")
    client.update_registered_model(CHURN_MODEL_NAME, description="predicts churn")
    check_eq(client.get_registered_model(CHURN_MODEL_NAME).description, "predicts churn", "updated description")
    client.set_registered_model_tag(CHURN_MODEL_NAME, "owner", "ds-team")
    client.delete_registered_model_tag(CHURN_MODEL_NAME, "task")
    check_eq(client.get_registered_model(CHURN_MODEL_NAME).tags, {"owner": "ds-team"}, "tags after set/delete")
    step("create/get/update registered model; set/delete registered model tag")

    classifier_info = trained["classifier_info"]
    churn_version = client.create_model_version(
        CHURN_MODEL_NAME,
        source=classifier_info.model_uri,
        run_id=run_id,
        model_id=classifier_info.model_id,
        tags={"algo": "logreg"},
        description="first churn model",
    )
    check_eq(churn_version.version, "1", "churn version 1")
    check_eq(churn_version.tags, {"algo": "logreg"}, "version tags at create")
    check_eq(churn_version.description, "first churn model", "version description at create")
    classifier = mlflow.pyfunc.load_model(f"models:/{CHURN_MODEL_NAME}/1")
    check(
        np.array_equal(np.asarray(classifier.predict(frame)), trained["classifier"].predict(frame)),
        "classifier predictions",
    )
    step("create_model_version with explicit source + model_id; LogisticRegression loads and predicts")

    # An explicit source that is a plain artifact location. The server checks that such a
    # source lies inside the artifact root of the resource named by model_id (or, without
    # model_id, by run_id): a logged model's location does not lie inside its run's root.
    logged = mlflow.get_logged_model(trained["regression_info"].model_id)
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "artifact source outside the run's artifact root"):
        client.create_model_version(MODEL_NAME, source=logged.artifact_location, run_id=run_id)
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "mlflow-artifacts source with neither run_id nor model_id"):
        client.create_model_version(MODEL_NAME, source=logged.artifact_location)
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "source with a relative path"):
        client.create_model_version(
            MODEL_NAME, source=f"{logged.artifact_location}/../../x", model_id=logged.model_id
        )
    step("create_model_version rejects sources outside the named run/model (INVALID_PARAMETER_VALUE)")
    version_3 = client.create_model_version(
        MODEL_NAME,
        source=logged.artifact_location,
        run_id=run_id,
        model_id=logged.model_id,
        description="explicit artifact source",
    )
    check_eq(version_3.version, "3", "third version (rejected creates consume no number)")
    check_eq(version_3.source, logged.artifact_location, "explicit source kept verbatim")
    step(f"create_model_version source={logged.artifact_location} model_id={logged.model_id}")

    got = client.get_model_version(MODEL_NAME, "3")
    check_eq(got.description, "explicit artifact source", "get_model_version description")
    client.update_model_version(MODEL_NAME, "3", description="v3 updated")
    client.set_model_version_tag(MODEL_NAME, "3", "validated", "true")
    client.set_model_version_tag(MODEL_NAME, "3", "temp", "x")
    client.delete_model_version_tag(MODEL_NAME, "3", "temp")
    got = client.get_model_version(MODEL_NAME, "3")
    check_eq(got.description, "v3 updated", "update_model_version description")
    check_eq(got.tags, {"validated": "true"}, "model version tags after set/delete")
    step("get/update model version; set/delete model version tag")

    found = client.search_registered_models(filter_string="name LIKE 'pri%'")
    found_names = [m.name for m in found]
    check(MODEL_NAME in found_names, f"{MODEL_NAME} not in LIKE 'pri%' results {found_names}")
    check(all(n.startswith("pri") for n in found_names), f"LIKE 'pri%' matched {found_names}")
    check(CHURN_MODEL_NAME not in found_names, "churn model must not match 'pri%'")
    exact = client.search_registered_models(filter_string=f"name = '{MODEL_NAME}'")
    check_eq([m.name for m in exact], [MODEL_NAME], "search_registered_models exact name")
    step("search_registered_models name LIKE 'pri%' and exact name")

    versions = client.search_model_versions(f"name='{MODEL_NAME}'", order_by=["version_number DESC"])
    check_eq([v.version for v in versions], ["3", "2", "1"], "search_model_versions version_number DESC")
    by_run = client.search_model_versions(f"run_id='{run_id}'")
    check_eq(
        {(v.name, v.version) for v in by_run},
        {(MODEL_NAME, "1"), (MODEL_NAME, "2"), (MODEL_NAME, "3"), (CHURN_MODEL_NAME, "1")},
        "search_model_versions by run_id",
    )
    step("search_model_versions name= / run_id= with order_by version_number DESC")

    # Stages (deprecated in MLflow 3, still on the wire).
    client.transition_model_version_stage(MODEL_NAME, "1", "Staging")
    check_eq(client.get_model_version(MODEL_NAME, "1").current_stage, "Staging", "v1 Staging")
    client.transition_model_version_stage(MODEL_NAME, "1", "production")
    check_eq(client.get_model_version(MODEL_NAME, "1").current_stage, "Production", "v1 Production (lowercase in)")
    moved = client.transition_model_version_stage(MODEL_NAME, "2", "Production", archive_existing_versions=True)
    check_eq(moved.current_stage, "Production", "v2 Production")
    check_eq(client.get_model_version(MODEL_NAME, "1").current_stage, "Archived", "v1 archived by v2's promotion")
    client.transition_model_version_stage(MODEL_NAME, "3", "Staging")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "unknown stage"):
        client.transition_model_version_stage(MODEL_NAME, "3", "Bogus")
    step("transition stages: Staging → Production; archive_existing_versions archives the old Production")

    latest = {v.current_stage: v.version for v in client.get_latest_versions(MODEL_NAME)}
    check_eq(latest, {"Archived": "1", "Production": "2", "Staging": "3"}, "get_latest_versions (all stages)")
    production = client.get_latest_versions(MODEL_NAME, stages=["Production"])
    check_eq([v.version for v in production], ["2"], "get_latest_versions Production")
    registered = client.get_registered_model(MODEL_NAME)
    check_eq(
        {v.current_stage: v.version for v in registered.latest_versions},
        {"Archived": "1", "Production": "2", "Staging": "3"},
        "registered model latest_versions",
    )
    step("get_latest_versions and registered model latest_versions")

    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    client.set_registered_model_alias(MODEL_NAME, "champion", "2")  # moves the alias
    client.set_registered_model_alias(MODEL_NAME, "challenger", "3")
    by_alias = client.get_model_version_by_alias(MODEL_NAME, "champion")
    check_eq(by_alias.version, "2", "champion → version 2")
    check_eq(by_alias.aliases, ["champion"], "aliases on the version")
    check_eq(client.get_model_version(MODEL_NAME, "1").aliases, [], "moved alias left version 1")
    check_eq(
        client.get_registered_model(MODEL_NAME).aliases,
        {"champion": "2", "challenger": "3"},
        "registered model aliases",
    )
    for reserved in ("latest", "Latest", "v3"):
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", f"reserved alias {reserved!r}"):
            client.set_registered_model_alias(MODEL_NAME, reserved, "1")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "unknown alias"):
        client.get_model_version_by_alias(MODEL_NAME, "no-such-alias")
    step("aliases: set (and move), get by alias, reserved names and unknown alias rejected")

    download_uri = client.get_model_version_download_uri(MODEL_NAME, "2")
    check_eq(download_uri, logged.artifact_location, "download uri of a models:/ source")
    check_eq(client.get_model_version_download_uri(MODEL_NAME, "3"), logged.artifact_location, "download uri v3")
    step(f"get_model_version_download_uri → {download_uri}")

    for model_uri in (
        f"models:/{MODEL_NAME}@champion",
        f"models:/{MODEL_NAME}/1",
        f"models:/{MODEL_NAME}/Production",
        f"models:/{MODEL_NAME}/3",
    ):
        assert_predicts_like_regression(model_uri)
        step(f"pyfunc.load_model('{model_uri}') predicts like the in-memory model")

    client.delete_registered_model_alias(MODEL_NAME, "challenger")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "deleted alias"):
        client.get_model_version_by_alias(MODEL_NAME, "challenger")
    check_eq(client.get_registered_model(MODEL_NAME).aliases, {"champion": "2"}, "aliases after delete")
    step("delete_registered_model_alias")

    check_onnx_registry(trained)

    client.delete_model_version(MODEL_NAME, "3")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get of a deleted version"):
        client.get_model_version(MODEL_NAME, "3")
    version_4 = client.create_model_version(
        MODEL_NAME, source=trained["regression_info"].model_uri, run_id=run_id,
        model_id=trained["regression_info"].model_id,
    )
    check_eq(version_4.version, "4", "version numbers are never reused")
    versions = client.search_model_versions(f"name='{MODEL_NAME}'", order_by=["version_number ASC"])
    check_eq([v.version for v in versions], ["1", "2", "4"], "deleted version hidden from search")
    step("delete_model_version; next version is max+1 (4), deleted one invisible")

    client.delete_model_version(MODEL_NAME, "2")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "alias of a deleted version"):
        client.get_model_version_by_alias(MODEL_NAME, "champion")
    step("deleting a version drops its aliases")

    renamed = f"{MODEL_NAME}-renamed"
    client.rename_registered_model(MODEL_NAME, renamed)
    check_eq(client.get_registered_model(renamed).name, renamed, "renamed model")
    check_eq(client.get_model_version(renamed, "4").name, renamed, "versions follow the rename")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "old name after rename"):
        client.get_registered_model(MODEL_NAME)
    step("rename_registered_model; versions follow")

    for name in (renamed, CHURN_MODEL_NAME, ONNX_MODEL_NAME):
        client.delete_registered_model(name)
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", f"get of deleted model {name}"):
            client.get_registered_model(name)
    check_eq(client.search_model_versions(f"name='{renamed}'"), [], "versions of a deleted model")
    step("delete_registered_model (and its versions)")


def check_onnx_registry(trained):
    onnx_info = trained["onnx_info"]
    version = mlflow.register_model(onnx_info.model_uri, ONNX_MODEL_NAME)
    check_eq(version.version, "1", "onnx version 1")
    features32 = trained["features"].astype(np.float32)
    expected = trained["regression"].predict(trained["frame"])

    import onnxruntime

    onnx_model = mlflow.onnx.load_model(f"models:/{ONNX_MODEL_NAME}/1")
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    predictions = session.run(None, {input_name: features32})[0].reshape(-1)
    check(np.allclose(predictions, expected, atol=1e-4), "onnx predictions via onnxruntime")

    pyfunc = mlflow.pyfunc.load_model(f"models:/{ONNX_MODEL_NAME}/1")
    output = pyfunc.predict(pd.DataFrame(features32))
    values = np.asarray(next(iter(output.values())) if isinstance(output, dict) else output).reshape(-1)
    check(np.allclose(values, expected, atol=1e-4), "onnx predictions via pyfunc")
    step("ONNX model registered, loaded back (mlflow.onnx + pyfunc) and predicting")


# ---------------------------------------------------------------------------------------
# Error codes
# ---------------------------------------------------------------------------------------


def check_error_codes(search_experiment_id):
    section("error codes")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_run unknown id"):
        client.get_run(uuid.uuid4().hex)
    step("get_run unknown id → RESOURCE_DOES_NOT_EXIST")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_registered_model unknown"):
        client.get_registered_model(f"no-such-model-{SUFFIX}")
    step("get_registered_model unknown → RESOURCE_DOES_NOT_EXIST")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_model_version unknown"):
        client.get_model_version(f"no-such-model-{SUFFIX}", "1")
    step("get_model_version unknown → RESOURCE_DOES_NOT_EXIST")
    with expect_mlflow_error("INVALID_PARAMETER_VALUE", "bad filter"):
        client.search_runs([search_experiment_id], filter_string="metrics.rmse <<< 1")
    step("search_runs bad filter 'metrics.rmse <<< 1' → INVALID_PARAMETER_VALUE")
    with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "create_run in unknown experiment"):
        client.create_run("987654321")
    step("create_run in unknown experiment → RESOURCE_DOES_NOT_EXIST")


# ---------------------------------------------------------------------------------------
# okla-registry extensions (beyond MLflow; off unless OKLA_EXTENSIONS=1)
# ---------------------------------------------------------------------------------------


def check_okla_extensions(experiment_id, ids_by_name):
    section("okla-registry extensions (OKLA_EXTENSIONS=1)")
    found = client.search_runs([experiment_id], filter_string="metrics.rmse < 0.2 OR params.alpha = '0.5'")
    expected = {ids_by_name["lasso-a"], ids_by_name["Lasso-B"]}
    check_eq(run_ids(found), expected, "OR filter: rmse < 0.2 OR alpha = '0.5'")
    step("search_runs with OR in the filter")
    check_multipart_upload(experiment_id)


def check_multipart_upload(experiment_id):
    """The client's proxy multipart upload (off by default in MLflow, and refused by the reference
    server on a local artifact store) goes through okla-registry's mpu endpoints."""
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    completed = []
    original_complete = HttpArtifactRepository.complete_multipart_upload

    def counting_complete(self, *args, **kwargs):
        completed.append(args[0] if args else kwargs.get("local_file"))
        return original_complete(self, *args, **kwargs)

    settings = {
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
        "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(1024 * 1024),
        "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE": str(5 * 1024 * 1024),
    }
    previous = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    HttpArtifactRepository.complete_multipart_upload = counting_complete
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-mpu-"))
    try:
        big = workdir / "weights.bin"
        big.write_bytes(np.random.default_rng(3).bytes(12 * 1024 * 1024 + 123))
        with mlflow.start_run(experiment_id=experiment_id, run_name="multipart") as run:
            mlflow.log_artifact(str(big), artifact_path="blobs")
        check_eq(len(completed), 1, "multipart uploads completed by the client")
        downloaded = Path(client.download_artifacts(run.info.run_id, "blobs/weights.bin", str(workdir / "out")))
        check_eq(sha256_of(downloaded), sha256_of(big), "multipart-uploaded file sha256")
    finally:
        HttpArtifactRepository.complete_multipart_upload = original_complete
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(workdir, ignore_errors=True)
    step("12 MB artifact sent by the client's multipart upload (3 parts) and read back intact")


# ---------------------------------------------------------------------------------------


def main():
    global client
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        print("MLFLOW_TRACKING_URI is not set; point it at the server under test", file=sys.stderr)
        return 2
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    print(f"mlflow {mlflow.__version__} client against {tracking_uri} (suffix {SUFFIX})", flush=True)

    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-workflow-"))
    try:
        timed(check_experiments)
        timed(check_run_logging)
        search_experiment_id = timed(check_run_search)
        timed(check_artifacts, workdir)
        trained = timed(train_and_log_models)
        timed(check_registry, trained)
        timed(check_error_codes, search_experiment_id)
    except Exception as error:  # report any failure with the step it happened in
        print(f"\nFAILED after step {_step_count}: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nOK: {_step_count} steps passed in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
