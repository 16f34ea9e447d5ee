"""Download progress: a tqdm bar on a terminal, plain lines (every 10%) in logs and pipes."""

from __future__ import annotations

from typing import IO

from ablate.datasets.download import human

LINE_STEP = 0.1  # plain lines: one per tenth of the file
LINE_BYTES = 100_000_000  # ... or per 100 MB when the server sends no length


class Lines:
    """Progress as plain lines, for output that is not a terminal (a SLURM log, a pipe)."""

    def __init__(self, stream: IO[str], label: str, total: int | None, start: int):
        self.stream, self.label, self.total, self.done = stream, label, total, start
        self.step = max(1, int(total * LINE_STEP)) if total else LINE_BYTES
        self.next = (start // self.step + 1) * self.step

    def update(self, n: int) -> None:
        self.done += n
        if self.done >= self.next:
            self.next = (self.done // self.step + 1) * self.step
            self._line()

    def _line(self) -> None:
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        of = f" of {human(self.total)}" if self.total else ""
        print(f"{self.label}: {human(self.done)}{of}{pct}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


def progress_bar(stream: IO[str], label: str):
    """A factory ``(total, start) -> bar`` for :func:`ablate.datasets.download.download`."""

    def make(total: int | None, start: int):
        if getattr(stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with optuna; without it, lines
                return Lines(stream, label, total, start)
            return tqdm(
                total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1000, desc=label, file=stream
            )
        return Lines(stream, label, total, start)

    return make
