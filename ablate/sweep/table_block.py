"""The ``table:`` block of a sweep file: the layout of the paper-shaped table a sweep's results fill
(:mod:`ablate.analysis.tables` builds it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ablate.config.tree import doc


@dataclass(frozen=True)
class TableSpec:
    """The ``table:`` block of a sweep file: which config keys form rows / columns, which metric fills cells."""

    rows: tuple[str, ...] = field(default=(), metadata=doc("config keys (dotted) whose values form the table's rows"))
    cols: tuple[str, ...] = field(
        default=(), metadata=doc("config keys (dotted) whose values form the table's columns")
    )
    metric: str = field(default="probe_top1_best", metadata=doc("result column that fills the cells"))
    paper: str | None = field(
        default=None,
        metadata=doc(
            "id of the paper table in results/paper/ (e.g. table6); several: 'table5,table3' (first match wins)"
        ),
    )
    caption: str = field(
        default="",
        metadata=doc("caption text; {key} shows the values of a config key or column the cells hold: {train.epochs}"),
    )
    labels: dict = field(
        default_factory=dict,
        metadata=doc("display names: {'ema.tau=0.0': 'no EMA', 'ema.tau': 'EMA'}; 'k1=v1;k2=v2' labels a combination"),
    )
    scale: float = field(default=100.0, metadata=doc("multiply the metric for display (accuracy -> percent)"))
    top5: str | None = field(
        default=None, metadata=doc("second metric shown as Top-1 / Top-5 in each cell (Table 9: probe_top5)")
    )
    epochs: tuple[int, ...] = field(
        default=(),
        metadata=doc("with 'epoch' as a row/col axis: the epochs to show (Table 8 from one long run per seed)", min=0),
    )
    digits: int = field(default=2, metadata=doc("decimals shown", min=0, max=6))
    over_epochs: str = field(
        default="final",
        metadata=doc(
            "which pretraining epochs give a trial's value: final (its last row, the paper's tables), max (the "
            "best over every evaluated epoch: the authors' tools2/stats.py --topk_mean 1) or top<k>, e.g. top5 (the "
            "mean of the k best: that tool's default --topk_mean 5)"
        ),
    )

    def check(self) -> tuple[str, str] | None:
        if self.over_epochs not in ("final", "max") and not re.fullmatch(r"top[1-9][0-9]{0,5}", self.over_epochs):
            return "over_epochs", f"is {self.over_epochs!r}; choose final, max or top<k> (e.g. top5)"
        return None
