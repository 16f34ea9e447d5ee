"""Regenerate the pictures the docs show, as ablate makes them: the smoke sweep's table, figures and report.

    python docs/tools/pictures.py                    # or: make docs-pictures
    python docs/tools/pictures.py --storage DIR      # keep the results in DIR (a rerun resumes: nothing trains)

It runs the README's main job into a temporary folder (``ablate run sweeps/smoke.yaml --storage TMP``:
8 digits trials; 1 min 25 s on the shared 2-core development VM while other jobs ran, 2026-12-08),
then ``ablate table``, ``ablate plot`` and ``ablate report`` on it and a screenshot (another 30 s
there), and writes into docs/_static/smoke/ (committed, so
building the docs trains nothing):

    table.txt            ablate table results/smoke (the terminal table)
    z_std.png, accuracy.png, spectra_directpred.png   three of ablate plot's figures
    report.html          ablate report results/smoke (self-contained: figures embedded)
    report.png           the top of report.html as headless Chromium draws it (needs playwright + chromium)

Every command is the checkout's own ``python -m ablate.cli``; the ``ablate`` lines it ran are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
OUT = DOCS / "_static" / "smoke"
FIGURES = {  # ablate plot's file name -> the name the docs use
    "z_std.png": "z_std.png",
    "accuracy.png": "accuracy.png",
    "spectra_predictor-directpred_BYOL_EMA_0.996.png": "spectra_directpred.png",
}
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ablate(*args: str, capture: bool = False) -> str:
    print("$ ablate", " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args], cwd=REPO, env=env, check=True, text=True, capture_output=capture
    )
    return proc.stdout if capture else ""


def screenshot(html: Path, png: Path, width: int = 1100, height: int = 1400) -> bool:
    """The top of ``html`` drawn by headless Chromium into ``png``; False when no browser is at hand."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed: report.png left as it was")
        return False
    if not Path(CHROMIUM).exists():
        print(f"no {CHROMIUM}: report.png left as it was")
        return False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(html.as_uri())
        page.screenshot(path=str(png))
        browser.close()
    return True


def main(argv: list[str]) -> int:
    opts = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    opts.add_argument("--storage", help="results folder to run into (default: a temporary one, removed after)")
    args = opts.parse_args(argv)
    storage = Path(args.storage or tempfile.mkdtemp(prefix="ablate-docs-"))
    try:
        ablate("run", "sweeps/smoke.yaml", "--storage", str(storage), "--no-table")
        results = str(storage / "smoke")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "table.txt").write_text(ablate("table", results, capture=True))
        figures = storage / "_smoke" / "figures"
        ablate("plot", results, "--format", "png", "--out", str(figures))
        for made, name in FIGURES.items():
            shutil.copyfile(figures / made, OUT / name)
        ablate("report", results, "--out", str(OUT / "report.html"))
        screenshot(OUT / "report.html", OUT / "report.png")
    finally:
        if not args.storage:
            shutil.rmtree(storage, ignore_errors=True)
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))} in {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
