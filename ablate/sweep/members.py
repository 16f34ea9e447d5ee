"""Which trials found in a results folder are one expansion's: a folder may also hold the trials of
the same sweep run with other ``--set`` overrides (more seeds, other epochs), and every reader of the
folder shows one expansion at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ablate.errors import UserError
from ablate.sweep.expand import search_trial
from ablate.sweep.validated import Sweep


def membership(sweep: Sweep) -> Callable[[str, Mapping[str, Any]], bool]:
    """``belongs(trial_id, row)``: whether a trial found in the results (its id and one of its rows,
    config leaves as dotted columns) is one of this expansion's trials. A grid's trials are its
    expanded ids; a search's are the trials of this sweep whose config is the base with the searched
    keys set to the row's values (trial ids hash the whole config, so that check is exact)."""
    if sweep.search is None:
        ids = frozenset(t.trial_id for t in sweep.trials)
        return lambda trial_id, row: trial_id in ids
    keys = tuple(sweep.search.space)

    def belongs(trial_id: str, row: Mapping[str, Any]) -> bool:
        if row.get("search") != "optuna" or any(k not in row for k in keys):
            return False
        try:
            return search_trial(sweep, {k: _plain(row[k]) for k in keys}).trial_id == trial_id
        except UserError:  # sampled values this sweep's config would refuse: not one of its trials
            return False

    return belongs


def _plain(value: Any) -> Any:
    """A value read back from Parquet (numpy scalars) as the plain Python value a config holds."""
    return value.item() if hasattr(value, "item") else value
