"""The Slurm profile against a real single-node Slurm (tests/slurm_cluster.py).

Needs root and the Debian packages of .ci/install_slurm.sh; skips otherwise. Two clusters, each started
once: `slurm_cluster` with one fake GPU, `slurm_cluster_without_gpu` with none.

(a) test_cpu_overlay_runs_the_demo_on_a_cluster_without_gpus: the demo config (with an AlexNet test grid
    on top, see TEST_GRID; SLURM_TEST_FULL_DEMO=1 for the demo's own grid) through slurm/ +
    profiles/slurm-cpu on the GPU-less cluster; every job went through sbatch with the overlay's
    resources, and the results equal a local run.
(b) test_unchanged_profile_stops_before_submitting: on the GPU-less cluster the shipped profile stops
    before submitting, one line per problem: sacct without accounting, CHANGE_ME partitions, and, with
    the test cluster's partition named, the GPU the train rule asks for.
(c) test_train_time_limit_retry_resumes: a training job killed by its Slurm time limit is retried and
    resumes from its checkpoint; every attempt keeps its full log, the console gets a few lines per
    timed-out attempt, the rule's GPU request reaches sbatch.
(d) a job Slurm keeps pending for good is named: by PendingWatch on a real PartitionConfig job, and by a
    workflow run whose job waits on a drained node.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnn_study import run_layout, settings
from cnn_study.slurm_partitions import PendingWatch
from helpers import copy_workflow
from slurm_cluster import slurm_cluster, slurm_cluster_without_gpu  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "slurm"
OVERLAY = REPO / "tests" / "slurm_overlay"
CPU_OVERLAY = REPO / "profiles" / "slurm-cpu"
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


# ---- the real workflow -------------------------------------------------------------------------

DEMO_CONFIG = "configs/demo.yaml"
TIMING_COLUMNS = {"epoch_seconds", "epoch_cpu_seconds", "images_per_second"}
# The demo's full grid (2 models x 3 optimizers, ~9 min on 2 cores) is too slow to run twice
# here; the test grid keeps the demo config and swaps in AlexNet (the one architecture without
# ImageNet weights, seconds per run). SLURM_TEST_FULL_DEMO=1 runs the demo's own grid instead.
TEST_GRID = {
    "grid": {"models": ["alexnet"], "optimizers": ["sgd", "adam"]},
    "models": {"alexnet": {"input_size": 67, "weights": "none"}},
}


def run_dir_of(**keys) -> str:
    """A run of the reference arm's folder, relative to the workflow (cnn_study.run_layout)."""
    return str(run_layout.run_folder({"arm": "paper", **keys}))


def require_workflow() -> None:
    missing = [p for p in ("Snakefile", DEMO_CONFIG) if not (REPO / p).exists()]
    if missing:
        pytest.skip(f"workflow not there yet: {', '.join(missing)}")


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_dirs(workdir: Path, config_files: list[str]) -> list[str]:
    """The run directories of the study, as the workflow computes them."""
    config = settings.read_config_files([workdir / f for f in ["config.yaml", *config_files]])
    return [str(run_layout.run_folder(run)) for run in settings.run_grid(settings.prepare_study(config))]


def read_rows(path: Path, drop: set[str] = frozenset()) -> list[dict]:
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]


def slurm_job(cluster, jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", jobid], env=cluster.env, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_cpu_overlay_runs_the_demo_on_a_cluster_without_gpus(slurm_cluster_without_gpu, tmp_path):
    """The documented CPU-cluster overlay, last: every job through sbatch, train with the overlay's resources."""
    cluster = slurm_cluster_without_gpu
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

    # The reference: a plain local run, alongside the Slurm run (its jobs mostly wait), with the overlay's
    # training threads (TensorFlow's sums differ in the last bits between thread counts).
    local_cmd = [*SNAKEMAKE, "--cores", "2", "--set-threads", "train=2", "--configfile", *configs]
    local_out = (local_dir / "snakemake.out").open("w")
    local = subprocess.Popen(local_cmd, cwd=local_dir, stdout=local_out, stderr=subprocess.STDOUT, text=True)
    try:
        proc = run(
            slurm_command("--configfile", *configs, overlays=(CPU_OVERLAY,)), slurm_dir, cluster.env, timeout=900
        )
    finally:
        local_rc = local.wait(timeout=900)
        local_out.close()
    assert proc.returncode == 0, describe(proc, cluster)
    assert local_rc == 0, (local_dir / "snakemake.out").read_text()[-5000:]
    # The checks before submitting passed, and the pending jobs were watched without a false alarm.
    assert "Slurm partitions: every job fits the partition it names" in proc.stderr
    assert "Pending Slurm jobs: checked every 2 s for ones that cannot start" in proc.stderr
    assert "cannot start:" not in proc.stderr

    # Every train job went through sbatch: one Slurm job (and log) per run, none run locally.
    train_logs = slurm_logs(slurm_dir, "train")
    assert len(train_logs) == len(runs), (sorted(train_logs), runs)
    assert "localrule train:" not in proc.stderr
    jobs = {
        line.split("|")[0]: line.split("|")
        for line in cluster.squeue_all().splitlines()
        if line.split("|")[0] in train_logs
    }
    assert len(jobs) == len(runs)
    assert {j[2] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert all(j[3].startswith("rule_train_wildcards_") for j in jobs.values()), jobs
    submitted = SUBMITTED.findall(proc.stderr)
    assert {jobid for _, jobid in submitted} >= set(train_logs)
    # ... and so did every other non-local job of the DAG.
    assert "localrule" not in proc.stderr.replace("localrule all:", "")

    # sbatch got the overlay's resources, and the rule's runtime: no GPU, 2 CPUs, 4000 MB, 240 minutes.
    for jobid in train_logs:
        show = slurm_job(cluster, jobid)
        assert "NumCPUs=2 " in show and "mem=4000M" in show and "TimeLimit=04:00:00" in show, show
        assert "TresPerJob=" not in show and "gres" not in show, show
    # Each run trained inside the Slurm job Snakemake submitted for it (its attempt log is named after it).
    for run_dir in runs:
        attempts = [p.name for p in (slurm_dir / run_dir.replace("results/runs", "logs/train")).glob("attempt*.log")]
        assert len(attempts) == 1 and attempts[0].removeprefix("attempt1-slurm").removesuffix(".log") in train_logs

    # Same results as the local run, timing aside.
    for run_dir in runs:
        got = read_rows(slurm_dir / run_dir / "history.csv", drop=TIMING_COLUMNS)
        want = read_rows(local_dir / run_dir / "history.csv", drop=TIMING_COLUMNS)
        assert got and got == want, run_dir
        assert not (slurm_dir / run_dir / "resume").exists()
    manifest = "results/data/manifest.csv"
    assert (slurm_dir / manifest).read_bytes() == (local_dir / manifest).read_bytes()


# ---- (b) the shipped profile on a cluster without GPUs stops before submitting ------------------


def test_unchanged_profile_stops_before_submitting(slurm_cluster_without_gpu, tmp_path):
    """One line per problem, then nothing submitted: with the profile as shipped, and with only the test
    cluster's partition named in it (tests/slurm_overlay), where the train rule's GPU is the one problem left."""
    cluster = slurm_cluster_without_gpu
    require_workflow()
    workdir = copy_workflow(tmp_path / "wf")
    jobs_before = cluster.squeue_all()

    as_shipped = run(
        [*SNAKEMAKE, "--profile", str(SLURM_PROFILE), "--configfile", DEMO_CONFIG], workdir, cluster.env, 180
    )
    assert as_shipped.returncode != 0, describe(as_shipped, cluster)
    assert (
        "Slurm accounting is off on this cluster (AccountingStorageType=accounting_storage/none), so sacct would "
        "never see a job finish and Snakemake would wait forever: set slurm-status-command: squeue in your profile "
        "(slurm/config.yaml, or an overlay profile given after it with --profile, whose value wins), or pass "
        "--slurm-status-command squeue"
    ) in as_shipped.stderr, describe(as_shipped)
    for partition, rules in (
        ("CHANGE_ME_cpu_partition", "(rules build_image_cache, extract_metrics, make_synthetic_dataset, "),
        ("CHANGE_ME_gpu_partition", "(rule train)"),
    ):
        line = next(line for line in as_shipped.stderr.splitlines() if f"Slurm partition '{partition}'" in line)
        assert rules in line and "does not exist on this cluster, which has test: set slurm_partition" in line

    test_partition = run(slurm_command("--configfile", DEMO_CONFIG), workdir, cluster.env, timeout=180)
    assert test_partition.returncode != 0, describe(test_partition, cluster)
    gpu_line = (
        "rule train asks for 1 GPU(s), but Slurm partition 'test' has no GPUs (no node with GRES gpu): name a GPU "
        "partition as slurm_partition under set-resources: train in your profile, or train on CPUs with --profile "
        "profiles/slurm-cpu as the last profile"
    )
    assert gpu_line in test_partition.stderr.splitlines(), describe(test_partition)
    assert "Slurm accounting is off" not in test_partition.stderr and "does not exist" not in test_partition.stderr

    # Nothing was submitted, nothing ran.
    for proc in (as_shipped, test_partition):
        assert not SUBMITTED.search(proc.stderr) and "sbatch" not in proc.stderr
    assert cluster.squeue_all() == jobs_before
    assert not (workdir / "results").exists()


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
    write_yaml(workdir / "calibrate.yaml", settings.merge({"training": {"epochs": 6}}, base))
    write_yaml(workdir / "calibrate_seed.yaml", {"grid": {"seeds": [1]}})
    calib = run_dir_of(model="alexnet", optimizer="sgd", lr="0.001", seed=1)
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

    write_yaml(workdir / "long.yaml", settings.merge({"training": {"epochs": epochs}}, base))
    # Extra overlay: attempt 1 of train gets a 1-minute limit, later attempts 10 minutes.
    overlay = yaml.safe_load((OVERLAY / "config.yaml").read_text())
    resources = dict(overlay["set-resources"]["train"], runtime="1 if attempt == 1 else 10")
    timeout_overlay = write_yaml(
        tmp_path / "timeout_overlay" / "config.yaml", {"set-resources": {"train": resources}}
    ).parent
    run_dir = run_dir_of(model="alexnet", optimizer="sgd", lr="0.001", seed=0)
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


# ---- (d) a job Slurm keeps pending for good is named -------------------------------------------


def test_pending_watch_names_a_real_partition_config_job(slurm_cluster_without_gpu, tmp_path):
    """8 CPUs on the 2-CPU node: sbatch takes it (EnforcePartLimits=NO) and Slurm leaves it pending for good."""
    cluster = slurm_cluster_without_gpu
    warnings = []
    watch = PendingWatch(str(tmp_path), interval=1, warn=warnings.append, grace=0, run=cluster_run(cluster))
    watch.start()
    watch.stop()
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-c",
            "8",
            "-t",
            "1",
            "-D",
            str(tmp_path),
            "-o",
            "/dev/null",
            "--comment",
            "rule_train_wildcards_alexnet_sgd_0.001_0",
            "--wrap",
            "true",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    )
    jobid = submitted.stdout.strip().split(";")[0]
    try:
        lines = wait_for(watch.check, timeout=30)
    finally:
        subprocess.run(["scancel", jobid], env=cluster.env, check=False)
    assert lines == [
        f"Slurm job {jobid} (rule train (alexnet_sgd_0.001_0)) cannot start: PartitionConfig. Snakemake waits for it; "
        "Ctrl-C stops the run and cancels its jobs; change the job's resources or slurm_partition in your profile"
    ]


def cluster_run(cluster):
    def run_in_cluster(argv, **kwargs):
        return subprocess.run(argv, env=cluster.env, **kwargs)

    return run_in_cluster


def wait_for(check, timeout: float, every: float = 1.0):
    """check()'s first non-empty answer within `timeout` seconds, else its last (empty) one."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(every)


def test_a_run_names_its_job_that_waits_on_a_drained_node(slurm_cluster_without_gpu, tmp_path):
    """The workflow's own watch, in a run: its first job waits for the only node, drained; the run says so."""
    cluster = slurm_cluster_without_gpu
    require_workflow()
    workdir = copy_workflow(tmp_path / "wf")
    node = ["scontrol", "update", f"nodename={cluster.hostname}"]
    subprocess.run([*node, "state=drain", "reason=test_slurm"], env=cluster.env, check=True)
    output = tmp_path / "snakemake.out"
    cmd = slurm_command("--configfile", DEMO_CONFIG, "--", "results/data/synthetic/train.zip", overlays=(CPU_OVERLAY,))
    with output.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=cluster.env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        text = wait_for(lambda: "cannot start:" in output.read_text() and output.read_text(), timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Snakemake cancels its Slurm jobs and stops
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # seen once in CI on a loaded machine: no orphan polls a stopped cluster
            proc.kill()
            proc.wait()
        subprocess.run([*node, "state=resume"], env=cluster.env, check=True)
        cluster.cancel_all_jobs()
    assert text, output.read_text()[-5000:]
    warning = next(line for line in text.splitlines() if "cannot start:" in line)
    assert re.search(
        r"Slurm job \d+ \(rule make_synthetic_dataset\) cannot start: Nodes required for job are DOWN, DRAINED or reserved",
        warning,
    ), warning
    assert text.count("cannot start: ") == 1
