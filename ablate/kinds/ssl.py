"""The ``ssl`` kind: one pretraining trial (BYOL / SimSiam / DirectPred, paper Sec. 2 and 5) with
linear-probe and kNN evaluation, the collapse monitor and the predictor's spectra (:mod:`ablate.train`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ablate.config.trial import TrialConfig
from ablate.datasets.records import DATASETS
from ablate.kinds.record import Prefix, TrialKind, register_kind
from ablate.models.predictors import PREDICTORS
from ablate.results.schema import Column

METRICS: list[Column] = [
    ("loss", pa.float64(), "mean training loss of the epoch (2 - 2cos per direction, summed over directions)"),
    ("knn_top1", pa.float64(), "kNN top-1 accuracy (k = eval.knn_k, cosine) on the test split"),
    ("probe_top1", pa.float64(), "linear-probe top-1 on the test split after the last probe epoch"),
    ("probe_top5", pa.float64(), "linear-probe top-5 after the last probe epoch"),
    ("probe_top1_best", pa.float64(), "best linear-probe top-1 over probe epochs (the paper's protocol)"),
    ("z_std", pa.float64(), "std of l2-normalised projections x sqrt(d): ~1 healthy, ~0 collapsed"),
    ("collapsed", pa.bool_(), "z_std < 0.1"),
    ("lr", pa.float64(), "trunk learning rate at the end of the epoch (derived)"),
    ("total_steps", pa.int64(), "steps the whole trial will take (derived)"),
    ("images_per_s", pa.float64(), "pretraining throughput of the epoch"),
    ("resumed_from_epoch", pa.int64(), "epoch of the checkpoint this trial last resumed from (null: never resumed)"),
    ("eig_align", pa.float64(), "mean over F's eigenvectors u_j of cos(W_p u_j, u_j) (Fig. 2); linear-type predictors"),
    ("commutator", pa.float64(), "||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3)"),
    ("f_eigs", pa.list_(pa.float64()), "eigenvalues of F_hat (descending)"),
    ("wp_eigs", pa.list_(pa.float64()), "eigenvalues of the symmetric part of W_p, in F's eigenbasis order"),
]


def run(config: TrialConfig, report, checkpointer=None, artifacts=None, progress=None) -> Any:
    from ablate.train.loop import pretrain  # torch's training stack: only where a trial trains

    return pretrain(config, report, checkpointer, artifacts, progress)


def estimate(sweep: Any) -> list[str]:
    """GPU (or host) memory per trial and the sweep's compute, counted on the meta device."""
    from ablate.train.cost import cost_line
    from ablate.train.memory import memory_line

    return [memory_line(sweep), cost_line(sweep)]


def length_dependence(cfg: TrialConfig) -> str | None:
    """Why the steps of a pretraining trial depend on its total length, None where they do not.

    A trial's length enters its steps only through the total step count K, and K is read only by
    the two schedules: the lr factor (:func:`ablate.train.optim.lr_factor`, cosine: 0.5 (1 + cos(pi
    (k - w) / (K - w)))) and the target's tau (:data:`ablate.models.pair.EMA_SCHEDULES`, cosine: BYOL's
    1 - (1 - tau)(cos(pi k / K) + 1) / 2). With both constant (the paper's STL-10 / CIFAR-10 recipe,
    Sec. 3 of the reference doc) the first E epochs of a longer trial ARE an E-epoch trial."""
    if cfg.optim.schedule != "constant":
        return f"optim.schedule: {cfg.optim.schedule} makes every step's lr depend on the total steps"
    if cfg.ema.schedule != "constant":
        return f"ema.schedule: {cfg.ema.schedule} makes every step's tau depend on the total steps"
    return None


def _total_steps(row: dict, long: TrialConfig, short: TrialConfig) -> dict:
    """A shorter trial's ``total_steps``: the same steps per epoch, its own epochs."""
    total = row.get("total_steps")
    return {"total_steps": None if total is None else total // long.train.epochs * short.train.epochs}


SSL = register_kind(
    TrialKind(
        name="ssl",
        doc="BYOL / SimSiam / DirectPred pretraining with linear-probe and kNN evaluation",
        Config=TrialConfig,
        run=run,
        metrics=METRICS,
        default_metric=("probe_top1_best", "max"),
        estimate=estimate,
        uses=lambda cfg: [(PREDICTORS, cfg.predictor.name), (DATASETS, cfg.data.name)],
        probe_metrics=("probe_top1_best", "probe_top1", "probe_top5"),
        gpu_share_key="train.gpu_memory_fraction",
        batch_size=lambda cfg: cfg.train.batch_size,
        epochs=lambda cfg: cfg.train.epochs,
        data=lambda cfg: cfg.data,
        prefix=Prefix(
            key="train.epochs",
            depends=length_dependence,
            # ablate.train.loop evaluates every eval.every epochs (and after the last)
            reports_at=lambda cfg, epoch: epoch % cfg.eval.every == 0 or epoch == cfg.train.epochs,
            for_length=_total_steps,
        ),
    )
)


def load_trial_config(mapping: Any = None, src: Any = None) -> TrialConfig:
    """Strictly build a pretraining trial's :class:`TrialConfig` from a sparse nested mapping."""
    return SSL.build(mapping, src)
