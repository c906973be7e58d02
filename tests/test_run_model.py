"""What a run keeps (training.keep), loading it back, the portable model.keras (built-in preprocessing
layers, loads in a plain Keras process) and the prediction entry point."""

import csv
import io
import json
import os
import subprocess
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.applications import imagenet_utils  # noqa: E402
from PIL import Image  # noqa: E402

from cnn_study.models import build_model, preprocessing_layer  # noqa: E402
from cnn_study.predict import main as predict_main  # noqa: E402
from cnn_study.predict import predict_images  # noqa: E402
from cnn_study.run_model import KEEP_FILES, kept_model_file, load_run_model, save_run_model  # noqa: E402
from conftest import run_settings_for  # noqa: E402
from test_predict import predict_error, write_photos  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CLASSES = ["cat", "dog"]


def make_settings(model="resnet50", size=32, **training):
    """A run's settings as the train rule builds them (conftest.run_settings_for)."""
    return run_settings_for(model, size, classes=CLASSES, epochs=1, **training)


def rgb_images(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("uint8")


@pytest.fixture(scope="module")
def trained():
    """A ResNet50 (caffe preprocessing) at 32 px after one Adam step, so it has optimizer state."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(make_settings())
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy")
    model.fit(rgb_images(4, 32).astype("float32"), np.eye(2)[[0, 1, 0, 1]], epochs=1, verbose=0)
    return model


def finished_run(run_dir, model, keep, settings=None):
    """A run folder as train_run leaves it: the kept model file and run.json naming it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    name = kept_model_file(keep)
    model_file = save_run_model(model, keep, run_dir / name if name else None)
    record = {"settings": settings or make_settings(), "model_file": model_file}
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


# --- preprocessing: built-in layers, the same numbers as keras.applications ------------------------


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocessing_equals_keras_preprocess_input_exactly(mode):
    x = rgb_images(3, 8).astype("float32")
    x[0, 0, 0] = (0, 127, 255)  # the ends and the middle of the range
    got = keras.ops.convert_to_numpy(preprocessing_layer(mode)(x))
    np.testing.assert_array_equal(got, imagenet_utils.preprocess_input(x.copy(), mode=mode))


def test_preprocessing_uses_only_keras_layers_and_does_not_train(trained):
    stack = trained.get_layer("preprocessing")
    assert all(type(layer).__module__.startswith("keras.") for layer in stack.layers)
    assert not stack.trainable_weights
    with pytest.raises(ValueError, match="unknown preprocessing mode 'bgr'"):
        preprocessing_layer("bgr")


# --- what a run keeps --------------------------------------------------------------------------


def test_keep_modes_write_their_file_and_nothing_else(tmp_path, trained):
    sizes = {}
    for keep in KEEP_FILES:
        run = finished_run(tmp_path / keep, trained, keep)
        files = sorted(p.name for p in run.iterdir())
        expected = sorted(["run.json"] + ([KEEP_FILES[keep]] if KEEP_FILES[keep] else []))
        assert files == expected, keep
        assert json.loads((run / "run.json").read_text())["model_file"] == KEEP_FILES[keep]
        if KEEP_FILES[keep]:
            sizes[keep] = (run / KEEP_FILES[keep]).stat().st_size
    # Adam's two moments: the full model is about three times the one without optimizer state.
    assert sizes["full"] > 2.5 * sizes["model"]
    assert sizes["weights"] < 1.1 * sizes["model"]
    with zipfile.ZipFile(tmp_path / "model" / "model.keras") as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(weights) as handle:
        assert "optimizer" not in handle
    with pytest.raises(ValueError, match="unknown training.keep 'all'"):
        kept_model_file("all")


@pytest.mark.parametrize("keep", ["full", "model", "weights"])
def test_load_run_model_gives_the_same_predictions_for_every_keep_mode(tmp_path, trained, keep):
    run = finished_run(tmp_path / keep, trained, keep)
    images = rgb_images(3, 32, seed=1).astype("float32")
    expected = keras.ops.convert_to_numpy(trained(images, training=False))
    loaded = load_run_model(run)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)), expected, rtol=1e-5, atol=1e-6
    )


def test_load_run_model_names_what_is_missing(tmp_path, trained):
    run = finished_run(tmp_path / "none", trained, "none")
    with pytest.raises(ValueError, match=r"kept no model \(training.keep = none\); rerun it with training.keep: model"):
        load_run_model(run)
    with pytest.raises(FileNotFoundError, match=r"run.json does not exist: .* is not a finished run"):
        load_run_model(tmp_path / "nothing")
    run = finished_run(tmp_path / "gone", trained, "model")
    (run / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match="model.keras does not exist, although .*run.json names it"):
        load_run_model(run)


PLAIN_KERAS = """
import sys, numpy as np, keras
model = keras.models.load_model(sys.argv[1])
images = np.load(sys.argv[2])
assert not any(name.startswith("cnn_study") for name in sys.modules), "project code was imported"
assert not any(path.endswith("workflow_scripts") for path in sys.path), sys.path
np.save(sys.argv[3], model.predict(images, verbose=0))
"""


def test_model_keras_loads_and_predicts_in_a_plain_keras_process(tmp_path, trained):
    run = finished_run(tmp_path / "run", trained, "model")
    images = rgb_images(3, 32, seed=2)  # raw uint8 RGB, as a user's photos would be
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, str(run / "model.keras"), "images.npy", "out.npy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = keras.ops.convert_to_numpy(trained(images.astype("float32"), training=False))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-6)


# --- prediction entry point --------------------------------------------------------------------


def test_predict_writes_one_row_per_image_with_the_runs_classes(tmp_path, trained):
    settings = {**make_settings(), "classes": ["kitten", "puppy"]}  # read from run.json, not re-derived
    run = finished_run(tmp_path / "run", trained, "weights", settings)
    write_photos(tmp_path / "photos")
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert predict_images(run, tmp_path / "photos", tmp_path / "out" / "predictions.csv") == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert list(rows[0]) == ["file", "predicted_class", "probability_kitten", "probability_puppy"]
    assert [r["file"] for r in rows] == ["photo0.jpg", "photo1.png", "photo2.jpg"]
    for row in rows:
        p = np.array([float(row["probability_kitten"]), float(row["probability_puppy"])])
        assert abs(p.sum() - 1) < 1e-4
        assert row["predicted_class"] == ["kitten", "puppy"][int(np.argmax(p))]
    # The same numbers as the model on the images resized as the training cache resizes them.
    from cnn_study.image_cache import resize_rgb

    first = resize_rgb(Image.open(tmp_path / "photos" / "photo0.jpg").convert("RGB"), 32)[None].astype("float32")
    expected = keras.ops.convert_to_numpy(trained(first, training=False))[0]
    np.testing.assert_allclose(
        [float(rows[0]["probability_kitten"]), float(rows[0]["probability_puppy"])], expected, atol=2e-6
    )
    assert not list((tmp_path / "out").glob("*.partial"))


def test_predict_cli_reads_a_zip_and_reports_errors_in_one_line(tmp_path, trained, capsys):
    run = finished_run(tmp_path / "run", trained, "model")
    write_photos(tmp_path / "photos", count=2)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        for path in sorted((tmp_path / "photos").iterdir()):
            archive.write(path, f"new/{path.name}")
    assert predict_main([str(run), str(tmp_path / "photos.zip"), "-o", str(tmp_path / "p.csv")]) == 0
    assert [r["file"] for r in csv.DictReader(open(tmp_path / "p.csv"))] == ["new/photo0.jpg", "new/photo1.png"]
    assert "2 images classified" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert predict_main([str(run), str(tmp_path / "empty"), "-o", str(tmp_path / "q.csv")]) == 1
    assert "empty: no image files" in capsys.readouterr().err
    assert predict_main([str(tmp_path), str(tmp_path / "photos"), "-o", str(tmp_path / "q.csv")]) == 1
    assert "is not a finished run" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()


def test_batch_norm_momentum_reaches_every_batch_normalization_layer():
    model, base = build_model(make_settings("inceptionv3", 75, batch_norm_momentum=0.9))
    norms = [layer for layer in [*base.layers, *model.layers] if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 90 and {layer.momentum for layer in norms} == {0.9}
    default, _ = build_model(make_settings("alexnet", 67))
    assert default.get_layer("head_bn").momentum == 0.99


@pytest.mark.parametrize(
    "keep, present, absent",
    [
        ("weights", "model.weights.h5", "model.keras"),
        ("none", "run.json", "model."),
        ("model", "model.keras", "model.weights.h5"),
    ],
)
def test_train_rule_outputs_follow_training_keep(tmp_path, keep, present, absent):
    from helpers import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "keep.yaml").write_text(f"training: {{keep: {keep}}}\n")
    result = snakemake(workdir, "-n", "--configfile", "configs/demo.yaml", "keep.yaml")
    outputs = [line for line in result.stdout.splitlines() if line.strip().startswith("output:") and "runs/" in line]
    assert len(outputs) == 6
    assert all(present in line and absent not in line for line in outputs), outputs[0]


# --- prediction on hostile input: one line each, nothing half-written -----------------------------


@pytest.mark.parametrize("keep", ["model", "weights"])
def test_predict_says_a_truncated_model_file_is_truncated(tmp_path, trained, capsys, keep):
    run = finished_run(tmp_path / "run", trained, keep)
    write_photos(tmp_path / "photos", count=1)
    model_file = run / KEEP_FILES[keep]
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    line = predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert "File not found" not in line
    if keep == "model":
        assert line == (
            f"Error: {model_file}: truncated or corrupt (not a complete .keras zip archive); rerun the run to write it"
        )
    else:
        assert line.startswith(f"Error: {model_file}: cannot be loaded, truncated or corrupt (")
    assert not (tmp_path / "p.csv").exists()
