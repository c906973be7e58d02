"""run.json: what a run was (resolved settings and their hash), where and with what it ran, and when.

Only the run's settings go in: no environment variables, so credentials can never leak into it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from cnn_study.files import write_text

PACKAGES = (
    "keras",
    "tensorflow",
    "tensorflow-cpu",
    "torch",
    "jax",
    "jaxlib",
    "jax-cuda12-plugin",
    "numpy",
    "h5py",
    "pandas",
    "pillow",
    "snakemake",
)


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(directory: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Provenance:
    settings: dict
    started_at: str
    clock_start: float
    resumed_at_epoch: int | None = None
    # When the first attempt of this run started (a resumed run's started_at is the last attempt's).
    first_started_at: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def start(cls, settings: dict) -> Provenance:
        return cls(settings=settings, started_at=now(), clock_start=time.perf_counter())

    def finish(self, path: str | Path, keras) -> dict:
        from cnn_study.backend import device_names

        backend = keras.backend.backend()
        record = {
            "settings": self.settings,
            "settings_sha256": settings_hash(self.settings),
            # What the run computed on: the backend, and cpu, gpus (those the backend sees) and device.
            "backend": backend,
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            **device_names(backend),
            "git_commit": git_commit(Path(__file__).resolve().parent),
            "started_at": self.started_at,
            "first_started_at": self.first_started_at or self.started_at,
            "finished_at": now(),
            # This attempt's seconds; a resumed run also says where it resumed.
            "total_seconds": round(time.perf_counter() - self.clock_start, 3),
            "resumed_at_epoch": self.resumed_at_epoch,
            "hostname": platform.node(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            **self.extra,
        }
        write_text(path, json.dumps(record, indent=2, sort_keys=True))
        return record
