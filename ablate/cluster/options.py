"""What ``ablate submit --slurm`` asks SLURM for: :class:`SlurmOptions` and their validation.

Every check raises a one-line :class:`UserError`. Values that end up on ``#SBATCH`` lines (read by
sbatch, not by a shell) are restricted to safe characters, so none can start a new line or a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ablate.errors import UserError

SAFE_SBATCH_VALUE = re.compile(r"[A-Za-z0-9_.,:+@=/-]+")  # partition lists, accounts, qos, ...
SBATCH_ARG = re.compile(r"--[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.,:+@=/%&|*!-]+)?")
TIME_FORMATS = (
    "MINUTES",
    "MINUTES:SECONDS",
    "HOURS:MINUTES:SECONDS",
    "DAYS-HOURS",
    "DAYS-HOURS:MINUTES",
    "DAYS-HOURS:MINUTES:SECONDS",
)
MAX_SIGNAL_S = 65535  # sbatch --signal's largest time


def parse_time(value: str) -> int | None:
    """SLURM's ``--time`` (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``,
    ``UNLIMITED``) -> seconds, or None for unlimited. Raises UserError on anything else."""
    text = value.strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    hint = f"--time {value!r}: expected one of {', '.join(TIME_FORMATS)} (e.g. 24:00:00 or 1-12:00:00)"
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise UserError(hint)
    days, a, b, c = m.groups()
    fields = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        h, mi, s = (fields + [0, 0])[:3]
        total = int(days) * 86400 + h * 3600 + mi * 60 + s
        sub_fields = fields[1:]
    elif len(fields) == 3:  # HH:MM:SS
        h, mi, s = fields
        total, sub_fields = h * 3600 + mi * 60 + s, fields[1:]
    elif len(fields) == 2:  # MM:SS
        total, sub_fields = fields[0] * 60 + fields[1], fields[1:]
    else:  # MM
        total, sub_fields = fields[0] * 60, []
    if any(f >= 60 for f in sub_fields) or (days is not None and fields[0] >= 24):
        raise UserError(f"{hint}; minutes and seconds after a ':' are below 60, hours after a '-' below 24")
    if total <= 0:
        raise UserError(f"--time {value!r}: must be longer than 0")
    return total


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """A whole number (not a bool) >= minimum, else a one-line UserError naming the flag."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} {value!r}: expected a whole number >= {minimum}")


def _sbatch_value(name: str, value: str | None) -> None:
    if value is not None and not SAFE_SBATCH_VALUE.fullmatch(value):
        raise UserError(f"{name} {value!r}: only letters, digits and _ . , : + @ = / - are allowed in an #SBATCH value")


@dataclass(frozen=True)
class SlurmOptions:
    """What ``ablate submit --slurm`` asks SLURM for; validated on construction (UserError)."""

    nodes: int = 1
    cpus_per_task: int = 1  # = CPUs of each node's Ray runtime (one task per node)
    gpus_per_node: int = 0
    time: str | None = None  # SLURM time limit; None = the partition's default
    partition: str | None = None
    account: str | None = None
    grace: int = 120  # seconds before --time at which the sweep is stopped (0 = no early signal)
    max_requeues: int = 0  # requeue the job itself this many times when --time runs out
    sbatch_args: tuple[str, ...] = ()  # extra #SBATCH options, e.g. --qos=high, --exclusive

    def __post_init__(self) -> None:
        check_count("--nodes", self.nodes)
        check_count("--cpus-per-task", self.cpus_per_task)
        check_count("--gpus-per-node", self.gpus_per_node, 0)
        check_count("--max-requeues", self.max_requeues, 0)
        check_count("--grace", self.grace, 0)
        if self.grace > MAX_SIGNAL_S:
            raise UserError(f"--grace {self.grace}: SLURM signals at most {MAX_SIGNAL_S} s before the time limit")
        if self.time is not None:
            seconds = parse_time(self.time)
            if seconds is not None and self.grace and seconds <= self.grace:
                raise UserError(
                    f"--time {self.time} is not longer than --grace {self.grace} s (the sweep is stopped "
                    "that long before the limit); give a longer --time or a smaller --grace"
                )
        _sbatch_value("--partition", self.partition)
        _sbatch_value("--account", self.account)
        for arg in self.sbatch_args:
            if not SBATCH_ARG.fullmatch(arg):
                raise UserError(
                    f"--sbatch-arg {arg!r}: expected one long sbatch option such as --qos=high or "
                    "--exclusive (no spaces or quotes)"
                )
        if self.max_requeues and not self.grace:
            raise UserError("--max-requeues needs --grace > 0: the job requeues itself on the early signal")
