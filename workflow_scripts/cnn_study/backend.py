"""Backend set-up that must happen before the first tensor op: which backend, threads, seeds, determinism,
and a GPU that was asked for but is not there."""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import random
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)

# The package each Keras backend imports, and where to get it.
BACKEND_PACKAGES = {
    "tensorflow": ("tensorflow", "requirements.txt"),
    "jax": ("jax", "requirements-jax.txt"),
    "torch": ("torch", "requirements-torch.txt"),
}
GPU_SETUP = (
    "pip install -r requirements-gpu.txt (or, with snakemake --use-conda, envs/train-gpu.yaml: give the train rule "
    "train_env: gpu in your profile's set-resources, as profiles/local and slurm/ do)"
)
# XLA:GPU picks kernels by timing them (autotuning) and reduces with atomics; this flag makes it choose
# deterministic kernels and no atomics ("Guarantees run-to-run determinism on GPU"). XLA reads XLA_FLAGS
# once, when jax first starts a backend, so it is set before that. XLA:CPU is deterministic anyway.
JAX_DETERMINISM_FLAGS = ("--xla_gpu_deterministic_ops=true",)


def select_backend(backend: str | None, deterministic: bool = True) -> str:
    """Make `backend` (the run's training.backend) the one Keras loads, before Keras is imported.

    The run's setting wins over a KERAS_BACKEND in the environment (it is what the run's params, and
    so Snakemake's rerun decision and run.json, say), with a warning naming both. None keeps
    KERAS_BACKEND (TensorFlow if unset). Raises RuntimeError with one line if the backend's package
    is missing or Keras was already imported on another backend."""
    environment = os.environ.get("KERAS_BACKEND")
    backend = backend or environment or "tensorflow"
    if backend not in BACKEND_PACKAGES:
        raise ValueError(f"training.backend {backend!r} is not one of {', '.join(BACKEND_PACKAGES)}")
    if environment and environment != backend:
        log.warning("KERAS_BACKEND=%s in the environment: using training.backend = %s instead", environment, backend)
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != backend:
        raise RuntimeError(
            f"Keras is already imported on the {sys.modules['keras'].backend.backend()} backend in this process; "
            f"training.backend = {backend} needs a fresh process"
        )
    package, requirements = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        gpu_note = ", or requirements-gpu.txt on an NVIDIA GPU" if backend == "jax" else ""
        raise RuntimeError(
            f"training.backend is {backend}, but {package} is not installed in this environment: "
            f"pip install -r {requirements}{gpu_note}"
        )
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        # JAX takes 75% of GPU memory at start by default: several runs share a GPU (the profiles' gpu limit).
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if backend != "tensorflow":
        # Keras imports TensorFlow where it is installed (the GPU setup has both): it must not take the GPU's memory.
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if backend == "jax" and deterministic:
        flags = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join(flags + [flag for flag in JAX_DETERMINISM_FLAGS if flag not in flags])
    return backend


def configure_backend(threads: int, seed: int, deterministic: bool, backend: str | None = None, gpus: int = 0):
    """Import Keras on `backend` (see select_backend), with `threads` CPU threads, every random source
    seeded and, if asked, deterministic ops. A job given `gpus` GPUs (its Snakemake gpu resource) whose
    backend sees none stops here with one line saying what to install. Returns keras."""
    backend = select_backend(backend, deterministic)
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:
            # TensorFlow fixes its thread pools at first use; a second run in one process keeps them.
            log.warning(
                "TensorFlow is already initialised: keeping its thread settings (%d intra-op threads asked)", threads
            )
        if deterministic:
            # Multi-threaded CPU kernels and GPU kernels may otherwise reduce in a varying order, so
            # runs with every seed fixed could still differ in the last bits.
            tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
    if gpus and not gpu_names(backend):
        if not nvidia_gpu_present():
            log.warning("resources gpu=%d, but this machine shows no NVIDIA GPU: training on the CPU", gpus)
        else:
            raise RuntimeError(
                f"this job was given {gpus} GPU(s) (resources gpu={gpus}) on a machine with an NVIDIA GPU, but the "
                f"{backend} backend sees none: install the GPU setup ({GPU_SETUP}), or run it with gpu=0"
            )
    import keras

    random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's generator
    return keras


def nvidia_gpu_present() -> bool:
    """Whether this machine shows the job an NVIDIA GPU: its device files, or a GPU that nvidia-smi lists. It tells
    a laptop, where the train rule's gpu request only means "none here", from a GPU the install cannot use."""
    if glob.glob("/dev/nvidia[0-9]*"):
        return True
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return False
    try:
        listing = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("GPU ") for line in listing.splitlines())


def gpu_names(backend: str) -> list[str]:
    """The GPUs `backend` can compute on (none on a CPU-only build, or where CUDA_VISIBLE_DEVICES hides them)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    import jax

    return [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices() if d.platform != "cpu"]


def device_names(backend: str) -> dict:
    """For provenance: the CPU, the GPUs the backend sees, and the device Keras computed on (Keras puts
    the model on the first GPU where there is one, on every backend)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = gpu_names(backend)
    return {"cpu": cpu, "gpus": gpus, "device": f"gpu: {gpus[0]}" if gpus else f"cpu: {cpu}"}
