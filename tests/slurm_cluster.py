"""A real, throwaway single-node Slurm cluster for tests.

`SlurmCluster` writes a slurm.conf (and gres.conf) into a private directory and
starts its own `munged`, `slurmctld` and `slurmd` in the foreground as root,
without systemd, on free TCP ports and with a private munge key and socket, so
it neither needs nor touches /etc/slurm, /etc/munge or a Slurm already running
on the machine.  `stop()` cancels the cluster's jobs and then stops exactly the
daemons it started, by the PIDs of the processes it spawned.

Use it from a test file as a pytest fixture (`slurm_cluster` has one fake GPU,
`slurm_cluster_without_gpu` none; each is started once, when a test first asks for it)::

    from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)

    def test_x(slurm_cluster):
        subprocess.run(["sbatch", ...], env=slurm_cluster.env)

`slurm_cluster.env` is os.environ plus SLURM_CONF and a PATH whose first entry
holds wrappers of the Slurm client commands that pin SLURM_CONF.  The wrappers
matter: the Slurm executor's job step (snakemake-executor-plugin-slurm-jobstep)
strips every SLURM_* variable, SLURM_CONF included, before it calls `srun`
inside the job, and a plain `srun` would then look for /etc/slurm/slurm.conf.

The fixture skips (pytest.skip with the reason) when the Slurm/munge packages
are not installed (see .ci/install_slurm.sh) or the process is not root. When
they are installed but the cluster does not come up, it skips as well, except
with CI=true (or SLURM_TESTS_REQUIRED=1), where it fails with the daemons' logs.

Facts this relies on (Debian 12, Slurm 22.05, munge 0.5.15): no cgroups are
needed with proctrack/linuxproc + task/none; without slurmdbd `sacct` fails, so
Snakemake's Slurm plugin must query job states with `squeue`, which only works
while slurmctld still remembers finished jobs (MinJobAge, set high here); a
DefMemPerCPU is needed or cons_tres gives every job the whole node's memory and
jobs run one at a time; time limits are enforced about every 30 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun", "sacct")
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PARTITION = "test"
CLUSTER_NAME = "smktest"


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN_DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def unavailable_reason() -> str | None:
    """Why a cluster can't be started here, or None if it can be tried."""
    missing = [n for n in DAEMONS + CLIENTS + ("mungekey",) if _which(n) is None]
    if missing:
        return "Slurm/munge not installed (missing: " + ", ".join(missing) + "); run .ci/install_slurm.sh as root"
    if os.geteuid() != 0:
        return "the test Slurm cluster must be started as root (SlurmUser=root)"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _node_hardware() -> dict[str, str]:
    """CPUs, Boards, SocketsPerBoard, ... RealMemory as `slurmd -C` reports them."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    first = out.splitlines()[0]
    hw = dict(kv.split("=", 1) for kv in first.split() if "=" in kv)
    hw.pop("NodeName", None)
    return hw


class SlurmClusterError(RuntimeError):
    pass


class SlurmCluster:
    """One node (this host, at 127.0.0.1), one partition `test`, optional fake GPUs."""

    def __init__(
        self,
        root: str | Path | None = None,
        gpus: int = 1,
        min_job_age: int = 3600,
        def_mem_per_cpu: int = 1024,
        kill_wait: int = 5,
    ):
        self.root = Path(root or tempfile.mkdtemp(prefix="slurmtest-"))
        self.gpus = gpus
        self.min_job_age = min_job_age
        self.def_mem_per_cpu = def_mem_per_cpu
        self.kill_wait = kill_wait
        self.partition = PARTITION
        self.cluster_name = CLUSTER_NAME
        self.hostname = socket.gethostname().split(".")[0]
        self.conf = self.root / "etc" / "slurm.conf"
        self.logdir = self.root / "log"
        self.bindir = self.root / "bin"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)

    # ------------------------------------------------------------------ setup
    def _write_files(self) -> None:
        for d in ("etc", "state", "spool", "log", "munge", "bin"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        subprocess.run(
            [_which("mungekey"), "--create", "--force", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        os.chmod(key, 0o600)

        hw = _node_hardware()
        hw_str = " ".join(f"{k}={v}" for k, v in hw.items())
        ctld_port, slurmd_port = _free_ports(2)
        self.ctld_port = ctld_port
        gres_types = "GresTypes=gpu" if self.gpus else ""
        node_gres = f"Gres=gpu:{self.gpus}" if self.gpus else ""
        r = self.root
        self.conf.write_text(
            f"""# written by tests/slurm_cluster.py
ClusterName={self.cluster_name}
SlurmctldHost={self.hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={self.logdir}/slurmctld.log
SlurmdLogFile={self.logdir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: linuxproc process tracking, no task containment
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, cons_tres gives a job all the node's memory: one job at a time
DefMemPerCPU={self.def_mem_per_cpu}
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# squeue (no slurmdbd here) only sees finished jobs this long; the plugin wants >= 3x
# its first status-check wait
MinJobAge={self.min_job_age}
# time limits: kill right at the limit (checked about every 30 s), SIGKILL soon after SIGTERM
OverTimeLimit=0
KillWait={self.kill_wait}
InactiveLimit=0
Waittime=0
{gres_types}
NodeName={self.hostname} NodeHostname={self.hostname} NodeAddr=127.0.0.1 {hw_str} {node_gres} State=UNKNOWN
PartitionName={self.partition} Nodes={self.hostname} Default=YES MaxTime=INFINITE State=UP
"""
        )
        if self.gpus:
            # Fake GPUs for --gpus/--gres scheduling. slurmd drops file-less GPUs
            # ("Removing file-less GPU") and wants a character device, so each one
            # is a symlink to /dev/null (task/none: nothing is ever bound to it).
            lines = []
            for i in range(self.gpus):
                dev = self.root / "dev" / f"fakegpu{i}"
                dev.parent.mkdir(exist_ok=True)
                if not dev.is_symlink():
                    dev.symlink_to("/dev/null")
                lines.append(f"NodeName={self.hostname} Name=gpu File={dev}")
            (self.conf.parent / "gres.conf").write_text("\n".join(lines) + "\n")
        # Client wrappers that pin SLURM_CONF (see module docstring).
        for name in CLIENTS:
            w = self.bindir / name
            w.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{_which(name)}" "$@"\n')
            w.chmod(0o755)
        self.env = dict(os.environ)
        self.env["SLURM_CONF"] = str(self.conf)
        self.env["PATH"] = f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.logdir / f"{name}.stdout", "ab")
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # no terminal signals from the test runner
        )
        out.close()
        self._procs[name] = proc

    def _wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self._procs.items():
                if p.poll() is not None:
                    raise SlurmClusterError(
                        f"{name} exited with {p.returncode} while waiting for {what}\n" + self.logs()
                    )
            if check():
                return
            time.sleep(0.5)
        raise SlurmClusterError(f"timed out after {timeout}s waiting for {what}\n" + self.logs())

    def _run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout)

    def node_state(self) -> str:
        try:
            r = self._run("sinfo", "-h", "-N", "-o", "%T", timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return r.stdout.strip() if r.returncode == 0 else ""

    def start(self, timeout: float = 90) -> SlurmCluster:
        reason = unavailable_reason()
        if reason:
            raise SlurmClusterError(reason)
        self._write_files()
        try:
            self._spawn(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={self.root / 'munge' / 'munge.key'}",
                    f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                    f"--log-file={self.logdir / 'munged.log'}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                ],
            )
            self._wait("munged's socket", self.munge_socket.exists, 20)
            # -D: foreground (so the PID we hold is the daemon's); -i: ignore old state
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(
                "slurmctld to answer",
                lambda: self._run("scontrol", "ping", timeout=10).stdout.count("UP") > 0,
                timeout,
            )
            self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
            self._wait(
                "the node to be idle in sinfo",
                lambda: self.node_state() == "idle",
                timeout,
            )
        except BaseException:
            self.stop()
            raise
        return self

    # --------------------------------------------------------------- teardown
    def cancel_all_jobs(self, timeout: float = 30) -> None:
        if "slurmctld" not in self._procs or self._procs["slurmctld"].poll() is not None:
            return
        try:
            self._run("scancel", f"--partition={self.partition}", "--full", timeout=15)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                r = self._run("squeue", "-h", "-t", "PD,R,CG,S,CF,RQ,RS,RH", "-o", "%i", timeout=10)
                if r.returncode != 0 or not r.stdout.strip():
                    return
                time.sleep(1)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        """Cancel our jobs, then SIGTERM (then SIGKILL) exactly the daemons we spawned."""
        self.cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            p = self._procs.get(name)
            if p is None or p.poll() is not None:
                continue
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._procs.clear()

    def logs(self, tail: int = 40) -> str:
        parts = []
        if self.logdir.is_dir():
            for f in sorted(self.logdir.iterdir()):
                lines = f.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {f.name} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def squeue_all(self) -> str:
        """Every job slurmctld still remembers: id|name|state|comment."""
        r = self._run("squeue", "-h", "--states=all", "-o", "%i|%j|%T|%k")
        return r.stdout

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("SLURM_TESTS_REQUIRED") == "1"


def _cluster(gpus: int):
    """Start a cluster with `gpus` fake GPUs for the fixtures below; skip (or fail, see _required) if it can't."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    # short path: munge's socket path must fit in a sockaddr_un (108 bytes)
    cluster = SlurmCluster(root=tempfile.mkdtemp(prefix="slurm-"), gpus=gpus)
    try:
        cluster.start()
    except SlurmClusterError as e:
        if _required():
            pytest.fail(f"the test Slurm cluster did not start:\n{e}", pytrace=False)
        pytest.skip(f"the test Slurm cluster did not start: {str(e).splitlines()[0]}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node Slurm cluster with one fake GPU, for the whole test session."""
    yield from _cluster(gpus=1)


@pytest.fixture(scope="session")
def slurm_cluster_without_gpu():
    """The same without GPUs (no GresTypes, no gres.conf): a CPU-only cluster, for the whole test session."""
    yield from _cluster(gpus=0)


if __name__ == "__main__":  # manual check: python tests/slurm_cluster.py
    with SlurmCluster() as c:
        print("up:", c.conf)
        print(c._run("sinfo").stdout)
        r = c._run(
            "sbatch",
            "--parsable",
            "-t",
            "1",
            "-o",
            str(c.logdir / "manual-%j.out"),
            "--gpus=1",
            "--wrap",
            "srun hostname; echo $CUDA_VISIBLE_DEVICES",
        )
        print("sbatch:", r.stdout, r.stderr)
        time.sleep(5)
        print(c.squeue_all())
        print(*(f.read_text() for f in c.logdir.glob("manual-*.out")))
    shutil.rmtree(c.root, ignore_errors=True)
