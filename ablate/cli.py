"""The ``ablate`` command line: one argparse parser, and every command a thin call into :mod:`ablate.api`.

User mistakes (``UserError``) print one line ``ablate: error: ...`` and exit with code 2, never a
traceback. The API imports its rooms on use, so ``ablate --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate import api
from ablate.config.tree import parse_set
from ablate.errors import UserError
from ablate.results.layout import BENCH_DIR

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(fn: Command) -> Command:
    COMMANDS[fn.__name__.removeprefix("cmd_")] = fn
    return fn


# ---------------------------------------------------------------- running
@command
def cmd_trial(args: argparse.Namespace) -> int:
    try:
        df = api.run_trial(
            args.config, parse_set(args.sets), report=lambda row: print(format_row(row), flush=True), out=args.out
        )
    except UserError:
        raise
    except Exception as e:  # the trial failed: its rows and a failed row are in --out
        print(f"trial failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(df)} rows to {args.out}")
    return 0 if len(df) and df["status"].iloc[-1] == "ok" else 1


def format_row(row: dict) -> str:
    """One line per evaluated epoch."""

    def f(key: str, spec: str = ".3f") -> str:
        v = row.get(key)
        return "-" if v is None else format(v, spec)

    if row.get("status") != "ok":
        return f"epoch {row.get('epoch')}: {row.get('status')}: {row.get('error')}"
    return (
        f"epoch {row['epoch']:>3}  loss {f('loss')}  probe {f('probe_top1')} (best {f('probe_top1_best')})"
        f"  knn {f('knn_top1')}  z_std {f('z_std')}  {f('images_per_s', '.0f')} img/s  {f('wall_s', '.1f')}s"
    )


@command
def cmd_check(args: argparse.Namespace) -> int:
    print(api.check(args.sweep, parse_set(args.sets), validate_paths=not args.no_data, address=args.address))
    return 0


@command
def cmd_run(args: argparse.Namespace) -> int:
    from ablate.results.layout import SweepDir
    from ablate.runner.trackers import parse_log, tracker_notes

    log = parse_log(args.log) if args.log is not None else None
    keys = ("storage", "address", "max_concurrent", "restart", "shared_storage_ok", "tracking_uri")
    summary = api.run(args.sweep, parse_set(args.sets), log=log, **_pick(args, *keys))
    print(summary.describe())
    sweep, folder = summary.sweep, SweepDir.at(summary.results_dir)
    if not summary.interrupted and not summary.failed and sweep.table is not None and not args.no_table:
        print(api.table(folder.loc))
    if folder.loc.local is not None:
        for line in tracker_notes(log if log is not None else sweep.logging, folder, args.tracking_uri):
            print(line)
    return summary.exit_code


@command
def cmd_submit(args: argparse.Namespace) -> int:
    slurm = _pick(args, "nodes", "gpus_per_node", "time", "partition", "account", "grace", "max_requeues")
    if args.cpus_per_task is not None:
        slurm["cpus_per_task"] = args.cpus_per_task
    keys = ("storage", "sets", "max_concurrent", "shared_storage_ok", "dry_run")
    api.submit(args.sweep, sbatch_args=tuple(args.sbatch_args), **_pick(args, *keys), **slurm)
    return 0


@command
def cmd_bench(args: argparse.Namespace) -> int:
    from ablate.benchmark.suite import render_bench

    df = api.bench(**_pick(args, "quick", "device", "only", "out", "threads"))
    print(render_bench(df))
    print(f"wrote {df.attrs['path']}")
    return 0


# ---------------------------------------------------------------- analysis
@command
def cmd_status(args: argparse.Namespace) -> int:
    print(api.status(args.sweep, storage=args.storage))
    return 0


@command
def cmd_table(args: argparse.Namespace) -> int:
    paper = args.paper if args.paper not in (None, "") else False
    view = api.table(args.sweep, paper=paper, protocol=args.protocol, storage=args.storage)
    print(view.render(args.format))
    for note in view.notes:  # on stderr: `ablate table --format csv > t.csv` stays a CSV
        print(note, file=sys.stderr)
    return 0


@command
def cmd_plot(args: argparse.Namespace) -> int:
    for p in api.plot(args.sweep, args.out, formats=tuple(args.format.split(",")), storage=args.storage):
        print(p)
    return 0


@command
def cmd_report(args: argparse.Namespace) -> int:
    print(api.report(args.sweep, args.format, args.out, paper=False if args.no_paper else None, storage=args.storage))
    return 0


@command
def cmd_export(args: argparse.Namespace) -> int:
    from ablate.analysis.export import describe_export

    keys = ("mode", "to", "storage", "epoch", "head_classes")
    out = api.export_trunk(args.results, trial_id=args.trial, best=args.best, **_pick(args, *keys))
    print(describe_export(out, args.best or "probe_top1_best"))
    return 0


@command
def cmd_compare(args: argparse.Namespace) -> int:
    from ablate.analysis.compare import DEFAULT_METRIC, summary_lines

    metric = args.metric or DEFAULT_METRIC
    scale = args.scale if args.scale is not None else (100.0 if "top" in metric else 1.0)
    where, arms = parse_set(args.where), (parse_set(args.arm_a), parse_set(args.arm_b))
    if args.b is None:
        if not (arms[0] and arms[1]):
            raise UserError(
                "compare: give a second results folder, or two arms of one folder with --a KEY=VALUE and --b KEY=VALUE"
            )
        print(api.compare_arms(args.a, *arms, metric=metric, where=where, confidence=args.confidence).summary(scale))
        return 0
    if arms[0] or arms[1]:
        raise UserError("compare: --a/--b pick arms within ONE results folder; with two folders use --where")
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    labels = (Path(args.a).name, Path(args.b).name)
    result = api.compare_sweeps(args.a, args.b, metric, where=where, by=by, confidence=args.confidence, labels=labels)
    print("\n".join(summary_lines(result, by, scale)))
    return 0


def _pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed flags ``names`` as keyword arguments of the API call they go to."""
    return {name: getattr(args, name) for name in names}


# ---------------------------------------------------------------- parser
def opt(flag: str, help: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    """One argument of a command: its flag (or positional name), help and argparse keywords."""
    return flag, {"help": help, **kw}


# fmt: off
FLAG = {"action": "store_true"}
SOURCE = opt("sweep", "sweep file or results folder (a path or a URI)")
SETS = opt("--set", "override a config key by its dotted path, e.g. --set optim.lr=0.05 (repeatable)",
           dest="sets", action="append", default=[], metavar="KEY=VALUE")
STORAGE = opt("--storage", "results location the sweep was run with (a path or a pyarrow URI)")
# command -> (help, description, arguments); the handler is cmd_<command>. A table, laid out by hand.
PARSERS: dict[str, tuple[str, str, list[tuple[str, dict[str, Any]]]]] = {
    "trial": ("run one pretraining trial in-process and write its rows to Parquet",
              "Run one pretraining trial in this process. Prints a line per evaluated epoch and writes the rows "
              "(results schema) to --out.", [
                  opt("config", "optional YAML file of config overrides (sparse trial config)", nargs="?"),
                  SETS, opt("--out", "Parquet file for the rows (default: trial.parquet)", default="trial.parquet")]),
    "check": ("validate a sweep file and print its trials, axes and resources",
              "Validate a sweep file completely (keys, types, ranges, dataset paths) and print the number of trials, "
              "the axes and the resources per trial. Starts nothing.", [
                  SOURCE, SETS, opt("--no-data", "skip the dataset-path checks", **FLAG),
                  opt("--address", "also check the resources against this Ray cluster (auto or HOST:PORT)")]),
    "run": ("run a sweep with Ray Tune into results/<sweep>/ (resumes by default)",
            "Run every trial of the sweep that is not finished yet with Ray Tune and write results/<sweep>/ (a "
            "Parquet dataset). Running it again resumes.", [
                opt("sweep", "sweep file (or a results folder: the sweep it ran, into itself)"), SETS,
                opt("--max-concurrent", "at most N trials at once", type=int),
                opt("--address", "attach to an existing Ray cluster (auto or HOST:PORT)"),
                opt("--restart", "move the old results aside and start over", **FLAG),
                opt("--storage", "results location instead of results/: a path or a pyarrow URI (s3://bucket/x)"),
                opt("--shared-storage-ok", "accept storage not recognised as shared on a multi-node cluster", **FLAG),
                opt("--log", "trackers, comma-separated: tensorboard,mlflow,wandb (instead of the sweep's logging:)",
                    metavar="TRACKERS"),
                opt("--tracking-uri", "MLflow tracking URI (default: a SQLite store in the results)"),
                opt("--no-table", "do not print the table at the end", **FLAG)]),
    "status": ("show done / failed / diverged / missing trials of a sweep",
               "Show which trials of a sweep are done, failed (with their error), diverged, interrupted or missing, "
               "with their axis values.", [SOURCE, STORAGE]),
    "table": ("print a sweep's table in the paper's layout (mean ± std over seeds)",
              "Print the sweep's table (its table: block) from the final rows of every trial: mean ± std (n seeds) "
              "per cell; partial sweeps show what they have.", [
                  SOURCE, opt("--format", "output format (default: terminal)", default="terminal",
                              choices=["terminal", "markdown", "latex", "csv", "html"]),
                  opt("--paper", "add the paper's number and the difference to every cell (optionally: a reference "
                      "CSV)", nargs="?", const=True),
                  opt("--protocol", "probe protocol: best of probe epochs (the paper's, default) or final probe "
                      "epoch", choices=["best", "final"]), STORAGE]),
    "plot": ("write the sweep's figures (PNG and PDF)",
             "Accuracy and z_std vs epoch per arm (band over seeds), eigen-alignment and the spectra of F and W_p "
             "over training (paper Fig. 2).", [
                 SOURCE, opt("--out", "folder for the figures (default: results/<sweep>/_figures)"),
                 opt("--format", "comma-separated: png,pdf", default="png,pdf"), STORAGE]),
    "report": ("write one self-contained HTML (or Markdown) report of a sweep",
               "Table, figures, the sweep file and provenance (git sha, versions, device, wall time) in one file.", [
                   SOURCE, opt("--format", "self-contained HTML (figures embedded) or Markdown with a figures folder",
                               default="html", choices=["html", "markdown"]),
                   opt("--out", "output file (default: results/<sweep>/_report.html)"),
                   opt("--no-paper", "leave the paper's numbers out", **FLAG), STORAGE]),
    "submit": ("submit a sweep as a SLURM job (a Ray cluster over --nodes nodes running ablate run)",
               "Write an sbatch script that starts Ray on every node of the allocation (head on the first, workers on "
               "the others), runs `ablate run` against it and stops Ray; submit it with sbatch. Submitting again "
               "resumes: finished trials are skipped. The script and the job's log go to <storage>/<sweep>/_slurm/.", [
                   opt("sweep", "sweep file, or a results folder (resubmits exactly its trials)"),
                   opt("--slurm", "submit to SLURM (the only scheduler so far; the default)", **FLAG), SETS,
                   opt("--nodes", "nodes, one Ray runtime each (default 1)", type=int, default=1),
                   opt("--cpus-per-task", "CPUs per node for Ray (default: the sweep's resources.cpu)", type=int),
                   opt("--gpus-per-node", "GPUs per node (default 0: no GPU line)", type=int, default=0),
                   opt("--time", "time limit, e.g. 24:00:00 or 1-12:00:00 (default: the partition's)"),
                   opt("--partition", "SLURM partition"), opt("--account", "SLURM account to charge"),
                   opt("--storage", "results location all nodes see (default: the sweep's storage:, else results/)"),
                   opt("--shared-storage-ok", "trust that --storage is on a filesystem every node mounts, where ablate "
                       "cannot tell (multi-node runs otherwise refuse node-local storage)", **FLAG),
                   opt("--max-concurrent", "at most N trials at once (passed to ablate run)", type=int),
                   opt("--grace", "seconds before --time at which the sweep is stopped and saved (default 120; 0 = "
                       "none)", type=int, default=120),
                   opt("--max-requeues", "when --time runs out, requeue the job itself up to N times (default 0)",
                       type=int, default=0),
                   opt("--sbatch-arg", "extra #SBATCH option, e.g. --sbatch-arg=--qos=high (repeatable)",
                       dest="sbatch_args", action="append", default=[], metavar="--OPTION[=VALUE]"),
                   opt("--dry-run", "print the script; write and submit nothing", **FLAG)]),
    "bench": ("measure every cost of a sweep against a baseline (augmentation, step, DirectPred, evaluation, "
              "orchestration, GPU packing)",
              "Time each part of a sweep against a baseline measured in the same run (interleaved repeats, medians "
              "after warm-up; ratios hold on noisy shared machines). Prints one table and writes "
              "results/bench/bench-<time>-<device>.parquet.", [
                  opt("--quick", "small sizes: about a minute on 2 CPU cores (CI)", **FLAG),
                  opt("--device", "where ours runs (default: cuda when available)", default="auto",
                      choices=["auto", "cpu", "cuda"]),
                  opt("--only", "run only these sections: augment, step, directpred, eval, orchestration, gpu",
                      metavar="SECTION[,..]"),
                  opt("--out", f"folder for the Parquet file (default: {BENCH_DIR})", default=str(BENCH_DIR)),
                  opt("--threads", "torch threads for ours and DataLoader workers for the baseline (default: all "
                      "cores)", type=int)]),
    "export": ("write a trial's pretrained trunk as a plain state_dict (+ JSON sidecar)",
               "Write the final online trunk of one trial as a plain state_dict that loads with strict=True into "
               "torchvision.models.resnet18() (fc = Identity) or the trunk's own constructor, with a JSON sidecar "
               "holding the trial's config, final metrics, provenance and the lines that load it. Needs the trial's "
               "saved weights (save.weights: final, the default).", [
                   opt("results", "results folder of the sweep (results/<sweep>), or the sweep file"),
                   opt("--trial", "trial id, or a unique prefix of it (see ablate status)", metavar="ID"),
                   opt("--best", "the finished trial with the best final METRIC (give --trial or --best)",
                       metavar="METRIC"),
                   opt("--mode", "with --best: larger (max) or smaller (min) is better", default="max",
                       choices=["max", "min"]),
                   opt("--to", "output .pt file (default: trunk_<trial_id>.pt); the sidecar is <name>.json",
                       metavar="FILE"),
                   opt("--epoch", "export the weights saved after epoch N (save.weights: every)", type=int,
                       metavar="N"),
                   opt("--head-classes", "add a blank N-class fc (loads into an unmodified torchvision resnet)",
                       type=int, metavar="N"),
                   opt("--storage", "with a sweep file: the results location it was run with")]),
    "compare": ("is a gap real? Welch's t-test over seeds between two sweeps or two arms",
                "Difference of means over seeds with its confidence interval, Welch's t, dof and p. Two results "
                "folders: A - B (optionally per cell with --by). One folder with --a/--b: two arms of that sweep, "
                "each picked by config values. Each trial's final row counts once.", [
                    opt("a", "results folder (or .parquet file) of A"),
                    opt("b", "results folder of B (leave out to compare two arms of A with --a/--b)", nargs="?"),
                    opt("--metric", "result column to compare (default: probe_top1_best)", metavar="M"),
                    opt("--where", "keep only trials with this config value, on both sides (repeatable)",
                        action="append", default=[], metavar="KEY=VALUE"),
                    opt("--a", "config values of arm A within one folder (repeatable)", dest="arm_a",
                        action="append", default=[], metavar="KEY=VALUE"),
                    opt("--b", "config values of arm B within one folder (repeatable)", dest="arm_b",
                        action="append", default=[], metavar="KEY=VALUE"),
                    opt("--by", "comma-separated config keys: one test per cell (two folders)", metavar="KEY[,KEY]"),
                    opt("--confidence", "confidence level of the interval (default 0.95)", type=float, default=0.95,
                        metavar="C"),
                    opt("--scale", "display factor (default: 100 for accuracies, 1 otherwise)", type=float,
                        metavar="S")]),
}
EXAMPLES = {
    "export": "examples:\n  ablate export results/stl10_predictor --best probe_top1_best --to trunk.pt\n"
              "  ablate export results/smoke --trial 3f2a --to smoke_trunk.pt",
    "compare": "examples:\n  ablate compare results/stl10_predictor --a predictor.name=directpred --b predictor.name="
               "linear\n  ablate compare results/run1 results/run2 --metric knn_top1 --where predictor.name=directpred",
}
# fmt: on


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Ablation sweeps of BYOL / SimSiam / DirectPred pretraining: "
        "run a YAML sweep with Ray Tune, collect every trial in Parquet, regenerate the paper's tables.",
        epilog="A page per command with a worked example: docs/index.md. Start with: ablate run sweeps/smoke.yaml",
    )
    parser.add_argument("--version", action="version", version=f"ablate {version('ablate')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (short, long, arguments) in PARSERS.items():
        p = sub.add_parser(
            name,
            help=short,
            description=long,
            epilog=EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter if name in EXAMPLES else argparse.HelpFormatter,
        )
        for flag, kwargs in arguments:
            p.add_argument(flag, **kwargs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"ablate: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ablate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
