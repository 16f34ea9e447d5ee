"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel of this environment's Python, so
the example cannot rot; and it is stored with the outputs of such a run (``jupyter execute --inplace``),
so a reader on GitHub sees the collapse contrast it shows: no predictor collapses, an MLP one does not."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
KERNEL = "ablate-test-python"


def test_the_notebook_is_stored_with_outputs_that_show_the_collapse_contrast():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # one run, top to bottom
    assert all(c.outputs for c in code[1:-1])  # every cell after the imports up to the clean-up shows something
    shows_the_collapse_contrast(nb)


def shows_the_collapse_contrast(nb: nbformat.NotebookNode) -> None:
    """The run cell keeps what it printed before the run (Tune's notebook reporter would clear it);
    the table marks the arm without a predictor collapsed (z_std < 0.1, ‡) and not the MLP arm."""
    run = [o for o in outputs(nb, "run") if o.output_type == "stream"]
    assert run and run[0].text.startswith("['predictor=none"), run[:1]
    assert not [o for o in outputs(nb, "run") if o.output_type == "display_data"]
    printed = "".join(o.text for o in outputs(nb, "table") if o.output_type == "stream")
    rows = {line.split()[0]: line for line in printed.splitlines() if line.startswith("predictor=")}
    assert rows["predictor=none"].endswith("‡") and not rows["predictor=mlp"].endswith("‡"), printed


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec of this very interpreter (the venv's python) in a private Jupyter path: no
    ``python3`` spec installed elsewhere on the machine can stand in for it, and nothing is installed."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # the kernel's profile, not the user's
    return KERNEL


def outputs(nb: nbformat.NotebookNode, tag: str) -> list[dict]:
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell.outputs


@pytest.mark.slow  # a kernel and a real Ray Tune run of 4 small trials (2 min 30 s on a busy 2-core machine)
def test_the_quickstart_notebook_runs_and_shows_a_table_a_figure_and_a_comparison(kernel):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, where a cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    shows_the_collapse_contrast(nb)
    table = outputs(nb, "table")
    printed = "".join(o.text for o in table if o.output_type == "stream")
    assert "no EMA (tau 0)" in printed and "(n=2)" in printed
    shown = [o for o in table if o.output_type == "execute_result"]
    assert shown and "<table" in shown[0].data["text/html"]
    assert any("image/png" in o.get("data", {}) for o in outputs(nb, "figure"))  # the Figure, drawn inline
    compared = "".join(o.text for o in outputs(nb, "compare") if o.output_type == "stream")
    assert "Welch t" in compared and "95% CI" in compared
