"""Backend set-up that must happen before the first tensor op: threads, seeds, determinism."""

from __future__ import annotations

import logging
import os
import random


def configure_backend(threads: int, seed: int, deterministic: bool):
    """Import Keras on the backend named by KERAS_BACKEND (TensorFlow by default), with `threads`
    CPU threads, every random source seeded and, if asked, deterministic ops. Returns keras."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:
            # TensorFlow fixes its thread pools at first use; a second run in one process keeps them.
            logging.getLogger(__name__).warning(
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
    import keras

    random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's generator
    return keras


def device_names() -> dict:
    """CPU and accelerator names for provenance."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = []
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif backend == "torch":
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif backend == "jax":
        import jax

        gpus = [str(d) for d in jax.devices() if d.platform != "cpu"]
    return {"cpu": cpu, "gpus": gpus}
