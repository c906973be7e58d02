"""The Slurm profile against a real single-node Slurm (tests/slurm_cluster.py).

Needs root and the Debian packages of .ci/install_slurm.sh; skips otherwise.

(a) test_profile_submits_through_sbatch: a two-rule throwaway workflow through
    slurm/ + tests/slurm_overlay: every job is an sbatch job.
(b) test_demo_through_slurm_matches_local: the demo config (with an AlexNet test grid
    on top, see TEST_GRID; SLURM_TEST_FULL_DEMO=1 for the demo's own grid) through
    Slurm; every `train` job went through sbatch and the results equal a local
    `--cores 2` run.
(c) test_train_time_limit_retry_resumes: a training job killed by its Slurm time
    limit is retried and resumes from its checkpoint; every attempt keeps its full log,
    the console gets a few lines per timed-out attempt, the rule's GPU request reaches sbatch.
(d) test_sacct_without_accounting_stops_before_submitting: `slurm-status-command: sacct`
    on this cluster without accounting stops at once with one line, submitting nothing.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slurm_cluster import slurm_cluster  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "slurm"
OVERLAY = REPO / "tests" / "slurm_overlay"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SLURM_LOGDIR = "logs/slurm"  # slurm-logdir of slurm/config.yaml, relative to the workdir

# "Job 3 has been submitted with SLURM jobid 17 (log: ...)." in Snakemake's output
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


def slurm_command(*extra: str, overlays: tuple[Path, ...] = ()) -> list[str]:
    cmd = [*SNAKEMAKE, "--profile", str(SLURM_PROFILE), "--profile", str(OVERLAY)]
    for overlay in overlays:
        cmd += ["--profile", str(overlay)]
    return cmd + list(extra)


def run(cmd: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    (cwd / "snakemake.out").write_text(
        f"$ {' '.join(cmd)}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return proc


def describe(proc: subprocess.CompletedProcess, cluster=None) -> str:
    text = f"rc={proc.returncode}\n--- snakemake stderr (tail) ---\n" + "\n".join(proc.stderr.splitlines()[-80:])
    if cluster is not None:
        text += "\n--- squeue --states=all ---\n" + cluster.squeue_all()
    return text


def slurm_logs(workdir: Path, rule: str) -> dict[str, Path]:
    """Slurm job id -> its log file, for one rule, from the plugin's log directory."""
    base = workdir / SLURM_LOGDIR / f"rule_{rule}"
    return {p.stem: p for p in base.rglob("*.log")} if base.is_dir() else {}


# ---- (a) the harness, on a throwaway workflow --------------------------------------------------

TINY_SNAKEFILE = """
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    resources: runtime=2
    shell: "echo $SLURM_JOB_ID > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output} && echo $SLURM_JOB_ID >> {output}"
"""


def test_profile_submits_through_sbatch(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    proc = run(slurm_command(), tmp_path, slurm_cluster.env, timeout=240)
    assert proc.returncode == 0, describe(proc, slurm_cluster)

    submitted = SUBMITTED.findall(proc.stderr)
    assert len(submitted) == 2, describe(proc, slurm_cluster)
    slurm_ids = {jobid for _, jobid in submitted}

    # Each rule ran inside its own Slurm job, and those were the ones Snakemake submitted.
    ids_seen_by_jobs = (tmp_path / "b.txt").read_text().split()
    assert len(ids_seen_by_jobs) == 2 and set(ids_seen_by_jobs) == slurm_ids

    # The plugin's log directory (profile: slurm-logdir, slurm-keep-successful-logs).
    assert set(slurm_logs(tmp_path, "a")) | set(slurm_logs(tmp_path, "b")) == slurm_ids

    # slurmctld knows them as completed jobs, with the rule in the comment.
    jobs = {
        line.split("|")[0]: line.split("|")
        for line in slurm_cluster.squeue_all().splitlines()
        if line.split("|")[0] in slurm_ids
    }
    assert {j[2] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert sorted(j[3] for j in jobs.values()) == ["rule_a", "rule_b"], jobs

    # The rule's runtime reached sbatch -t: a 2-minute limit for rule a.
    a_id = ids_seen_by_jobs[0]
    show = subprocess.run(
        ["scontrol", "show", "job", a_id], env=slurm_cluster.env, capture_output=True, text=True
    ).stdout
    assert "TimeLimit=00:02:00" in show, show


# ---- the real workflow -------------------------------------------------------------------------

WORKFLOW_ITEMS = (
    "Snakefile",
    "rules",
    "workflow_scripts",
    "schemas",
    "envs",
    "configs",
    "config.yaml",
    "report",
)
DEMO_CONFIG = "configs/demo.yaml"
TIMING_COLUMNS = {"epoch_seconds", "images_per_second"}
# The demo's full grid (2 models x 3 optimizers, ~9 min on 2 cores) is too slow to run twice
# here; the test grid keeps the demo config and swaps in AlexNet (the one architecture without
# ImageNet weights, seconds per run). SLURM_TEST_FULL_DEMO=1 runs the demo's own grid instead.
TEST_GRID = {
    "grid": {"models": ["alexnet"], "optimizers": ["sgd", "adam"]},
    "models": {"alexnet": {"input_size": 67, "weights": "none"}},
}
RUN_DIR = "results/runs/{model}/{optimizer}/lr{lr}/seed{seed}"


def require_workflow() -> None:
    missing = [p for p in ("Snakefile", DEMO_CONFIG) if not (REPO / p).exists()]
    if missing:
        pytest.skip(f"workflow not there yet: {', '.join(missing)}")


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in WORKFLOW_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / item)
    return dest


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_dirs(workdir: Path, config_files: list[str]) -> list[str]:
    """The run directories of the grid, as the workflow computes them."""
    sys.path.insert(0, str(workdir / "workflow_scripts"))
    try:
        from cnn_study import settings  # noqa: PLC0415

        config = {}
        for f in ["config.yaml", *config_files]:
            merge(config, yaml.safe_load((workdir / f).read_text()))
        return [RUN_DIR.format(**run) for run in settings.run_grid(config)]
    finally:
        sys.path.remove(str(workdir / "workflow_scripts"))


def merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def read_rows(path: Path, drop: set[str] = frozenset()) -> list[dict]:
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_demo_through_slurm_matches_local(slurm_cluster, tmp_path):
    require_workflow()
    slurm_dir = copy_workflow(tmp_path / "slurm")
    local_dir = copy_workflow(tmp_path / "local")
    configs = [DEMO_CONFIG]
    if os.environ.get("SLURM_TEST_FULL_DEMO") != "1":
        for d in (slurm_dir, local_dir):
            write_yaml(d / "slurm_test_grid.yaml", TEST_GRID)
        configs.append("slurm_test_grid.yaml")
    runs = run_dirs(slurm_dir, configs)
    assert runs

    # The reference: a plain local run, alongside the Slurm run (its jobs mostly wait).
    local_cmd = [*SNAKEMAKE, "--cores", "2", "--configfile", *configs]
    local_out = (local_dir / "snakemake.out").open("w")
    local = subprocess.Popen(local_cmd, cwd=local_dir, stdout=local_out, stderr=subprocess.STDOUT, text=True)
    try:
        proc = run(slurm_command("--configfile", *configs), slurm_dir, slurm_cluster.env, timeout=900)
    finally:
        local_rc = local.wait(timeout=900)
        local_out.close()
    assert proc.returncode == 0, describe(proc, slurm_cluster)
    assert local_rc == 0, (local_dir / "snakemake.out").read_text()[-5000:]

    # Every train job went through sbatch: one Slurm job (and log) per run, none run locally.
    train_logs = slurm_logs(slurm_dir, "train")
    assert len(train_logs) == len(runs), (sorted(train_logs), runs)
    assert "localrule train:" not in proc.stderr
    jobs = {
        line.split("|")[0]: line.split("|")
        for line in slurm_cluster.squeue_all().splitlines()
        if line.split("|")[0] in train_logs
    }
    assert len(jobs) == len(runs)
    assert {j[2] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert all(j[3].startswith("rule_train_wildcards_") for j in jobs.values()), jobs
    submitted = SUBMITTED.findall(proc.stderr)
    assert {jobid for _, jobid in submitted} >= set(train_logs)
    # ... and so did every other non-local job of the DAG.
    assert "localrule" not in proc.stderr.replace("localrule all:", "")

    # Same results as the local run, timing aside.
    for run_dir in runs:
        got = read_rows(slurm_dir / run_dir / "history.csv", drop=TIMING_COLUMNS)
        want = read_rows(local_dir / run_dir / "history.csv", drop=TIMING_COLUMNS)
        assert got and got == want, run_dir
        assert not (slurm_dir / run_dir / "resume").exists()
    manifest = "results/data/manifest.csv"
    assert (slurm_dir / manifest).read_bytes() == (local_dir / manifest).read_bytes()


# ---- (c) a training job killed by its time limit resumes on the retry ---------------------------

RESUMING = re.compile(r"resuming at epoch (\d+)")
# Seconds of epochs the run needs: more than one 1-minute attempt can do (Slurm kills it 60-90 s
# after its start, time limits being checked every 30 s), little enough for the second.
WORK_SECONDS = 100


@pytest.mark.slow
def test_train_time_limit_retry_resumes(slurm_cluster, tmp_path):
    require_workflow()
    workdir = copy_workflow(tmp_path / "wf")
    base = {
        "grid": {"models": ["alexnet"], "optimizers": ["sgd"], "seeds": [0]},
        "models": {"alexnet": {"input_size": 67, "weights": "none"}},
    }
    # Calibration, locally: the data, and a short run (seed 1) to time an epoch on this machine.
    write_yaml(workdir / "calibrate.yaml", merge({"training": {"epochs": 6}}, base))
    write_yaml(workdir / "calibrate_seed.yaml", {"grid": {"seeds": [1]}})
    calib = RUN_DIR.format(model="alexnet", optimizer="sgd", lr="0.001", seed=1)
    proc = run(
        [
            *SNAKEMAKE,
            "--cores",
            "2",
            "--configfile",
            DEMO_CONFIG,
            "calibrate.yaml",
            "calibrate_seed.yaml",
            "--",
            f"{calib}/history.csv",
        ],
        workdir,
        slurm_cluster.env,
        timeout=300,
    )
    assert proc.returncode == 0, describe(proc)
    # The fastest epoch after the first (which traces the graph): err towards too many epochs.
    fastest = min(float(r["epoch_seconds"]) for r in read_rows(workdir / calib / "history.csv")[1:])
    epochs = max(20, round(WORK_SECONDS / fastest))

    write_yaml(workdir / "long.yaml", merge({"training": {"epochs": epochs}}, base))
    # Extra overlay: attempt 1 of train gets a 1-minute limit, later attempts 10 minutes.
    overlay = yaml.safe_load((OVERLAY / "config.yaml").read_text())
    resources = dict(overlay["set-resources"]["train"], runtime="1 if attempt == 1 else 10")
    timeout_overlay = write_yaml(
        tmp_path / "timeout_overlay" / "config.yaml", {"set-resources": {"train": resources}}
    ).parent
    run_dir = RUN_DIR.format(model="alexnet", optimizer="sgd", lr="0.001", seed=0)
    proc = run(
        slurm_command(
            "--configfile", DEMO_CONFIG, "long.yaml", "--", f"{run_dir}/history.csv", overlays=(timeout_overlay,)
        ),
        workdir,
        slurm_cluster.env,
        timeout=600,
    )
    assert proc.returncode == 0, describe(proc, slurm_cluster)
    # The cluster has no accounting: the workflow checked that squeue will see the jobs finish.
    assert "Slurm job states from squeue (MinJobAge=3600 s" in proc.stderr

    # Two Slurm jobs for the one run: the first killed at its time limit, the retry completed.
    logs = slurm_logs(workdir, "train")
    ids = sorted(logs, key=int)
    assert len(ids) >= 2, (
        f"one Slurm job only ({ids}): the run of {epochs} epochs finished within the first "
        "attempt's 1-minute limit; raise WORK_SECONDS\n" + describe(proc, slurm_cluster)
    )
    states = {line.split("|")[0]: line.split("|")[2] for line in slurm_cluster.squeue_all().splitlines()}
    assert states.get(ids[0]) == "TIMEOUT", states
    assert "DUE TO TIME LIMIT" in logs[ids[0]].read_text()
    assert states.get(ids[-1]) == "COMPLETED", states

    # The history has every epoch exactly once.
    rows = read_rows(workdir / run_dir / "history.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert not (workdir / run_dir / "resume").exists()

    # The GPU request (rules/train.smk; no overlay sets gpu) reached sbatch.
    show = subprocess.run(
        ["scontrol", "show", "job", ids[-1]], env=slurm_cluster.env, capture_output=True, text=True
    ).stdout
    assert re.search(r"TresPerJob=\S*gpu:1", show), show

    # Every attempt kept its full log, one file per attempt and Slurm job beside the rule's log;
    # Snakemake deleted the rule's log before the retry, so that holds the last attempt's summary.
    rule_log = workdir / "logs" / "train" / f"{run_dir.removeprefix('results/runs/')}.log"
    attempts = rule_log.with_suffix("")
    full_logs = {p.name: p.read_text(errors="replace") for p in attempts.glob("attempt*.log")}
    assert sorted(full_logs) == sorted(f"attempt{n}-slurm{job}.log" for n, job in enumerate(ids, 1))
    first = full_logs[f"attempt1-slurm{ids[0]}.log"]
    assert re.search(rf"Epoch (\d+)/{epochs}", first) and "resuming at epoch" not in first, first[-2000:]
    summary = rule_log.read_text().splitlines()
    assert f"attempt {len(ids)} (Slurm job {ids[-1]} on " in summary[0], summary
    assert summary[-1] == f"finished: all {epochs} epochs", summary

    # The timed-out attempt on the console: a few lines with the rule, Slurm state, wildcards, the epoch
    # reached and where its full log is; not the Slurm log's Snakemake wrapper output.
    block = proc.stderr[proc.stderr.index("Error in rule train:") :]
    block = block[: block.index("Trying to restart job")]
    assert f"SLURM-job '{ids[0]}' failed, SLURM status is: 'TIMEOUT'" in block, block
    assert f"model=alexnet, optimizer=sgd, lr=0.001, seed=0: attempt 1 (Slurm job {ids[0]} on " in block, block
    assert f"full log of this attempt: {attempts.relative_to(workdir)}/attempt1-slurm{ids[0]}.log" in block, block
    stopped = re.search(
        r"stopped by SIGTERM \(Slurm's time limit, scancel or preemption\) after epoch (\d+) of " + str(epochs), block
    )
    assert stopped, block
    assert "SNAKEMAKE" not in block and len(block.splitlines()) < 25, block

    # The retry restored the checkpoint: its full log says so and it trained on from the epoch after
    # the one the stopped attempt reported.
    text = full_logs[f"attempt{len(ids)}-slurm{ids[-1]}.log"]
    resumed = [int(n) for n in RESUMING.findall(text)]
    assert resumed, text[-3000:]
    assert 1 < resumed[-1] <= epochs
    if len(ids) == 2:
        assert resumed[-1] == int(stopped.group(1)) + 1
    after = text[text.rfind("resuming at epoch") :]
    first_epoch_after = re.search(rf"Epoch (\d+)/{epochs}", after)
    assert first_epoch_after and int(first_epoch_after.group(1)) == resumed[-1], after[:2000]


# ---- (d) no accounting: a run that could never see its jobs finish stops before submitting ------


def test_sacct_without_accounting_stops_before_submitting(slurm_cluster, tmp_path):
    """The test cluster has no slurmdbd (AccountingStorageType=accounting_storage/none): with the shipped
    profile's `slurm-status-command: sacct` the plugin would wait forever. The workflow says so at once."""
    require_workflow()
    workdir = copy_workflow(tmp_path / "wf")
    sacct_overlay = write_yaml(tmp_path / "sacct_overlay" / "config.yaml", {"slurm-status-command": "sacct"}).parent
    jobs_before = slurm_cluster.squeue_all()
    proc = run(
        slurm_command("--configfile", DEMO_CONFIG, overlays=(sacct_overlay,)), workdir, slurm_cluster.env, timeout=180
    )
    assert proc.returncode != 0, describe(proc, slurm_cluster)
    assert (
        "Slurm accounting is off on this cluster (AccountingStorageType=accounting_storage/none), so sacct would "
        "never see a job finish and Snakemake would wait forever: set slurm-status-command: squeue in "
        "slurm/config.yaml (or pass --slurm-status-command squeue)"
    ) in proc.stderr, describe(proc)
    # Nothing was submitted, nothing ran.
    assert not SUBMITTED.search(proc.stderr)
    assert slurm_cluster.squeue_all() == jobs_before
    assert not (workdir / "results").exists()
