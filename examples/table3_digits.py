"""Why the linear predictor without EMA reads as collapsed on digits (README, Faithfulness: "Table 3 on
digits"): the smoke sweep's arm (predictor linear, tau 0) with one factor changed at a time, z_std after
every epoch (a collapse-only check, ``eval.collapse_every: 1``) and the full evaluation at the end.

    python examples/table3_digits.py --epochs 20 --variants smoke,lr0.03,lr0.01,lr0.003,wd0,bias --seeds 0,1
    python examples/table3_digits.py --epochs 150 --variants smoke --seeds 0,1     # the steps factor
    python examples/table3_digits.py --epochs 60 --variants batch32 --seeds 0      # steps at another batch

One line of JSON per trial (the variant, the seed, z_std per epoch, the final probe and kNN top-1).
Every trial runs in this process with one CPU thread. ``init0`` reports z_std of the untrained network.
The predictor-init variants (``wp_identity``, ``wp_small``) have no config key: this script sets the
linear predictor's initial W_p itself (identity; the default init x 0.1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

import ablate
from ablate.kinds.ssl import load_trial_config
from ablate.models.predictors import linear
from ablate.train.evaluate import collapse_check
from ablate.train.loop import build_loop

# sweeps/smoke.yaml's linear arm without EMA
SMOKE = {
    "data.name": "digits",
    "model.trunk": "convnet",
    "optim.lr": 0.05,
    "ema.init": "copy",
    "ema.tau": 0.0,
    "predictor.name": "linear",
    "train.device": "cpu",
    "train.threads": 1,
    "eval.probe_epochs": 50,
    "eval.probe_lr": 0.01,
    "eval.collapse_every": 1,
}
VARIANTS = {
    "smoke": {},
    "lr0.03": {"optim.lr": 0.03},  # the paper's lr
    "lr0.01": {"optim.lr": 0.01},
    "lr0.003": {"optim.lr": 0.003},
    "wd0": {"optim.weight_decay": 0.0},
    "bias": {"predictor.bias": True},
    "batch32": {"train.batch_size": 32},  # 4x the steps per epoch
    "ema0.996": {"ema.tau": 0.996},  # BYOL's target, for comparison
    "wp_identity": {},
    "wp_small": {},
}
INIT: dict[str, str | None] = {"mode": None}
_built = linear.LinearPredictor.__init__


def _init(self, cfg, dim):  # the predictor-init variants: W_p at init
    _built(self, cfg, dim)
    with torch.no_grad():
        if INIT["mode"] == "wp_identity":
            self.linear.weight.copy_(torch.eye(dim))
        elif INIT["mode"] == "wp_small":
            self.linear.weight.mul_(0.1)


linear.LinearPredictor.__init__ = _init


def untrained(seed: int) -> float:
    """z_std of the smoke arm's network before any step (the same collapse check)."""
    cfg = load_trial_config({"data": {"name": "digits"}, "train": {"device": "cpu", "threads": 1}, "seed": seed})
    loop = build_loop(cfg)
    return collapse_check(loop.pair, loop.splits, loop.transform, contextlib.nullcontext())["z_std"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--variants", default="smoke")
    ap.add_argument("--seeds", default="0")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.variants.split(","):
        for seed in seeds:
            t0 = time.time()
            if name == "init0":
                print(json.dumps({"variant": name, "seed": seed, "z_std": round(untrained(seed), 4)}), flush=True)
                continue
            INIT["mode"] = name if name.startswith("wp_") else None
            cfg = {**SMOKE, **VARIANTS[name], "train.epochs": args.epochs, "eval.every": args.epochs, "seed": seed}
            df = ablate.run_trial(None, cfg)
            z = df.sort_values("epoch")[["epoch", "z_std"]].values.tolist()
            last = df[df.is_final].iloc[0]
            line = {
                "variant": name,
                "seed": seed,
                "epochs": args.epochs,
                "z": [[int(e), round(float(v), 3)] for e, v in z],
                "probe": round(float(last.probe_top1_best), 4),
                "knn": round(float(last.knn_top1), 4),
                "s": round(time.time() - t0, 1),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
