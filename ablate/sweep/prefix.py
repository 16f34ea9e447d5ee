"""Epochs never paid for twice: trials that differ only in their length share one run.

Table 8 trains the same configuration for 100, 300 and 500 epochs. Where nothing in a run depends on
its total length (the kind record's :attr:`ablate.kinds.record.Prefix.depends`: for pretraining, a
constant lr and a constant EMA), the first 100 epochs of the 500-epoch trial ARE the 100-epoch trial:
same initial weights, same batches, same augmentations, same steps. So the longest trial of such a
group runs, and each shorter one is read from its rows and its weights at its own length
(:mod:`ablate.runner.readouts`). The shorter trial stays a trial of its own: its config (with its own
``train.epochs``) and trial_id are unchanged, so tables, status and resume treat it as a cell, and its
rows say where they came from (``derived_from``, the long trial's id).

The plan is pure: a function of the expanded trials and the kind's rule, made once at load time
(:func:`share`), with the lines ``ablate check`` prints about it (:func:`sharing_lines`).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ablate.config.tree import set_dotted, to_dict
from ablate.kinds.record import Prefix
from ablate.sweep.expand import Trial


def _length(rule: Prefix, trial: Trial) -> int:
    value: Any = to_dict(trial.config)
    for part in rule.key.split("."):
        value = value[part]
    return int(value)


def _without_length(rule: Prefix, trial: Trial) -> str:
    """What a trial is apart from its length: trials with the same value differ only in length."""
    tree = to_dict(trial.config)
    set_dotted(tree, rule.key, None)
    return json.dumps(tree, sort_keys=True, default=str)


def groups(rule: Prefix, trials: Sequence[Trial]) -> list[list[Trial]]:
    """The trials that differ only in their length, in groups of two or more, each longest first."""
    by_rest: dict[str, list[Trial]] = {}
    for t in trials:
        by_rest.setdefault(_without_length(rule, t), []).append(t)
    return [sorted(g, key=lambda t: -_length(rule, t)) for g in by_rest.values() if len(g) > 1]


def share(trials: Sequence[Trial], rule: Prefix | None, enabled: bool = True) -> tuple[list[Trial], list[str]]:
    """``trials`` with ``derived_from`` set on every one read from a longer trial's run, and the lines
    ``ablate check`` prints: which trials share, and why the others that differ only in length do not.

    A shorter trial is read from the longest of its group when nothing in that run depends on its
    length (``rule.depends``) and the long trial reports a full row at the shorter one's last epoch
    (``rule.reports_at``); ``enabled`` False (the sweep's ``share_prefix: false``) shares nothing."""
    if rule is None:
        return list(trials), []
    derived: dict[str, str] = {}
    apart: Counter[str] = Counter()
    read: dict[int, set[int]] = {}  # long length -> the lengths read from such trials
    for group in groups(rule, trials):
        longest, shorter = group[0], group[1:]
        n = _length(rule, longest)
        why = "share_prefix: false" if not enabled else rule.depends(longest.config)
        for t in shorter:
            e = _length(rule, t)
            if why is None and not rule.reports_at(longest.config, e):
                apart[f"the {n}-epoch trial has no evaluated row at epoch {e} ({rule.key}={e})"] += 1
            elif why is None:
                derived[t.trial_id] = longest.trial_id
                read.setdefault(n, set()).add(e)
            else:
                apart[why] += 1
    out = [dataclasses.replace(t, derived_from=derived[t.trial_id]) if t.trial_id in derived else t for t in trials]
    lines = []
    if derived:
        lengths = "; ".join(f"{', '.join(map(str, sorted(es)))} from {n}" for n, es in sorted(read.items()))
        lines += [
            f"{len(derived)} of {len(out)} trials are read from the first epochs of a longer trial of the same config "
            f"({rule.key} {lengths}); {len(out) - len(derived)} run",
            "nothing in those runs depends on their length (their rows and weights are kept at each length)",
        ]
    lines += [f"{n} trial{'s' * (n != 1)} differing only in {rule.key} run on their own: {w}" for w, n in apart.items()]
    return out, lines


def readouts_of(trials: Sequence[Trial], rule: Prefix | None) -> dict[str, list[tuple[int, Trial]]]:
    """long trial id -> [(length, shorter trial)] of the ``trials`` read from its run, shortest first."""
    out: dict[str, list[tuple[int, Trial]]] = {}
    for t in trials:
        if t.derived_from is not None and rule is not None:
            out.setdefault(t.derived_from, []).append((_length(rule, t), t))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in out.items()}
