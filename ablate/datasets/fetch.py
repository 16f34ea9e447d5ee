"""``ablate data fetch``: an official archive downloaded, verified and unpacked into the layout the loaders read.

Steps, each safe to interrupt: the archive is downloaded to ``<root>/<name>/<file>.part`` (resumed
by the next run), renamed to ``<file>`` when whole, checked against its md5 (a mismatch deletes it),
unpacked with tarfile's ``data`` filter into a hidden folder beside the target, checked with the
loaders' own validation, and only then renamed into place in one step: a crash never leaves a
half-unpacked dataset that a loader would accept. The archive is deleted once unpacked. A dataset
already in place that passes the check is not fetched again; one fetch per folder runs at a time.
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
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from ablate.datasets.check import CHECKS
from ablate.datasets.download import FULL_DISK, download, human, part_path
from ablate.datasets.progress import progress_bar
from ablate.datasets.registry import (
    ARCHIVES,
    IMAGENET_HOWTO,
    NOT_FETCHABLE,
    SUBFOLDER,
    Archive,
    archive_url,
    data_root,
    known,
)
from ablate.errors import DatasetError
from ablate.results.location import write_refusal

PARTIAL = ".{folder}.partial-"  # prefix of the hidden folder an archive is unpacked into
LOCK = ".fetch.lock"


def fetch(
    name: str, root: str | Path | None = None, *, mirror: str | None = None, stream: IO[str] | None = None
) -> Path:
    """Put dataset ``name`` into ``<root>/<name>`` and return that folder (a trial's ``data.root``).
    Notes and progress go to ``stream`` (default stderr)."""
    out = stream or sys.stderr

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    known(name, [*ARCHIVES, *NOT_FETCHABLE], "fetch")
    base = data_root(root)
    if name in NOT_FETCHABLE:
        say(IMAGENET_HOWTO.format(root=base / SUBFOLDER[name], base=base))
        raise DatasetError(
            f"data fetch {name}: ImageNet is not downloadable (image-net.org needs a login); prepare "
            f"{base / SUBFOLDER[name]} as explained above, then run: ablate data check imagefolder --root {base}"
        )
    archive = ARCHIVES[name]
    url = archive_url(archive, mirror)
    folder = base / SUBFOLDER[name]
    created = not folder.exists()
    writable_folder(folder, base)
    try:
        with fetch_lock(folder, name):
            if in_place(name, archive, folder):
                say(f"{archive.title} is already in {folder} and passes the check: nothing to fetch")
                return folder
            path = folder / archive.filename
            get_archive(archive, url, path, out, say)
            unpack(name, archive, path, folder)
            path.unlink()
            say(f"unpacked into {folder / archive.folder}; deleted the archive {path.name} ({human(archive.size)})")
            return folder
    finally:  # a failed first fetch leaves no empty folder for `ablate check` to take for the dataset
        if created and folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK}:
            shutil.rmtree(folder)


@contextmanager
def fetch_lock(folder: Path, name: str) -> Iterator[None]:
    """One fetch per dataset folder at a time (array jobs on a cluster may all start one): an flock
    on ``<folder>/.fetch.lock``, as ``ablate run`` locks a sweep; where the filesystem has no flock,
    no lock."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
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


def in_place(name: str, archive: Archive, folder: Path) -> bool:
    """Whether the dataset is already in ``folder`` and passes the check; an error when its folder
    is there but broken (it is the user's: moved aside by them, never deleted here)."""
    try:
        CHECKS[name](folder)
    except DatasetError as e:
        placed = folder / archive.folder
        if placed.exists():
            raise DatasetError(
                f"data fetch {name}: {placed} is there but is not a complete {archive.title} "
                f"({str(e).split(';')[0]}); move it aside (or delete it) and run the same command again"
            ) from None
        return False
    return True


def get_archive(archive: Archive, url: str, path: Path, out: IO[str], say) -> None:
    """A verified archive at ``path``: the one already there if its md5 matches, else downloaded."""
    from torchvision.datasets.utils import calculate_md5  # imports torchvision: only when a file is checked

    if path.is_file():
        if calculate_md5(path) == archive.md5:
            say(f"using the archive already in {path} (its checksum matches)")
            return
        path.unlink()
        say(f"{path} does not match its checksum: deleted it; downloading it again")
    part = part_path(path)
    check_space(archive, path.parent, part.stat().st_size if part.is_file() else 0)
    say(f"downloading {url} ({human(archive.size)}) to {part}")
    download(url, path, progress_bar(out, archive.filename), say)
    actual = calculate_md5(path)
    if actual != archive.md5:
        path.unlink()
        raise DatasetError(
            f"{path.name} from {url} does not match its checksum (md5 {actual}, expected {archive.md5}): the "
            "download is corrupt or the server sent another file; deleted it: run the same command again "
            "(or use another --mirror)"
        )
    say(f"checksum ok (md5 {actual})")


def check_space(archive: Archive, folder: Path, have: int) -> None:
    """Enough free space for the rest of the archive and its unpacked files, before a byte is downloaded."""
    need = archive.size - have + archive.unpacked
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DatasetError(
            f"data fetch: {folder} has {human(free)} free; {archive.title} needs {human(need)} (the "
            f"{human(archive.size)} archive, then {human(archive.unpacked)} unpacked); free space there or use "
            "--root DIR on a larger disk"
        )


def unpack(name: str, archive: Archive, path: Path, folder: Path) -> None:
    """Unpack ``path`` beside the target, check it, rename it into ``folder / archive.folder``."""
    prefix = PARTIAL.format(folder=archive.folder)
    for stale in folder.glob(prefix + "*"):  # left by a run that was killed while unpacking
        shutil.rmtree(stale, ignore_errors=True)
    tmp = folder / f"{prefix}{os.getpid()}"
    try:
        tmp.mkdir()
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter=lambda member, dest: _under(member, dest, archive.folder))
        CHECKS[name](tmp)
        os.rename(tmp / archive.folder, folder / archive.folder)
    except DatasetError as e:
        raise DatasetError(f"the unpacked {path.name} is not a valid {archive.title}: {e}") from None
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
