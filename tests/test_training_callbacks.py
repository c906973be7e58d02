"""cnn_study.training_callbacks, one piece at a time, on a tiny Keras model (Input(4) -> Dense(2)) and hand-made
arrays: the per-epoch feed, the plateau rates replayed from the history, the epoch-start re-seeding, the
recomputed batch-norm statistics, the epoch statistics, the progress bar and the asynchronous backup.

Fast (seconds): the real runs of tests/test_training.py train AlexNet in child processes; these test what each
callback does when Keras calls it, so that every small change to the module fails one of them."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import cnn_study.models  # noqa: E402
import cnn_study.training_callbacks as callbacks  # noqa: E402
from cnn_study.resume_state import backup_metadata  # noqa: E402
from cnn_study.schedule import epoch_order, plateau_learning_rate  # noqa: E402
from cnn_study.training_callbacks import (  # noqa: E402
    AsyncBackup,
    BatchNormStatistics,
    EpochBatches,
    EpochProgress,
    EpochSeeds,
    EpochStats,
    backup_variables,
    epoch_dataset,
    plateau_callback,
    reseed_random_layers,
    snapshot,
    training_batches,
)

TENSORFLOW = keras.backend.backend() == "tensorflow"


def tiny_model(units: int = 2, learning_rate: float = 0.25, dropouts: int = 0, build: bool = True) -> keras.Model:
    """Input(4) -> [Dropout] * dropouts -> Dense(units), compiled with Adam; its optimizer built unless not `build`."""
    inputs = keras.Input((4,))
    x = inputs
    for index in range(dropouts):
        x = keras.layers.Dropout(0.5, seed=index + 1)(x)
    model = keras.Model(inputs, keras.layers.Dense(units)(x))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    if build:
        model.optimizer.build(model.trainable_variables)
    return model


def values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def rate_of(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def numbered(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel is their index, and labels equal to the index: a batch shows which rows it holds."""
    x = (np.arange(count)[:, None, None, None] * np.ones((1, 2, 2, 3))).astype(np.uint8)
    return x, np.arange(count)


# --- the feed ---------------------------------------------------------------------------------------------


def test_epoch_batches_cut_the_stream_into_epochs_of_steps_with_a_short_last_batch():
    x, y = numbered(10)
    batches = EpochBatches(x, y, batch_size=4, seed=3, first_epoch=2)
    assert batches.steps == 3 and batches.num_batches is None  # endless: fit() cuts it at steps_per_epoch
    assert batches.workers == 1 and batches.use_multiprocessing is False
    for epoch in (2, 3, 4):
        order = epoch_order(3, epoch, 10)
        first = (epoch - 2) * 3
        sizes = [len(batches[first + step][1]) for step in range(3)]
        assert sizes == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate([batches[first + step][1] for step in range(3)]), order)
        np.testing.assert_array_equal(batches[first + 2][1], order[8:])
    images, labels = batches[1]
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)  # images and labels stay paired


def test_epoch_batches_are_a_pure_function_of_the_index():
    """Asked in any order, across epoch ends and back (tf.data prefetches across them), batch i is the same."""
    x, y = numbered(12)
    fresh = EpochBatches(x, y, batch_size=4, seed=5, first_epoch=0)
    expected = [fresh[i][1].copy() for i in range(9)]
    jumping = EpochBatches(x, y, batch_size=4, seed=5, first_epoch=0)
    for index in (7, 0, 8, 3, 1, 6, 2, 5, 4, 7, 0):
        np.testing.assert_array_equal(jumping[index][1], expected[index])
    assert fresh.steps == 3  # 12 / 4: no short batch
    np.testing.assert_array_equal(expected[4], epoch_order(5, 1, 12)[4:8])
    later = EpochBatches(x, y, batch_size=4, seed=5, first_epoch=1)
    np.testing.assert_array_equal(later[1][1], expected[4])  # first_epoch shifts the stream by whole epochs
    other_seed = EpochBatches(x, y, batch_size=4, seed=6, first_epoch=0)
    assert not np.array_equal(np.concatenate([other_seed[i][1] for i in range(3)]), np.concatenate(expected[:3]))


@pytest.mark.parametrize("count", [12, 10])  # batch 4 divides 12; 10 ends each epoch with a batch of 2
def test_epoch_dataset_gives_the_batches_of_epoch_batches(count):
    import tensorflow as tf

    x, y = numbered(count)
    dataset = epoch_dataset(x, y, batch_size=4, seed=3, first_epoch=2, end_epoch=5)
    expected = EpochBatches(x, y, batch_size=4, seed=3, first_epoch=2)
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    assert len(batches) == 3 * expected.steps  # epochs 2, 3 and 4, no more
    for index, (images, labels) in enumerate(batches):
        np.testing.assert_array_equal(images, expected[index][0])
        np.testing.assert_array_equal(labels, expected[index][1])
    static = [4, 2, 2, 3] if count % 4 == 0 else [None, 2, 2, 3]
    assert dataset.element_spec[0].shape.as_list() == static
    assert dataset.element_spec[1].shape.as_list() == static[:1]
    assert dataset.element_spec[0].dtype == tf.uint8


def test_training_batches_feed_tf_data_in_memory_and_epoch_batches_above_the_limit(monkeypatch):
    import tensorflow as tf

    assert callbacks.IN_MEMORY_FEED_BYTES == 2 * 2**30
    x, y = numbered(10)
    monkeypatch.setattr(callbacks, "IN_MEMORY_FEED_BYTES", x.nbytes)  # exactly at the limit: still in memory
    feed = training_batches(x, y, 4, 3, 2, 4)
    if TENSORFLOW:
        assert isinstance(feed, tf.data.Dataset)
        assert len([labels for _, labels in feed]) == 2 * 3
    else:
        assert isinstance(feed, EpochBatches)
    monkeypatch.setattr(callbacks, "IN_MEMORY_FEED_BYTES", x.nbytes - 1)
    feed = training_batches(x, y, 4, 3, 2, 4)
    assert isinstance(feed, EpochBatches)
    assert (feed.batch_size, feed.seed, feed.first_epoch, feed.steps) == (4, 3, 2, 3)
    np.testing.assert_array_equal(feed[3][1], epoch_order(3, 3, 10)[:4])


# --- plateau -------------------------------------------------------------------------------------------------


def test_plateau_rates_are_replayed_from_the_history_of_the_phase(tmp_path):
    """The rate of an epoch follows from the validation losses of its phase so far: those of the partial history
    (rows of the other phase left out), then those recorded in this process."""
    partial = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "epoch": [0, 1, 2, 3, 4],
            "phase": ["frozen", "fine_tune", "fine_tune", "fine_tune", "fine_tune"],
            "val_loss": [0.1, 1.0, 1.0, 1.0, 1.0],
            "loss": 0.5,
        }
    ).to_csv(partial, index=False)
    phases = ["frozen"] + ["fine_tune"] * 7
    rates = {"frozen": 0.5, "fine_tune": 0.04}
    model = tiny_model()
    callback = plateau_callback(rates, phases, partial)
    callback.set_model(model)
    callback.on_epoch_begin(5)
    # four fine_tune losses without a new best (the frozen 0.1 would be one): halved once
    assert rate_of(model) == pytest.approx(0.02)
    callback.on_epoch_end(5, {"val_loss": np.float32(1.0)})
    callback.on_epoch_end(6, {"val_loss": 1.0})
    callback.on_epoch_begin(7)
    assert rate_of(model) == pytest.approx(plateau_learning_rate(0.04, [1.0] * 6))
    callback.on_epoch_begin(0)
    assert rate_of(model) == pytest.approx(0.5)  # the frozen phase: its one loss, its own rate


def test_plateau_without_history_starts_from_the_phase_rate_and_records_each_epoch(tmp_path):
    phases = ["full"] * 6
    model = tiny_model()
    callback = plateau_callback({"full": 0.08}, phases, tmp_path / "absent.csv")
    callback.set_model(model)
    seen = []
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        callback.on_epoch_begin(epoch)
        seen.append(rate_of(model))
        callback.on_epoch_end(epoch, {"val_loss": loss})
    np.testing.assert_allclose(seen, [0.08, 0.08, 0.08, 0.08, 0.04, 0.04], rtol=1e-6)


# --- random layers ---------------------------------------------------------------------------------------------


def seed_states(model) -> list[np.ndarray]:
    return values([v for v in model.variables if v.name == "seed_generator_state"])


def test_reseeded_states_depend_on_seed_epoch_and_layer_and_are_never_zero():
    model = tiny_model(dropouts=3)
    kernel = values(model.trainable_variables)
    reseed_random_layers(model, seed=4, epoch=2)
    states = seed_states(model)
    assert len(states) == 3
    for index, state in enumerate(states):
        expected = int(np.random.default_rng([4, 2, index]).integers(1, 2**31 - 1))
        np.testing.assert_array_equal(state, [expected, 0])
        assert state.dtype == np.array([0]).astype(state.dtype).dtype and state[0] >= 1
    assert len({int(s[0]) for s in states}) == 3  # each layer its own state
    for other in ((5, 2), (4, 3)):
        reseed_random_layers(model, *other)
        assert all(not np.array_equal(a, b) for a, b in zip(seed_states(model), states, strict=True))
    reseed_random_layers(model, 4, 2)
    for again, state in zip(seed_states(model), states, strict=True):
        np.testing.assert_array_equal(again, state)  # same inputs, same state
    for after, before in zip(values(model.trainable_variables), kernel, strict=True):
        np.testing.assert_array_equal(after, before)  # only the random layers' states


def test_epoch_seeds_reseed_at_each_epoch_begin():
    model, reference = tiny_model(dropouts=2), tiny_model(dropouts=2)
    seeds = EpochSeeds(seed=9)
    seeds.set_model(model)
    for epoch in (0, 3):
        seeds.on_epoch_begin(epoch)
        reseed_random_layers(reference, 9, epoch)
        for got, expected in zip(seed_states(model), seed_states(reference), strict=True):
            np.testing.assert_array_equal(got, expected)


# --- batch-norm statistics -------------------------------------------------------------------------------------


def test_batch_norm_statistics_are_recomputed_once_per_training_epoch(monkeypatch):
    """After the epoch's steps, before its validation; not on an evaluate() later in the same epoch."""
    calls = []
    monkeypatch.setattr(cnn_study.models, "recompute_batch_norm_statistics", lambda *args: calls.append(args))
    model, images = tiny_model(), np.ones((6, 4), "float32")
    statistics = BatchNormStatistics(images, batch_size=3)
    statistics.set_model(model)
    statistics.on_epoch_begin(0)
    assert calls == []
    statistics.on_test_begin()
    statistics.on_test_begin()  # evaluate() after the epoch's validation
    assert len(calls) == 1 and calls[0][0] is model and calls[0][1] is images and calls[0][2] == 3
    statistics.on_epoch_begin(1)
    statistics.on_test_begin()
    assert len(calls) == 2


def test_batch_norm_statistics_in_fit_then_evaluate(monkeypatch):
    calls = []
    monkeypatch.setattr(cnn_study.models, "recompute_batch_norm_statistics", lambda *args: calls.append(args))
    model, x, y = tiny_model(), np.ones((4, 4), "float32"), np.zeros((4, 2), "float32")
    statistics = BatchNormStatistics(x, 2)
    model.fit(x, y, epochs=2, validation_data=(x, y), callbacks=[statistics], verbose=0)
    assert len(calls) == 2
    model.evaluate(x, y, callbacks=[statistics], verbose=0)
    assert len(calls) == 2


# --- epoch statistics and progress -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.wall, self.cpu = 0.0, 0.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(callbacks, "time", fake)
    return fake


def test_epoch_stats_log_phase_rate_and_timing_with_the_steps_ending_where_validation_begins(clock):
    model = tiny_model(learning_rate=0.125)
    stats = EpochStats(["frozen", "fine_tune"], train_images=40)
    stats.set_model(model)
    clock.wall, clock.cpu = 10.0, 100.0
    stats.on_epoch_begin(1)
    clock.wall = 12.0
    stats.on_test_begin()  # the training steps end: 2 s for 40 images
    clock.wall = 13.0
    stats.on_test_begin()  # a second validation in the epoch does not move it
    clock.wall, clock.cpu = 15.0, 103.5
    logs = {"loss": 0.5}
    stats.on_epoch_end(1, logs)
    assert logs == {
        "loss": 0.5,
        "phase": "fine_tune",
        "learning_rate": 0.125,
        "epoch_seconds": 5.0,
        "epoch_cpu_seconds": 3.5,
        "images_per_second": 20.0,
    }
    assert isinstance(logs["learning_rate"], float)


def test_epoch_stats_without_validation_time_the_whole_epoch(clock):
    stats = EpochStats(["frozen", "frozen"], train_images=30)
    stats.set_model(tiny_model())
    clock.wall = 1.0
    stats.on_epoch_begin(0)
    clock.wall = 4.0
    logs = {}
    stats.on_epoch_end(0, logs)
    assert logs["phase"] == "frozen" and logs["epoch_seconds"] == 3.0 and logs["images_per_second"] == 10.0
    clock.wall = 5.0
    stats.on_epoch_begin(1)  # a new epoch forgets the last one's end of steps
    stats.on_test_begin()  # no time has passed: a rate, not a division by zero
    clock.wall = 6.0
    stats.on_epoch_end(1, logs)
    assert logs["epoch_seconds"] == 1.0 and logs["images_per_second"] == pytest.approx(30 / 1e-9)


def test_epoch_progress_numbers_epochs_out_of_the_run_total(capsys):
    assert EpochProgress.async_safe is True
    progress = EpochProgress(7)
    params = {"epochs": 3, "steps": 2, "verbose": 2}
    progress.set_params(params)
    assert progress.epochs == 7 and progress.target == 2 and progress.verbose == 2
    model, x, y = tiny_model(), np.ones((4, 4), "float32"), np.zeros((4, 2), "float32")
    model.fit(x, y, batch_size=2, initial_epoch=3, epochs=5, callbacks=[EpochProgress(7)], verbose=2)
    printed = capsys.readouterr().out
    assert re.findall(r"^Epoch (\d+/\d+)$", printed, re.M) == ["4/7", "5/7"]


# --- backup --------------------------------------------------------------------------------------------------------


def test_backup_variables_are_the_weights_then_the_optimizer_state():
    model = tiny_model()
    variables = backup_variables(model)
    assert [id(v) for v in variables] == [id(v) for v in [*model.weights, *model.optimizer.variables]]
    assert len(variables) == 2 + 2 + 4  # kernel, bias; iterations, learning rate; Adam's two per weight


def test_snapshot_keeps_the_values_of_its_time():
    model = tiny_model()
    before = values(backup_variables(model))
    taken = snapshot(model)
    for variable in model.weights:
        variable.assign(variable + 1.0)
    model.optimizer.iterations.assign_add(5)
    assert [np.asarray(a).tolist() for a in taken] == [b.tolist() for b in before]
    assert not np.array_equal(values(model.weights)[0], before[0])
    # TensorFlow: reads that share the variables' buffers (no copy on the training loop's path); else NumPy copies
    assert all(isinstance(a, np.ndarray) != TENSORFLOW for a in taken)


def fill(model, start: float) -> None:
    """Give every backed-up variable distinct values from `start` (the optimizer's step count too)."""
    for offset, variable in enumerate(backup_variables(model)):
        shape = tuple(variable.shape)
        value = start + offset + np.arange(int(np.prod(shape))).reshape(shape)
        variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))


def test_backup_commits_the_epoch_and_removes_older_files(tmp_path):
    directory = tmp_path / "resume" / "backup"  # neither exists yet
    model = tiny_model()
    backup = AsyncBackup(directory)
    backup.set_model(model)
    (tmp_path / "resume").mkdir()
    fill(model, 1.0)
    backup.on_epoch_end(0)
    backup.wait()
    assert sorted(p.name for p in directory.iterdir()) == ["epoch-0001.npz", "training_metadata.json"]
    assert json.loads((directory / "training_metadata.json").read_text()) == {"epoch": 1, "weights": "epoch-0001.npz"}
    (directory / "notes.txt").write_text("not a backup")
    fill(model, 50.0)
    expected = values(backup_variables(model))
    backup.on_epoch_end(11)
    backup.on_train_end()
    assert sorted(p.name for p in directory.iterdir()) == ["epoch-0012.npz", "notes.txt", "training_metadata.json"]
    assert backup_metadata(directory) == {"epoch": 12, "weights": "epoch-0012.npz"}
    with np.load(directory / "epoch-0012.npz") as stored:
        assert len(stored.files) == len(expected)
        for index, value in enumerate(expected):
            np.testing.assert_array_equal(stored[f"arr_{index}"], value)


def test_backup_writes_the_state_of_the_epoch_end_even_while_training_goes_on(tmp_path, monkeypatch):
    """The writer thread turns the snapshot into a file after the next steps have changed the variables."""
    release, real_savez = threading.Event(), np.savez

    def held_savez(handle, *arrays):
        assert release.wait(30)
        real_savez(handle, *arrays)

    monkeypatch.setattr(np, "savez", held_savez)
    model = tiny_model()
    fill(model, 1.0)
    expected = values(backup_variables(model))
    backup = AsyncBackup(tmp_path)
    backup.set_model(model)
    backup.on_epoch_end(2)
    assert backup._thread.daemon  # a write that hangs (a stuck file system) never keeps a failed run's process alive
    fill(model, 1000.0)  # the next epoch's steps
    model.optimizer.iterations.assign_add(1)
    assert backup_metadata(tmp_path) is None  # not committed before the file is written
    release.set()
    backup.on_train_end()  # waits for the write
    with np.load(tmp_path / "epoch-0003.npz") as stored:
        for index, value in enumerate(expected):
            np.testing.assert_array_equal(stored[f"arr_{index}"], value)


def test_the_weights_file_is_complete_and_durable_before_the_metadata_names_it(tmp_path, monkeypatch):
    events = []
    real_atomic_write, real_write_atomic = callbacks.atomic_write, callbacks.write_atomic

    def atomic_write(path, durable=False):
        events.append(("weights", path.name, durable))
        return real_atomic_write(path, durable=durable)

    def write_atomic(path, text):
        record = json.loads(text)
        with np.load(path.parent / record["weights"]) as stored:  # complete, under its final name
            events.append(("metadata", record["weights"], len(stored.files)))
        real_write_atomic(path, text)

    monkeypatch.setattr(callbacks, "atomic_write", atomic_write)
    monkeypatch.setattr(callbacks, "write_atomic", write_atomic)
    model = tiny_model()
    backup = AsyncBackup(tmp_path)
    backup.set_model(model)
    backup.on_epoch_end(0)
    backup.wait()
    count = len(backup_variables(model))
    assert events == [("weights", "epoch-0001.npz", True), ("metadata", "epoch-0001.npz", count)]


def test_an_error_in_the_writer_is_raised_by_wait_once(tmp_path, monkeypatch):
    def failing_savez(handle, *arrays):
        raise RuntimeError("disk on fire")

    model = tiny_model()
    backup = AsyncBackup(tmp_path)
    backup.set_model(model)
    backup.wait()  # nothing pending: nothing to raise
    monkeypatch.setattr(np, "savez", failing_savez)
    backup.on_epoch_end(0)
    with pytest.raises(RuntimeError, match="^disk on fire$"):
        backup.wait()
    backup.wait()  # raised once, then cleared
    assert backup_metadata(tmp_path) is None and list(tmp_path.iterdir()) == []
    backup.on_epoch_end(1)
    with pytest.raises(RuntimeError, match="disk on fire"):
        backup.on_epoch_end(2)  # the next epoch's end waits for the pending write first
    monkeypatch.undo()
    backup.on_epoch_end(2)
    backup.wait()
    assert backup_metadata(tmp_path) == {"epoch": 3, "weights": "epoch-0003.npz"}


def test_restore_without_a_backup_is_zero(tmp_path):
    assert AsyncBackup(tmp_path / "none").restore(tiny_model()) == 0


def test_restore_loads_weights_and_optimizer_state_exactly(tmp_path):
    saved = tiny_model()
    fill(saved, 0.5)
    backup = AsyncBackup(tmp_path)
    backup.set_model(saved)
    backup.on_epoch_end(3)
    backup.wait()
    fresh = tiny_model(build=False)  # as train_run compiles it: the optimizer not built yet
    assert not fresh.optimizer.built
    assert backup.restore(fresh) == 4
    for got, expected in zip(values(backup_variables(fresh)), values(backup_variables(saved)), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == int(
        keras.ops.convert_to_numpy(saved.optimizer.iterations)
    )


def two_layers() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


@pytest.mark.parametrize("other", [lambda: tiny_model(units=3), two_layers], ids=["other_shapes", "other_count"])
def test_restore_into_another_model_names_the_file(tmp_path, other):
    backup = AsyncBackup(tmp_path / "resume" / "backup")
    saved = tiny_model()
    backup.set_model(saved)
    backup.on_epoch_end(0)
    backup.wait()
    model = other()
    with pytest.raises(ValueError) as raised:
        backup.restore(model)
    path = tmp_path / "resume" / "backup" / "epoch-0001.npz"
    assert str(raised.value) == (
        f"{path}: the backup does not match this model ({len(backup_variables(saved))} arrays for "
        f"{len(backup_variables(model))} variables); delete {tmp_path / 'resume'} to start afresh"
    )
