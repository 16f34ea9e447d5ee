"""Is a results location visible from every node? The rule behind ``ablate submit --nodes N > 1``.

On a multi-node run the trials of one sweep run on different nodes: Ray Tune writes their
checkpoints under ``<storage>/_<sweep>/ray`` from whichever node a trial runs on, and a restarted
trial reads them back on another node, so the storage must be one filesystem that all nodes mount.
The rule (no guessing from names beyond the well-known node-local folders):

* a URI (``s3://...``, ``gs://...``): shared;
* a path under ``/tmp``, ``/var/tmp``, ``/dev/shm`` or ``/run``: node-local, whatever it is mounted as;
* any other path: shared iff the filesystem it lives on (the longest mount point in ``/proc/mounts``
  that contains it) has a network / cluster type from :data:`SHARED_FS_TYPES` (NFS, Lustre, GPFS,
  BeeGFS, CephFS, 9p, ...). ext4, xfs, btrfs, zfs, tmpfs, overlay, ... are local.

``--shared-storage-ok`` overrides the rule for a filesystem this module cannot recognise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ablate.errors import UserError
from ablate.results.location import Location

NODE_LOCAL_HINT = "point storage: (sweep file) or --storage at a filesystem every node mounts, or an s3:// / gs:// URI"
NODE_LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run")
# Filesystem types (as /proc/mounts spells them) that several nodes mount as one filesystem.
SHARED_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "cephfs",
        "fuse.ceph",
        "fuse.ceph-fuse",
        "9p",
        "cifs",
        "smb3",
        "smbfs",
        "glusterfs",
        "fuse.glusterfs",
        "panfs",
        "wekafs",
        "pvfs2",
        "orangefs",
        "afs",
        "ocfs2",
        "gfs2",
        "quobyte",
        "fuse.quobyte",
        "fuse.sshfs",
        "fuse.juicefs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.lizardfs",
        "fuse.mfs",
        "fuse.moosefs",
        "vastfs",
        "fuse.weka",
        "autofs",  # an automount point not mounted yet: automounted homes and projects are network mounts
    }
)


@dataclass(frozen=True)
class Mount:
    point: str  # e.g. /scratch
    fstype: str  # e.g. lustre


def parse_mounts(text: str) -> list[Mount]:
    """``/proc/mounts`` lines -> mounts (octal escapes such as ``\\040`` for a space decoded)."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
            mounts.append(Mount(point, parts[2]))
    return mounts


def read_mounts() -> list[Mount]:
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            return parse_mounts(f.read())
    except OSError:  # not Linux: no mount table; every path counts as of unknown type
        return []


def existing_realpath(path: str) -> str:
    """The real path of ``path``'s deepest existing ancestor plus the rest (storage may not exist yet)."""
    p = os.path.abspath(path)
    missing: list[str] = []
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p, tail = os.path.split(p)
        missing.insert(0, tail)
    return os.path.join(os.path.realpath(p), *missing)


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (an absolute, resolved path): the longest containing mount point."""
    best: Mount | None = None
    for m in mounts:
        if PurePosixPath(path).is_relative_to(m.point) and (best is None or len(m.point) >= len(best.point)):
            best = m  # later lines win ties: the last mount on a point is the visible one
    return best


def local_reason(path: str, mounts: list[Mount] | None = None) -> str | None:
    """Why ``path`` is not visible from every node, or None when it is shared (see the module rule).
    A ``file://`` URI is judged as the path it names; any other URI is shared."""
    if path.lower().startswith("file:"):
        path = str(Location.parse(path).local)  # local: nothing is asked of the network
    elif "://" in path:
        return None
    real = existing_realpath(path)
    for prefix in NODE_LOCAL_PREFIXES:
        for p in (os.path.abspath(path), real):
            if PurePosixPath(p).is_relative_to(prefix):
                return f"{prefix} is node-local"
    mount = mount_of(real, read_mounts() if mounts is None else mounts)
    if mount is None:
        return "its filesystem type is unknown (no /proc/mounts)"
    if mount.fstype in SHARED_FS_TYPES:
        return None
    return f"it is on a node-local {mount.fstype} filesystem (mounted at {mount.point})"


def check_shared_storage(storage: str, nodes: int, shared_ok: bool = False, mounts: list[Mount] | None = None) -> None:
    """Refuse a multi-node run whose results/checkpoints location not every node sees (UserError)."""
    if nodes <= 1 or shared_ok:
        return
    reason = local_reason(storage, mounts)
    if reason:
        raise UserError(
            f"--nodes {nodes} needs storage that every node sees, but {storage} is not shared ({reason}); "
            "point storage: in the sweep file or --storage at a shared filesystem (NFS, Lustre, GPFS, BeeGFS, "
            "CephFS, ...), or pass --shared-storage-ok if this path is mounted on every node anyway"
        )


def storage_problem(storage: str | Location) -> str | None:
    """Why ``storage`` (a path, a URI or a :class:`Location`) is NOT visible from every node of a
    cluster, or None when it is: :func:`local_reason` of its path. A ``file://`` URI is a path;
    a URI given as text is not opened (opening an s3:// filesystem asks the network for its region)."""
    if isinstance(storage, Location):
        return local_reason(str(storage.local) if storage.local is not None else str(storage))
    return local_reason(str(storage))
