"""Running a sweep on a SLURM cluster: ``ablate submit`` writes an sbatch script that starts one Ray runtime per
node and runs ``ablate run`` against it (Ray itself is started by its own CLI, never imported here)."""
