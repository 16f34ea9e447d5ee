"""Where a row came from: git commit of the checkout, library versions, device (computed once)."""
from __future__ import annotations

import functools
import json
import platform
import subprocess
from pathlib import Path

import torch

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
    # versions from package metadata, not by importing (importing torchvision alone takes a second)
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "ablate", "ray", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return json.dumps(out, sort_keys=True)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: torch.device | None = None) -> dict[str, object]:
    sha, dirty = git_state()
    return {"git_sha": sha, "git_dirty": dirty, "versions": versions(),
            "device": device_name(device) if device is not None else "cpu"}
