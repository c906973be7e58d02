"""The partition check before a Slurm run submits anything, and the watch on its pending jobs
(cnn_study.slurm_partitions), on sinfo, scontrol and squeue output as Slurm 22.05 prints it."""

from __future__ import annotations

import logging
import subprocess

import pytest

from cnn_study import slurm_partitions
from cnn_study.slurm_partitions import NodeGroup, PendingWatch, Request

# `sinfo --noheader --format=%P|%c|%m|%G`: a CPU partition (the default) of two node types, a GPU partition.
SINFO = """cpu*|2|24105|(null)
cpu*|64|256000|(null)
gpu|32|512000|gpu:a100:4(S:0-1)
"""
# `scontrol show partition --oneliner`, trimmed; TRES has "=" inside its value, as Slurm prints it.
SCONTROL = """PartitionName=cpu AllowGroups=ALL Default=YES MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED State=UP TRES=cpu=66,mem=280105M,node=2
PartitionName=gpu AllowGroups=ALL Default=NO MaxCPUsPerNode=16 MaxMemPerNode=128000 State=UP TRES=cpu=32,mem=512000M,node=1,gres/gpu=4
"""
# The test cluster of tests/slurm_cluster.py, without its fake GPU.
SINFO_TEST = "test*|2|24105|(null)\n"
SCONTROL_TEST = "PartitionName=test Default=YES MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED State=UP\n"


def partitions(sinfo=SINFO, scontrol=SCONTROL):
    found = slurm_partitions.parse_sinfo(sinfo)
    slurm_partitions.add_partition_limits(found, scontrol)
    return found


def fake_run(outputs: dict[str, str], returncode=0, stderr=""):
    """A subprocess.run that answers each command (by its first word) with the given output."""
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        name = argv[0] if argv[0] != "scontrol" else " ".join(argv[:3])
        return subprocess.CompletedProcess(argv, returncode, stdout=outputs.get(name, ""), stderr=stderr)

    run.calls = calls
    return run


def test_sinfo_and_scontrol_give_partitions_node_groups_and_limits():
    found = partitions()
    assert sorted(found) == ["cpu", "gpu"]
    assert found["cpu"].default and not found["gpu"].default
    assert found["cpu"].nodes == [NodeGroup(2, 24105, 0), NodeGroup(64, 256000, 0)]
    assert found["gpu"].nodes == [NodeGroup(32, 512000, 4)]
    assert (found["gpu"].max_cpus_per_node, found["gpu"].max_mem_per_node) == (16, 128000)
    assert (found["cpu"].max_cpus_per_node, found["cpu"].max_mem_per_node) == (None, None)
    # The partition's limits cap what a node offers a job.
    assert found["gpu"].largest(with_gpus=1) == NodeGroup(16, 128000, 4)
    assert found["cpu"].largest(with_gpus=1) is None


def test_sinfo_lines_that_name_no_partition_are_skipped_and_unreadable_sizes_count_as_zero():
    text = "sinfo: warning: stray line\n|2|24105|(null)\n\nDGX*|N/A|N/A|gpu:8\nshort|4|8000|(null)\n"
    found = slurm_partitions.parse_sinfo(text)
    assert sorted(found) == ["DGX", "short"]
    assert found["DGX"].default and found["DGX"].nodes == [NodeGroup(0, 0, 8)]
    assert found["short"].nodes == [NodeGroup(4, 8000, 0)]


@pytest.mark.parametrize(
    "gres, gpus",
    [
        ("(null)", 0),
        ("gpu:1", 1),
        ("gpu:a100:4(S:0-1)", 4),
        ("gpu:2,mps:200", 2),
        ("mps:100", 0),
        ("gpu", 1),  # a GPU without a count: one
        ("gpu:a100:2,gpu:v100:1", 3),  # two GPU types on one node
        ("", 0),
    ],
)
def test_gpus_per_node_from_gres(gres, gpus):
    assert slurm_partitions.gpu_count(gres) == gpus


def test_a_jobs_request_as_the_plugin_makes_it():
    resources = {"slurm_partition": "gpu", "gpu": 1, "cpus_per_task": 8, "mem_mb": 32000, "runtime": 240}
    # cpus_per_task is what sbatch gets, whatever the job's threads.
    assert slurm_partitions.request_of("train", resources, threads=2) == Request("train", "gpu", 1, 8, 32000)
    # No cpus_per_task: the job's threads; gres instead of gpu; memory per CPU; <TBD> is no number.
    resources = {"gres": "gpu:a100:2", "mem_mb_per_cpu": 1000, "mem_mb": "<TBD>"}
    assert slurm_partitions.request_of("x", resources, threads=4) == Request("x", None, 2, 4, 4000)
    assert slurm_partitions.request_of("y", {}, threads=1) == Request("y", None, 0, 1, None)
    # Snakemake gives no threads: one CPU.
    assert slurm_partitions.request_of("z", {}, threads=None) == Request("z", None, 0, 1, None)
    assert slurm_partitions.request_of("z", {}, threads=0) == Request("z", None, 0, 1, None)


def test_jobs_that_fit_raise_nothing():
    requests = [
        Request("train", "gpu", 1, 8, 32000),
        Request("select_images", "cpu", 0, 1, 4000),
        Request("metrics", None, 0, 1, 4000),  # the default partition
        Request("figures", "cpu", 0, 64, 200000),  # only the larger node type holds it
    ]
    assert slurm_partitions.check_requests(requests, partitions()) == []


def test_a_missing_partition_is_one_line_naming_its_rules():
    requests = [
        Request("select_images", "CHANGE_ME_cpu_partition", 0, 1, 4000),
        Request("metrics", "CHANGE_ME_cpu_partition", 0, 1, 4000),
        Request("train", "CHANGE_ME_gpu_partition", 1, 8, 32000),
        Request("train", "CHANGE_ME_gpu_partition", 1, 8, 32000),  # every job of a rule: said once
    ]
    problems = slurm_partitions.check_requests(requests, partitions())
    assert problems == [
        "Slurm partition 'CHANGE_ME_cpu_partition' (rules metrics, select_images) does not exist on this cluster, "
        "which has cpu, gpu: set slurm_partition in your profile (default-resources, or set-resources for one rule)",
        "Slurm partition 'CHANGE_ME_gpu_partition' (rule train) does not exist on this cluster, which has cpu, "
        "gpu: set slurm_partition in your profile (default-resources, or set-resources for one rule)",
    ]


def test_a_gpu_request_on_a_partition_without_gpus():
    problems = slurm_partitions.check_requests(
        [Request("train", "test", 1, 2, 4000)], partitions(SINFO_TEST, SCONTROL_TEST)
    )
    assert problems == [
        "rule train asks for 1 GPU(s), but Slurm partition 'test' has no GPUs (no node with GRES gpu): name a GPU "
        "partition as slurm_partition under set-resources: train in your profile, or train on CPUs with --profile "
        "profiles/slurm-cpu as the last profile"
    ]
    # More GPUs than any node has.
    problems = slurm_partitions.check_requests([Request("train", "gpu", 8, 8, 1000)], partitions())
    assert len(problems) == 1 and "has nodes with at most 4 GPUs" in problems[0]


def test_more_cpus_or_memory_than_any_node_has():
    test_cluster = partitions(SINFO_TEST, SCONTROL_TEST)
    # The train rule's own request on the 2-CPU test node: Slurm would leave it pending (PartitionConfig).
    problems = slurm_partitions.check_requests([Request("train", None, 0, 8, 32000)], test_cluster)
    assert problems == [
        "rule train asks for 8 CPUs and 32000 MB on one node, but the largest node of partition 'test' has 2 CPUs "
        "and 24105 MB: lower cpus_per_task and mem_mb for train in your profile's set-resources (and set-threads "
        "to match)"
    ]
    assert slurm_partitions.check_requests([Request("train", None, 0, 2, 30000)], test_cluster)
    assert slurm_partitions.check_requests([Request("train", None, 0, 2, 24105)], test_cluster) == []
    # A partition's MaxCPUsPerNode and MaxMemPerNode count, not only the node's size.
    assert slurm_partitions.check_requests([Request("train", "gpu", 1, 32, 1000)], partitions())
    assert slurm_partitions.check_requests([Request("train", "gpu", 1, 16, 200000)], partitions())
    assert slurm_partitions.check_requests([Request("train", "gpu", 1, 16, 128000)], partitions()) == []


def test_a_job_without_a_memory_request_fits_any_memory():
    assert slurm_partitions.fits(Request("x", None, 0, 1, None), NodeGroup(1, 0, 0))
    problems = slurm_partitions.check_requests([Request("train", None, 0, 8, None)], partitions(SINFO_TEST))
    assert problems[0].startswith("rule train asks for 8 CPUs on one node, but the largest node of partition 'test'")


def test_without_a_default_partition_a_job_naming_none_is_left_to_sbatch():
    no_default = partitions(SINFO.replace("*", ""))
    requests = [
        Request("a_rule", None, 0, 1000, None),  # no partition, no default: not checked
        Request("b_rule", "nowhere", 0, 1, None),
        Request("c_rule", "cpu", 0, 1000, None),
    ]
    problems = slurm_partitions.check_requests(requests, no_default)
    assert [problem.split(":")[0] for problem in problems] == [
        "Slurm partition 'nowhere' (rule b_rule) does not exist on this cluster, which has cpu, gpu",
        "rule c_rule asks for 1000 CPUs on one node, but the largest node of partition 'cpu' has 64 CPUs and 256000 MB",
    ]


def test_problems_are_listed_by_rule_then_partition_then_size():
    requests = [
        Request("train", "gpu", 0, 100, None),
        Request("train", "cpu", 0, 200, None),
        Request("train", "cpu", 0, 100, 2000),
        Request("train", "cpu", 0, 100, None),
    ]
    problems = slurm_partitions.check_requests(requests, partitions())
    assert [problem.split(" on one node")[0] for problem in problems] == [
        "rule train asks for 100 CPUs",
        "rule train asks for 100 CPUs and 2000 MB",
        "rule train asks for 200 CPUs",
        "rule train asks for 100 CPUs",
    ]
    assert "partition 'gpu'" in problems[3]


def test_a_job_that_fits_does_not_end_the_check():
    requests = [Request("a_fits", "cpu", 0, 1, 1000), Request("b_too_big", "cpu", 0, 1000, None)]
    problems = slurm_partitions.check_requests(requests, partitions())
    assert len(problems) == 1 and problems[0].startswith("rule b_too_big asks for 1000 CPUs on one node")


def test_a_cluster_without_partitions_says_so():
    problems = slurm_partitions.check_requests([Request("train", "gpu", 1, 8, 1000)], {})
    assert problems == [
        "Slurm partition 'gpu' (rule train) does not exist on this cluster, which has none: set slurm_partition in "
        "your profile (default-resources, or set-resources for one rule)"
    ]


def test_a_gpu_problem_on_a_partition_without_nodes_says_it_has_no_gpus():
    line = slurm_partitions.gpu_problem(Request("train", "gpu", 1, 8, 1000), slurm_partitions.Partition("gpu"))
    assert "Slurm partition 'gpu' has no GPUs (no node with GRES gpu)" in line


def test_slurm_commands_are_run_with_a_timeout_and_their_output_as_text():
    run = fake_run({"sinfo": SINFO_TEST, "scontrol show partition": SCONTROL_TEST})
    kwargs = []
    slurm_partitions.check_partitions([], run=lambda argv, **given: kwargs.append(given) or run(argv))
    assert kwargs == [{"capture_output": True, "text": True, "timeout": 30}] * 2

    def hangs(argv, **given):
        raise subprocess.TimeoutExpired(argv, given["timeout"])

    with pytest.raises(slurm_partitions.SlurmQueryError) as raised:
        slurm_partitions.check_partitions([], run=hangs)
    assert str(raised.value) == (
        "`sinfo --noheader --format=%P|%c|%m|%G` failed (Command '['sinfo', '--noheader', '--format=%P|%c|%m|%G']' "
        "timed out after 30 seconds)"
    )


def test_a_failing_scontrol_is_named_by_its_command():
    def run(argv, **kwargs):
        if argv[0] == "sinfo":
            return subprocess.CompletedProcess(argv, 0, stdout=SINFO_TEST, stderr="")
        return subprocess.CompletedProcess(argv, 1, stdout="", stderr="")

    with pytest.raises(slurm_partitions.SlurmQueryError) as raised:
        slurm_partitions.check_partitions([], run=run)
    assert str(raised.value) == "`scontrol show partition` failed (exit 1)"


def test_check_partitions_asks_sinfo_and_scontrol():
    run = fake_run({"sinfo": SINFO_TEST, "scontrol show partition": SCONTROL_TEST})
    assert slurm_partitions.check_partitions([Request("train", "test", 0, 2, 4000)], run=run) == []
    assert [argv[:3] for argv in run.calls] == [
        ["sinfo", "--noheader", "--format=%P|%c|%m|%G"],
        ["scontrol", "show", "partition"],
    ]
    failing = fake_run({}, returncode=1, stderr="slurm_load_partitions: Unable to contact slurm controller\n")
    with pytest.raises(slurm_partitions.SlurmQueryError, match="Unable to contact slurm controller"):
        slurm_partitions.check_partitions([], run=failing)


# ---- pending jobs that will not start ------------------------------------------------------------

WORKDIR = "/home/me/study"


def squeue_line(
    jobid, reason, cpus=2, mem="4000M", comment="rule_train_wildcards_alexnet_sgd_0.001_0", workdir=WORKDIR
):
    return f"{jobid}|{comment}|test|{reason}|{cpus}|{mem}|{workdir}"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def watch(lines: list[str], clock, grace=30.0):
    """A PendingWatch on squeue lines the test changes as it goes."""
    outputs = {"sinfo": SINFO_TEST, "scontrol show partition": SCONTROL_TEST}

    def run(argv, **kwargs):
        if argv[0] == "squeue":
            assert "--user=me" in argv and "--states=PENDING" in argv
            return subprocess.CompletedProcess(argv, 0, stdout="\n".join(lines) + "\n", stderr="")
        return fake_run(outputs)(argv)

    return PendingWatch(WORKDIR, interval=10, warn=print, grace=grace, run=run, clock=clock, user="me")


def test_a_job_pending_for_partition_config_is_named_once_after_the_grace_time():
    clock = Clock()
    lines = []
    watcher = watch(lines, clock)
    assert watcher.start() == "Pending Slurm jobs: checked every 10 s for ones that cannot start"
    watcher.stop()
    lines.append(squeue_line("17", "PartitionConfig", cpus=8))
    assert watcher.check() == []  # first seen
    clock.now += 29
    assert watcher.check() == []
    clock.now += 1
    assert watcher.check() == [
        "Slurm job 17 (rule train (alexnet_sgd_0.001_0)) cannot start: PartitionConfig. Snakemake waits for it; "
        "Ctrl-C stops the run and cancels its jobs; change the job's resources or slurm_partition in your profile"
    ]
    clock.now += 100
    assert watcher.check() == []  # said once


def test_drained_nodes_and_requests_beyond_every_node_are_named():
    clock = Clock()
    lines = [
        squeue_line("19", "Priority"),  # it only waits: the jobs after it are still checked
        squeue_line(
            "20", "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions"
        ),
        squeue_line("21", "ReqNodeNotAvail, UnavailableNodes:node7"),
        squeue_line("22", "Resources", cpus=4),  # more CPUs than the test node has
        squeue_line("23", "Resources", cpus=2, mem="30G"),  # more memory than it has
        squeue_line("24", "Resources", cpus=2),  # fits: it only waits
        squeue_line("25", "Priority"),
        squeue_line("26", "BeginTime"),
    ]
    watcher = watch(lines, clock, grace=0)
    warnings = watcher.check()
    assert [w.split()[2] for w in warnings] == ["20", "21", "22", "23"]
    assert "cannot start: Nodes required for job are DOWN, DRAINED" in warnings[0]
    for warning in warnings[:2]:
        assert warning.endswith(
            "it starts when those nodes are back (`sinfo -R` says why they are out), or change "
            "slurm_partition in your profile"
        )
    assert warnings[2].endswith("; change the job's resources or slurm_partition in your profile")
    assert (
        "cannot start: Resources: it asks for 4 CPUs and 4000 MB, the largest node of partition 'test' has 2 CPUs and "
        "24105 MB." in warnings[2]
    )
    assert "it asks for 2 CPUs and 30720 MB" in warnings[3]


def test_only_this_runs_new_jobs_are_watched():
    clock = Clock()
    lines = [squeue_line("30", "PartitionConfig")]  # pending before the run started
    watcher = watch(lines, clock, grace=0)
    watcher.start()
    watcher.stop()
    lines += [
        squeue_line("31", "PartitionConfig", workdir="/elsewhere"),  # another workflow's job
        squeue_line("32", "PartitionConfig", comment="(null)"),  # not submitted by the Slurm plugin
        squeue_line("33", "PartitionConfig", comment="rule_metrics"),
    ]
    warnings = watcher.check()
    assert len(warnings) == 1 and warnings[0].startswith("Slurm job 33 (rule metrics) cannot start: PartitionConfig")


def test_a_reason_that_clears_restarts_the_grace_time():
    clock = Clock()
    lines = [squeue_line("40", "ReqNodeNotAvail, UnavailableNodes:node7")]
    watcher = watch(lines, clock, grace=30)
    watcher.check()
    clock.now += 20
    lines[0] = squeue_line("40", "Priority")
    watcher.check()
    clock.now += 20
    lines[0] = squeue_line("40", "ReqNodeNotAvail, UnavailableNodes:node7")
    assert watcher.check() == []
    clock.now += 30
    assert len(watcher.check()) == 1


@pytest.mark.parametrize(
    "text, mb", [("4000M", 4000), ("1G", 1024), ("2.5G", 2560), ("1T", 1048576), ("512K", 0), ("0", 0), ("", None)]
)
def test_squeue_memory_in_mb(text, mb):
    assert slurm_partitions.memory_mb(text) == mb


def test_an_unreadable_squeue_at_the_start_is_said():
    def failing(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "squeue")

    watcher = PendingWatch(WORKDIR, interval=10, warn=print, run=failing, user="me")
    assert watcher.start().startswith("Pending Slurm jobs: not watched, `squeue --noheader --states=PENDING` failed")


def test_squeue_lines_without_a_job_are_skipped_and_unreadable_cpus_count_as_one():
    text = "\n".join(
        [
            "squeue: warning: stray line",
            squeue_line("", "Priority"),
            squeue_line("50", "Priority", cpus="N/A"),
            squeue_line("51", "Priority", cpus=4),
        ]
    )
    jobs = slurm_partitions.parse_squeue(text)
    assert [(job.jobid, job.cpus) for job in jobs] == [("50", 1), ("51", 4)]


def test_a_job_pending_for_resources_on_a_partition_sinfo_does_not_show_is_not_named():
    clock = Clock()
    lines = [squeue_line("60", "Resources", cpus=64).replace("|test|", "|gone|")]
    assert watch(lines, clock, grace=0).check() == []


def test_the_grace_time_is_the_interval_unless_given():
    assert PendingWatch(WORKDIR, interval=10, warn=print, user="me").grace == 10
    assert PendingWatch(WORKDIR, interval=10, warn=print, grace=0, user="me").grace == 0


def test_the_watch_runs_in_a_daemon_thread_warns_and_rides_out_a_failing_squeue(caplog):
    """start() checks every interval in the background until stop(); a squeue that fails once is retried."""
    import threading

    # squeue's answers in turn: none pending when the watch starts, a failure, then a job that cannot start.
    answers = [(0, ""), (1, ""), (0, squeue_line("70", "PartitionConfig") + "\n")]
    warnings, seen = [], threading.Event()

    def run(argv, **kwargs):
        returncode, stdout = answers.pop(0) if len(answers) > 1 else answers[0]
        stderr = "slurm_load_jobs error: Socket timed out\n" if returncode else ""
        return subprocess.CompletedProcess(argv, returncode, stdout=stdout, stderr=stderr)

    def warn(line):
        warnings.append(line)
        seen.set()

    watcher = PendingWatch(WORKDIR, interval=0.01, warn=warn, grace=0, run=run, user="me")
    with caplog.at_level(logging.DEBUG, logger="cnn_study.slurm_partitions"):
        assert watcher.start().startswith("Pending Slurm jobs: checked every 0.01 s")
        try:
            [thread] = [t for t in threading.enumerate() if t.name == "slurm-pending-watch"]
            assert thread.daemon
            assert seen.wait(10), "no warning from the watch thread"
        finally:
            watcher.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert warnings[0].startswith("Slurm job 70 (rule train (alexnet_sgd_0.001_0)) cannot start: PartitionConfig")
    assert (
        "pending Slurm jobs not checked: `squeue --noheader --states=PENDING` failed (slurm_load_jobs error: "
        "Socket timed out)" in caplog.messages
    )
