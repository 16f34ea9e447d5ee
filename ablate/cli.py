"""The ``ablate`` command line. Each subcommand is a thin layer over a library function.

User mistakes (``UserError``) print one line ``ablate: error: ...`` and exit with code 2, never a
traceback. Subcommands import their heavy modules lazily so ``ablate --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ablate.errors import UserError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[fn.__name__.removeprefix("cmd_")] = fn
    return fn


def add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by its dotted path, e.g. --set optim.lr=0.05 (repeatable)")


# ---------------------------------------------------------------- ablate trial
@command
def cmd_trial(args: argparse.Namespace) -> int:
    from ablate.config import TrialConfig, load_trial_config
    from ablate.configtree import Source, load_yaml, merge, parse_set
    from ablate.results import SSL_METRICS, schema_for, write_trial
    from ablate.rows import failed_row
    from ablate.store import ArtifactStore
    from ablate.trial import run_trial

    tree: dict = {}
    src = Source("--set")
    if args.config:
        tree, lines = load_yaml(args.config)
        if not isinstance(tree, dict):
            raise UserError(f"{args.config}: expected a mapping of config keys, e.g. 'optim: {{lr: 0.03}}'")
        src = Source(str(args.config), lines)
    tree = merge(tree, parse_set(args.sets))
    cfg = load_trial_config(tree, src)
    schema = schema_for(TrialConfig, SSL_METRICS)
    out = Path(args.out)
    rows: list[dict] = []

    def report(row: dict) -> None:
        rows.append(row)
        write_trial(out.parent, out.stem, rows, schema)  # after every row: a crash keeps what was done
        print(format_row(row), flush=True)

    if out.suffix != ".parquet":
        raise UserError(f"--out {out}: expected a .parquet file name, e.g. --out trial.parquet")
    try:
        run_trial(cfg, report, artifacts=ArtifactStore(out.parent / "_weights" / out.stem))
    except UserError:
        raise
    except Exception as e:  # the trial failed: keep its rows and record why
        rows.append(failed_row(cfg, "ssl", f"{type(e).__name__}: {e}"))
        write_trial(out.parent, out.stem, rows, schema)
        print(f"trial failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(rows)} rows to {out}")
    return 0 if rows and rows[-1]["status"] == "ok" else 1


def format_row(row: dict) -> str:
    """One line per evaluated epoch."""
    def f(key: str, spec: str = ".3f") -> str:
        v = row.get(key)
        return "-" if v is None else format(v, spec)

    if row.get("status") != "ok":
        return f"epoch {row.get('epoch')}: {row.get('status')}: {row.get('error')}"
    return (f"epoch {row['epoch']:>3}  loss {f('loss')}  probe {f('probe_top1')} (best {f('probe_top1_best')})"
            f"  knn {f('knn_top1')}  z_std {f('z_std')}  {f('images_per_s', '.0f')} img/s  {f('wall_s', '.1f')}s")


# ---------------------------------------------------------------- sweeps
def load(args: argparse.Namespace, validate_paths: bool = True):
    """The sweep named on the command line (a file, or a results folder: the sweep as it was run),
    with its ``--set`` overrides applied (:func:`ablate.api.load_sweep`)."""
    from ablate.api import load_sweep
    from ablate.configtree import parse_set

    return load_sweep(args.sweep, parse_set(getattr(args, "sets", [])), validate_paths=validate_paths)


@command
def cmd_check(args: argparse.Namespace) -> int:
    from ablate.expand import describe, expand

    sweep = load(args, validate_paths=not args.no_data)
    print(describe(sweep, [] if sweep.search else expand(sweep)))
    from ablate.memory import memory_line

    line = memory_line(sweep)
    if line:
        print(line)
    if args.address:
        from ablate.runner import _init_ray, check_feasible, results_location, trial_resources
        from ablate.store import log_dir

        _init_ray(args.address, log_dir(results_location(sweep), sweep.name))
        check_feasible(trial_resources(sweep))
        print(f"resources fit on the cluster at {args.address}")
    return 0


@command
def cmd_run(args: argparse.Namespace) -> int:
    from ablate.runner import run_sweep

    from ablate.trackers import parse_log, tracker_notes

    sweep = load(args)
    log = parse_log(args.log) if args.log is not None else None
    summary = run_sweep(sweep, address=args.address, max_concurrent=args.max_concurrent,
                        restart=args.restart, storage=args.storage, shared_storage_ok=args.shared_storage_ok,
                        log=log, tracking_uri=args.tracking_uri)
    done = summary.total - len(summary.failed)
    print(f"{sweep.name}: {summary.ran} trials run, {summary.skipped} already done, "
          f"{len(summary.failed)} failed -> {summary.results_dir}")
    for tid, err in summary.failed.items():
        print(f"  failed {tid}: {err.splitlines()[-1] if err else ''}")
    if summary.interrupted:
        print("interrupted: finished trials are saved; run the same command again to resume")
    elif not summary.failed and done and sweep.table is not None and not args.no_table:
        from ablate.tables import print_table

        print(print_table(summary.results_dir, sweep))
    if isinstance(summary.results_dir, Path):
        for line in tracker_notes(log if log is not None else sweep.logging, summary.results_dir, args.tracking_uri):
            print(line)
    return summary.exit_code


@command
def cmd_status(args: argparse.Namespace) -> int:
    from ablate.runner import results_dir
    from ablate.status import render_status, trial_states

    sweep = load(args, validate_paths=False)
    root = Path(args.sweep) if Path(args.sweep).is_dir() else results_dir(sweep, args.storage)
    print(render_status(trial_states(sweep, root), root))
    return 0


# ---------------------------------------------------------------- analysis
def results_root(args: argparse.Namespace, sweep) -> Path:
    """The results folder named on the command line, or the one the sweep file writes to."""
    from ablate.runner import results_dir

    return Path(args.sweep) if Path(args.sweep).is_dir() else results_dir(sweep, getattr(args, "storage", None))


@command
def cmd_table(args: argparse.Namespace) -> int:
    from ablate.tables import print_table

    sweep = load(args, validate_paths=False)
    paper = args.paper if args.paper not in (None, "") else None
    print(print_table(results_root(args, sweep), sweep, fmt=args.format, paper=paper or False,
                      protocol=args.protocol))
    return 0


@command
def cmd_plot(args: argparse.Namespace) -> int:
    from ablate.plots import plot_results

    sweep = load(args, validate_paths=False)
    paths = plot_results(results_root(args, sweep), sweep, Path(args.out) if args.out else None,
                         formats=tuple(args.format.split(",")))
    for p in paths:
        print(p)
    return 0


@command
def cmd_report(args: argparse.Namespace) -> int:
    from ablate.report import report_sweep

    sweep = load(args, validate_paths=False)
    out = report_sweep(results_root(args, sweep), sweep, args.format, Path(args.out) if args.out else None,
                       paper=False if args.no_paper else None)
    print(out)
    return 0


@command
def cmd_submit(args: argparse.Namespace) -> int:
    from ablate.cluster.slurm import cmd_submit as submit

    return submit(args)


@command
def cmd_bench(args: argparse.Namespace) -> int:
    from ablate.bench import cmd_bench as bench

    return bench(args)


@command
def cmd_export(args: argparse.Namespace) -> int:
    from ablate.export import cmd_export as export

    return export(args)


@command
def cmd_compare(args: argparse.Namespace) -> int:
    from ablate.compare import cmd_compare as compare

    return compare(args)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate", description="Ablation sweeps of BYOL / SimSiam / DirectPred pretraining: "
        "run a YAML sweep with Ray Tune, collect every trial in Parquet, regenerate the paper's tables.",
        epilog="A page per command with a worked example: docs/index.md. Start with: ablate run sweeps/smoke.yaml")
    from importlib.metadata import version

    parser.add_argument("--version", action="version", version=f"ablate {version('ablate')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("trial", help="run one pretraining trial in-process and write its rows to Parquet",
                       description="Run one pretraining trial in this process. Prints a line per evaluated "
                       "epoch and writes the rows (results schema) to --out.")
    p.add_argument("config", nargs="?", help="optional YAML file of config overrides (sparse trial config)")
    add_set(p)
    p.add_argument("--out", default="trial.parquet", help="Parquet file for the rows (default: trial.parquet)")

    p = sub.add_parser("check", help="validate a sweep file and print its trials, axes and resources",
                       description="Validate a sweep file completely (keys, types, ranges, dataset paths) and "
                       "print the number of trials, the axes and the resources per trial. Starts nothing.")
    p.add_argument("sweep", help="sweep file (or a results folder)")
    add_set(p)
    p.add_argument("--no-data", action="store_true", help="skip the dataset-path checks")
    p.add_argument("--address", help="also check the resources against this Ray cluster (auto or HOST:PORT)")

    p = sub.add_parser("run", help="run a sweep with Ray Tune into results/<sweep>/ (resumes by default)",
                       description="Run every trial of the sweep that is not finished yet with Ray Tune and write "
                       "results/<sweep>/ (a Parquet dataset). Running it again resumes.")
    p.add_argument("sweep", help="sweep file")
    add_set(p)
    p.add_argument("--max-concurrent", type=int, default=None, help="at most N trials at once")
    p.add_argument("--address", default=None, help="attach to an existing Ray cluster (auto or HOST:PORT)")
    p.add_argument("--restart", action="store_true", help="move the old results aside and start over")
    p.add_argument("--storage", default=None,
                   help="results location instead of results/: a path or pyarrow filesystem URI, e.g. s3://bucket/prefix")
    p.add_argument("--shared-storage-ok", action="store_true",
                   help="accept storage ablate does not recognise as shared on a multi-node cluster")
    p.add_argument("--log", default=None, metavar="TRACKERS",
                   help="experiment trackers, comma-separated: tensorboard,mlflow,wandb (overrides the sweep's logging:)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: a SQLite store in the results)")
    p.add_argument("--no-table", action="store_true", help="do not print the table at the end")

    p = sub.add_parser("status", help="show done / failed / diverged / missing trials of a sweep",
                       description="Show which trials of a sweep are done, failed (with their error), diverged, "
                       "interrupted or missing, with their axis values.")
    p.add_argument("sweep", help="sweep file or results folder")
    p.add_argument("--storage", default=None, help="results location the sweep was run with")

    p = sub.add_parser("table", help="print a sweep's table in the paper's layout (mean ± std over seeds)",
                       description="Print the sweep's table (its table: block) from the final rows of every "
                       "trial: mean ± std (n seeds) per cell; partial sweeps show what they have.")
    p.add_argument("sweep", help="sweep file or results folder")
    p.add_argument("--format", default="terminal", choices=["terminal", "markdown", "latex", "csv", "html"],
                   help="output format (default: terminal)")
    p.add_argument("--paper", nargs="?", const=True, default=None,
                   help="add the paper's number and the difference to every cell (optionally: a reference CSV)")
    p.add_argument("--protocol", choices=["best", "final"], default=None,
                   help="probe protocol: best of probe epochs (the paper's, default) or final probe epoch")
    p.add_argument("--storage", default=None, help="results location the sweep was run with")

    p = sub.add_parser("plot", help="write the sweep's figures (PNG and PDF)",
                       description="Accuracy and z_std vs epoch per arm (band over seeds), eigen-alignment and "
                       "the spectra of F and W_p over training (paper Fig. 2).")
    p.add_argument("sweep", help="sweep file or results folder")
    p.add_argument("--out", default=None, help="folder for the figures (default: results/<sweep>/_figures)")
    p.add_argument("--format", default="png,pdf", help="comma-separated: png,pdf")
    p.add_argument("--storage", default=None, help="results location the sweep was run with")

    p = sub.add_parser("report", help="write one self-contained HTML (or Markdown) report of a sweep",
                       description="Table, figures, the sweep file and provenance (git sha, versions, device, "
                       "wall time) in one file.")
    p.add_argument("sweep", help="sweep file or results folder")
    p.add_argument("--format", default="html", choices=["html", "markdown"],
                   help="self-contained HTML (figures embedded) or Markdown with a figures folder")
    p.add_argument("--out", default=None, help="output file (default: results/<sweep>/_report.html)")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's numbers out")
    p.add_argument("--storage", default=None, help="results location the sweep was run with")

    from ablate.bench import add_bench_parser
    from ablate.cluster.slurm import add_submit_parser
    from ablate.compare import add_compare_parser
    from ablate.export import add_export_parser

    for add in (add_submit_parser, add_bench_parser, add_export_parser, add_compare_parser):
        add(sub)
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
