"""Trains a small car-price MLP (8 -> 16 -> 1, ReLU) with numpy on the synthetic marketplace data
of `okla_data.py` and saves it as safetensors + config.json for okla-serving's candle backend.

Run from the workspace root (writes examples/models/pricing_mlp/1/{model.safetensors,config.json}):

    .venv/bin/python examples/train_pricing_mlp.py

Model signature (KServe V2):

    input   features  FP32 [-1, 8]  make, year, mileage_km, engine_l, fuel, body, region, days_listed
                                    (same columns and codes as the `pricing` ONNX model)
    output  price     FP32 [-1, 1]  predicted price in USD

The network is trained on standardised features and prices; the standardisation is folded into
the first and last layers before saving, so the served model takes raw features and answers USD.

config.json format (read by serving/src/backend/candle.rs): weights follow PyTorch's Linear
convention (weight [out, in], bias [out]); activations are relu, tanh, sigmoid, gelu (exact, erf),
softmax (last layer only) or none.

    {"input": {"name": "features", "features": 8},
     "output": {"name": "price", "features": 1},
     "layers": [{"weight": "layers.0.weight", "bias": "layers.0.bias", "activation": "relu"},
                {"weight": "layers.1.weight", "bias": "layers.1.bias", "activation": "none"}]}
"""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from okla_data import PRICING_FEATURES, pricing_dataset

OUT = Path(__file__).resolve().parent / "models" / "pricing_mlp" / "1"
HIDDEN = 16
STEPS = 1500
LEARNING_RATE = 0.01


def main():
    features, prices = pricing_dataset()
    x = features.astype(np.float64)
    y = prices.astype(np.float64)[:, None]
    split = int(len(x) * 0.75)
    x_mean, x_std = x[:split].mean(axis=0), x[:split].std(axis=0)
    y_mean, y_std = y[:split].mean(), y[:split].std()
    xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std
    train_x, train_y, test_x, test_y = xs[:split], ys[:split], x[split:], y[split:]

    rng = np.random.default_rng(3)
    params = {
        "w0": rng.normal(0, np.sqrt(2.0 / x.shape[1]), (HIDDEN, x.shape[1])),
        "b0": np.zeros(HIDDEN),
        "w1": rng.normal(0, np.sqrt(1.0 / HIDDEN), (1, HIDDEN)),
        "b1": np.zeros(1),
    }
    # Full-batch gradient descent with Adam's per-parameter step sizes.
    moments = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in params.items()}
    for step in range(1, STEPS + 1):
        pre = train_x @ params["w0"].T + params["b0"]
        hidden = np.maximum(pre, 0.0)
        out = hidden @ params["w1"].T + params["b1"]
        d_out = 2.0 * (out - train_y) / len(train_x)
        d_hidden = (d_out @ params["w1"]) * (pre > 0)
        grads = {
            "w1": d_out.T @ hidden,
            "b1": d_out.sum(axis=0),
            "w0": d_hidden.T @ train_x,
            "b0": d_hidden.sum(axis=0),
        }
        for name, grad in grads.items():
            m, v = moments[name]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
            params[name] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
        if step % 500 == 0:
            print(f"step {step}: train MSE (standardised) {np.mean((out - train_y) ** 2):.4f}")

    # Fold the standardisation in: W0 (x - mu) / sd = (W0 / sd) x - W0 (mu / sd).
    w0 = params["w0"] / x_std
    b0 = params["b0"] - params["w0"] @ (x_mean / x_std)
    w1 = params["w1"] * y_std
    b1 = params["b1"] * y_std + y_mean
    predictions = np.maximum(test_x @ w0.T + b0, 0.0) @ w1.T + b1
    print(f"test MAE: {np.mean(np.abs(predictions - test_y)):.0f} USD")

    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {
        "layers.0.weight": w0,
        "layers.0.bias": b0,
        "layers.1.weight": w1,
        "layers.1.bias": b1,
    }
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(OUT / "model.safetensors"))
    config = {
        "input": {"name": "features", "features": len(PRICING_FEATURES)},
        "output": {"name": "price", "features": 1},
        "layers": [
            {"weight": "layers.0.weight", "bias": "layers.0.bias", "activation": "relu"},
            {"weight": "layers.1.weight", "bias": "layers.1.bias", "activation": "none"},
        ],
    }
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {OUT}/model.safetensors and config.json")


if __name__ == "__main__":
    main()
