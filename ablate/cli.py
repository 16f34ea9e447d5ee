# long: the parser table (every command's flags, laid out by hand) and the one guard of standard output
"""The ``ablate`` command line: one argparse parser, and every command a thin call into :mod:`ablate.api`.

User mistakes (``UserError``, and flags argparse refuses: a count below its minimum is refused while
parsing) print one line ``ablate: error: ...`` and exit with code 2, never a traceback. The API
imports its rooms on use, so ``ablate --help`` stays fast.

Standard output, for every command alike: a reader that goes away (``ablate status ... | head -2``)
ends the command quietly with exit code 141 (128 + SIGPIPE, as other Unix tools; a ``run`` so
stopped keeps every finished trial, and the same command resumes it); a write that fails otherwise
(``> /dev/full``) is one line ``ablate: error: cannot write to standard output: ...``, exit code 2;
a closed standard output (``ablate run ... >&-``) is treated as ``/dev/null``: the command runs,
its output is dropped, and the exit code says how it went.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ablate import api
from ablate.config.tree import parse_set
from ablate.errors import UserError
from ablate.results.layout import BENCH_DIR, lone_trial_weights

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
    except (UserError, StdoutError):  # a mistake, or stdout gone: main says so, not as the trial's failure
        raise
    except Exception as e:  # the trial failed: its rows and a failed row are in --out
        print(f"trial failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    weights = lone_trial_weights(args.out).local  # None for a URI
    if weights is not None and weights.is_dir():
        shown = weights if os.path.isabs(args.out) else os.path.relpath(weights)  # as --out was written
        print(f"wrote {len(df)} rows to {args.out}; the trunk weights to {shown}{os.sep}")
    else:
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
    print(summary.describe(resume=resume_command(args.argv)))
    sweep, folder = summary.sweep, SweepDir.at(summary.results_dir)
    if not summary.interrupted and not summary.failed and sweep.table is not None and not args.no_table:
        print(api.table(folder.loc))
    if folder.loc.local is not None:
        for line in tracker_notes(log if log is not None else sweep.logging, folder, args.tracking_uri):
            print(line)
    return summary.exit_code


def resume_command(argv: list[str]) -> str:
    """The command line that resumes an interrupted ``ablate run ARGV``, shell-quoted: the same one
    without ``--restart`` (or an abbreviation argparse took for it), which would move the finished
    trials aside and start over."""
    longs = [flag for flag, _ in PARSERS["run"][2] if flag.startswith("--")] + ["--help"]
    end = argv.index("--") if "--" in argv else len(argv)  # after "--" every word is an argument
    kept = [w for i, w in enumerate(argv) if i >= end or [f for f in longs if f.startswith(w)] != ["--restart"]]
    return shlex.join(["ablate", *kept])


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
    view = api.table(args.sweep, paper=paper, protocol=args.protocol, cost=args.cost, storage=args.storage)
    print(view.render(args.format))
    for note in view.notes:  # on stderr: `ablate table --format csv > t.csv` stays a CSV
        print(note, file=sys.stderr)
    return 0


@command
def cmd_plot(args: argparse.Namespace) -> int:
    for p in api.plot(
        args.sweep, args.out, formats=tuple(args.format.split(",")), protocol=args.protocol, storage=args.storage
    ):
        print(p)
    return 0


@command
def cmd_report(args: argparse.Namespace) -> int:
    paper = False if args.no_paper else None
    print(api.report(args.sweep, args.format, args.out, paper=paper, protocol=args.protocol, storage=args.storage))
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
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    if args.b is None:
        if not (arms[0] and arms[1]):
            raise UserError(
                "compare: give a second results folder, or two arms of one folder with --a KEY=VALUE and --b KEY=VALUE"
            )
        kw = {"metric": metric, "where": where, "by": by, "confidence": args.confidence, "protocol": args.protocol}
        print("\n".join(summary_lines(api.compare_arms(args.a, *arms, **kw), by, scale)))
        return 0
    if arms[0] or arms[1]:
        raise UserError("compare: --a/--b pick arms within ONE results folder; with two folders use --where")
    labels = (Path(args.a).name, Path(args.b).name)
    kw = {"where": where, "by": by, "confidence": args.confidence, "labels": labels, "protocol": args.protocol}
    result = api.compare_sweeps(args.a, args.b, metric, **kw)
    print("\n".join(summary_lines(result, by, scale)))
    return 0


# ---------------------------------------------------------------- datasets on disk
@command
def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.dataset or args.root or args.mirror:
            raise UserError("data list: takes no dataset, --root or --mirror; it lists every registered dataset")
        print(api.data_list())
        return 0
    if not args.dataset:
        raise UserError(f"data {args.action}: name the dataset (`ablate data list` lists them)")
    if args.action == "check":
        if args.mirror:
            raise UserError("data check: --mirror is for data fetch; data check reads only the folder")
        print(api.data_check(args.dataset, args.root))
        return 0
    folder = api.data_fetch(args.dataset, args.root, mirror=args.mirror)
    print(api.data_check(args.dataset, folder))
    return 0


def _pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed flags ``names`` as keyword arguments of the API call they go to."""
    return {name: getattr(args, name) for name in names}


# ---------------------------------------------------------------- parser
def opt(flag: str, help: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    """One argument of a command: its flag (or positional name), help and argparse keywords."""
    return flag, {"help": help, **kw}


def whole(minimum: int = 1) -> Callable[[str], int]:
    """The argparse type of every count flag: a whole number >= ``minimum``, refused while parsing."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def fraction(text: str) -> float:
    """The argparse type of a confidence level: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (e.g. 0.95), got {text!r}")
    return value


# fmt: off
FLAG = {"action": "store_true"}
SOURCE = opt("sweep", "sweep file or results folder (a path or a URI)")
SETS = opt("--set", "override a config key by its dotted path, e.g. --set optim.lr=0.05 (repeatable)",
           dest="sets", action="append", default=[], metavar="KEY=VALUE")
STORAGE = opt("--storage", "results location the sweep was run with (a path or a pyarrow URI)")
PROTOCOL = opt("--protocol", "which probe number stands for a trial: best (best of probe epochs at the final "
               "pretraining epoch: the paper's, default), final (the last probe epoch), max (best of probe epochs, "
               "max over pretraining epochs) or top<k>, e.g. top5 (their mean over the k best pretraining epochs: "
               "the authors' log aggregation)", metavar="best|final|max|top<k>")
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
                  SOURCE, SETS, opt("--no-data", "skip the checks of this machine: dataset paths, storage, CPUs "
                                            "and GPUs (checking a sweep for another machine)", **FLAG),
                  opt("--address", "check the resources against this Ray cluster instead of this machine (auto, "
                      "HOST:PORT or ray://HOST:PORT)")]),
    "run": ("run a sweep with Ray Tune into results/<sweep>/ (resumes by default)",
            "Run every trial of the sweep that is not finished yet with Ray Tune and write results/<sweep>/ (a "
            "Parquet dataset). Running it again resumes.", [
                opt("sweep", "sweep file (or a results folder: the sweep it ran, into itself)"), SETS,
                opt("--max-concurrent", "at most N trials at once (N >= 1; --set max_concurrent=0 lifts the "
                    "sweep's own limit)", type=whole(1), metavar="N"),
                opt("--address", "attach to an existing Ray cluster (auto, HOST:PORT or ray://HOST:PORT)"),
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
                  PROTOCOL, opt("--cost", "the measured device-hours per trial instead of the metric (sweep total in "
                                "the caption)", **FLAG), STORAGE]),
    "plot": ("write the sweep's figures (PNG and PDF)",
             "Accuracy and z_std vs epoch per arm (band over seeds), eigen-alignment and the spectra of F and W_p "
             "over training (paper Fig. 2).", [
                 SOURCE, opt("--out", "folder for the figures (default: results/_<sweep>/figures)"),
                 opt("--format", "comma-separated: png,pdf", default="png,pdf"), PROTOCOL, STORAGE]),
    "report": ("write one self-contained HTML (or Markdown) report of a sweep",
               "Table, figures, the sweep file and provenance (git sha, versions, device, wall time) in one file.", [
                   SOURCE, opt("--format", "self-contained HTML (figures embedded) or Markdown with a figures folder",
                               default="html", choices=["html", "markdown"]),
                   opt("--out", "output file (default: results/_<sweep>/report.html)"),
                   opt("--no-paper", "leave the paper's numbers out", **FLAG), PROTOCOL, STORAGE]),
    "submit": ("submit a sweep as a SLURM job (a Ray cluster over --nodes nodes running ablate run)",
               "Write an sbatch script that starts Ray on every node of the allocation (head on the first, workers on "
               "the others), runs `ablate run` against it and stops Ray; submit it with sbatch. Submitting again "
               "resumes: finished trials are skipped. The script and the job's log go to <storage>/_<sweep>/slurm/.", [
                   opt("sweep", "sweep file, or a results folder (resubmits exactly its trials)"),
                   opt("--slurm", "submit to SLURM (the only scheduler so far; the default)", **FLAG), SETS,
                   opt("--nodes", "nodes, one Ray runtime each (default 1)", type=whole(1), default=1),
                   opt("--cpus-per-task", "CPUs per node for Ray (default: the sweep's resources.cpu)", type=whole(1)),
                   opt("--gpus-per-node", "GPUs per node (default 0: no GPU line)", type=whole(0), default=0),
                   opt("--time", "time limit, e.g. 24:00:00 or 1-12:00:00 (default: the partition's)"),
                   opt("--partition", "SLURM partition"), opt("--account", "SLURM account to charge"),
                   opt("--storage", "results location all nodes see (default: the sweep's storage:, else results/)"),
                   opt("--shared-storage-ok", "trust that --storage is on a filesystem every node mounts, where ablate "
                       "cannot tell (multi-node runs otherwise refuse node-local storage)", **FLAG),
                   opt("--max-concurrent", "at most N trials at once (passed to ablate run)", type=whole(1),
                       metavar="N"),
                   opt("--grace", "seconds before --time at which the sweep is stopped and saved (default 120; 0 = "
                       "none)", type=whole(0), default=120),
                   opt("--max-requeues", "when --time runs out, requeue the job itself up to N times (default 0)",
                       type=whole(0), default=0),
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
                  opt("--only", "run only these sections: augment, step, directpred, eval, orchestration, collapse, "
                      "gpu", metavar="SECTION[,..]"),
                  opt("--out", f"folder for the Parquet file (default: {BENCH_DIR})", default=str(BENCH_DIR)),
                  opt("--threads", "torch threads for ours and DataLoader workers for the baseline (default: all "
                      "cores)", type=whole(1))]),
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
                   opt("--epoch", "export the weights saved after epoch N (save.weights: every)", type=whole(1),
                       metavar="N"),
                   opt("--head-classes", "add a blank N-class fc (loads into an unmodified torchvision resnet)",
                       type=whole(1), metavar="N"),
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
                    opt("--by", "comma-separated config keys: one test per cell", metavar="KEY[,KEY]"),
                    opt("--confidence", "confidence level of the interval (default 0.95)", type=fraction, default=0.95,
                        metavar="C"),
                    opt("--scale", "display factor (default: 100 for accuracies, 1 otherwise)", type=float,
                        metavar="S"), PROTOCOL]),
    "data": ("list the datasets, get one (fetch its official archive) or check a dataset folder",
             "list: every registered dataset (images, size, classes, how to get it). fetch: download a dataset's "
             "official archive (resumable, md5-verified) and unpack it into <root>/<dataset>, the folder a trial's "
             "data.root names (a dataset prepared by hand: how to prepare it). check: what a dataset folder holds "
             "(files, sizes, shapes, class counts), without loading it.", [
                 opt("action", "list, fetch or check", choices=["list", "fetch", "check"], metavar="list|fetch|check"),
                 opt("dataset", "the dataset to fetch or check (`ablate data list` names them)", nargs="?",
                     metavar="DATASET"),
                 opt("--root", "data root holding <dataset>/ (default: $ABLATE_DATA, else data)", metavar="DIR"),
                 opt("--mirror", "fetch from a mirror serving the archive by its file name (default: "
                     "$ABLATE_DATA_MIRROR, else the official URL)", metavar="URL")]),
}
EXAMPLES = {
    "export": "examples:\n  ablate export results/stl10_predictor --best probe_top1_best --to trunk.pt\n"
              "  ablate export results/smoke --trial 3f2a --to smoke_trunk.pt",
    "compare": "examples:\n  ablate compare results/stl10_predictor --a predictor.name=directpred --b predictor.name="
               "linear\n  ablate compare results/run1 results/run2 --metric knn_top1 --where predictor.name=directpred",
}
# fmt: on


class Parser(argparse.ArgumentParser):
    """argparse with the house's one-line errors: no usage block, the command's --help named instead."""

    def error(self, message: str) -> Any:
        self.exit(2, f"ablate: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = Parser(
        prog="ablate",
        description="Ablation sweeps of BYOL / SimSiam / DirectPred pretraining: "
        "run a YAML sweep with Ray Tune, collect every trial in Parquet, regenerate the paper's tables.",
        epilog="A page per command with a worked example: docs/commands.md. Start with: ablate run sweeps/smoke.yaml",
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
    """Run one command; its exit code (0 done, 1 failed trials, 2 a mistake, 130 interrupted, 141
    standard output closed by its reader)."""
    with guarded_stdout():
        try:
            return _dispatch(argv)
        except Exception as e:
            failure = _stdout_failure(e)
            if failure is None:
                raise
            _null_on(1)  # what is still buffered for stdout goes nowhere
            if failure.errno == errno.EPIPE:
                return 141
            _tell(f"ablate: error: cannot write to standard output: {failure.strerror}")
            return 2


def _dispatch(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `run` prints how to resume
        code = COMMANDS[args.command](args)
    except SystemExit as e:  # --help, --version, or a flag argparse refused (one line said)
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except UserError as e:
        _tell(f"ablate: error: {e}")
        code = e.exit_code
    except KeyboardInterrupt:
        _tell("ablate: interrupted")
        code = 130
    sys.stdout.flush()  # a full disk or a closed pipe shows here, not in the interpreter's exit
    return code


def _tell(line: str) -> None:
    """One line on stderr (where stderr itself cannot be written, the exit code alone speaks)."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr)


# ---------------------------------------------------------------- standard output
class StdoutError(OSError):
    """A write to standard output failed: its reader went away (EPIPE) or its disk is full."""


class _Fd1(io.RawIOBase):
    """File descriptor 1 as a raw stream whose failed writes raise :class:`StdoutError`, so that
    ``main`` tells a failing stdout from any other OSError (a results file, a socket, a pipe to Ray)."""

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return os.isatty(1)

    def write(self, data: Any) -> int:
        try:
            return os.write(1, data)
        except OSError as e:
            raise StdoutError(e.errno, e.strerror) from None


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """While a command runs, ``sys.stdout`` (when it is the process's own) writes through :class:`_Fd1`.
    A closed descriptor 0, 1 or 2 is first opened on /dev/null: output to it is dropped, and no file
    the command opens can take its number (a Parquet file on fd 1 would receive every print)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            _null_on(fd)
    if sys.stderr is None:  # Python found fd 2 closed at start; it is /dev/null now
        sys.stderr = open(2, "w", closefd=False)  # the process's stderr, open for its lifetime
    original = sys.stdout
    if original is not None and original is not sys.__stdout__:  # captured (tests) or redirected in-process
        yield
        return
    if original is not None:
        original.flush()
    keep = original or io.TextIOWrapper(io.BytesIO(), "utf-8")  # the encoding and buffering to keep
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Fd1()), keep.encoding, keep.errors, None, keep.line_buffering)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        sys.stdout = original


def _null_on(fd: int) -> None:
    """Open /dev/null on descriptor ``fd``."""
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def _stdout_failure(e: BaseException) -> StdoutError | None:
    """The :class:`StdoutError` behind ``e`` (itself, or what it was raised from or while handling)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        if isinstance(x, StdoutError):
            return x
        seen.add(id(x))
        stack += [x.__cause__, x.__context__]
    return None


if __name__ == "__main__":
    sys.exit(main())
