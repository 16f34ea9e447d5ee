"""Ray lives here and nowhere else: the driver of ``ablate run`` (Ray Tune), the trainable each trial runs in,
resources, checkpoints, trackers and progress."""
