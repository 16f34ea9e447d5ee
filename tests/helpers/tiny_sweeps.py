"""The tiny digits sweep the system tests run through real Ray (and SLURM): a trial is a few seconds,
most of it the Ray worker starting."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_BASE = """\
base:
  data: {name: digits}
  model: {width: 16}
  projector: {hidden_dim: 32, out_dim: 16}
  optim: {lr: 0.05}
  train: {epochs: 2, steps_per_epoch: 2, batch_size: 64, device: cpu, threads: 1}
  eval: {every: 1, probe_epochs: 2}
"""


def write_sweep(tmp_path: Path, name: str, body: str, base: str = TINY_BASE) -> Path:
    """``<tmp_path>/<name>.yaml``: ``name``, the ``base`` block, then ``body`` (dedented)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{base}{textwrap.dedent(body)}")
    return path
