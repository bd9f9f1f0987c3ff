"""Trains OKLA's car-price regressor (scikit-learn gradient boosting) on the synthetic marketplace
data of `okla_data.py` and exports it to ONNX for okla-serving.

Run from the workspace root (writes examples/models/pricing/1/model.onnx):

    .venv/bin/python examples/train_pricing.py

Model signature (KServe V2):

    input   features  FP32 [-1, 8]  make, year, mileage_km, engine_l, fuel, body, region, days_listed
                                    (categorical columns are the integer codes of okla_data.py)
    output  variable  FP32 [-1, 1]  predicted price in USD (skl2onnx's default output name)
"""

from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split

from okla_data import PRICING_FEATURES, pricing_dataset

OUT = Path(__file__).resolve().parent / "models" / "pricing" / "1" / "model.onnx"
# Pinned so every onnxruntime from 1.14 on loads the file (skl2onnx picks ai.onnx.ml to match).
TARGET_OPSET = 17


def main():
    features, prices = pricing_dataset()
    assert features.shape[1] == len(PRICING_FEATURES)
    train_x, test_x, train_y, test_y = train_test_split(features, prices, random_state=0)
    model = GradientBoostingRegressor(
        n_estimators=50, max_depth=3, learning_rate=0.15, random_state=0
    ).fit(train_x, train_y)
    print(f"test MAE: {mean_absolute_error(test_y, model.predict(test_x)):.0f} USD")

    onnx_model = to_onnx(
        model, train_x[:1].astype(np.float32), target_opset=TARGET_OPSET
    )
    # skl2onnx names the input "X"; the serving contract calls it "features".
    _rename_input(onnx_model, "X", "features")
    onnx_model.doc_string = "OKLA car-price regressor; inputs: " + ", ".join(PRICING_FEATURES)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(onnx_model.SerializeToString())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


def _rename_input(model, old, new):
    for value in model.graph.input:
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]


if __name__ == "__main__":
    main()
