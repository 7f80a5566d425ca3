"""Reproduce a checkpoint's logits with numpy and safetensors alone (SPEC section 8).

usage: check_logits.py CHECKPOINT CASE_JSON
CASE_JSON holds {"obs": [rows * obs_dim floats], "rows": n, "expected_logits": [...]}
(the runtime's logits). Exits 1 if any logit differs by more than 1e-5 (relative).
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open


def logits(path, obs):
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    clip, eps = float(meta["norm.clip"]), float(meta["norm.eps"])
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}[meta["activation"]]
    x = (obs - tensors["obs_norm.mean"]) / np.sqrt(tensors["obs_norm.var"] + np.float32(eps))
    x = np.clip(x, -clip, clip).astype(np.float32)
    n_layers = len([k for k in tensors if k.startswith("actor.") and k.endswith(".weight")])
    for i in range(n_layers):
        x = x @ tensors[f"actor.{i}.weight"].T + tensors[f"actor.{i}.bias"]
        if i + 1 < n_layers:
            x = act(x)
    return x


def main():
    path, case_path = sys.argv[1], sys.argv[2]
    case = json.load(open(case_path))
    rows = case["rows"]
    obs = np.asarray(case["obs"], dtype=np.float32).reshape(rows, -1)
    got = logits(path, obs)
    want = np.asarray(case["expected_logits"], dtype=np.float32).reshape(got.shape)
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    print(f"max relative logit difference {err.max():.3g} over {got.size} logits")
    sys.exit(0 if err.max() <= 1e-5 else 1)


if __name__ == "__main__":
    main()
