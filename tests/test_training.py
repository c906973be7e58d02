"""cnn_study.training: determinism, resume after a real SIGKILL, phases, history.csv, run.json and the
torch backend.

Training runs in real processes (tests/training_job.py), as the Snakemake job does, on a handful of
random images: AlexNet at 67 px where many processes are needed (it traces in seconds), ResNet50 at
32 px for determinism (the model whose runs differed before op determinism was enabled).
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cnn_study.provenance import settings_hash
from cnn_study.resume_state import backup_metadata, completed_epochs, keep_history_rows, prepare_resume_dir
from cnn_study.schedule import epoch_order, phase_plan, phase_spans, steps_per_execution_for
from cnn_study.training import HISTORY_COLUMNS, TIMING_COLUMNS, write_history
from conftest import run_settings_for, untimed

ROOT = Path(__file__).resolve().parents[1]
JOB = Path(__file__).resolve().with_name("training_job.py")
JOB_TIMEOUT = 420


def make_settings(model="alexnet", size=67, mode="fine_tune", epochs=4, warmup=1, **training):
    """A small run's settings, built as the train rule builds them (conftest.run_settings_for)."""
    protocol = {"mode": mode, "warmup_epochs": warmup, **training.pop("protocol", {})}
    learning_rate = training.pop("learning_rate", 0.001)
    training = {"batch_size": 4, "jit_compile": False, **training}
    return run_settings_for(model, size, "adam", learning_rate, 7, epochs=epochs, protocol=protocol, **training)


def make_data(directory: Path, size: int, train: int = 8, val: int = 4) -> dict:
    """A decode-once cache of random uint8 images (same layout as image_cache.build_cache writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    paths = {}
    for split, count in (("train", train), ("val", val)):
        for kind, array in (
            ("images", rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)),
            ("labels", (np.arange(count) % 2).astype(np.int64)),
        ):
            path = directory / f"{split}_{kind}.npy"
            np.save(path, array)
            paths[f"{split}_{kind}"] = str(path)
    return paths


class Job:
    """One attempt of a run: train_run in a child process, logging to <run>/attempt-N.log."""

    def __init__(
        self, run_dir: Path, settings: dict, data: dict, backend: str = "tensorflow", attempt: int = 1, keep="model"
    ):
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "settings": settings,
            "data": data,
            "weights_file": None,
            "history_path": str(run_dir / "history.csv"),
            "model_path": str(run_dir / "model.keras"),
            "provenance_path": str(run_dir / "run.json"),
            "resume_dir": str(run_dir / "resume"),
            "threads": 2,
            "keep": keep,
        }
        (run_dir / "spec.json").write_text(json.dumps(spec))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "workflow_scripts"),
            "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            # A credential in the job's environment must never reach run.json.
            "KAGGLE_KEY": "canary-credential-0123456789",
        }
        self.log = run_dir / f"attempt-{attempt}.log"
        self._log_handle = open(self.log, "w")
        self.process = subprocess.Popen(
            [sys.executable, str(JOB), str(run_dir / "spec.json")],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    def wait(self, timeout: float = JOB_TIMEOUT) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            self._log_handle.close()
        return code

    def finish(self) -> "Job":
        code = self.wait()
        assert code == 0, f"training job failed ({code}):\n{self.text()[-4000:]}"
        return self

    def kill_after_backup(self, epochs_done: int, timeout: float = JOB_TIMEOUT) -> int:
        """SIGKILL the job as soon as the backup of epoch `epochs_done` is committed, i.e. while it
        trains the next epoch. Returns the epochs the backup holds after the kill."""
        backup = self.run_dir / "resume" / "backup"
        deadline = time.monotonic() + timeout
        while completed_epochs(backup) < epochs_done:
            assert self.process.poll() is None, f"job ended before the kill:\n{self.text()[-4000:]}"
            assert time.monotonic() < deadline, "no backup in time"
            time.sleep(0.02)
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL
        return completed_epochs(backup)

    def text(self) -> str:
        return self.log.read_text()

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.run_dir / "history.csv")

    def provenance(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())


def saved_weights(model_path: Path) -> dict[str, np.ndarray]:
    """Every array in a .keras file's model.weights.h5 (read directly: no model to rebuild)."""
    import io
    import zipfile

    import h5py

    arrays = {}
    with zipfile.ZipFile(model_path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
        h5.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = saved_weights(first), saved_weights(second)
    assert a and a.keys() == b.keys()
    assert all(np.array_equal(a[name], b[name]) for name in a)


# --- pure logic -------------------------------------------------------------------------------


def test_phase_plan():
    assert phase_plan({"mode": "transfer", "warmup_epochs": 2}, 3) == ["frozen"] * 3
    assert phase_plan({"mode": "full", "warmup_epochs": 2}, 3) == ["full"] * 3
    assert phase_plan({"mode": "fine_tune", "warmup_epochs": 2}, 4) == ["frozen", "frozen", "fine_tune", "fine_tune"]
    assert phase_plan({"mode": "fine_tune", "warmup_epochs": 0}, 2) == ["fine_tune"] * 2
    assert phase_plan({"mode": "fine_tune", "warmup_epochs": 9}, 2) == ["frozen"] * 2


def test_epoch_order_depends_only_on_seed_and_epoch():
    order = epoch_order(3, 5, 10)
    assert sorted(order) == list(range(10))
    np.testing.assert_array_equal(order, epoch_order(3, 5, 10))
    assert not np.array_equal(order, epoch_order(3, 6, 10))
    assert not np.array_equal(order, epoch_order(4, 5, 10))


def test_phase_spans_are_one_fit_call_per_phase_from_the_resume_epoch():
    phases = ["frozen", "frozen", "fine_tune", "fine_tune", "fine_tune"]
    assert phase_spans(phases, 0) == [(0, 2), (2, 5)]
    assert phase_spans(phases, 1) == [(1, 2), (2, 5)]
    assert phase_spans(phases, 3) == [(3, 5)]
    assert phase_spans(phases, 5) == []
    assert phase_spans(["full"] * 3, 0) == [(0, 3)]


def test_steps_per_execution_never_crosses_an_epoch_end():
    assert steps_per_execution_for(1, 50) == 1
    assert steps_per_execution_for(10, 50) == 10
    assert steps_per_execution_for(50, 50) == 50
    assert steps_per_execution_for(20, 50) == 10  # 20 does not divide 50
    assert steps_per_execution_for(10, 2) == 2  # more than an epoch's steps
    assert steps_per_execution_for(4, 7) == 1


def test_epoch_batches_are_a_pure_function_of_the_batch_index():
    """Batch i of the endless stream is batch i % steps of epoch first + i // steps in that epoch's order,
    whatever was asked before (tf.data prefetches across an epoch's end)."""
    from cnn_study.training_callbacks import EpochBatches

    x, y = np.arange(10)[:, None] * np.ones((1, 3)), np.arange(10)
    batches = EpochBatches(x, y, batch_size=4, seed=3, first_epoch=2)
    assert batches.steps == 3 and batches.num_batches is None
    late = batches[4]  # epoch 3, step 1, asked first
    epoch2 = np.concatenate([batches[i][1] for i in range(3)])
    np.testing.assert_array_equal(epoch2, epoch_order(3, 2, 10))
    np.testing.assert_array_equal(batches[4][1], late[1])
    np.testing.assert_array_equal(late[1], epoch_order(3, 3, 10)[4:8])
    np.testing.assert_array_equal(batches[5][1], epoch_order(3, 3, 10)[8:])
    np.testing.assert_array_equal(batches[1][0][:, 0], batches[1][1])  # images and labels stay paired


@pytest.mark.parametrize("count", [12, 10])  # batch 4 divides 12; 10 ends each epoch with a batch of 2
def test_the_tensorflow_feed_gives_the_batches_of_epoch_batches(count):
    """epoch_dataset (tf.data, TensorFlow's feed) yields exactly EpochBatches' batches, epoch after epoch, with
    the images and labels paired; where the batch size divides the set, every batch has a static shape."""
    import keras
    import tensorflow as tf

    from cnn_study.training_callbacks import EpochBatches, epoch_dataset, training_batches

    x = (np.arange(count)[:, None, None, None] * np.ones((1, 2, 2, 3))).astype(np.uint8)
    y = keras.utils.to_categorical(np.arange(count) % 2, 2).astype("float32")
    dataset = epoch_dataset(x, y, batch_size=4, seed=3, first_epoch=2, end_epoch=4)
    expected = EpochBatches(x, y, batch_size=4, seed=3, first_epoch=2)
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    assert len(batches) == 2 * expected.steps
    for index, (images, labels) in enumerate(batches):
        np.testing.assert_array_equal(images, expected[index][0])
        np.testing.assert_array_equal(labels, expected[index][1])
    assert dataset.element_spec[0].shape.as_list() == ([4, 2, 2, 3] if count % 4 == 0 else [None, 2, 2, 3])
    assert dataset.element_spec[0].dtype == tf.uint8
    assert isinstance(training_batches(x, y, 4, 3, 2, 4), tf.data.Dataset)  # TensorFlow is the tests' backend


def test_history_rows_beyond_backup_are_dropped_and_epochs_made_one_based(tmp_path):
    partial = tmp_path / "partial.csv"
    rows = pd.DataFrame({column: [0.5, 0.25, 0.125] for column in HISTORY_COLUMNS})
    rows["epoch"], rows["phase"] = [0, 1, 2], ["frozen", "fine_tune", "fine_tune"]
    rows.to_csv(partial, index=False)
    keep_history_rows(partial, 2)  # a kill between epoch 3's row and its backup
    history = write_history(partial, tmp_path / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2]
    assert pd.read_csv(tmp_path / "history.csv").equals(history)
    keep_history_rows(partial, 0)
    assert not partial.exists()


def test_backup_counts_only_when_committed(tmp_path):
    assert completed_epochs(tmp_path) == 0
    (tmp_path / "training_metadata.json").write_text(json.dumps({"epoch": 3, "weights": "epoch-0003.weights.h5"}))
    assert completed_epochs(tmp_path) == 0  # metadata naming a file that is not there
    (tmp_path / "epoch-0003.weights.h5").write_bytes(b"")
    assert completed_epochs(tmp_path) == 3 and backup_metadata(tmp_path)["weights"] == "epoch-0003.weights.h5"


def test_a_backup_that_fills_the_disk_is_a_disk_full_error_and_leaves_the_last_commit(tmp_path, monkeypatch):
    import errno

    from cnn_study.files import DiskFullError
    from cnn_study.training_callbacks import AsyncBackup

    backup = AsyncBackup(tmp_path / "backup")
    backup._write(1, [np.zeros(4)])
    backup.wait()

    def half_then_full(handle, *arrays):
        handle.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_full)
    backup._write(2, [np.ones(4)])
    with pytest.raises(DiskFullError, match=r"epoch-0002\.npz: disk full after 1000 bytes written, \d+ bytes free"):
        backup.wait()
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-0001.npz", "training_metadata.json"]
    assert completed_epochs(tmp_path / "backup") == 1


def test_resume_folder_of_other_settings_is_discarded(tmp_path):
    resume = tmp_path / "resume"
    prepare_resume_dir(resume, make_settings())
    (resume / "backup").mkdir()
    prepare_resume_dir(resume, make_settings())
    assert (resume / "backup").exists()
    prepare_resume_dir(resume, make_settings(epochs=5))
    assert not (resume / "backup").exists()
    assert json.loads((resume / "settings.json").read_text())["epochs"] == 5


def test_resume_folder_whose_history_lacks_a_column_is_discarded(tmp_path):
    """CSVLogger appends rows under the partial history's header: one without a column this version writes
    (an attempt before an upgrade) would be misread, so the run starts afresh."""
    resume = tmp_path / "resume"
    prepare_resume_dir(resume, make_settings(), HISTORY_COLUMNS)
    (resume / "backup").mkdir()
    (resume / "history.csv").write_text("")  # killed before its first epoch's row: kept
    prepare_resume_dir(resume, make_settings(), HISTORY_COLUMNS)
    assert (resume / "backup").exists()
    (resume / "history.csv").write_text(",".join(sorted(HISTORY_COLUMNS)) + "\n")
    prepare_resume_dir(resume, make_settings(), HISTORY_COLUMNS)
    assert (resume / "backup").exists()
    older = [column for column in HISTORY_COLUMNS if column != "epoch_cpu_seconds"]
    (resume / "history.csv").write_text(",".join(older) + "\n0,1,2\n")
    prepare_resume_dir(resume, make_settings(), HISTORY_COLUMNS)
    assert not (resume / "backup").exists() and not (resume / "history.csv").exists()
    assert (resume / "settings.json").exists()


# --- real runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("cache67"), 67)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, alexnet_data):
    """An uninterrupted AlexNet fine_tune run (warm-up 1, 4 epochs). Started here, awaited by its users,
    so it trains while the resume test runs its own attempts."""
    job = Job(tmp_path_factory.mktemp("reference"), make_settings(), alexnet_data)
    yield job
    if job.process.poll() is None:
        job.process.kill()
        job.wait()


@pytest.fixture(scope="module")
def finished_reference(reference):
    if reference.process.returncode is None:
        reference.finish()
    assert reference.process.returncode == 0
    return reference


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, alexnet_data, reference):
    """Kill 1 lands in epoch 2, the first fine_tune epoch (resume restores the frozen phase's state
    and switches phase); kill 2 lands in epoch 3, inside fine_tune after the switch. Each restart
    resumes at the last finished epoch; the result equals the uninterrupted run."""
    run = tmp_path / "run"
    settings = make_settings()

    first = Job(run, settings, alexnet_data, attempt=1)
    assert first.kill_after_backup(1) == 1
    partial = pd.read_csv(run / "resume" / "history.csv")
    assert partial["epoch"].tolist()[:1] == [0]  # the CSV row was flushed before the kill
    assert not (run / "history.csv").exists() and not (run / "model.keras").exists()

    second = Job(run, settings, alexnet_data, attempt=2)
    assert second.kill_after_backup(2) == 2
    assert "resuming at epoch 2 of 4" in second.text()
    assert "entering phase fine_tune" in second.text()

    third = Job(run, settings, alexnet_data, attempt=3).finish()
    log = third.text()
    assert "resuming at epoch 3 of 4" in log
    assert "Epoch 3/4" in log and "Epoch 4/4" in log and "Epoch 2/4" not in log

    history = third.history()
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["phase"].tolist() == ["frozen", "fine_tune", "fine_tune", "fine_tune"]
    assert not (run / "resume").exists()
    provenance = third.provenance()
    assert provenance["resumed_at_epoch"] == 3
    assert provenance["first_started_at"] <= provenance["started_at"]

    reference.finish()
    pd.testing.assert_frame_equal(untimed(history), untimed(reference.history()), check_exact=True)
    assert_same_weights(run / "model.keras", reference.run_dir / "model.keras")


@pytest.mark.slow
def test_steps_per_execution_keeps_history_callbacks_and_resume(tmp_path):
    """steps_per_execution 4 on 8 steps per epoch (two device calls an epoch), killed after epoch 1 and
    resumed: the history equals an uninterrupted run with one step per call, bit for bit, and every
    epoch gets its row, phase, progress line and backup. Both with the demo's recomputed batch-norm
    statistics, which the backup must carry for the resumed epochs to validate the same."""
    data = make_data(tmp_path / "cache", 67, train=16, val=4)
    plain = make_settings(epochs=3, batch_size=2, batch_norm_statistics="recomputed")
    reference = Job(tmp_path / "reference", plain, data)
    run = tmp_path / "run"
    settings = make_settings(epochs=3, batch_size=2, steps_per_execution=4, batch_norm_statistics="recomputed")
    assert Job(run, settings, data, attempt=1, keep="full").kill_after_backup(1) == 1
    resumed = Job(run, settings, data, attempt=2, keep="full").finish()  # full: model.keras keeps compile()'s config
    log = resumed.text()
    assert "resuming at epoch 2 of 3" in log and "entering phase fine_tune" in log
    assert [int(n) for n in re.findall(r"^Epoch (\d+)/3$", log, re.M)] == [2, 3]
    assert len(re.findall(r"^8/8 - .*loss: .* - val_accuracy: ", log, re.M)) == 2
    assert "lowered" not in log
    history = resumed.history()
    assert history["phase"].tolist() == ["frozen", "fine_tune", "fine_tune"]
    assert resumed.provenance()["settings"]["steps_per_execution"] == 4
    with zipfile.ZipFile(run / "model.keras") as archive:  # what compile() was given
        assert json.loads(archive.read("config.json"))["compile_config"]["steps_per_execution"] == 4
    reference.finish()
    pd.testing.assert_frame_equal(untimed(history), untimed(reference.history()), check_exact=True)


@pytest.mark.slow
def test_mixed_bfloat16_trains(tmp_path, alexnet_data):
    """precision mixed_bfloat16: layers compute in bfloat16, the softmax output stays float32, the loss is finite."""
    job = Job(tmp_path / "run", make_settings(epochs=2, precision="mixed_bfloat16"), alexnet_data).finish()
    history = job.history()
    assert history["phase"].tolist() == ["frozen", "fine_tune"] and np.isfinite(history["loss"]).all()
    import keras

    import cnn_study.models  # noqa: F401

    model = keras.saving.load_model(job.run_dir / "model.keras")
    assert model.get_layer("head_bn").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert job.provenance()["settings"]["precision"] == "mixed_bfloat16"


@pytest.mark.slow
def test_same_run_twice_is_bit_identical(tmp_path):
    """ResNet50 at 32 px, fine-tuning its top layers (backprop through the last convolutions, frozen BN,
    augmentation, dropout, Adam): two processes, started together, give the same history and weights.
    (Training every layer costs ~3x the graph-tracing time on 2 CPU cores, for no more coverage here.)"""
    data = make_data(tmp_path / "cache32", 32)
    protocol = {"mode": "fine_tune", "warmup_epochs": 0, "unfreeze_top_layers": 12}
    settings = make_settings("resnet50", 32, epochs=2, protocol=protocol)
    jobs = [Job(tmp_path / f"run{i}", settings, data) for i in range(2)]
    first, second = (job.finish() for job in jobs)
    history = first.history()
    assert history["phase"].tolist() == ["fine_tune", "fine_tune"] and history["loss"].notna().all()
    pd.testing.assert_frame_equal(untimed(history), untimed(second.history()), check_exact=True)
    assert_same_weights(first.run_dir / "model.keras", second.run_dir / "model.keras")


@pytest.mark.slow
def test_history_columns_phases_and_progress_log(finished_reference):
    history = finished_reference.history()
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["phase"].tolist() == ["frozen", "fine_tune", "fine_tune", "fine_tune"]
    np.testing.assert_allclose(history["learning_rate"], 0.001, rtol=1e-6)  # float32 in the optimizer
    assert (history[TIMING_COLUMNS] > 0).all().all()
    assert history[["loss", "val_loss", "accuracy", "val_accuracy"]].notna().all().all()
    log = finished_reference.text()
    # verbose=2: "Epoch i/4" then one summary line per epoch, no per-batch bar.
    assert [int(n) for n in re.findall(r"^Epoch (\d+)/4$", log, re.M)] == [1, 2, 3, 4]
    assert len(re.findall(r"^2/2 - .*loss: .* - val_accuracy: .* - val_loss: ", log, re.M)) == 4
    assert "resuming at epoch" not in log


@pytest.mark.slow
def test_model_and_run_json(finished_reference):
    import keras

    import cnn_study.models  # noqa: F401

    run = finished_reference.run_dir
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("preprocessing").__class__.__name__ == "Sequential"  # built-in layers only
    assert model.output_shape == (None, 2)
    assert not (run / "resume").exists()
    assert not list(run.glob("*.partial*"))

    text = (run / "run.json").read_text()
    record = json.loads(text)
    settings = make_settings()
    assert record["settings"] == settings
    assert record["settings_sha256"] == settings_hash(settings)
    assert record["backend"] == "tensorflow"
    assert {"keras", "numpy", "pandas"} <= set(record["packages"])
    assert "tensorflow" in record["packages"] or "tensorflow-cpu" in record["packages"]
    assert isinstance(record["cpu"], str) and record["cpu"] and isinstance(record["gpus"], list)
    assert record["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    assert record["started_at"] <= record["finished_at"]
    assert record["total_seconds"] > 0 and record["training_seconds"] > 0
    assert record["resumed_at_epoch"] is None
    assert "canary-credential" not in text and "KAGGLE_KEY" not in text and "PATH" not in record


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_backend_trains(tmp_path, alexnet_data):
    """The same code on KERAS_BACKEND=torch: frozen warm-up epoch, phase switch, fine_tune epoch,
    backups, model.keras (AlexNet: ResNet50's eager backward pass is slow on 2 CPU cores)."""
    job = Job(tmp_path / "run", make_settings(epochs=2, backend="torch"), alexnet_data, backend="torch").finish()
    history = job.history()
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["phase"].tolist() == ["frozen", "fine_tune"]
    assert history["loss"].notna().all()
    assert job.provenance()["backend"] == "torch"
    assert "torch" in job.provenance()["packages"]
    import keras

    import cnn_study.models  # noqa: F401

    model = keras.saving.load_model(job.run_dir / "model.keras")  # a torch-trained model loads on TF
    assert model.output_shape == (None, 2)
