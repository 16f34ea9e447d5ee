"""ablate: ablation sweeps of non-contrastive SSL (BYOL, SimSiam, DirectPred) with Ray Tune.

The Python API (:mod:`ablate.api`) is re-exported here for notebooks::

    import ablate
    sweep = ablate.load_sweep("sweeps/smoke.yaml", train__epochs=2)
    summary = ablate.run(sweep)
    ablate.table(summary.results_dir)

Importing ``ablate`` is cheap: the API loads torch, pandas and Ray only when a function needs them.
The rooms, each a subpackage with one job, in the order data flows: ``config`` (what a trial is),
``sweep`` (which trials a sweep makes, its plugins), ``runner`` (Ray Tune runs them), ``kinds`` (one
record per kind of trial), ``train`` / ``theory`` (one trial), ``datasets`` (one record per dataset;
fetch and check the data on disk), ``models`` (networks, the predictors), ``results`` (rows in
Parquet), ``analysis`` (tables, figures, reports), ``benchmark``, ``cluster``.
"""

from ablate.api import *  # noqa: F403  (the API's names, listed once in its __all__)
from ablate.api import __all__ as __all__
