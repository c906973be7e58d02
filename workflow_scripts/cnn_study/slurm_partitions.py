"""Will Slurm ever start the jobs of a run? Checked before anything is submitted, and watched while it runs.

snakemake-executor-plugin-slurm 2.8 hands each job to sbatch as its resources say. A partition that does not
exist, a GPU request on a partition without GPUs, or more CPUs or memory than any node of the partition has
are either refused by sbatch at every attempt (the plugin then prints the whole sbatch line each time) or,
with Slurm's default EnforcePartLimits=NO, accepted and left pending for ever (Reason=PartitionConfig) while
Snakemake waits without a word. `check_requests` turns each such problem into one line, from `sinfo` and
`scontrol show partition`, before the first submission. `PendingWatch` names a submitted job that Slurm
keeps pending for a reason that will not go away by waiting.
"""

from __future__ import annotations

import getpass
import logging
import re
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# sinfo, one line per partition and node configuration: name (* marks the default), CPUs, MB, GRES.
SINFO = ["sinfo", "--noheader", "--format=%P|%c|%m|%G"]
SCONTROL_PARTITIONS = ["scontrol", "show", "partition", "--oneliner"]
# The profile overlay that trains on CPUs (README, "Cluster use").
CPU_OVERLAY = "profiles/slurm-cpu"
# Pending reasons of a job that waiting will not start: the request does not fit the partition's
# configuration, or the nodes it needs are down, drained or reserved (Slurm 22.05 prints that one as
# text, later versions as ReqNodeNotAvail).
NODES_OUT = ("ReqNodeNotAvail", "Nodes required for job are DOWN")
NEVER_STARTS = ("PartitionConfig", *NODES_OUT)
# Waiting for resources is normal, unless the job asks for more than any node of its partition has.
RESOURCES = "Resources"
# squeue, this user's pending jobs: id, comment (the plugin's rule_<rule>_wildcards_<...>), partition,
# reason, CPUs, memory, working directory.
SQUEUE = ["squeue", "--noheader", "--states=PENDING", "--format=%i|%k|%P|%r|%C|%m|%Z"]
MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


class SlurmQueryError(RuntimeError):
    """sinfo, scontrol or squeue could not be read."""


@dataclass(frozen=True)
class NodeGroup:
    """Nodes of one configuration in a partition: CPUs, memory (MB) and GPUs (GRES gpu) per node."""

    cpus: int
    mem_mb: int
    gpus: int


@dataclass
class Partition:
    name: str
    nodes: list[NodeGroup] = field(default_factory=list)
    default: bool = False
    max_cpus_per_node: int | None = None
    max_mem_per_node: int | None = None

    def usable(self, group: NodeGroup) -> NodeGroup:
        """A node as a job of this partition sees it: MaxCPUsPerNode and MaxMemPerNode cap it."""
        cpus = min(group.cpus, self.max_cpus_per_node or group.cpus)
        return NodeGroup(cpus, min(group.mem_mb, self.max_mem_per_node or group.mem_mb), group.gpus)

    def largest(self, with_gpus: int = 0) -> NodeGroup | None:
        """The most CPUs and the most memory a node (with at least `with_gpus` GPUs) offers."""
        groups = [self.usable(group) for group in self.nodes if group.gpus >= with_gpus]
        if not groups:
            return None
        return NodeGroup(max(g.cpus for g in groups), max(g.mem_mb for g in groups), max(g.gpus for g in groups))


@dataclass(frozen=True)
class Request:
    """What one job asks Slurm for: partition (None: the cluster's default), GPUs, CPUs, memory (MB, or None)."""

    rule: str
    partition: str | None
    gpus: int
    cpus: int
    mem_mb: int | None


def leading_int(text: str) -> int | None:
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


def gpu_count(gres: str) -> int:
    """GPUs per node in a GRES string: gpu:2, gpu:a100:4(S:0-1), gpu:1,mps:100; 0 for (null)."""
    count = 0
    for item in (gres or "").split(","):
        item = item.split("(")[0].strip()
        if item == "gpu" or item.startswith("gpu:"):
            last = item.split(":")[-1]
            count += int(last) if last.isdigit() else 1
    return count


def parse_sinfo(text: str) -> dict[str, Partition]:
    """`sinfo --format=%P|%c|%m|%G` output as partitions with their node groups."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4 or not fields[0]:
            continue
        name, cpus, mem_mb, gres = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        partition = partitions.setdefault(name, Partition(name))
        partition.default = partition.default or default
        partition.nodes.append(NodeGroup(leading_int(cpus) or 0, leading_int(mem_mb) or 0, gpu_count(gres)))
    return partitions


def add_partition_limits(partitions: dict[str, Partition], text: str) -> None:
    """MaxCPUsPerNode and MaxMemPerNode (MB) from `scontrol show partition --oneliner` (UNLIMITED: none)."""
    for line in text.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        partition = partitions.get(fields.get("PartitionName", ""))
        if partition is not None:
            partition.max_cpus_per_node = leading_int(fields.get("MaxCPUsPerNode", ""))
            partition.max_mem_per_node = leading_int(fields.get("MaxMemPerNode", ""))


def read_partitions(run=subprocess.run) -> dict[str, Partition]:
    """This cluster's partitions from sinfo and scontrol; SlurmQueryError where either cannot be read."""
    partitions = parse_sinfo(query(SINFO, run))
    add_partition_limits(partitions, query(SCONTROL_PARTITIONS, run))
    return partitions


def query(argv: list[str], run=subprocess.run) -> str:
    try:
        done = run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmQueryError(f"`{' '.join(argv[:3])}` failed ({error})") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()[:1] or [f"exit {done.returncode}"]
        raise SlurmQueryError(f"`{' '.join(argv[:3])}` failed ({reason[0]})")
    return done.stdout


def number(value) -> int | None:
    """A resource value as an int; None where Snakemake has none yet (e.g. <TBD>) or it is no number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def request_of(rule: str, resources: Mapping, threads: int) -> Request:
    """What the Slurm plugin asks sbatch for, from a job's resources: slurm_partition (-p), gpu or gres gpu
    (--gpus, --gres), cpus_per_task (else the job's threads; --cpus-per-task), mem_mb or mem_mb_per_cpu."""
    gpus = number(resources.get("gpu")) or gpu_count(str(resources.get("gres") or ""))
    cpus = number(resources.get("cpus_per_task")) or max(1, threads or 1)
    mem_mb = number(resources.get("mem_mb"))
    per_cpu = number(resources.get("mem_mb_per_cpu"))
    if mem_mb is None and per_cpu is not None:
        mem_mb = per_cpu * cpus
    partition = resources.get("slurm_partition")
    return Request(rule, str(partition) if partition else None, gpus, cpus, mem_mb)


def fits(request: Request, group: NodeGroup) -> bool:
    return group.gpus >= request.gpus and group.cpus >= request.cpus and group.mem_mb >= (request.mem_mb or 0)


def describe(request: Request) -> str:
    memory = f" and {request.mem_mb} MB" if request.mem_mb is not None else ""
    return f"{request.cpus} CPUs{memory}"


def check_requests(requests: Iterable[Request], partitions: Mapping[str, Partition]) -> list[str]:
    """One line per problem that would make sbatch refuse a job, or Slurm leave it pending for ever."""
    default = next((p.name for p in partitions.values() if p.default), None)
    rules_by_missing_partition = defaultdict(set)
    problems = []
    for request in sorted(set(requests), key=lambda r: (r.rule, str(r.partition), r.gpus, r.cpus, r.mem_mb or 0)):
        name = request.partition or default
        if name is None:
            continue  # no partition and no default: sbatch decides, as the plugin does
        partition = partitions.get(name)
        if partition is None:
            rules_by_missing_partition[name].add(request.rule)
            continue
        if any(fits(request, partition.usable(group)) for group in partition.nodes):
            continue
        with_gpus = partition.largest(with_gpus=request.gpus)
        if with_gpus is None:
            problems.append(gpu_problem(request, partition))
        else:
            problems.append(
                f"rule {request.rule} asks for {describe(request)} on one node, but the largest node of partition "
                f"'{name}' has {with_gpus.cpus} CPUs and {with_gpus.mem_mb} MB: lower cpus_per_task and mem_mb for "
                f"{request.rule} in your profile's set-resources (and set-threads to match)"
            )
    missing = [
        f"Slurm partition '{name}' (rule{'s' if len(rules) > 1 else ''} {', '.join(sorted(rules))}) does not exist "
        f"on this cluster, which has "
        f"{', '.join(sorted(partitions)) or 'none'}: set slurm_partition in your profile (default-resources, or "
        "set-resources for one rule)"
        for name, rules in sorted(rules_by_missing_partition.items())
    ]
    return list(dict.fromkeys(missing + problems))


def gpu_problem(request: Request, partition: Partition) -> str:
    most = max((group.gpus for group in partition.nodes), default=0)
    has = f"nodes with at most {most} GPUs" if most else "no GPUs (no node with GRES gpu)"
    return (
        f"rule {request.rule} asks for {request.gpus} GPU(s), but Slurm partition '{partition.name}' has {has}: "
        f"name a GPU partition as slurm_partition under set-resources: {request.rule} in your profile, or train "
        f"on CPUs with --profile {CPU_OVERLAY} as the last profile"
    )


def check_partitions(requests: Iterable[Request], run=subprocess.run) -> list[str]:
    """check_requests against this cluster; SlurmQueryError where sinfo or scontrol cannot be read."""
    return check_requests(requests, read_partitions(run))


# ---- while the run goes on: pending jobs that will not start --------------------------------------


@dataclass(frozen=True)
class PendingJob:
    jobid: str
    comment: str
    partition: str
    reason: str
    cpus: int
    mem_mb: int | None
    workdir: str

    @property
    def name(self) -> str:
        """rule train (alexnet_sgd_0.001_0), from the plugin's comment rule_train_wildcards_alexnet_sgd_0.001_0."""
        rule, _, wildcards = self.comment.removeprefix("rule_").partition("_wildcards_")
        return f"rule {rule}" + (f" ({wildcards})" if wildcards else "")


def memory_mb(text: str) -> int | None:
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", (text or "").strip())
    return round(float(match.group(1)) * MEMORY_UNITS[match.group(2) or "M"]) if match else None


def parse_squeue(text: str) -> list[PendingJob]:
    jobs = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 7 and fields[0]:
            jobid, comment, partition, reason, cpus, mem, workdir = fields
            jobs.append(PendingJob(jobid, comment, partition, reason, leading_int(cpus) or 1, memory_mb(mem), workdir))
    return jobs


class PendingWatch:
    """Every `interval` seconds, the run's pending jobs (this user's, in `workdir`, submitted by the Slurm
    plugin and not pending before the watch started). A job that has stayed pending for `grace` seconds for a
    reason of NEVER_STARTS, or for Resources beyond every node of its partition, is named once through `warn`."""

    def __init__(
        self,
        workdir: str,
        interval: float,
        warn: Callable[[str], None],
        grace: float | None = None,
        run=subprocess.run,
        clock=time.monotonic,
        user: str | None = None,
    ):
        self.workdir = workdir
        self.interval = interval
        self.grace = interval if grace is None else grace
        self.warn = warn
        self.run = run
        self.clock = clock
        self.user = user or getpass.getuser()
        self.earlier: set[str] = set()
        self.first_seen: dict[str, float] = {}
        self.warned: set[str] = set()
        self.partitions: dict[str, Partition] | None = None
        self._stop = threading.Event()

    def pending(self) -> list[PendingJob]:
        jobs = parse_squeue(query([*SQUEUE, f"--user={self.user}"], self.run))
        return [job for job in jobs if job.workdir == self.workdir and job.comment.startswith("rule_")]

    def why_never(self, job: PendingJob) -> str | None:
        """Why `job` will not start by waiting, or None."""
        if any(reason in job.reason for reason in NEVER_STARTS):
            return job.reason
        if job.reason == RESOURCES:
            if self.partitions is None:
                self.partitions = read_partitions(self.run)
            partition = self.partitions.get(job.partition)
            largest = partition.largest() if partition else None
            request = Request("", job.partition, 0, job.cpus, job.mem_mb)
            if largest is not None and not any(fits(request, partition.usable(g)) for g in partition.nodes):
                return (
                    f"Resources: it asks for {describe(request)}, the largest node of partition '{job.partition}' "
                    f"has {largest.cpus} CPUs and {largest.mem_mb} MB"
                )
        return None

    def check(self) -> list[str]:
        """The warnings due now, each once."""
        now = self.clock()
        lines = []
        for job in self.pending():
            if job.jobid in self.earlier or job.jobid in self.warned:
                continue
            reason = self.why_never(job)
            if reason is None:
                self.first_seen.pop(job.jobid, None)
                continue
            if now - self.first_seen.setdefault(job.jobid, now) >= self.grace:
                self.warned.add(job.jobid)
                if any(out in reason for out in NODES_OUT):
                    fix = "it starts when those nodes are back (`sinfo -R` says why they are out), or change"
                else:
                    fix = "change the job's resources or"
                lines.append(
                    f"Slurm job {job.jobid} ({job.name}) cannot start: {reason}. Snakemake waits for it; Ctrl-C stops "
                    f"the run and cancels its jobs; {fix} slurm_partition in your profile"
                )
        return lines

    def start(self) -> str:
        """Remember the jobs pending already, then check in a daemon thread until stop(). Says so in one line."""
        try:
            self.earlier = {job.jobid for job in self.pending()}
        except SlurmQueryError as error:
            return f"Pending Slurm jobs: not watched, {error}"
        threading.Thread(target=self._loop, name="slurm-pending-watch", daemon=True).start()
        return f"Pending Slurm jobs: checked every {self.interval:g} s for ones that cannot start"

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                lines = self.check()
            except SlurmQueryError as error:  # squeue can fail for a moment on a busy controller: next round
                log.debug("pending Slurm jobs not checked: %s", error)
                continue
            for line in lines:
                self.warn(line)
