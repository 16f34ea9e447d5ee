"""Running a sweep on a cluster: ``ablate submit --slurm`` (an sbatch script that starts one Ray runtime
per node and runs ``ablate run`` against it) and the shared-storage rule for multi-node runs.

Nothing here imports Ray: the generated script starts Ray with its own CLI, and ``ablate run``
(:mod:`ablate.runner`) attaches to it with ``--address``.
"""
