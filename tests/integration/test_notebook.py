"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel of this environment's Python, so
the example cannot rot; and it is stored without outputs, so its diffs stay small."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
KERNEL = "ablate-test-python"


def test_the_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


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


@pytest.mark.slow  # a kernel and a real Ray Tune run of 4 tiny trials (~30 s)
def test_the_quickstart_notebook_runs_and_shows_a_table_a_figure_and_a_comparison(kernel):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, where a cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    table = outputs(nb, "table")
    printed = "".join(o.text for o in table if o.output_type == "stream")
    assert "BYOL (EMA 0.996)" in printed and "no EMA (tau 0)" in printed and "(n=2)" in printed
    shown = [o for o in table if o.output_type == "execute_result"]
    assert shown and "<table" in shown[0].data["text/html"]
    assert any("image/png" in o.get("data", {}) for o in outputs(nb, "figure"))  # the Figure, drawn inline
    compared = "".join(o.text for o in outputs(nb, "compare") if o.output_type == "stream")
    assert "Welch t" in compared and "95% CI" in compared
