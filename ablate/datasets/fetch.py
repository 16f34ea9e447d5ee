"""``ablate data fetch``: a dataset's official archive downloaded, verified and unpacked where its loader reads it.

Steps, each safe to interrupt: the archive (the record's :class:`~ablate.datasets.dataset.Archive`)
is downloaded to ``<root>/<folder>/<file>.part`` (resumed by the next run), renamed to ``<file>``
when whole, checked against its md5 (a mismatch deletes it), unpacked with tarfile's ``data``
filter into a hidden folder beside the target, checked with the record's own check, and only then
renamed into place in one step: a crash never leaves a half-unpacked dataset that a loader would
accept. The archive is deleted once unpacked. A dataset already in place that passes the check is
not fetched again; one fetch per folder runs at a time. Nothing is written through a link planted
in the folder (:mod:`ablate.datasets.safefiles`), and every note is one escaped line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import IO

from ablate.datasets.dataset import Dataset, data_root
from ablate.datasets.download import FULL_DISK, download, human, mirror_url, part_path, redact
from ablate.datasets.progress import progress_bar
from ablate.datasets.records import find
from ablate.datasets.safefiles import file_size, md5_of, open_to_write
from ablate.errors import DatasetError, UserError, printable
from ablate.results.location import write_refusal

PARTIAL = ".{folder}.partial-"  # prefix of the hidden folder an archive is unpacked into
LOCK = ".fetch.lock"


def fetch(
    name: str, root: str | Path | None = None, *, mirror: str | None = None, stream: IO[str] | None = None
) -> Path:
    """Put dataset ``name`` into ``<root>/<its folder>`` and return that folder (a trial's ``data.root``).
    Notes and progress go to ``stream`` (default stderr)."""
    out = stream or sys.stderr

    def say(line: str) -> None:
        print(printable(line), file=out, flush=True)

    record = find(name, "fetch")
    if not record.needs_root:
        raise UserError(f"data fetch {name}: the {record.title} needs no files ({record.layout}): nothing to fetch")
    base = data_root(root)
    folder = base / record.folder
    if record.archive is None:
        for line in record.howto.replace("{root}", str(folder)).replace("{base}", str(base)).splitlines():
            say(line)
        raise DatasetError(
            f"data fetch {name}: there is no archive to download for the {record.title} ({record.name}); prepare "
            f"{folder} as explained above, then run: ablate data check {record.name} --root {base}"
        )
    archive = record.archive
    url = mirror_url(archive.filename, mirror) or archive.url
    created = not folder.exists()
    writable_folder(folder, base)
    try:
        with fetch_lock(folder, name):
            if in_place(record, folder):
                say(f"{record.title} is already in {folder} and passes the check: nothing to fetch")
                return folder
            path = folder / archive.filename
            get_archive(record, url, path, out, say)
            unpack(record, path, folder)
            path.unlink()
            say(f"unpacked into {folder / archive.folder}; deleted the archive {path.name} ({human(archive.size)})")
            return folder
    finally:  # a failed first fetch leaves no empty folder for `ablate check` to take for the dataset
        if created and folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK}:
            with suppress(OSError):
                (folder / LOCK).unlink(missing_ok=True)
                folder.rmdir()


@contextmanager
def fetch_lock(folder: Path, name: str) -> Iterator[None]:
    """One fetch per dataset folder at a time (array jobs on a cluster may all start one): an flock
    on ``<folder>/.fetch.lock``, as ``ablate run`` locks a sweep; where the filesystem has no flock,
    no lock. The lock is a regular file of ablate's: a link planted there is refused, not followed."""
    fd = open_to_write(folder / LOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise DatasetError(
                f"data fetch {name}: another `ablate data fetch` is writing {folder} ({holder}); wait for it to "
                "finish, then run again"
            ) from None
        except OSError:  # no flock on this filesystem
            pass
        yield
    finally:
        os.close(fd)  # releases the flock


def writable_folder(folder: Path, base: Path) -> Path:
    """``folder``, created if missing; a one-line error when a file is in the way or it is not writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        problem = f"{blocker} is a file, not a folder" if blocker else (e.strerror or str(e))
        raise DatasetError(
            f"data fetch: cannot create {folder}: {problem}; give --root (or ABLATE_DATA) a folder you can write "
            "(it is created if missing)"
        ) from None
    if write_refusal(folder) is not None:
        raise DatasetError(
            f"data fetch: {folder} is not writable; give --root (or ABLATE_DATA) a folder you can write, "
            f"or fix its permissions (--root is now {base})"
        )
    return folder


def in_place(record: Dataset, folder: Path) -> bool:
    """Whether the dataset is already in ``folder`` and passes the check; an error when its folder
    is there but broken (it is the user's: moved aside by them, never deleted here)."""
    try:
        record.check(folder)
    except DatasetError as e:
        placed = folder / record.archive.folder
        if placed.exists() or placed.is_symlink():
            raise DatasetError(
                f"data fetch {record.name}: {placed} is there but is not a complete {record.title} "
                f"({str(e).split(';')[0]}); move it aside (or delete it) and run the same command again"
            ) from None
        return False
    return True


def get_archive(record: Dataset, url: str, path: Path, out: IO[str], say) -> None:
    """A verified archive at ``path``: the one already there if its md5 matches, else downloaded."""
    archive = record.archive
    if path.exists() or path.is_symlink():
        if md5_of(path) == archive.md5:
            say(f"using the archive already in {path} (its checksum matches)")
            return
        path.unlink()
        say(f"{path} does not match its checksum: deleted it; downloading it again")
    part = part_path(path)
    check_space(record, path.parent, file_size(part) or 0)
    say(f"downloading {redact(url)} ({human(archive.size)}) to {part}")
    download(url, path, progress_bar(out, archive.filename), say, archive.size)
    actual = md5_of(path)
    if actual != archive.md5:
        path.unlink()
        raise DatasetError(
            f"{path.name} from {redact(url)} does not match its checksum (md5 {actual}, expected {archive.md5}): the "
            "download is corrupt or the server sent another file; deleted it: run the same command again "
            "(or use another --mirror)"
        )
    say(f"checksum ok (md5 {actual})")


def check_space(record: Dataset, folder: Path, have: int) -> None:
    """Enough free space for the rest of the archive and its unpacked files, before a byte is downloaded."""
    archive = record.archive
    need = archive.size - have + archive.unpacked
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DatasetError(
            f"data fetch: {folder} has {human(free)} free; {record.title} needs {human(need)} (the "
            f"{human(archive.size)} archive, then {human(archive.unpacked)} unpacked); free space there or use "
            "--root DIR on a larger disk"
        )


def unpack(record: Dataset, path: Path, folder: Path) -> None:
    """Unpack ``path`` beside the target, check it, rename it into ``folder / archive.folder``."""
    archive = record.archive
    prefix = PARTIAL.format(folder=archive.folder)
    for stale in folder.glob(prefix + "*"):  # left by a run that was killed while unpacking
        shutil.rmtree(stale, ignore_errors=True)  # a link there is not followed: rmtree refuses links
    tmp = folder / f"{prefix}{os.getpid()}"
    try:
        tmp.mkdir()
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter=lambda member, dest: _under(member, dest, archive.folder))
        record.check(tmp)
        os.rename(tmp / archive.folder, folder / archive.folder)
    except DatasetError as e:
        raise DatasetError(f"the unpacked {path.name} is not a valid {record.title}: {e}") from None
    except OSError as e:
        if e.errno in FULL_DISK:
            raise DatasetError(
                f"disk full unpacking {path} ({human(archive.unpacked)} needed); nothing was put in place and the "
                "verified archive is kept: free space there and run the same command again (no new download)"
            ) from None
        raise DatasetError(f"cannot unpack {path} into {folder}: {e.strerror or e}") from None
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DatasetError(
            f"cannot unpack {path}: {e}; it is not the archive the loaders expect: delete it and run the same "
            "command again"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _under(member: tarfile.TarInfo, dest: str, top: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter (no absolute paths, no ``..``, no links out, no devices), and every
    member inside the archive's one top-level folder."""
    parts = [p for p in PurePosixPath(member.name).parts if p != "."]
    if not parts:  # the archive's own "./" entry
        return None
    if parts[0] != top:
        raise tarfile.FilterError(f"it holds {member.name!r}, outside its one folder {top}/")
    return tarfile.data_filter(member, dest)
