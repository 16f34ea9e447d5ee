"""One thread per trial in every test: on a shared 2-core machine a trial with two torch (OpenMP)
threads waits on the other jobs' cores and runs many times slower than with one. Trials that name
their threads (``train.threads``) keep them; the rest, here and in the processes the tests start (the
CLI, Ray's workers), get one through OMP_NUM_THREADS, which torch reads when it is first imported."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
