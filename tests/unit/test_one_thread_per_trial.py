"""The tests train with one thread per trial (tests/conftest.py says why): a trial config in a test
that asks for more, or a test process whose trials would take torch's default of every core, fails here."""

import os
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
THREADS = re.compile(r"""["']?threads["']?\s*[:=]\s*(\d+)|train\.threads=(\d+)|train__threads=(\d+)""")


def test_no_test_trial_asks_for_more_than_one_thread():
    found = [
        f"{path.relative_to(TESTS)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)}"
        for path in TESTS.rglob("*.py")
        if path.parts[len(TESTS.parts)] != "gpu"  # the GPU tests feed a GPU, not the 2 shared cores
        for text in [path.read_text()]
        for m in THREADS.finditer(text)
        if int(next(g for g in m.groups() if g)) > 1
    ]
    assert not found, found


def test_trials_that_name_no_threads_get_one():
    import torch

    assert os.environ.get("OMP_NUM_THREADS") == "1"
    assert torch.get_num_threads() == 1
