"""ablate: ablation sweeps of non-contrastive SSL (BYOL, SimSiam, DirectPred) with Ray Tune.

The Python API (:mod:`ablate.api`) is re-exported here for notebooks::

    import ablate
    sweep = ablate.load_sweep("sweeps/smoke.yaml", train__epochs=2)
    summary = ablate.run(sweep)
    ablate.table(summary.results_dir)

Importing ``ablate`` is cheap: the API loads torch, pandas and Ray only when a function needs them.
"""
from ablate.api import (TableView, check, compare_arms, compare_sweeps, expand_sweep, export_trunk, figures,
                        load_exported, load_results, load_sweep, run, run_trial, table)

__all__ = ["load_sweep", "check", "expand_sweep", "run", "run_trial", "load_results", "table", "TableView",
           "figures", "compare_sweeps", "compare_arms", "export_trunk", "load_exported"]
