"""Theory in the loop: the paper's linear-network dynamics (Lemma 1) as the ``linear_dynamics`` trial kind.

``DynamicsConfig`` is the trial config, ``run_linear_dynamics(cfg, report)`` the trial, ``THEORY_METRICS``
its result columns; :mod:`ablate.theory.plots` draws phase portraits, commutator decay and collapse maps.
"""
from ablate.theory.config import DynamicsConfig, basin_boundary, collapse_bound, load_dynamics_config
from ablate.theory.dynamics import Flow, run_linear_dynamics
from ablate.theory.metrics import THEORY_METRICS

__all__ = ["DynamicsConfig", "Flow", "THEORY_METRICS", "basin_boundary", "collapse_bound",
           "load_dynamics_config", "run_linear_dynamics"]
