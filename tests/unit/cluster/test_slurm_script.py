"""The sbatch script of ``ablate submit --slurm``: quoting, #SBATCH lines, validation, the storage rule,
--dry-run, sbatch's answers, and the script's own signal handling run by bash against stub commands."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.cluster.options import SlurmOptions, parse_time
from ablate.cluster.script import render_sbatch
from ablate.cluster.slurm import check_fits, route_ip, sbatch_submit
from ablate.errors import UserError
from ablate.results.layout import slurm_dir
from ablate.results.shared import Mount, check_shared_storage, local_reason, mount_of, parse_mounts

REPO = Path(__file__).resolve().parents[3]
NASTY_PATH = '/data/my sweeps/it\'s "$(rm -rf ~)"; `id` $HOME.yaml'
NASTY_SET = "train.note=a b; $(touch /tmp/pwned) 'q' \"dq\" `id` && echo"


def render(opts: SlurmOptions | None = None, **kw) -> str:
    args = dict(sweep_path="/sweeps/s.yaml", sweep_name="s", storage="/shared/results", sets=())
    args.update(kw)
    log_dir = slurm_dir(args["sweep_name"], args["storage"])
    return render_sbatch(opts or SlurmOptions(), log_dir=log_dir, python="/venv/bin/python", workdir="/work", **args)


def sbatch_lines(text: str) -> dict[str, str | None]:
    """``#SBATCH --key=value`` lines -> {key: value} (None for a flag)."""
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            key, sep, value = line[len("#SBATCH ") :].partition("=")
            out[key] = value if sep else None
    return out


def run_args(text: str) -> list[str]:
    """The words of the settings block's ``RUN_ARGS=(...)``: the arguments of ``ablate run``."""
    [line] = [ln for ln in text.splitlines() if ln.startswith("RUN_ARGS=(")]
    assert line.endswith(")")
    return shlex.split(line[len("RUN_ARGS=(") : -1])


# ---------------------------------------------------------------- quoting
def test_sweep_path_and_set_values_are_single_shell_words():
    text = render(sweep_path=NASTY_PATH, sets=[NASTY_SET, "optim.lr=0.05"], max_concurrent=3)
    assert run_args(text) == [
        NASTY_PATH,
        "--storage",
        "/shared/results",
        "--set",
        NASTY_SET,
        "--set",
        "optim.lr=0.05",
        "--max-concurrent",
        "3",
    ]
    assert '"$PYTHON" -m ablate.cli run "${RUN_ARGS[@]}" --address "$RAY_HEAD" &' in text
    assert "$(rm" not in text.replace(shlex.quote(NASTY_PATH), "")  # only ever inside its quoted word


def test_bash_itself_reads_the_run_line_back_word_for_word(tmp_path):
    """Not only shlex: the settings' RUN_ARGS and the run line, executed by bash, hand ablate exactly
    the original strings."""
    text = render(sweep_path=NASTY_PATH, sets=[NASTY_SET])
    [settings] = [ln for ln in text.splitlines() if ln.startswith("RUN_ARGS=(")]
    [line] = [ln.strip() for ln in text.splitlines() if " -m ablate.cli run " in ln]
    argv_file = tmp_path / "argv"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/bash\nprintf "%s\\0" "$@" > {shlex.quote(str(argv_file))}\n')
    fake.chmod(0o755)
    line = line.removesuffix("&")
    subprocess.run(
        ["bash", "-c", f"set -euo pipefail; PYTHON={shlex.quote(str(fake))}; RAY_HEAD=h:1; {settings}\n{line}"],
        check=True,
        cwd=tmp_path,
        timeout=10,
    )
    argv = argv_file.read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv] == [
        "-m",
        "ablate.cli",
        "run",
        NASTY_PATH,
        "--storage",
        "/shared/results",
        "--set",
        NASTY_SET,
        "--address",
        "h:1",
    ]
    assert not Path("/tmp/pwned").exists()


def test_settings_are_quoted_and_the_script_parses(tmp_path):
    text = render_sbatch(
        SlurmOptions(nodes=3, gpus_per_node=2),
        "/s.yaml",
        "s",
        "/shared/r",
        Path("/shared/r/_s/slurm"),
        python="/opt/my env/bin/python3",
        workdir="/home/me/proj $x",
    )
    assert "SUBMIT_DIR='/home/me/proj $x'" in text.splitlines()
    assert "PYTHON='/opt/my env/bin/python3'" in text.splitlines()
    assert "VENV_BIN='/opt/my env/bin'" in text.splitlines()
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=10)


def test_the_job_is_job_sh_verbatim_after_the_settings():
    """The bash body is the packaged job.sh from its `# ---- job` line on, unchanged."""
    text = render(sweep_path=NASTY_PATH, sets=[NASTY_SET])
    template = (REPO / "ablate/cluster/job.sh").read_text()
    body = template.split("# ---- job\n", 1)[1]
    assert text.endswith("\n\n" + body)
    assert text.index("RUN_ARGS=(") < text.index(body)


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed (pip install 'ablate[dev]')")
def test_a_rendered_script_passes_shellcheck(tmp_path):
    """The whole script as sbatch gets it, settings from awkward values included (make lint checks
    job.sh alone). Warnings and errors: the info SC2016 ("$ does not expand in single quotes") is
    what a shell-quoted value is for."""
    opts = SlurmOptions(nodes=3, gpus_per_node=2, max_requeues=2, sbatch_args=("--qos=high",))
    path = tmp_path / "job.sbatch"
    path.write_text(render(opts, sweep_path=NASTY_PATH, sets=[NASTY_SET], storage="/shared/my results"))
    proc = subprocess.run(["shellcheck", "--severity=warning", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


# ---------------------------------------------------------------- #SBATCH lines
def test_sbatch_lines_follow_the_options():
    opts = SlurmOptions(
        nodes=4,
        cpus_per_task=64,
        gpus_per_node=8,
        time="24:00:00",
        partition="gpu",
        account="proj-1",
        grace=90,
        sbatch_args=("--qos=high", "--exclusive"),
    )
    text = render(opts, sweep_name="stl10_directpred", storage="/lustre/r")
    assert text.startswith("#!/bin/bash\n")
    assert sbatch_lines(text) == {
        "--job-name": "ablate-stl10_directpred",
        "--nodes": "4",
        "--ntasks-per-node": "1",
        "--cpus-per-task": "64",
        "--gpus-per-node": "8",
        "--time": "24:00:00",
        "--partition": "gpu",
        "--account": "proj-1",
        "--output": "/lustre/r/_stl10_directpred/slurm/%j.out",
        "--open-mode": "append",
        "--requeue": None,
        "--no-kill": None,
        "--signal": "B:USR1@90",
        "--qos": "high",
        "--exclusive": None,
    }
    # one Ray runtime per node: the head step, then one step on each other node
    assert "SRUN_GPUS=(--gpus-per-node=8)" in text
    assert 'for k in "${!WORKER_NODES[@]}"; do\n  srun --nodes=1 --ntasks=1' in text
    assert "NODE_CPUS=64" in text and "NODE_GPUS=8" in text


def test_gpu_line_omitted_without_gpus_and_optional_lines_absent():
    text = render(SlurmOptions(cpus_per_task=2))
    lines = sbatch_lines(text)
    assert "--gpus-per-node" not in lines and "--time" not in lines
    assert "--partition" not in lines and "--account" not in lines
    assert "SRUN_GPUS=()" in text and "NODE_GPUS=0" in text
    assert "--signal" not in sbatch_lines(render(SlurmOptions(grace=0)))


def test_job_name_and_log_folder_are_safe_for_sbatch():
    lines = sbatch_lines(render(sweep_name="a b;c", storage="/shared/my results"))
    assert lines["--job-name"] == "ablate-a_b_c"
    assert lines["--output"] == '"/shared/my results/_a b;c/slurm/%j.out"'
    assert sbatch_lines(render(storage="/r/100%"))["--output"] == "/r/100%%/_s/slurm/%j.out"
    with pytest.raises(UserError, match="double quotes"):
        render(storage='/r/"x"')


def test_uri_storage_keeps_slurm_logs_under_the_submit_dir():
    text = render(storage="s3://bucket/results")
    assert sbatch_lines(text)["--output"] == os.path.abspath("results/_s/slurm") + "/%j.out"
    assert run_args(text)[1:3] == ["--storage", "s3://bucket/results"]


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "value,seconds",
    [
        ("30", 1800),
        ("30:15", 1815),
        ("24:00:00", 86400),
        ("1-12", 129600),
        ("2-01:30", 178200),
        ("1-00:00:01", 86401),
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_parse_time_accepts_slurm_formats(value, seconds):
    assert parse_time(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "1h", "24:00:00:00", "1-25", "10:61", "1:60:00", "-5", "0", "0:00:00", "1 -2", "12:00:00\n#SBATCH --x"],
)
def test_parse_time_rejects_the_rest(value):
    with pytest.raises(UserError, match="--time"):
        parse_time(value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"nodes": 0}, "--nodes 0"),
        ({"cpus_per_task": -1}, "--cpus-per-task"),
        ({"gpus_per_node": -1}, "--gpus"),
        ({"nodes": True}, "--nodes"),
        ({"time": "00:01:00", "grace": 120}, "not longer than --grace"),
        ({"grace": 70000}, "at most 65535"),
        ({"partition": "gpu\n#SBATCH --x"}, "--partition"),
        ({"account": "a b"}, "--account"),
        ({"sbatch_args": ("--mem 10G",)}, "--sbatch-arg"),
        ({"sbatch_args": ("qos=x",)}, "--sbatch-arg"),
        ({"max_requeues": 2, "grace": 0}, "--max-requeues"),
    ],
)
def test_options_validated_with_one_line(kwargs, match):
    with pytest.raises(UserError, match=match) as e:
        SlurmOptions(**kwargs)
    assert "\n" not in str(e.value)


def test_trial_must_fit_one_node():
    res = argparse.Namespace(cpu=4.0, gpu=1.0)
    check_fits(res, SlurmOptions(cpus_per_task=4, gpus_per_node=1))
    with pytest.raises(UserError, match="needs 4 CPUs"):
        check_fits(res, SlurmOptions(cpus_per_task=2, gpus_per_node=1))
    with pytest.raises(UserError, match="needs 1 GPUs"):
        check_fits(res, SlurmOptions(cpus_per_task=4))


def test_a_data_parallel_trial_may_span_nodes_worker_by_worker():
    ddp = argparse.Namespace(cpu=2.0, gpu=0.0, workers=2, gpus_per_worker=0.0)
    check_fits(ddp, SlurmOptions(nodes=2, cpus_per_task=1))  # one 1-CPU worker on each node
    check_fits(ddp, SlurmOptions(nodes=1, cpus_per_task=2))
    with pytest.raises(UserError, match=r"2 data-parallel workers \(1 CPUs, 0 GPUs each\) do not fit on 1 node"):
        check_fits(ddp, SlurmOptions(nodes=1, cpus_per_task=1))
    with pytest.raises(UserError, match="each of a trial's 2 data-parallel workers needs 2 CPUs"):
        check_fits(argparse.Namespace(cpu=4.0, gpu=0.0, workers=2, gpus_per_worker=0.0), SlurmOptions(nodes=4))
    gpus = argparse.Namespace(cpu=16.0, gpu=16.0, workers=16, gpus_per_worker=1.0)
    check_fits(gpus, SlurmOptions(nodes=2, cpus_per_task=8, gpus_per_node=8))
    with pytest.raises(UserError, match="do not fit on 2 node"):
        check_fits(gpus, SlurmOptions(nodes=2, cpus_per_task=8, gpus_per_node=4))


# ---------------------------------------------------------------- shared storage rule
MOUNTS = parse_mounts("""\
/dev/sda1 / ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
nfs1:/export/home /home nfs4 rw 0 0
lfs@o2ib:/scratch /scratch lustre rw 0 0
/dev/sdb1 /scratch/local xfs rw 0 0
server:/p /mnt/my\\040share nfs rw 0 0
""")


def test_mount_table_parsed_and_longest_mount_wins():
    assert Mount("/mnt/my share", "nfs") in MOUNTS
    assert mount_of("/scratch/local/x", MOUNTS) == Mount("/scratch/local", "xfs")
    assert mount_of("/scratch/project", MOUNTS) == Mount("/scratch", "lustre")
    assert mount_of("/scratchy", MOUNTS) == Mount("/", "ext4")  # a prefix of the name is not a parent


@pytest.mark.parametrize(
    "path,shared",
    [
        ("/home/me/results", True),
        ("/scratch/p/results", True),
        ("/mnt/my share/r", True),
        ("s3://bucket/r", True),
        ("/scratch/local/r", False),
        ("/srv/results", False),
        ("/tmp/results", False),
        ("/var/tmp/r", False),
        ("/dev/shm/r", False),
        ("file:///tmp/results", False),  # a file:// URI is the path it names
        ("file:///home/me/results", True),
    ],
)
def test_storage_rule(path, shared):
    assert (local_reason(path, MOUNTS) is None) == shared


def test_multi_node_refuses_local_storage_unless_overridden():
    with pytest.raises(UserError, match=r"--nodes 2 needs storage that every node sees.*/tmp is node-local") as e:
        check_shared_storage("/tmp/r", 2, mounts=MOUNTS)
    assert "--shared-storage-ok" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="node-local xfs filesystem"):
        check_shared_storage("/scratch/local/r", 4, mounts=MOUNTS)
    check_shared_storage("/scratch/local/r", 4, shared_ok=True, mounts=MOUNTS)
    check_shared_storage("/tmp/r", 1, mounts=MOUNTS)  # one node: anything goes
    check_shared_storage("/home/not/yet/created", 2, mounts=MOUNTS)


def test_unknown_filesystem_type_is_refused():
    assert "unknown" in local_reason("/srv/r", [])


# ---------------------------------------------------------------- the CLI: --dry-run, sbatch
def submit_cli(capsys, *argv: str) -> str:
    """``ablate submit ARGV``: its exit code must be 0; returns what it printed."""
    capsys.readouterr()
    assert main(["submit", *argv]) == 0
    return capsys.readouterr().out


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An ``sbatch`` on PATH that records its arguments and answers like ``sbatch --parsable``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls"
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"""#!/bin/bash
printf '%s\\n' "$@" >> {shlex.quote(str(calls))}
if [[ -n "${{FAKE_SBATCH_ERROR:-}}" ]]; then echo "sbatch: error: $FAKE_SBATCH_ERROR" >&2; exit 1; fi
echo "4242;cluster"
""")
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_dry_run_prints_the_script_and_does_not_call_sbatch(tmp_path, fake_sbatch, capsys):
    text = submit_cli(
        capsys,
        str(REPO / "sweeps/smoke.yaml"),
        "--slurm",
        "--storage",
        str(tmp_path / "r"),
        "--set",
        "train.epochs=2",
        "--time",
        "1:00:00",
        "--dry-run",
    )
    assert text.startswith("#!/bin/bash\n") and sbatch_lines(text)["--job-name"] == "ablate-smoke"
    assert run_args(text)[:5] == [
        str(REPO / "sweeps/smoke.yaml"),
        "--storage",
        str(tmp_path / "r"),
        "--set",
        "train.epochs=2",
    ]
    assert not fake_sbatch.exists()
    assert not (tmp_path / "r").exists()


def test_submit_writes_the_script_and_prints_the_job(tmp_path, fake_sbatch, capsys):
    out = submit_cli(capsys, str(REPO / "sweeps/smoke.yaml"), "--storage", str(tmp_path / "r"), "--cpus-per-task", "2")
    kept = tmp_path / "r/_smoke/slurm/4242.sbatch"
    assert fake_sbatch.read_text().splitlines() == ["--parsable", str(tmp_path / "r/_smoke/slurm/ablate-smoke.sbatch")]
    assert sbatch_lines(kept.read_text())["--cpus-per-task"] == "2"
    assert "SLURM job 4242" in out and "4242.out" in out


def test_sbatch_refusal_becomes_one_line_user_error(tmp_path, fake_sbatch, monkeypatch):
    monkeypatch.setenv("FAKE_SBATCH_ERROR", "Batch job submission failed: Invalid account")
    script = tmp_path / "x.sbatch"
    script.write_text("#!/bin/bash\n")
    with pytest.raises(
        UserError, match="sbatch refused the job: sbatch: error: Batch job submission failed: Invalid account$"
    ):
        sbatch_submit(script)
    with pytest.raises(UserError, match="not found.*--dry-run"):
        sbatch_submit(script, sbatch=str(tmp_path / "no-sbatch"))


def test_shared_storage_ok_reaches_ablate_run_in_the_job(tmp_path, fake_sbatch, capsys):
    """The job's ``ablate run`` sees the same multi-node Ray cluster and applies the same storage rule:
    the user's --shared-storage-ok must go along, or the job refuses what submit accepted."""
    argv = [str(REPO / "sweeps/smoke.yaml"), "--nodes", "2", "--storage", "/srv/r", "--dry-run"]
    assert "--shared-storage-ok" in run_args(submit_cli(capsys, *argv, "--shared-storage-ok"))
    assert "--shared-storage-ok" not in run_args(submit_cli(capsys, *argv[:2], "1", *argv[3:], "--shared-storage-ok"))


def test_submit_refuses_multi_node_on_tmp(tmp_path, fake_sbatch, capsys):
    assert main(["submit", str(REPO / "sweeps/smoke.yaml"), "--nodes", "2", "--storage", "/tmp/ablate-results"]) == 2
    assert "/tmp is node-local" in capsys.readouterr().err
    assert not fake_sbatch.exists()


def test_route_ip_of_localhost():
    assert route_ip("127.0.0.1") == "127.0.0.1"


# ---------------------------------------------------------------- the script's signal handling, run by bash
STUB_PYTHON = r"""#!/bin/bash
# stands in for the interpreter: Ray's CLI, ablate run, route-ip
log="$STUB_DIR/calls"
case "$*" in
  "-m ablate.runner.nodes wait"*) echo "nodes $*" >> "$log"; echo "$5" ;;
  "-m ray.scripts.scripts start"*) echo "ray-start $*" >> "$log"; exec sleep 60 ;;
  "-m ablate.cluster.slurm route-ip"*) echo 10.0.0.1 ;;
  "-c "*) exec python3 "$@" ;;
  "-m ablate.cli run"*)
    echo "run $*" >> "$log"
    echo "auth $RAY_AUTH_MODE ${#RAY_AUTH_TOKEN}" >> "$log"
    [[ "${STUB_RUN:-}" == exit* ]] && exit "${STUB_RUN#exit}"
    trap 'echo "run got TERM" >> "$log"; exit 130' TERM
    : > "$STUB_DIR/running"
    while :; do sleep 0.02; done ;;
  *) echo "unexpected: $*" >> "$log"; exit 99 ;;
esac
"""
STUB_SRUN = r"""#!/bin/bash
echo "srun $*" >> "$STUB_DIR/calls"
while [[ "$1" == -* ]]; do shift; done
exec "$@"
"""
STUB_TIMEOUT = r"""#!/bin/bash
# the head's port probe answers once the head's ray start ran; anything else runs as it is
shift
if [[ "$1 $2" == "bash -c" && "$3" == *"/dev/tcp/"* ]]; then
  echo "probe $5:$6" >> "$STUB_DIR/calls"
  grep -q -- "start --head" "$STUB_DIR/calls"
  exit
fi
exec "$@"
"""
STUB_SCONTROL = r"""#!/bin/bash
echo "scontrol $*" >> "$STUB_DIR/calls"
[[ "$1 $2" == "show hostnames" ]] && tr ',' '\n' <<< "$3"
exit 0
"""


@pytest.fixture
def stub_job(tmp_path):
    """The generated script run by bash with stub srun / scontrol / python: returns start(options, env)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"python": STUB_PYTHON, "srun": STUB_SRUN, "scontrol": STUB_SCONTROL, "timeout": STUB_TIMEOUT}
    for name, body in stubs.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    procs: list[subprocess.Popen] = []

    def start(opts: SlurmOptions, nodes: str = "n1", **env: str) -> subprocess.Popen:
        text = render_sbatch(
            opts,
            "/s.yaml",
            "s",
            str(tmp_path / "r"),
            tmp_path / "r/_s/slurm",
            ["a=b"],
            python=str(bin_dir / "python"),
            workdir=str(tmp_path),
        )
        (tmp_path / "job.sh").write_text(text)
        full_env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "STUB_DIR": str(tmp_path),
            "SLURM_JOB_ID": "77",
            "SLURM_JOB_NODELIST": nodes,
            "SLURMD_NODENAME": nodes.split(",")[0],
            **env,
        }
        proc = subprocess.Popen(
            ["bash", str(tmp_path / "job.sh")],
            env=full_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def calls(tmp_path: Path) -> str:
    return (tmp_path / "calls").read_text()


def test_script_passes_the_exit_code_of_ablate_run_and_stops_ray(tmp_path, stub_job):
    proc = stub_job(SlurmOptions(cpus_per_task=2), STUB_RUN="exit3")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 3, out
    log = calls(tmp_path)
    assert "ray-start -m ray.scripts.scripts start --head --block --node-ip-address=127.0.0.1 --port=20077" in log
    assert "probe 127.0.0.1:20077" in log  # the head's port answered before ablate run started
    assert "run -m ablate.cli run /s.yaml --storage" in log and "--set a=b --address 127.0.0.1:20077" in log
    assert "auth token 64" in log  # a fresh per-job token reaches ablate run (and every Ray node) by env
    assert "stopping Ray" in out and "ablate run exited with code 3" in out
    assert "requeue" not in log


def test_multi_node_script_starts_workers_on_the_other_nodes(tmp_path, stub_job):
    proc = stub_job(SlurmOptions(nodes=3, cpus_per_task=4, gpus_per_node=2), nodes="n1,n2,n3", STUB_RUN="exit0")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    log = calls(tmp_path)
    for node in ("n2", "n3"):  # one step per worker node: a lost node ends only its own
        assert f"srun --nodes=1 --ntasks=1 --cpus-per-task=4 --gpus-per-node=2 --nodelist={node} " in log
    assert re.search(r"--nodelist=n1 \S+ -m ray.scripts.scripts start --head", log)
    workers = [ln for ln in log.splitlines() if ln.startswith("ray-start ") and "--head" not in ln]
    assert len(workers) == 2, log
    assert all(
        "start --block --address=10.0.0.1:20077 --num-cpus=4 --num-gpus=2 --temp-dir=/tmp/ray-77" in w for w in workers
    )
    assert "Ray is up on 3 node(s)" in out
    assert "--address 10.0.0.1:20077" in log  # ablate run drives the cluster at the head's routable address


def test_time_limit_warning_stops_ablate_run_and_requeues(tmp_path, stub_job):
    proc = stub_job(SlurmOptions(max_requeues=2), SLURM_RESTART_COUNT="1")
    wait_for(tmp_path / "running", proc)
    proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@grace delivers to the batch shell
    out, _ = proc.communicate(timeout=20)
    log = calls(tmp_path)
    assert "run got TERM" in log, out
    assert "scontrol requeue 77" in log, out
    assert proc.returncode == 130 and "time limit in 120s" in out


def test_time_limit_warning_without_requeues_left_says_how_to_resume(tmp_path, stub_job):
    proc = stub_job(SlurmOptions(max_requeues=1), SLURM_RESTART_COUNT="1")
    wait_for(tmp_path / "running", proc)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=20)
    assert "run got TERM" in calls(tmp_path)
    assert "scontrol requeue" not in calls(tmp_path)
    assert "submit the same command again to resume" in out


def test_sigterm_stops_ablate_run_but_never_requeues(tmp_path, stub_job):
    proc = stub_job(SlurmOptions(max_requeues=5))
    wait_for(tmp_path / "running", proc)
    proc.send_signal(signal.SIGTERM)  # preemption or scancel: SLURM decides about requeueing
    out, _ = proc.communicate(timeout=20)
    assert "run got TERM" in calls(tmp_path), out
    assert "scontrol requeue" not in calls(tmp_path)
    assert proc.returncode == 130
