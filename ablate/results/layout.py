"""Where everything of a sweep lives: the one place that names files under ``<storage>/``.

``<storage>`` is ``--storage``, else the sweep file's ``storage:``, else ``results/``; it may be a path
or a pyarrow filesystem URI (:class:`ablate.results.location.Location`). A sweep has two folders side
by side:

``<storage>/<sweep>/``  the results: ``<trial_id>.parquet`` per trial (replaced atomically on every
new row) and nothing else, so every reader's one-liner for a folder of Parquet files reads it
(pandas, pyarrow.dataset, DuckDB and polars; polars and DuckDB descend into every subfolder and polars
refuses a folder holding any other kind of file).

``<storage>/_<sweep>/`` everything else (:attr:`SweepDir.companion`; sweep names never start with ``_``):

  ``sweep.yaml``              the sweep file as it was run; ``overrides.json`` its ``--set`` overrides
  ``plugins/<file>.py``       the sweep's plugin files as they were run (reading the folder loads these)
  ``lock``                    held by the running ``ablate run`` (an flock; pid inside); on an object
                              store ``lock.<token>``, one per run, with a heartbeat (:mod:`ablate.results.objectlock`)
  ``progress.json``           the running ``ablate run``'s trials: state, epoch, images/s (for ``ablate status``)
  ``damaged/``                trial files no reader can use (damaged, or another sweep's), moved aside by ``run``
  ``weights/<trial_id>/``     the trial's trunk weights (``trunk_final.pt``, ``trunk_epoch{N}.pt``)
  ``ray/<sweep>/<trial_id>/`` Ray Tune's trial folder and checkpoints; ``ray/_train/<trial_id>/`` Ray Train's
  ``logs/``                   Ray's and Tune's logs
  ``figures/``, ``report.html`` / ``report.md``   what ``ablate plot`` / ``ablate report`` write
  ``tensorboard/``, ``mlruns/``, ``wandb/``        what the experiment trackers write
  ``slurm/``                  the sbatch scripts and job logs of ``ablate submit``

Logs, trackers and SLURM files are appended to line by line, which object stores cannot do: for a URI
they go to a local folder (:attr:`SweepDir.local_side`).
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
COMPANION_MARK = "_"  # <storage>/_<sweep>/ holds what is not results; sweep names never start with it
SWEEP_FILE, OVERRIDES_FILE, LOCK_FILE = "sweep.yaml", "overrides.json", "lock"
PROGRESS_FILE = "progress.json"
TRAIN_DIR = "_train"  # Ray Train runs inside ray/, beside Tune's ray/<sweep>/ (sweep names never start with _)
FINAL_WEIGHTS = "trunk_final.pt"
TRACKER_DIRS = {"tensorboard": "tensorboard", "mlflow": "mlruns", "wandb": "wandb"}


def epoch_weights(epoch: int) -> str:
    return f"trunk_epoch{epoch}.pt"


def is_trial_file(name: str) -> bool:
    """A results file: ``<trial_id>.parquet``, not a hidden temporary or an ``_`` file."""
    return name.endswith(TRIAL_SUFFIX) and not name.startswith((".", "_"))


def sweep_location_text(name: str, storage: str | Path | None = None) -> str:
    """``<storage>/<name>`` as the user wrote the storage (a relative path stays relative; a URI's
    query string stays at the end), for messages."""
    base, mark, query = str(storage or DEFAULT_STORAGE).partition("?")
    return f"{base.rstrip('/')}/{name}" + (f"?{query}" if mark else "")


def lone_trial_weights(out: str | Path) -> Location:
    """Where ``ablate trial --out <dir>/<name>.parquet`` keeps its trunk weights: ``<dir>/_<name>/weights/``,
    the file's companion beside it (as ``_<sweep>/`` is a sweep's), which a Parquet reader of ``<dir>`` skips."""
    out = Path(out)
    return Location.parse(out.parent / f"{COMPANION_MARK}{out.stem}" / "weights")


def slurm_dir(name: str, storage: str | Path | None = None) -> Path:
    """Where ``ablate submit`` keeps its scripts and SLURM's job logs: ``<storage>/_<name>/slurm``, or
    ``results/_<name>/slurm`` of the submit directory for a URI (SLURM writes logs to a local, shared
    path). Worked out from the text alone: opening an s3:// filesystem would ask the network."""
    base = str(storage or DEFAULT_STORAGE)
    root = DEFAULT_STORAGE if "://" in base else base
    return Path(os.path.abspath(os.path.join(root, f"{COMPANION_MARK}{name}", "slurm")))


@dataclass(frozen=True)
class SweepDir:
    """One sweep's results folder (``loc``), its companion folder, and every path inside them."""

    loc: Location

    @classmethod
    def of(cls, name: str, storage: str | Path | Location | None = None) -> SweepDir:
        """``<storage>/<name>``: the folder a sweep called ``name`` writes to."""
        return cls(Location.parse(storage or DEFAULT_STORAGE) / name)

    @classmethod
    def at(cls, where: str | Path | Location) -> SweepDir:
        """The results folder the user named (a path or a URI); naming its companion ``_<sweep>``
        (a folder that holds ``sweep.yaml``) names the sweep too."""
        loc = Location.parse(where)
        if loc.name.startswith(COMPANION_MARK) and (loc / SWEEP_FILE).exists():
            loc = loc.parent / loc.name.removeprefix(COMPANION_MARK)
        return cls(loc)

    @property
    def name(self) -> str:
        return self.loc.name

    def __str__(self) -> str:
        return str(self.loc)

    def display(self) -> Path | str:
        return self.loc.display()

    @property
    def companion(self) -> Location:
        """``<storage>/_<sweep>/``: everything of the sweep that is not a trial file."""
        return self.loc.parent / f"{COMPANION_MARK}{self.name}"

    def has_sweep(self) -> bool:
        """Whether ``ablate run`` wrote this folder (it keeps the sweep file in the companion)."""
        return self.sweep_file.exists()

    # -- what ablate run keeps
    def trial_file(self, trial_id: str) -> Location:
        return self.loc / f"{trial_id}{TRIAL_SUFFIX}"

    @property
    def sweep_file(self) -> Location:
        return self.companion / SWEEP_FILE

    @property
    def overrides_file(self) -> Location:
        return self.companion / OVERRIDES_FILE

    @property
    def plugins(self) -> Location:
        return self.companion / "plugins"

    @property
    def lock_file(self) -> Location:
        return self.companion / LOCK_FILE

    @property
    def progress_file(self) -> Location:
        return self.companion / PROGRESS_FILE

    @property
    def damaged(self) -> Location:
        return self.companion / "damaged"

    def weights(self, trial_id: str) -> Location:
        return self.companion / "weights" / trial_id

    # -- Ray's folders
    @property
    def ray_dir(self) -> Location:
        return self.companion / "ray"

    @property
    def train_dir(self) -> Location:
        return self.ray_dir / TRAIN_DIR

    def checkpoint_roots(self, trial_id: str) -> list[Location]:
        """Every folder where a checkpoint of ``trial_id`` may be (Tune's trial folder, Train's run folder)."""
        return [self.ray_dir / self.name / trial_id, self.train_dir / trial_id]

    # -- what the analysis commands write
    @property
    def figures(self) -> Location:
        return self.companion / "figures"

    def report(self, fmt: str) -> Location:
        return self.companion / ("report.md" if fmt == "markdown" else "report.html")

    # -- local files beside the results
    @property
    def local_side(self) -> Path:
        """The folder for files written line by line: the companion itself when it is local, else a
        local temporary folder named after the sweep."""
        if self.companion.local is not None:
            return self.companion.local
        return Path(tempfile.gettempdir()) / f"ablate-{self.name}"

    @property
    def logs(self) -> Path:
        return self.local_side / "logs"

    def tracker_dir(self, tracker: str) -> Path:
        """``tensorboard``, ``mlruns`` or ``wandb``."""
        return self.local_side / TRACKER_DIRS[tracker]

    def upgrade_layout(self) -> list[str]:
        """Move what an older ablate kept inside the results folder (``_sweep.yaml``, ``_weights/``,
        ``_ray/``... next to the trial files) to the companion, under its name without the ``_``;
        the names moved (none when the folder already has this layout). Nothing is deleted."""
        old = [c for c in self.loc.children() if c.name.startswith(COMPANION_MARK)] if self.loc.is_dir() else []
        if not any(c.name == COMPANION_MARK + SWEEP_FILE for c in old):
            return []
        self.companion.mkdir()
        for c in old:
            c.move_to(self.companion / c.name.removeprefix(COMPANION_MARK))
        return [c.name for c in old]

    def backup(self) -> SweepDir:
        """Where ``--restart`` moves this folder (and its companion): ``<name>.old-<time>`` beside it."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return SweepDir(self.loc.parent / f"{self.name}.old-{stamp}")
