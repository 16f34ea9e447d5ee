"""Where a row came from: the git commit of the checkout, library versions and the device (computed once)."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def git_state() -> tuple[str, bool]:
    """(commit sha or 'unknown', whether tracked files have uncommitted changes)."""
    sha = _git("rev-parse", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return sha, dirty


@functools.cache
def versions() -> str:
    """JSON of the versions that decide a result, from package metadata: importing a package to
    ask (torchvision alone takes a second) would cost every trial process that much."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "ablate", "ray", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return json.dumps(out, sort_keys=True)


def device_name(device: Any) -> str:
    """``NVIDIA H100 80GB HBM3`` for a CUDA ``torch.device``, ``cpu (<processor>)`` otherwise."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: Any = None) -> dict[str, object]:
    """git sha, dirty flag, versions and the device name, for rows and benchmark records."""
    sha, dirty = git_state()
    return {
        "git_sha": sha,
        "git_dirty": dirty,
        "versions": versions(),
        "device": device_name(device) if device is not None else "cpu",
    }
