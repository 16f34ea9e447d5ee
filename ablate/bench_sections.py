"""The sections of ``ablate bench`` (see :mod:`ablate.bench` for what each compares and why).

Every section returns a list of :class:`ablate.bench.Figure`. Ours is always the real code path a
sweep runs (``BatchAugment``, ``build_loop`` + ``train_epoch``, ``evaluate``, ``run_sweep``); the
baseline is the plain way of doing the same work, built from the same model, images and recipe.
"""
from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ablate.bench import BenchContext, Figure, Target, cuda_sync, interleave, median

# ---------------------------------------------------------------- shared helpers


def trial_tree(config: dict, ctx: BenchContext, **dotted: Any) -> dict:
    """The sparse trial mapping ``config`` on the bench's device and threads, plus dotted overrides."""
    from ablate.configtree import merge

    keys = {"train.device": ctx.device, "train.threads": ctx.threads if ctx.device == "cpu" else 0,
            "train.epochs": 1, **dotted}
    return merge(config, keys)


def make_loop(config: dict, ctx: BenchContext, **dotted: Any):
    """A trial loop (:func:`ablate.trial.build_loop`) of ``config``; restores the bench's torch threads."""
    from ablate.config import load_trial_config
    from ablate.trial import build_loop

    loop = build_loop(load_trial_config(trial_tree(config, ctx, **dotted)))
    torch.set_num_threads(ctx.threads)
    return loop


def random_splits(device: torch.device | str, n_pretrain: int, n_train: int, n_test: int, size: int = 96,
                  channels: int = 3, recipe: str = "stl10", seed: int = 0):
    """STL-10-shaped splits of random uint8 images on ``device`` (the cost of training and
    evaluation does not depend on the pixels): ``n_pretrain`` unlabeled+train images, the probe's
    train split a view of their first ``n_train`` rows (as :func:`ablate.data.load_stl10` lays it
    out), ``n_test`` test images, 10 classes."""
    from ablate.data import Splits, TensorImageSet

    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    pre = torch.randint(0, 256, (n_pretrain, channels, size, size), generator=gen, device=device, dtype=torch.uint8)
    test = torch.randint(0, 256, (n_test, channels, size, size), generator=gen, device=device, dtype=torch.uint8)
    y_train = torch.randint(0, 10, (n_train,), generator=gen, device=device)
    y_test = torch.randint(0, 10, (n_test,), generator=gen, device=device)
    y_pre = torch.cat([y_train, torch.full((n_pretrain - n_train,), -1, dtype=torch.long, device=device)])
    return Splits(TensorImageSet(pre, y_pre), TensorImageSet(pre[:n_train], y_train), TensorImageSet(test, y_test),
                  10, channels, size, recipe)


def per_unit(runs: list[float], units: float) -> list[float]:
    return [r / units for r in runs]


def rate(runs: list[float], units: float) -> list[float]:
    return [units / r for r in runs]


# ---------------------------------------------------------------- 1. augmentation


class PerSampleDataset(torch.utils.data.Dataset):
    """The usual worker-side pipeline: one ``torchvision.transforms.v2`` call per image."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def bench_augment(ctx: BenchContext) -> list[Figure]:
    """Our batched STL-10 recipe (per-image parameters, on the device) vs torchvision's per-sample
    transforms in a DataLoader with ``threads`` workers, over the same random 96x96 uint8 images,
    one view per image on both sides. On CUDA the baseline's batches are pinned and copied to the
    device, as a GPU trial would need them."""
    from torch.utils.data import DataLoader

    from ablate.augment import build_augment, torchvision_transform

    s = ctx.sizes
    dev = torch.device(ctx.device)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (s.aug_images, 3, s.aug_size, s.aug_size), generator=gen, dtype=torch.uint8)
    on_dev = images.to(dev)
    aug = build_augment("stl10", s.aug_size, 3)
    aug_gen = torch.Generator(device=dev).manual_seed(1)
    workers = s.aug_workers if s.aug_workers is not None else ctx.threads

    def ours() -> None:
        for i in range(0, on_dev.shape[0], s.aug_batch):
            aug(on_dev[i:i + s.aug_batch], aug_gen, view=0)  # (B, 3, S, S) float

    held = {"loader": DataLoader(PerSampleDataset(images, torchvision_transform("stl10", s.aug_size, 3)),
                                 batch_size=s.aug_batch, num_workers=workers, persistent_workers=workers > 0,
                                 pin_memory=dev.type == "cuda")}

    def baseline() -> None:
        for x in held["loader"]:
            if dev.type == "cuda":
                x.to(dev, non_blocking=True)

    try:
        runs = interleave({"ours": ours, "baseline": baseline}, s.repeats, s.warmup, cuda_sync(dev))
    finally:
        held.clear()  # the last reference: stops the persistent workers
    n = s.aug_images
    return [Figure("augment", f"STL-10 recipe, {s.aug_size}px, one view", n / median(runs["ours"]),
                   n / median(runs["baseline"]), "img/s", Target("ratio", ">=", 3.0, "ratio >= 3"),
                   note=f"baseline: torchvision v2 per sample, DataLoader with {workers} workers, batch {s.aug_batch}; "
                   f"ours: BatchAugment on {ctx.device}, batch {s.aug_batch}",
                   ours_runs=rate(runs["ours"], n), baseline_runs=rate(runs["baseline"], n))]


# ---------------------------------------------------------------- 2. training step


class PlainStep:
    """The textbook BYOL step (paper Sec. 2), written out by hand on a copy of the loop's model
    and one fixed batch: views x1, x2 by the same augmentation; z = online(x), p = W_p z,
    t = target(x) under no_grad; loss 2 - 2cos(p1, t2) + 2 - 2cos(p2, t1); torch's default SGD
    (one group); EMA W_a <- tau W_a + (1 - tau) W parameter by parameter. Linear predictor only:
    it is the baseline every variant's overhead is measured against."""

    def __init__(self, loop: Any) -> None:
        from ablate.trial import autocast_for

        cfg = loop.cfg
        pair = copy.deepcopy(loop.pair)
        self.online, self.target = pair.online, pair.target
        self.predictor = pair.predictor.linear  # nn.Linear(d, d): the linear predictor's W_p
        params = list(self.online.parameters()) + list(self.predictor.parameters())
        self.opt = torch.optim.SGD(params, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                   weight_decay=cfg.optim.weight_decay)
        self.tau = cfg.ema.tau
        self.x = next(iter(loop.splits.pretrain.batches(cfg.train.batch_size, shuffle=False, generator=None,
                                                        drop_last=True)))[0]  # (B, C, H, W) uint8
        self.augment = loop.augment
        self.gen = torch.Generator(device=loop.device).manual_seed(cfg.seed + 1)
        self.autocast = autocast_for(cfg, loop.device)
        self.channels_last = cfg.train.channels_last

    @staticmethod
    def loss_fn(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (2 - 2 * F.cosine_similarity(p.float(), t.float(), dim=-1)).mean()

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The symmetric BYOL loss of views x1, x2 (B, C, S, S)."""
        with self.autocast:
            z1, z2 = self.online(x1)[1], self.online(x2)[1]  # (B, d)
            p1, p2 = self.predictor(z1), self.predictor(z2)
            with torch.no_grad():
                t1, t2 = self.target(x1)[1], self.target(x2)[1]
        return self.loss_fn(p1, t2) + self.loss_fn(p2, t1)

    def step(self) -> None:
        x1, x2 = self.augment(self.x, self.gen, view=0), self.augment(self.x, self.gen, view=1)
        if self.channels_last:
            x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
        loss = self.loss(x1, x2)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for w_a, w in zip(self.target.parameters(), self.online.parameters()):
                w_a.mul_(self.tau).add_(w, alpha=1 - self.tau)

    def __call__(self, k: int) -> None:
        for _ in range(k):
            self.step()


def ours_steps(loop: Any, k: int) -> Callable[[], None]:
    """k steps of the real trial loop (``train_epoch`` capped at k steps: batching, lr schedule,
    augmentation, forward, predictor hooks, optimizer, EMA, loss accumulation, epoch-end read)."""
    from ablate.trial import train_epoch

    def run() -> None:
        loop.steps_per_epoch = k
        train_epoch(loop)

    return run


def describe_config(loop: Any) -> str:
    c = loop.cfg
    return (f"{c.model.trunk} on {c.data.name} {c.data.image_size or loop.splits.native_size}px, batch "
            f"{c.train.batch_size}, {c.train.precision}{', channels_last' if c.train.channels_last else ''}")


def bench_step(ctx: BenchContext) -> list[Figure]:
    """One BYOL step of the trial loop vs :class:`PlainStep` on the same model and batch size."""
    s = ctx.sizes
    loop = make_loop(s.step_config, ctx, **{"predictor": {"name": "linear"}})
    plain = PlainStep(loop)
    k = s.step_k
    runs = interleave({"ours": ours_steps(loop, k), "baseline": lambda: plain(k)}, s.repeats, s.warmup,
                      cuda_sync(loop.device))
    return [Figure("step", "BYOL step, linear predictor", median(runs["ours"]) / k, median(runs["baseline"]) / k,
                   "s/step", Target("ratio", "<=", 1.10, "ratio <= 1.10"),
                   note=f"{describe_config(loop)}; {k} steps per timed call",
                   ours_runs=per_unit(runs["ours"], k), baseline_runs=per_unit(runs["baseline"], k))]


# ---------------------------------------------------------------- 3. DirectPred


def directpred_update(loop: Any) -> Callable[[], None]:
    """DirectPred's own work in one step, isolated: F_hat <- rho F_hat + (1 - rho) E[f f^T] from
    the views' projections (Eq. 19), then W_p <- U diag(p) U^T from eigh(F_hat) (Eq. 18)."""
    b, d = loop.cfg.train.batch_size, loop.cfg.projector.out_dim
    gen = torch.Generator(device=loop.device).manual_seed(0)
    z1, z2 = (torch.randn(b, d, generator=gen, device=loop.device) for _ in range(2))  # (B, d)
    pred = copy.deepcopy(loop.pair.predictor)  # leave the loop's F_hat alone

    def run() -> None:
        pred.observe(z1, z2, z1, z2)
        pred.after_optimizer_step(pred.freq)  # a refresh step
    return run


def bench_directpred(ctx: BenchContext) -> list[Figure]:
    """The trial loop's step with DirectPred (F_hat EMA every step, eigh + W_p every freq steps)
    vs the same loop with the linear predictor (same model, data, batch); and DirectPred's
    update alone (no noise from the rest of the step) against the linear step."""
    s = ctx.sizes
    k = s.directpred_k
    loops = {"linear": make_loop(s.step_config, ctx, predictor={"name": "linear"}),
             "freq1": make_loop(s.step_config, ctx, predictor={"name": "directpred", "freq": 1}),
             "freq5": make_loop(s.step_config, ctx, predictor={"name": "directpred", "freq": 5})}
    fns = {name: ours_steps(lp, k) for name, lp in loops.items()}
    update = directpred_update(loops["freq1"])
    fns["update"] = lambda: [update() for _ in range(k)]
    runs = interleave(fns, s.directpred_repeats, s.warmup, cuda_sync(loops["linear"].device))
    base = median(runs["linear"]) / k
    note = f"{describe_config(loops['linear'])}; {k} steps per timed call"
    out = []
    for name, freq, target in (("freq1", 1, Target("ratio", "<=", 1.15, "ratio <= 1.15")), ("freq5", 5, None)):
        out.append(Figure("directpred", f"step, DirectPred freq {freq} vs linear", median(runs[name]) / k, base,
                          "s/step", target, note=note if freq == 1 else "",
                          ours_runs=per_unit(runs[name], k), baseline_runs=per_unit(runs["linear"], k)))
    out.append(Figure("directpred", "DirectPred update alone (F_hat EMA + eigh) vs linear step",
                      median(runs["update"]) / k, base, "s/step", None,
                      note="ratio = the extra cost of freq 1, without the noise of timing two full steps",
                      ours_runs=per_unit(runs["update"], k), baseline_runs=per_unit(runs["linear"], k)))
    return out


# ---------------------------------------------------------------- 4. evaluation


def bench_eval(ctx: BenchContext) -> list[Figure]:
    """One evaluation (feature extraction, 50-epoch linear probe, kNN, spectra) vs one training
    epoch of the same trial; the probe and the kNN alone (on cached features) say which dominates."""
    from ablate.evaluate import evaluate, extract, knn_top1, linear_probe
    from ablate.trial import autocast_for

    s = ctx.sizes
    loop = make_loop(s.eval_config, ctx)
    if s.eval_splits:
        loop.splits = random_splits(loop.device, *s.eval_splits)
    cfg, b = loop.cfg, loop.cfg.train.batch_size
    epoch_steps = len(loop.splits.pretrain) // b
    autocast = autocast_for(cfg, loop.device)
    train_epoch_fn = ours_steps(loop, epoch_steps)
    tr_y, _, tr_l = extract(loop.pair.online, loop.splits.probe_train, loop.transform, b, autocast)
    te_y, _, te_l = extract(loop.pair.online, loop.splits.probe_test, loop.transform, b, autocast)
    n_cls = loop.splits.num_classes
    fns = {
        "epoch": train_epoch_fn,
        "evaluate": lambda: evaluate(loop.pair, loop.splits, loop.transform, cfg.eval, b, cfg.seed, autocast),
        "probe": lambda: linear_probe(tr_y, tr_l, te_y, te_l, n_cls, cfg.eval, cfg.seed),
        "knn": lambda: knn_top1(tr_y, tr_l, te_y, te_l, n_cls, cfg.eval.knn_k, cfg.eval.knn_t),
    }
    runs = interleave(fns, s.eval_repeats, s.warmup, cuda_sync(loop.device))
    epoch = median(runs["epoch"])
    sizes = (f"{len(loop.splits.pretrain)} pretraining images ({epoch_steps} steps), "
             f"{len(loop.splits.probe_train)} probe-train, {len(loop.splits.probe_test)} test; "
             f"probe {cfg.eval.probe_epochs} epochs, kNN k={cfg.eval.knn_k}")
    return [Figure("eval", what, median(runs[key]), epoch, "s", None,
                   note=f"{describe_config(loop)}; {sizes}" if key == "evaluate" else "",
                   ours_runs=runs[key], baseline_runs=runs["epoch"])
            for key, what in (("evaluate", "evaluation (extract + probe + kNN) vs 1 epoch"),
                              ("probe", "linear probe alone vs 1 epoch"), ("knn", "kNN alone vs 1 epoch"))]


# ---------------------------------------------------------------- 5. orchestration

ORCH_SWEEP = """\
name: bench_orchestration
description: N trivial trials (1 step, 1 probe epoch) timing ablate run's overhead
base:
  kind: ssl
  data: {{name: digits}}
  model: {{trunk: convnet, width: 16}}
  projector: {{hidden_dim: 32, out_dim: 16}}
  train: {{epochs: 1, steps_per_epoch: 1, batch_size: 32, device: cpu, threads: 1}}
  eval: {{every: 1, probe_epochs: 1, spectra: false}}
seeds: [{seeds}]
resources: {{cpu: 1}}
"""


def ray_start_stop() -> None:
    """What every ``ablate run`` pays once: start a local Ray and stop it again."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.shutdown()


def bench_orchestration(ctx: BenchContext) -> list[Figure]:
    """N trivial trials through the real runner (:func:`ablate.runner.run_sweep`: Ray start,
    Tune scheduling, Parquet writes, Ray stop) vs :func:`ablate.trial.run_trial` on the same
    configs in a plain loop. Both sides are warmed up: the loop by one trial, the driver by
    importing Ray Tune (once per process, not per sweep).
    Overhead per trial = (sweep - loop) / N, N = 8 by default (the size of sweeps/smoke.yaml).
    Each sweep writes to a fresh folder, so nothing is skipped as already done.

    Full runs also time a sweep of 4N trials and Ray's start + stop alone, which splits the sweep
    into a fixed cost (Ray, the trial processes' imports) and a marginal cost per trial,
    (T(4N) - T(N)) / 3N: what each further trial of a large sweep costs. (Its spread is that of
    the fixed cost, about a second on a shared machine, over 3N trials.)"""
    from ablate.expand import expand
    from ablate.runner import run_sweep
    from ablate.sweep import load_sweep
    from ablate.trial import run_trial

    n = ctx.sizes.orch_trials
    more = 4 * n
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as tmp:
        sweeps = {}
        for size in (n, more) if not ctx.quick else (n,):
            path = Path(tmp) / f"sweep{size}.yaml"
            path.write_text(ORCH_SWEEP.format(seeds=", ".join(str(i) for i in range(size))))
            sweeps[size] = load_sweep(path)
        configs = [t.config for t in expand(sweeps[n])]
        calls = {"n": 0}

        def sweep_of(size: int) -> Callable[[], None]:
            def run() -> None:
                calls["n"] += 1
                summary = run_sweep(sweeps[size], storage=str(Path(tmp) / f"run{calls['n']}"), stream=io.StringIO())
                failures.extend(summary.failed.values())
            return run

        def baseline() -> None:
            for cfg in configs:
                run_trial(cfg, lambda row: None)
            torch.set_num_threads(ctx.threads)  # the trials set 1 thread

        run_trial(configs[0], lambda row: None)  # the loop's warm-up: imports, first-call costs
        torch.set_num_threads(ctx.threads)
        import ray.tune  # noqa: F401 - the driver's own imports (about a second) are paid once per process

        fns: dict[str, Callable[[], None]] = {"ours": sweep_of(n), "baseline": baseline}
        if not ctx.quick:
            fns.update(more=sweep_of(more), ray=ray_start_stop)
        runs = interleave(fns, ctx.sizes.orch_repeats, 0)
    if failures:
        raise RuntimeError(f"{len(failures)} trivial trials failed under ablate run: {failures[0]}")
    sweep_s, loop_s = median(runs["ours"]), median(runs["baseline"])
    target = Target("overhead", "<=", 2.0, "overhead <= 2 s/trial")
    out = [Figure("orchestration", f"sweep of {n} trivial trials, per trial", sweep_s / n, loop_s / n, "s/trial",
                  target, note="ours: run_sweep (Ray start, Tune, Parquet, Ray stop); baseline: run_trial in a loop",
                  ours_runs=per_unit(runs["ours"], n), baseline_runs=per_unit(runs["baseline"], n))]
    if "more" in runs:
        marginal = (median(runs["more"]) - sweep_s) / (more - n)
        out.append(Figure("orchestration", f"each further trial ({more} vs {n} trials)", marginal, loop_s / n,
                          "s/trial", target, note="(T(4N) - T(N)) / 3N: a trial on a reused actor, its placement "
                          "group, result logging, the Parquet write",
                          ours_runs=per_unit([m - o for m, o in zip(runs["more"], runs["ours"])], more - n)))
        out.append(Figure("orchestration", "fixed cost per sweep", sweep_s - n * marginal, float("nan"), "s", None,
                          note="T(N) - N x marginal: Ray start + stop, each trial process importing torch and Tune"))
        out.append(Figure("orchestration", "of which Ray start + stop", median(runs["ray"]), float("nan"), "s", None,
                          ours_runs=runs["ray"]))
    return out


# ---------------------------------------------------------------- 6. GPU


def bench_gpu(ctx: BenchContext) -> list[Figure]:
    if ctx.device != "cuda":
        return [Figure("gpu", "packing, peak memory, MFU", float("nan"), float("nan"), "", None, status="skipped",
                       note="needs CUDA: run `ablate bench --device cuda` on a GPU machine")]
    from ablate.bench_gpu import gpu_figures

    return gpu_figures(ctx)


SECTION_FUNCTIONS: dict[str, Callable[[BenchContext], list[Figure]]] = {
    "augment": bench_augment, "step": bench_step, "directpred": bench_directpred, "eval": bench_eval,
    "orchestration": bench_orchestration, "gpu": bench_gpu,
}
