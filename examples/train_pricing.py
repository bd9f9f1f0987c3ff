"""Trains OKLA's car-price regressor (scikit-learn gradient boosting) on the synthetic marketplace
data of `okla_data.py` and exports it to ONNX for okla-serving.

Run from the workspace root (writes examples/models/pricing/1/model.onnx):

    .venv/bin/python examples/train_pricing.py [--register pricing]   # MLFLOW_TRACKING_URI=http://127.0.0.1:5000

Model signature (KServe V2):

    input   features  FP32 [-1, 8]  make, year, mileage_km, engine_l, fuel, body, region, days_listed
                                    (categorical columns are the integer codes of okla_data.py)
    output  variable  FP32 [-1, 1]  predicted price in USD (skl2onnx's default output name)
"""

import argparse
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split

from okla_data import PRICING_FEATURES, pricing_dataset
from register import log_and_register

OUT = Path(__file__).resolve().parent / "models" / "pricing" / "1" / "model.onnx"
# Pinned so every onnxruntime from 1.14 on loads the file (skl2onnx picks ai.onnx.ml to match).
TARGET_OPSET = 17

PARAMS = {"n_estimators": 50, "max_depth": 3, "learning_rate": 0.15}


def main():
    args = _arguments()
    features, prices = pricing_dataset()
    assert features.shape[1] == len(PRICING_FEATURES)
    train_x, test_x, train_y, test_y = train_test_split(features, prices, random_state=0)
    model = GradientBoostingRegressor(**PARAMS, random_state=0).fit(train_x, train_y)
    mae = mean_absolute_error(test_y, model.predict(test_x))
    print(f"test MAE: {mae:.0f} USD")

    onnx_model = to_onnx(
        model, train_x[:1].astype(np.float32), target_opset=TARGET_OPSET
    )
    # skl2onnx names the input "X"; the serving contract calls it "features".
    _rename_input(onnx_model, "X", "features")
    onnx_model.doc_string = "OKLA car-price regressor; inputs: " + ", ".join(PRICING_FEATURES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(onnx_model.SerializeToString())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    if args.register:
        log_and_register(onnx_model, args.register, PARAMS, {"test_mae_usd": mae}, args.alias)


def _rename_input(model, old, new):
    for value in model.graph.input:
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the ONNX file")
    parser.add_argument(
        "--register",
        metavar="NAME",
        help="also log the run and register the model as NAME at $MLFLOW_TRACKING_URI",
    )
    parser.add_argument("--alias", default="champion", help="alias of the new version")
    return parser.parse_args()


if __name__ == "__main__":
    main()
