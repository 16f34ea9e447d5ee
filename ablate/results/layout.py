"""Where everything of a sweep lives: the one place that names files under ``<storage>/<sweep>/``.

``<storage>`` is ``--storage``, else the sweep file's ``storage:``, else ``results/``; it may be a path
or a pyarrow filesystem URI (:class:`ablate.results.location.Location`). Layout of one sweep's folder:

  ``<trial_id>.parquet``      that trial's rows (replaced atomically on every new row)
  ``_sweep.yaml``             the sweep file as it was run; ``_overrides.json`` its ``--set`` overrides
  ``_lock``                   held by the running ``ablate run`` (pid inside)
  ``_damaged/``               trial files no reader can use (damaged, or another sweep's), moved aside by ``run``
  ``_weights/<trial_id>/``    the trial's trunk weights (``trunk_final.pt``, ``trunk_epoch{N}.pt``)
  ``_ray/<sweep>/<trial_id>/`` Ray Tune's trial folder and checkpoints; ``_ray/_train/<trial_id>/`` Ray Train's
  ``_logs/``                  Ray's and Tune's logs
  ``_figures/``, ``_report.html`` / ``_report.md``   what ``ablate plot`` / ``ablate report`` write
  ``_tensorboard/``, ``_mlruns/``, ``_wandb/``        what the experiment trackers write
  ``_slurm/``                 the sbatch scripts and job logs of ``ablate submit``

Every name that is not results starts with ``_`` (or ``.``: temporary files), which Arrow's dataset
discovery skips, so the folder itself stays a clean Parquet dataset. Logs, trackers and SLURM files
are appended to line by line, which object stores cannot do: for a URI they go to a local folder
(:attr:`SweepDir.local_side`).
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ablate.provenance import REPO
from ablate.results.location import Location

DEFAULT_STORAGE = "results"
PAPER_FILE = REPO / "results" / "paper" / "directpred.csv"  # the paper's numbers, shipped with the code
BENCH_DIR = Path(DEFAULT_STORAGE) / "bench"  # `ablate bench` result files
TRIAL_SUFFIX = ".parquet"
SWEEP_FILE, OVERRIDES_FILE, LOCK_FILE = "_sweep.yaml", "_overrides.json", "_lock"
TRAIN_DIR = "_train"  # Ray Train runs inside _ray/ (sweep names never start with _)
FINAL_WEIGHTS = "trunk_final.pt"


def epoch_weights(epoch: int) -> str:
    return f"trunk_epoch{epoch}.pt"


def is_trial_file(name: str) -> bool:
    """A results file: ``<trial_id>.parquet``, not a hidden temporary or an ``_`` folder's file."""
    return name.endswith(TRIAL_SUFFIX) and not name.startswith((".", "_"))


def sweep_location_text(name: str, storage: "str | Path | None" = None) -> str:
    """``<storage>/<name>`` as the user wrote the storage (a relative path stays relative; a URI's
    query string stays at the end), for messages."""
    base, mark, query = str(storage or DEFAULT_STORAGE).partition("?")
    return f"{base.rstrip('/')}/{name}" + (f"?{query}" if mark else "")


def lone_trial_weights(out: "str | Path") -> Location:
    """Where ``ablate trial --out <dir>/<name>.parquet`` keeps its trunk weights: ``<dir>/_weights/<name>/``."""
    out = Path(out)
    return Location.parse(out.parent / "_weights" / out.stem)


def slurm_dir(name: str, storage: "str | Path | None" = None) -> Path:
    """Where ``ablate submit`` keeps its scripts and SLURM's job logs: ``<storage>/<name>/_slurm``, or
    ``results/<name>/_slurm`` of the submit directory for a URI (SLURM writes logs to a local, shared
    path). Worked out from the text alone: opening an s3:// filesystem would ask the network."""
    base = str(storage or DEFAULT_STORAGE)
    root = DEFAULT_STORAGE if "://" in base else base
    return Path(os.path.abspath(os.path.join(root, name, "_slurm")))


@dataclass(frozen=True)
class SweepDir:
    """One sweep's results folder (``loc``), and every path inside it."""

    loc: Location

    @classmethod
    def of(cls, name: str, storage: "str | Path | Location | None" = None) -> "SweepDir":
        """``<storage>/<name>``: the folder a sweep called ``name`` writes to."""
        return cls(Location.parse(storage or DEFAULT_STORAGE) / name)

    @classmethod
    def at(cls, where: "str | Path | Location") -> "SweepDir":
        """The results folder the user named (a path or a URI)."""
        return cls(Location.parse(where))

    @property
    def name(self) -> str:
        return self.loc.name

    def __str__(self) -> str:
        return str(self.loc)

    def display(self) -> Path | str:
        return self.loc.display()

    def has_sweep(self) -> bool:
        """Whether ``ablate run`` wrote this folder (it keeps the sweep file there)."""
        return self.sweep_file.exists()

    # -- what ablate run keeps
    def trial_file(self, trial_id: str) -> Location:
        return self.loc / f"{trial_id}{TRIAL_SUFFIX}"

    @property
    def sweep_file(self) -> Location:
        return self.loc / SWEEP_FILE

    @property
    def overrides_file(self) -> Location:
        return self.loc / OVERRIDES_FILE

    @property
    def lock_file(self) -> Location:
        return self.loc / LOCK_FILE

    @property
    def damaged(self) -> Location:
        return self.loc / "_damaged"

    def weights(self, trial_id: str) -> Location:
        return self.loc / "_weights" / trial_id

    # -- Ray's folders
    @property
    def ray_dir(self) -> Location:
        return self.loc / "_ray"

    @property
    def train_dir(self) -> Location:
        return self.ray_dir / TRAIN_DIR

    def checkpoint_roots(self, trial_id: str) -> list[Location]:
        """Every folder where a checkpoint of ``trial_id`` may be (Tune's trial folder, Train's run folder)."""
        return [self.ray_dir / self.name / trial_id, self.train_dir / trial_id]

    # -- what the analysis commands write
    @property
    def figures(self) -> Location:
        return self.loc / "_figures"

    def report(self, fmt: str) -> Location:
        return self.loc / ("_report.md" if fmt == "markdown" else "_report.html")

    # -- local files beside the results
    @property
    def local_side(self) -> Path:
        """The folder for files written line by line: the results folder itself when it is local,
        else a local temporary folder named after the sweep."""
        if self.loc.local is not None:
            return self.loc.local
        return Path(tempfile.gettempdir()) / f"ablate-{self.name}"

    @property
    def logs(self) -> Path:
        return self.local_side / "_logs"

    def tracker_dir(self, tracker: str) -> Path:
        """``_tensorboard``, ``_mlruns`` or ``_wandb``."""
        return self.local_side / {"tensorboard": "_tensorboard", "mlflow": "_mlruns", "wandb": "_wandb"}[tracker]

    def backup(self) -> "SweepDir":
        """Where ``--restart`` moves this folder: ``<name>.old-<time>`` beside it."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return SweepDir(self.loc.parent / f"{self.name}.old-{stamp}")
