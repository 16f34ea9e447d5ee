"""The columns every row of a trial carries besides its metrics: identity, config leaves, provenance."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

from ablate.config import config_hash
from ablate.configtree import flatten, to_dict
from ablate.provenance import git_state, versions

Report = Callable[[dict[str, Any]], None]


def trial_columns(config: Any, kind: str, device: str) -> dict[str, Any]:
    """Identity + every config leaf (dotted) + provenance, for every row of one trial."""
    tree = to_dict(config)
    sha, dirty = git_state()
    cols = {k: v for k, v in flatten(tree).items() if k != "kind"}
    cols.update({
        "trial_id": config_hash(config), "kind": kind, "seed": getattr(config, "seed", 0),
        "status": "ok", "error": None, "is_final": False,
        "config_json": json.dumps(tree, sort_keys=True), "git_sha": sha, "git_dirty": dirty,
        "versions": versions(), "device": device,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return cols


def failed_row(config: Any, kind: str, error: str, device: str = "unknown") -> dict[str, Any]:
    """The one row a trial that raised leaves behind: status failed, with its error text."""
    return {**trial_columns(config, kind, device), "status": "failed", "error": error, "is_final": True}
