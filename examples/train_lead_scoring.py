"""Trains OKLA's lead-scoring classifier (XGBoost) on the synthetic buyer enquiries of
`okla_data.py` and exports it to ONNX with onnxmltools for okla-serving.

Run from the workspace root (writes examples/models/lead_scoring/1/model.onnx):

    .venv/bin/python examples/train_lead_scoring.py [--register lead_scoring]   # MLFLOW_TRACKING_URI=http://127.0.0.1:5000

Model signature (KServe V2):

    input   features       FP32  [-1, 6]  price_vs_market, photos, response_minutes, days_listed,
                                          description_words, verified_seller (0.0 or 1.0)
    output  label          INT64 [-1]     1 if the lead is predicted to convert, else 0
    output  probabilities  FP32  [-1, 2]  [P(no conversion), P(conversion)]
"""

import argparse
from pathlib import Path

from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

from okla_data import LEAD_FEATURES, lead_dataset
from register import log_and_register

OUT = Path(__file__).resolve().parent / "models" / "lead_scoring" / "1" / "model.onnx"
# onnxmltools' XGBoost converter is tested up to opset 15; onnxruntime 1.2x-1.3x load it.
TARGET_OPSET = 15

PARAMS = {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.2}


def main():
    args = _arguments()
    features, converted = lead_dataset()
    assert features.shape[1] == len(LEAD_FEATURES)
    train_x, test_x, train_y, test_y = train_test_split(features, converted, random_state=0)
    model = XGBClassifier(**PARAMS, random_state=0, n_jobs=1).fit(train_x, train_y)
    auc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])
    print(f"test AUC: {auc:.3f}")

    onnx_model = convert_xgboost(
        model,
        initial_types=[("features", FloatTensorType([None, len(LEAD_FEATURES)]))],
        target_opset=TARGET_OPSET,
    )
    onnx_model.doc_string = "OKLA lead-scoring classifier; inputs: " + ", ".join(LEAD_FEATURES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(onnx_model.SerializeToString())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    if args.register:
        log_and_register(onnx_model, args.register, PARAMS, {"test_auc": auc}, args.alias)


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
