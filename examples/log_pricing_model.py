"""Trains OKLA's car-pricing regressor on synthetic listings and logs it to okla-registry with
the unmodified mlflow client, then registers it and points the `champion` alias at it.

Run against a registry started with `cargo run --release -p okla-registry`:

    python3 -m venv .venv && .venv/bin/pip install -r registry/tests/requirements.txt
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 .venv/bin/python examples/log_pricing_model.py
"""

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split


def synthetic_listings(rows=5000, seed=7):
    """Year, mileage (km), engine size (l) and a condition score -> price (USD)."""
    rng = np.random.default_rng(seed)
    year = rng.integers(2005, 2026, rows)
    mileage = rng.gamma(2.0, 40_000, rows)
    engine = rng.choice([1.2, 1.6, 2.0, 2.5, 3.0], rows)
    condition = rng.uniform(0, 1, rows)
    price = 4000 + (year - 2005) * 900 - mileage * 0.04 + engine * 2500 + condition * 3000
    price += rng.normal(0, 800, rows)
    features = np.column_stack([year, mileage, engine, condition]).astype(np.float32)
    return features, price.astype(np.float32)


def main():
    features, prices = synthetic_listings()
    train_x, test_x, train_y, test_y = train_test_split(features, prices, random_state=0)
    mlflow.set_experiment("okla-pricing")
    with mlflow.start_run(run_name="gbr-baseline") as run:
        params = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05}
        mlflow.log_params(params)
        model = GradientBoostingRegressor(**params).fit(train_x, train_y)
        for stage, predictions in enumerate(model.staged_predict(test_x)):
            if stage % 20 == 0:
                mlflow.log_metric("mae", mean_absolute_error(test_y, predictions), step=stage)
        mae = mean_absolute_error(test_y, model.predict(test_x))
        mlflow.log_metric("mae", mae, step=params["n_estimators"])
        info = mlflow.sklearn.log_model(model, name="model", input_example=test_x[:2])
    version = mlflow.register_model(info.model_uri, "okla-pricing")
    MlflowClient().set_registered_model_alias("okla-pricing", "champion", version.version)
    print(f"run {run.info.run_id}: mae={mae:.0f}; registered okla-pricing version {version.version} as @champion")


if __name__ == "__main__":
    main()
