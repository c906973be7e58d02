"""cnn_study.training in this process, on a tiny model: the phases' learning rates, history.csv, and train_run from
the decode-once cache to history.csv, run.json and model.keras, with a resume after a kill.

cnn_study.models.build_model is replaced by a model of a few dense layers (its backbone a small Sequential), so a
run trains in about a second; tests/test_training.py runs the real models in child processes, killed by SIGKILL.
A kill is simulated here by an exception raised from the backup callback, once an epoch's backup is committed (or
before it, after the epoch's history row)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import cnn_study.models  # noqa: E402
import cnn_study.training_callbacks  # noqa: E402
from cnn_study.image_cache import cache_paths  # noqa: E402
from cnn_study.training import (  # noqa: E402
    HISTORY_COLUMNS,
    TIMING_COLUMNS,
    phase_learning_rate,
    train_run,
    write_history,
)
from cnn_study.training_callbacks import AsyncBackup  # noqa: E402
from conftest import run_settings_for, untimed  # noqa: E402
from test_training_callbacks import values  # noqa: E402

SIZE = 6  # the tiny model's input: 6 x 6 RGB
TRAIN, VAL = 8, 4


def make_settings(epochs=3, warmup=1, mode="fine_tune", lr=0.01, **training):
    protocol = {"mode": mode, "warmup_epochs": warmup, **training.pop("protocol", {})}
    # the backend Keras was imported with here (KERAS_BACKEND), so the tests run on each
    training = {"batch_size": 2, "jit_compile": False, "backend": keras.backend.backend(), **training}
    return run_settings_for(lr=lr, seed=7, epochs=epochs, protocol=protocol, **training)


@pytest.fixture
def data(tmp_path):
    """A decode-once cache of random uint8 images (cnn_study.image_cache's file names), both classes in each split."""
    paths = cache_paths(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    rng = np.random.default_rng(0)
    for split, count in (("train", TRAIN), ("val", VAL)):
        np.save(paths[f"{split}_images"], rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8))
        np.save(paths[f"{split}_labels"], (np.arange(count) % 2).astype(np.int64))
    return paths


class Built(list):
    weights_files: list


@pytest.fixture
def built(monkeypatch):
    """build_model replaced by a tiny classifier; the list holds every (model, base) built, in order, and its
    weights_files the weights file each was given."""
    pairs, built_with = Built(), []

    def build_model(settings, weights_file=None):
        built_with.append(weights_file)
        inputs = keras.Input((SIZE, SIZE, 3), name="image")
        x = keras.layers.Rescaling(1 / 255)(inputs)
        base = keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 3)),
                keras.layers.Flatten(),
                keras.layers.Dense(4, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(3, activation="relu"),
            ],
            name="base",
        )
        x = keras.layers.Dropout(0.5, seed=settings["seed"])(base(x))
        outputs = keras.layers.Dense(len(settings["classes"]), activation="softmax", name="predictions")(x)
        pairs.append((keras.Model(inputs, outputs), base))
        return pairs[-1]

    monkeypatch.setattr(cnn_study.models, "build_model", build_model)
    pairs.weights_files = built_with
    return pairs


def train(folder, settings, data, **options):
    """train_run with the run's files in `folder` (as the train rule lays them out); returns its history."""
    options = {"verbose": 0, **options}
    return train_run(
        settings,
        data,
        None,
        folder / "history.csv",
        folder / "model.keras",
        folder / "run.json",
        folder / "resume",
        **options,
    )


class Killed(Exception):
    """Stands for a SIGKILL."""


@contextlib.contextmanager
def killed_at(monkeypatch, epochs_done: int, committed: bool = True):
    """Within the context: the run stops once the backup of `epochs_done` epochs is committed, or (committed False)
    after that epoch's history row, before its backup."""
    original = AsyncBackup.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == epochs_done and not committed:
            self.wait()
            raise Killed
        original(self, epoch, logs)
        if epoch + 1 == epochs_done:
            self.wait()
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(AsyncBackup, "on_epoch_end", on_epoch_end)
        yield


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "cnn_study.training"]


# --- learning rates and history ----------------------------------------------------------------------------------


def test_phase_rate_is_the_grid_rate_or_the_fine_tune_rate_after_the_warm_up():
    phases = ["frozen", "fine_tune", "fine_tune"]
    plain = make_settings(lr=0.01)
    assert phase_learning_rate(keras, plain, "frozen", phases, 4) == 0.01
    assert phase_learning_rate(keras, plain, "fine_tune", phases, 4) == 0.01  # fine_tune_learning_rate null
    separate = make_settings(lr=0.01, protocol={"fine_tune_learning_rate": 0.002})
    assert phase_learning_rate(keras, separate, "frozen", phases, 4) == 0.01
    rate = phase_learning_rate(keras, separate, "fine_tune", phases, 4)
    assert rate == 0.002 and isinstance(rate, float)
    assert (
        phase_learning_rate(
            keras, make_settings(mode="full", protocol={"fine_tune_learning_rate": 0.002}), "full", ["full"], 4
        )
        == 0.01
    )


def test_cosine_decays_each_phase_over_its_own_steps():
    phases = ["frozen", "fine_tune", "fine_tune", "fine_tune"]
    settings = make_settings(epochs=4, lr=0.01, lr_schedule="cosine", protocol={"fine_tune_learning_rate": 0.002})
    for phase, rate, epochs in (("frozen", 0.01, 1), ("fine_tune", 0.002, 3)):
        schedule = phase_learning_rate(keras, settings, phase, phases, 5)
        assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
        assert schedule.initial_learning_rate == rate and schedule.decay_steps == epochs * 5
        assert schedule.alpha == 0.0 and schedule.warmup_steps == 0
        assert float(keras.ops.convert_to_numpy(schedule(epochs * 5))) == pytest.approx(0.0, abs=1e-12)


def test_write_history_counts_epochs_from_one_in_the_history_columns(tmp_path):
    partial = tmp_path / "partial.csv"
    rows = pd.DataFrame({column: [0.5, 0.25] for column in reversed(HISTORY_COLUMNS)})
    rows["epoch"], rows["phase"], rows["extra"] = [0, 1], ["frozen", "fine_tune"], [9, 9]
    rows.to_csv(partial, index=False)
    history = write_history(partial, tmp_path / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2] and history["phase"].tolist() == ["frozen", "fine_tune"]
    written = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(written, history.reset_index(drop=True))
    assert (tmp_path / "history.csv").read_text().startswith(",".join(HISTORY_COLUMNS) + "\n1,frozen,")


# --- train_run --------------------------------------------------------------------------------------------------


def test_a_run_writes_history_run_json_and_model_and_removes_its_resume_folder(tmp_path, data, built, caplog, capsys):
    caplog.set_level(logging.INFO, "cnn_study.training")
    settings = make_settings()
    history = train(tmp_path, settings, data, verbose=2)
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["phase"].tolist() == ["frozen", "fine_tune", "fine_tune"]
    np.testing.assert_allclose(history["learning_rate"], 0.01, rtol=1e-6)
    assert history[["loss", "accuracy", "val_loss", "val_accuracy"]].notna().all().all()
    assert (history[TIMING_COLUMNS] > 0).all().all()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv"), history)
    assert not (tmp_path / "resume").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "history.csv", "model.keras", "run.json"]
    assert messages(caplog) == ["epoch 2: entering phase fine_tune (recompiling with a fresh optimizer)"]
    printed = capsys.readouterr().out
    assert re.findall(r"^Epoch (\d+/\d+)$", printed, re.M) == ["1/3", "2/3", "3/3"]
    assert len(re.findall(r"^4/4 - .*val_loss: ", printed, re.M)) == 3  # 8 images in batches of 2

    record = json.loads((tmp_path / "run.json").read_text())
    assert record["settings"] == settings and record["backend"] == keras.backend.backend()
    assert record["resumed_at_epoch"] is None and record["first_started_at"] == record["started_at"]
    assert record["model_file"] == "model.keras" and record["gpus_requested"] == 0
    assert record["fused_batch_norm_layers"] == (1 if keras.backend.backend() == "tensorflow" else 0)
    assert record["training_seconds"] == round(float(history["epoch_seconds"].sum()), 3)

    model, base = built[-1]
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert getattr(loaded, "optimizer", None) is None  # keep: model (no optimizer state)
    for got, expected in zip(values(loaded.weights), values(model.weights), strict=True):
        np.testing.assert_array_equal(got, expected)
    # the last phase's trainability (fine_tune, every layer, batch normalization frozen) and its rate
    assert base.trainable and not base.layers[2].trainable and base.layers[3].trainable
    assert model.optimizer.iterations.numpy() == 8  # a fresh optimizer for fine_tune: its two epochs of 4 steps


def test_keep_none_and_frozen_layers_stay_as_built(tmp_path, data, built):
    """transfer: every epoch frozen, so the backbone keeps its initial weights while the head trains."""
    train(tmp_path, make_settings(epochs=2, mode="transfer"), data, keep="none")
    model, base = built[-1]
    assert not (tmp_path / "model.keras").exists()
    assert json.loads((tmp_path / "run.json").read_text())["model_file"] is None
    assert not base.trainable


def test_fine_tuning_the_top_layers_with_trainable_batch_norm(tmp_path, data, built):
    protocol = {"unfreeze_top_layers": 2, "batch_norm": "trainable"}
    train(tmp_path, make_settings(epochs=2, protocol=protocol), data, keep="none")
    _, base = built[-1]
    assert [layer.trainable for layer in base.layers] == [False, False, True, True]


def test_a_batch_larger_than_the_training_set_is_refused_naming_the_file(tmp_path, data, built):
    message = (
        f"training.batch_size = {TRAIN + 1} is larger than the training set ({TRAIN} images in "
        f"{data['train_images']}); lower it"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        train(tmp_path, make_settings(batch_size=TRAIN + 1), data)
    train(tmp_path, make_settings(epochs=1, batch_size=TRAIN), data, keep="none")  # the whole set: one step


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="Keras runs one step per call on torch")
def test_steps_per_execution_is_lowered_to_a_divisor_of_the_steps(tmp_path, data, built, caplog):
    caplog.set_level(logging.INFO, "cnn_study.training")
    train(tmp_path / "a", make_settings(epochs=1, steps_per_execution=3), data, keep="none")
    assert messages(caplog) == ["steps_per_execution 3: lowered to 2, a divisor of the 4 steps of an epoch"]
    assert built[-1][0].steps_per_execution == 2
    caplog.clear()
    train(tmp_path / "b", make_settings(epochs=1, steps_per_execution=4), data, keep="none")
    assert messages(caplog) == [] and built[-1][0].steps_per_execution == 4


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, data, built, monkeypatch, caplog):
    """Kill 1 lands after epoch 2's history row, before its backup (the row is dropped, the frozen phase's state
    restored); kill 2 after the backup of epoch 2, inside fine_tune (its optimizer state restored)."""
    caplog.set_level(logging.INFO, "cnn_study.training")
    settings = make_settings(epochs=4)
    reference = train(tmp_path / "reference", settings, data)
    reference_model = built[-1][0]

    run = tmp_path / "run"
    with killed_at(monkeypatch, 2, committed=False), pytest.raises(Killed):
        train(run, settings, data)
    assert pd.read_csv(run / "resume" / "history.csv")["epoch"].tolist() == [0, 1]
    first_started = (run / "resume" / "started_at").read_text().strip()
    caplog.clear()
    with killed_at(monkeypatch, 2), pytest.raises(Killed):
        train(run, settings, data)
    assert messages(caplog) == [
        f"resuming at epoch 2 of 4 from {run / 'resume' / 'backup'}",
        "epoch 2: entering phase fine_tune (recompiling with a fresh optimizer)",
    ]
    caplog.clear()
    history = train(run, settings, data)
    assert messages(caplog) == [f"resuming at epoch 3 of 4 from {run / 'resume' / 'backup'}"]

    assert history["epoch"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(untimed(history), untimed(reference), check_exact=True)
    for got, expected in zip(values(built[-1][0].weights), values(reference_model.weights), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert not (run / "resume").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["resumed_at_epoch"] == 3 and record["first_started_at"] == first_started
    assert record["first_started_at"] <= record["started_at"]


def test_reduce_on_plateau_replays_the_rates_of_the_phase(tmp_path, data, built, monkeypatch):
    """The plateau callback sets each epoch's rate from its phase's rate and validation losses so far, also after a
    resume (the rule replaced by one that halves the rate per loss, so the losses' count shows)."""
    monkeypatch.setattr(
        cnn_study.training_callbacks, "plateau_learning_rate", lambda rate, losses: rate / 2 ** len(losses)
    )
    protocol = {"fine_tune_learning_rate": 0.002}
    settings = make_settings(epochs=4, lr_schedule="reduce_on_plateau", protocol=protocol)
    run = tmp_path / "run"
    with killed_at(monkeypatch, 2), pytest.raises(Killed):
        train(run, settings, data)
    history = train(run, settings, data)
    np.testing.assert_allclose(history["learning_rate"], [0.01, 0.002, 0.001, 0.0005], rtol=1e-6)
    plain = train(tmp_path / "plain", make_settings(epochs=4, protocol=protocol), data)
    np.testing.assert_allclose(plain["learning_rate"], [0.01, 0.002, 0.002, 0.002], rtol=1e-6)


def test_cosine_rates_and_recomputed_batch_norm_statistics(tmp_path, data, built, monkeypatch):
    """The history logs the rate after each epoch's steps: 0 at each phase's end, half way through the second."""
    calls = []
    monkeypatch.setattr(
        cnn_study.models, "recompute_batch_norm_statistics", lambda model, x, batch: calls.append((len(x), batch))
    )
    protocol = {"fine_tune_learning_rate": 0.002}
    settings = make_settings(lr_schedule="cosine", batch_norm_statistics="recomputed", protocol=protocol)
    history = train(tmp_path, settings, data, keep="none")
    np.testing.assert_allclose(history["learning_rate"], [0.0, 0.001, 0.0], atol=1e-9)
    assert calls == [(TRAIN, 2)] * 3
    calls.clear()
    train(tmp_path / "moving", make_settings(epochs=1), data, keep="none")
    assert calls == []


@pytest.mark.parametrize("schedule", ["cosine", "reduce_on_plateau"])
def test_schedules_with_a_fine_tune_rate_and_trainable_batch_norm_resume_exactly(
    tmp_path, data, built, monkeypatch, schedule
):
    """Killed inside fine-tuning, a run resumes to the history of an uninterrupted one: cosine follows the restored
    optimizer's step count, the plateau rule replays the phase's losses from the history."""
    protocol = {"unfreeze_top_layers": "all", "batch_norm": "trainable", "fine_tune_learning_rate": 0.002}
    settings = make_settings(epochs=6, lr_schedule=schedule, protocol=protocol)
    reference = train(tmp_path / "reference", settings, data, keep="none")
    rates = reference["learning_rate"].to_numpy()
    if schedule == "cosine":  # each phase decays from its own rate to 0 at its end (logged after the epoch's steps)
        assert rates[0] == 0 and rates[-1] == pytest.approx(0, abs=1e-12)
        assert 0.001 < rates[1] < 0.002 and np.all(np.diff(rates[1:]) < 0)
    else:
        assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.002)
        assert set(np.round(rates[1:] / 0.002, 6)) <= {1.0, 0.5, 0.25}
    with killed_at(monkeypatch, 3), pytest.raises(Killed):
        train(tmp_path / "resumed", settings, data, keep="none")
    resumed = train(tmp_path / "resumed", settings, data, keep="none")
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["resumed_at_epoch"] == 4
    pd.testing.assert_frame_equal(untimed(resumed), untimed(reference), check_exact=True)


@pytest.fixture
def calls(monkeypatch):
    """What train_run hands to the backend setup, the feed, fuse_batch_norm, compile and fit: {name: [arguments]}."""
    import cnn_study.training

    seen = {name: [] for name in ("configure_backend", "training_batches", "fuse_batch_norm", "compile", "fit")}

    def recording(name, function, method=False):
        def record(*args, **kwargs):
            seen[name].append((args[1:] if method else args, kwargs))
            return function(*args, **kwargs)

        return record

    monkeypatch.setattr(
        cnn_study.training, "configure_backend", recording("configure_backend", cnn_study.training.configure_backend)
    )
    for module, name in ((cnn_study.training_callbacks, "training_batches"), (cnn_study.models, "fuse_batch_norm")):
        monkeypatch.setattr(module, name, recording(name, getattr(module, name)))
    for name in ("compile", "fit"):
        monkeypatch.setattr(keras.Model, name, recording(name, getattr(keras.Model, name), method=True))
    return seen


def test_what_train_run_hands_to_the_backend_the_feed_compile_and_fit(tmp_path, data, built, calls):
    settings = make_settings(epochs=3, optimizer="sgd", optimizer_params={"momentum": 0.5})
    train_run(
        settings, data, "weights.h5", tmp_path / "h.csv", None, tmp_path / "run.json", tmp_path / "r", keep="none"
    )
    assert calls["configure_backend"] == [((1, 7, settings["deterministic"], keras.backend.backend(), 0), {})]
    assert built.weights_files == ["weights.h5"]
    model = built[-1][0]
    assert calls["fuse_batch_norm"] == [((model,), {})]
    feeds = [(args[2:], kwargs) for args, kwargs in calls["training_batches"]]
    assert feeds == [((2, 7, 0, 1), {}), ((2, 7, 1, 3), {})]  # batch size, seed, and each phase's epochs
    assert all(args[1].dtype == np.float32 and args[1].shape == (TRAIN, 2) for args, _ in calls["training_batches"])
    for _, options in calls["compile"]:
        assert options["loss"] == settings["loss"] and options["metrics"] == settings["metrics"]
        assert options["jit_compile"] is False and options["steps_per_execution"] == 1
        assert options["optimizer"].momentum == 0.5 and float(options["optimizer"].learning_rate) == pytest.approx(0.01)
    assert len(calls["compile"]) == 2  # once per phase
    for (first, end), (_, options) in zip([(0, 1), (1, 3)], calls["fit"], strict=True):
        assert options["initial_epoch"] == first and options["epochs"] == end
        assert options["steps_per_epoch"] == 4 and options["shuffle"] is False and options["verbose"] == 2
        assert options["validation_batch_size"] == 2
        images, labels = options["validation_data"]
        assert images.shape == (VAL, SIZE, SIZE, 3) and labels.dtype == np.float32
        np.testing.assert_array_equal(labels, np.eye(2, dtype=np.float32)[np.arange(VAL) % 2])


def test_threads_and_progress_default_to_one_and_a_line_per_epoch(tmp_path, data, built, calls, capsys):
    settings = make_settings(epochs=2)
    train_run(settings, data, None, tmp_path / "h.csv", None, tmp_path / "run.json", tmp_path / "r", keep="none")
    assert calls["configure_backend"][0][0][0] == 1
    printed = capsys.readouterr().out
    assert re.findall(r"^Epoch (\d+/\d+)$", printed, re.M) == ["1/2", "2/2"]
    assert len(re.findall(r"^4/4 - .*val_loss: ", printed, re.M)) == 2


def test_a_class_missing_from_the_images_still_gets_its_output_and_column(tmp_path, data, built, calls):
    """The labels are one-hot over the run's classes, not over the labels that happen to occur."""
    settings = make_settings(epochs=1, classes=["cat", "dog", "fox"])
    train(tmp_path, settings, data, keep="none")
    (_, train_labels, *_), _ = calls["training_batches"][0]
    assert train_labels.shape == (TRAIN, 3) and not train_labels[:, 2].any()
    assert calls["fit"][0][1]["validation_data"][1].shape == (VAL, 3)


@pytest.fixture
def float32_afterwards():
    yield
    keras.config.set_dtype_policy("float32")


def test_mixed_precision_is_set_before_the_model_is_built(tmp_path, data, built, float32_afterwards):
    train(tmp_path / "mixed", make_settings(epochs=1, precision="mixed_bfloat16"), data, keep="none")
    model, base = built[-1]
    assert base.layers[1].dtype_policy.name == "mixed_bfloat16"
    keras.config.set_dtype_policy("float32")
    train(tmp_path / "plain", make_settings(epochs=1), data, keep="none")
    assert built[-1][1].layers[1].dtype_policy.name == "float32"


def test_a_resume_folder_of_other_settings_or_an_older_history_is_not_resumed(
    tmp_path, data, built, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, "cnn_study.training")
    settings = make_settings(epochs=3)
    reference = train(tmp_path / "reference", settings, data, keep="none")
    run = tmp_path / "run"
    with killed_at(monkeypatch, 2), pytest.raises(Killed):
        train(run, make_settings(epochs=3, lr=0.02), data, keep="none")
    caplog.clear()
    history = train(run, settings, data, keep="none")  # the backup of lr 0.02 is discarded
    assert not any(message.startswith("resuming") for message in messages(caplog))
    pd.testing.assert_frame_equal(untimed(history), untimed(reference), check_exact=True)

    with killed_at(monkeypatch, 2), pytest.raises(Killed):
        train(run, settings, data, keep="none")
    partial = pd.read_csv(run / "resume" / "history.csv")
    partial.drop(columns="epoch_cpu_seconds").to_csv(run / "resume" / "history.csv", index=False)  # an older version's
    caplog.clear()
    history = train(run, settings, data, keep="none")
    assert not any(message.startswith("resuming") for message in messages(caplog))
    pd.testing.assert_frame_equal(untimed(history), untimed(reference), check_exact=True)
