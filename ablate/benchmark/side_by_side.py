"""One small sweep through the real runner twice, side by side (the sections that measure what a sweep
setting saves: ``collapse``, ``prefix``)."""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.results.io import final_rows, read_rows
from ablate.results.layout import SweepDir
from ablate.runner.driver import run_sweep
from ablate.runner.session import preload_tune
from ablate.sweep.load import read_sweep

# the tiny digits network both sections train (a template for str.format: braces doubled)
TINY_BASE = """\
base:
  kind: ssl
  data: {{name: digits}}
  model: {{trunk: convnet, width: 16}}
  projector: {{hidden_dim: 32, out_dim: 16}}
  optim: {{lr: 0.05}}
  ema: {{init: copy}}
"""


def run_both(text: str, sides: Mapping[str, Mapping[str, Any]], index: str) -> dict[str, tuple[float, pd.DataFrame]]:
    """The sweep file ``text`` run once per side with that side's ``--set`` overrides: side -> (its wall
    seconds, its final rows indexed by ``index``). A failed trial raises (the figures would be wrong)."""
    preload_tune()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(text)
        for name, overrides in sides.items():
            sweep = read_sweep(path, dict(overrides))
            folder = SweepDir.of(sweep.name, Path(tmp) / name)
            t0 = time.perf_counter()
            summary = run_sweep(sweep, folder, stream=io.StringIO())
            if summary.failed:
                raise RuntimeError(f"a trial of {sweep.name} failed: {next(iter(summary.failed.values()))}")
            runs[name] = (time.perf_counter() - t0, final_rows(read_rows(folder)).set_index(index))
    return runs
