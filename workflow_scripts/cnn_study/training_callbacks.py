"""The training loop's Keras pieces: the per-epoch data feed, the epoch-start re-seeding, the epoch
statistics, the progress bar and the asynchronous atomic backup.

Imported by cnn_study.training only after cnn_study.backend.configure_backend has set up the backend
(threads, determinism), since importing this module imports Keras. Keras 3 API and NumPy inputs only,
so every backend (TensorFlow, JAX, torch) runs it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import keras
import numpy as np

from cnn_study.training import BACKUP_METADATA, backup_metadata, epoch_order, reseed_random_layers, write_atomic


class EpochBatches(keras.utils.PyDataset):
    """The training batches of the epochs first_epoch, first_epoch + 1, ... as one endless stream.

    Batch i is batch i % steps of epoch first_epoch + i // steps, in that epoch's order
    (epoch_order): a pure function of i, so prefetching across an epoch's end (TensorFlow's tf.data
    does) cannot mix epochs up. fit() must be given steps_per_epoch=steps."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.batch_size, self.seed, self.first_epoch = x, y, batch_size, seed, first_epoch
        self.steps = -(-len(x) // batch_size)
        self._order_epoch, self._order = None, None

    @property
    def num_batches(self):
        return None  # endless: the epochs are cut by steps_per_epoch

    def __getitem__(self, index: int):
        epoch, step = self.first_epoch + index // self.steps, index % self.steps
        if epoch != self._order_epoch:
            self._order_epoch, self._order = epoch, epoch_order(self.seed, epoch, len(self.x))
        picked = self._order[step * self.batch_size : (step + 1) * self.batch_size]
        return self.x[picked], self.y[picked]


class EpochSeeds(keras.callbacks.Callback):
    """Re-seeds the random layers from (seed, epoch) at each epoch's start (before the first step
    reads the variables, also on JAX, whose fit() takes the model's state at an epoch's first step)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        reseed_random_layers(self.model, self.seed, epoch)


class EpochStats(keras.callbacks.Callback):
    """Adds phase, learning rate and timing to the epoch's logs, before CSVLogger writes them.

    The training steps end where validation begins (no per-batch hook: one would turn off Keras'
    asynchronous batch-end dispatch and cost a device sync every step)."""

    def __init__(self, phases: list[str], train_images: int):
        super().__init__()
        self.phases, self.train_images = phases, train_images

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps_ended = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self.steps_ended is None:
            self.steps_ended = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs["phase"] = self.phases[epoch]
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = now - self.started
        logs["images_per_second"] = self.train_images / max((self.steps_ended or now) - self.started, 1e-9)


class EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, numbering epochs out of the run's total across the per-phase fit calls."""

    async_safe = True  # it only prints; Keras' own default progress bar is dispatched the same way

    def __init__(self, epochs: int):
        super().__init__()
        self.total_epochs = epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs


def backup_variables(model) -> list:
    """What a backup holds: the model's weights (BN statistics included) and the optimizer's state."""
    return [*model.weights, *model.optimizer.variables]


class AsyncBackup(keras.callbacks.Callback):
    """Resume state after every epoch, written off the training loop's critical path.

    At an epoch's end the weights and optimizer state are copied to host memory (NumPy); a
    background thread writes them to a new file (epoch-NNNN.npz), fsyncs it, and only then replaces
    the small metadata file naming it (the commit point), atomically. Whatever instant a kill lands
    on, the metadata names a complete file of the epoch it states. One write at a time, in order; the
    next epoch's snapshot waits for the previous write, and wait() ends the last.

    Not Keras' BackupAndRestore: it saves synchronously, writes the weights in place before the
    metadata (a kill in between leaves them one epoch ahead) and restores inside every fit call."""

    def __init__(self, directory: str | Path):
        super().__init__()
        self.directory = Path(directory)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.wait()
        arrays = [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in backup_variables(self.model)]
        self._thread = threading.Thread(target=self._write, args=(epoch + 1, arrays), daemon=True)
        self._thread.start()

    def on_train_end(self, logs=None):
        self.wait()

    def wait(self) -> None:
        """Block until the pending write is committed; re-raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _write(self, epochs_done: int, arrays: list[np.ndarray]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            weights = self.directory / f"epoch-{epochs_done:04d}.npz"
            partial = weights.with_name(weights.name + ".partial")
            with open(partial, "wb") as handle:
                np.savez(handle, *arrays)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(weights)
            write_atomic(self.directory / BACKUP_METADATA, json.dumps({"epoch": epochs_done, "weights": weights.name}))
            for stale in self.directory.glob("epoch-*"):
                if stale != weights:
                    stale.unlink()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = error

    def restore(self, model) -> int:
        """Load the committed backup into the compiled model; returns the epochs it covers (0: none)."""
        record = backup_metadata(self.directory)
        if record is None:
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = backup_variables(model)
        with np.load(self.directory / record["weights"]) as stored:
            arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        shapes = [tuple(v.shape) for v in variables]
        if len(arrays) != len(variables) or any(a.shape != s for a, s in zip(arrays, shapes)):
            raise ValueError(
                f"{self.directory / record['weights']}: the backup does not match this model "
                f"({len(arrays)} arrays for {len(variables)} variables); delete {self.directory.parent} to start afresh"
            )
        for variable, array in zip(variables, arrays):
            variable.assign(array)
        return int(record["epoch"])
