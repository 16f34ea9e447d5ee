"""Plugin sources the tests write: the shipped example predictor (renamed as a test needs) and a tiny
trial kind (a walk whose position is the step times seed + 1)."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_predictor" / "lowrank.py"


def lowrank(name: str = "lowrank") -> str:
    """The example low-rank predictor's source, registering predictor ``name``."""
    return EXAMPLE.read_text().replace('"lowrank"', f'"{name}"')


WALK = """\
from dataclasses import dataclass, field

import pyarrow as pa

from ablate.config.tree import doc
from ablate.kinds.record import TrialKind, register_kind


@dataclass(frozen=True)
class Walk:
    seed: int = field(default=0, metadata=doc("seed", min=0))
    steps: int = field(default=3, metadata=doc("steps", min=1))


def run(cfg, report, *_):
    for i in range(1, cfg.steps + 1):
        report({"epoch": i, "position": float(i * (cfg.seed + 1)), "is_final": i == cfg.steps})


register_kind(TrialKind("{name}", "a walk", Walk, run, [("position", pa.float64(), "where it is")], ("position", "max")))
"""


def walk(name: str = "walk") -> str:
    """The walk kind's source, registering kind ``name``."""
    return WALK.replace("{name}", name)
