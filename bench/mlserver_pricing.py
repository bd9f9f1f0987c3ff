"""Prepares the reference server for bench/run_inference.sh: Seldon MLServer serving the same
pricing regressor as examples/models/pricing (same data, same scikit-learn hyperparameters as
examples/train_pricing.py), with MLServer's own scikit-learn runtime.

Usage: python bench/mlserver_pricing.py OUT_DIR HTTP_PORT GRPC_PORT METRICS_PORT
"""

import json
import sys
from pathlib import Path

import joblib
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from okla_data import pricing_dataset  # noqa: E402


def main():
    out, http_port, grpc_port, metrics_port = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    features, prices = pricing_dataset()
    train_x, _, train_y, _ = train_test_split(features, prices, random_state=0)
    model = GradientBoostingRegressor(
        n_estimators=50, max_depth=3, learning_rate=0.15, random_state=0
    ).fit(train_x, train_y)
    model_dir = out / "pricing"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": "pricing",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))
    (out / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }))


if __name__ == "__main__":
    main()
