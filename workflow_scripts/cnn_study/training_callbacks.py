"""The training loop's Keras pieces: the per-epoch data feed, the epoch-start re-seeding, the epoch
statistics, the progress bar and the asynchronous atomic backup.

Imported by cnn_study.training only after cnn_study.backend.configure_backend has set up the backend
(threads, determinism), since importing this module imports Keras. Keras 3 API and NumPy inputs only,
so every backend (TensorFlow, JAX, torch) runs it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from cnn_study.files import atomic_write
from cnn_study.resume_state import backup_metadata, write_atomic
from cnn_study.run_layout import BACKUP_METADATA
from cnn_study.schedule import epoch_order, plateau_learning_rate


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


#: Above this, the TensorFlow feed would hold too much in memory: such a training set stays memory-mapped
#: and is fed by EpochBatches.
IN_MEMORY_FEED_BYTES = 2 * 2**30


def epoch_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int, end_epoch: int):
    """The training batches of the epochs first_epoch .. end_epoch - 1 as a tf.data pipeline (TensorFlow only):
    the same batches as EpochBatches, in the same order, each a pure function of its (epoch, step).

    The epochs' orders (epoch_order) are drawn here, in NumPy, and the pipeline only gathers each batch's
    rows from the training set, held once in memory, in C++: no Python per batch, and no stateful op, so
    prefetching stays on under op determinism (tf.data turns it off for a Python generator). Where the
    batch size divides the training set, every batch has a static shape, which lets TensorFlow build the
    gradients of the traced step with fixed shapes (Tile, not BroadcastTo with shape arithmetic)."""
    import tensorflow as tf

    count = len(x)
    orders = np.stack([epoch_order(seed, epoch, count) for epoch in range(first_epoch, end_epoch)])
    images, labels = tf.constant(np.asarray(x)), tf.constant(np.asarray(y))
    if count % batch_size == 0:
        indices = tf.data.Dataset.from_tensor_slices(orders.reshape(-1, batch_size))
    else:  # each epoch ends with a shorter batch
        indices = tf.data.Dataset.from_tensor_slices(orders).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        )
    batches = indices.map(lambda picked: (tf.gather(images, picked), tf.gather(labels, picked)))
    return batches.prefetch(2)


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int, end_epoch: int):
    """What fit() is given for the epochs first_epoch .. end_epoch - 1: epoch_dataset on TensorFlow (a training
    set that fits in memory), EpochBatches (a PyDataset, NumPy) on every other backend."""
    if keras.backend.backend() == "tensorflow" and x.nbytes <= IN_MEMORY_FEED_BYTES:
        return epoch_dataset(x, y, batch_size, seed, first_epoch, end_epoch)
    return EpochBatches(x, y, batch_size, seed, first_epoch)


def plateau_callback(rates: dict[str, float], phases: list[str], partial_history: Path):
    """lr_schedule reduce_on_plateau: before each epoch, the rate follows from the phase's validation losses so
    far (the resumed epochs' rows included). Replayed from the history instead of Keras' callback state, so a
    resumed run uses exactly the rates of an uninterrupted one, however the fit calls are cut."""
    losses = []
    if partial_history.exists():
        done = pd.read_csv(partial_history)
        losses += list(zip(done["phase"], done["val_loss"].astype(float), strict=True))

    def set_rate(epoch, logs=None):
        phase = phases[epoch]
        callback.model.optimizer.learning_rate = plateau_learning_rate(
            rates[phase], [v for p, v in losses if p == phase]
        )

    def record(epoch, logs=None):
        losses.append((phases[epoch], float(logs["val_loss"])))

    callback = keras.callbacks.LambdaCallback(on_epoch_begin=set_rate, on_epoch_end=record)
    return callback


def reseed_random_layers(model, seed: int, epoch: int) -> None:
    """Set every random layer's generator (augmentation, dropout) to a state drawn from (seed, epoch, layer),
    so an epoch's random draws do not depend on the epochs run before it in this process."""
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        value = int(np.random.default_rng([seed, epoch, index]).integers(1, 2**31 - 1))
        state.assign(np.array([value, 0], dtype=state.dtype))


class EpochSeeds(keras.callbacks.Callback):
    """Re-seeds the random layers from (seed, epoch) at each epoch's start (before the first step
    reads the variables, also on JAX, whose fit() takes the model's state at an epoch's first step)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        reseed_random_layers(self.model, self.seed, epoch)


class BatchNormStatistics(keras.callbacks.Callback):
    """training.batch_norm_statistics recomputed: after an epoch's training steps, before its validation, the
    trainable batch-normalization layers get the statistics of the training images under the epoch's final
    weights (cnn_study.models.recompute_batch_norm_statistics). A function of those weights and the cached
    images: the backup saves the result, and a resumed run recomputes the same."""

    def __init__(self, images: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.pending = True

    def on_test_begin(self, logs=None):
        if self.pending:  # validation of a training epoch, not a later evaluate()
            from cnn_study.models import recompute_batch_norm_statistics

            recompute_batch_norm_statistics(self.model, self.images, self.batch_size)
            self.pending = False


class EpochStats(keras.callbacks.Callback):
    """Adds phase, learning rate and timing to the epoch's logs, before CSVLogger writes them.

    The training steps end where validation begins (no per-batch hook: one would turn off Keras'
    asynchronous batch-end dispatch and cost a device sync every step)."""

    def __init__(self, phases: list[str], train_images: int):
        super().__init__()
        self.phases, self.train_images = phases, train_images

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps_ended = time.perf_counter(), None
        self.cpu_started = time.process_time()

    def on_test_begin(self, logs=None):
        if self.steps_ended is None:
            self.steps_ended = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs["phase"] = self.phases[epoch]
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = now - self.started
        # every thread of the process (input pipeline, backup writer): what the epoch cost a shared machine
        logs["epoch_cpu_seconds"] = time.process_time() - self.cpu_started
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


def snapshot(model) -> list:
    """The backup's variables as they are now, without holding up the training loop.

    TensorFlow: a read of each variable, which shares its buffer (no copy); TensorFlow copies a variable's
    buffer before updating it in place while such a read is alive, so the reads keep this epoch's values and
    the writer thread turns them into NumPy off the critical path. JAX and torch: copies in NumPy, since their
    arrays may be views of buffers the next step reuses."""
    variables = backup_variables(model)
    if keras.backend.backend() == "tensorflow":
        return [variable.value.read_value() for variable in variables]
    return [np.array(keras.ops.convert_to_numpy(variable), copy=True) for variable in variables]


class AsyncBackup(keras.callbacks.Callback):
    """Resume state after every epoch, written off the training loop's critical path.

    At an epoch's end the weights and optimizer state are taken as they are (snapshot); a
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
        self._thread = threading.Thread(target=self._write, args=(epoch + 1, snapshot(self.model)), daemon=True)
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

    def _write(self, epochs_done: int, arrays: list) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            weights = self.directory / f"epoch-{epochs_done:04d}.npz"
            with atomic_write(weights, durable=True) as partial, open(partial, "wb") as handle:  # no partial left
                np.savez(handle, *map(np.asarray, arrays))
                arrays.clear()  # written: the next steps may update the variables without TensorFlow copying them
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
        if len(arrays) != len(variables) or any(a.shape != s for a, s in zip(arrays, shapes, strict=True)):
            raise ValueError(
                f"{self.directory / record['weights']}: the backup does not match this model "
                f"({len(arrays)} arrays for {len(variables)} variables); delete {self.directory.parent} to start afresh"
            )
        for variable, array in zip(variables, arrays, strict=True):
            variable.assign(array)
        return int(record["epoch"])
