#!/usr/bin/env python3
"""Logs the runs the browser test (`ui_browser.rs`) looks at, with the official `mlflow` client.

Three runs in experiment `ui-e2e`: params `alpha` 0.1 / 0.5 / 0.9 and the same `model_type`,
metric `rmse` over 50 steps and `mae` once; the first run is named
`<script>alert(1)</script>`, so the pages must escape it.

Environment: MLFLOW_TRACKING_URI (required). Prints one JSON line:
{"experiment_id": "...", "run_ids": ["...", "...", "..."]}
"""

import os

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import json  # noqa: E402
import time  # noqa: E402

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

EXPERIMENT = "ui-e2e"
RUNS = [
    ("<script>alert(1)</script>", 0.1),
    ("alpha-0.5", 0.5),
    ("alpha-0.9", 0.9),
]


def main() -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment(EXPERIMENT)
    run_ids = []
    for name, alpha in RUNS:
        run = client.create_run(experiment_id, run_name=name)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        rmse = [
            Metric("rmse", 1.0 / (1.0 + alpha * step) + 0.05 * alpha, now + step, step)
            for step in range(50)
        ]
        client.log_batch(
            run_id,
            metrics=rmse + [Metric("mae", 0.3 * alpha, now, 0)],
            params=[Param("alpha", str(alpha)), Param("model_type", "ridge")],
        )
        client.set_terminated(run_id)
        fetched = client.get_run(run_id)
        assert fetched.data.params == {"alpha": str(alpha), "model_type": "ridge"}, fetched
        assert fetched.info.run_name == name, fetched.info.run_name
        history = client.get_metric_history(run_id, "rmse")
        assert len(history) == 50, len(history)
        run_ids.append(run_id)
    print(json.dumps({"experiment_id": experiment_id, "run_ids": run_ids}))


if __name__ == "__main__":
    main()
