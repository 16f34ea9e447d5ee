"""What every test runs under.

One thread per trial: on a shared 2-core machine a trial with two torch (OpenMP) threads waits on the
other jobs' cores and runs many times slower than with one. Trials that name their threads
(``train.threads``) keep them; the rest, here and in the processes the tests start (the CLI, Ray's
workers), get one through OMP_NUM_THREADS, which torch reads when it is first imported.

The registries as ablate ships them: a test that loads a plugin (a sweep naming one, a results folder
that kept one) registers its records in this process; they are undone after the test, so no other
test sees a plugin's predictor, dataset or kind (``ablate.config.registry.isolated``)."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def builtin_registries():
    import ablate.kinds.registry  # noqa: F401  (registers every built-in, once, before the snapshot)
    from ablate.config.registry import isolated

    with isolated():
        yield
