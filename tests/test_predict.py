"""cnn_study.predict without a trained model: a run folder with only run.json, and a fake model that records what
it is given. What a real model predicts, and loading each kept model file, is tested in test_run_model.py."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cnn_study import predict, sources
from cnn_study.errors import error_text
from cnn_study.image_cache import resize_rgb
from cnn_study.predict import image_names, predict_images, why_undecodable
from cnn_study.predict import main as predict_main
from cnn_study.screening import decode_rgb
from conftest import run_settings_for

SIZE = 32  # the run's input size: every image reaches the model at this size


class FakeModel:
    """Stands in for a run's Keras model: an image's first-class probability is its mean red value / 255."""

    def __init__(self):
        self.batches = []  # the arrays predict was given, one per call
        self.verbose = []

    def predict(self, images, verbose="auto"):
        self.batches.append(images)
        self.verbose.append(verbose)
        first = images[..., 0].mean(axis=(1, 2)) / 255
        return np.stack([first, 1 - first], axis=1)


@pytest.fixture
def model(monkeypatch):
    """The fake model, returned by predict's load_run_model; ``model.loaded`` lists the run folders it was loaded from."""
    fake = FakeModel()
    fake.loaded = []

    def load_run_model(run_dir):
        fake.loaded.append(run_dir)
        return fake

    monkeypatch.setattr(predict, "load_run_model", load_run_model)
    return fake


def record_only_run(run_dir, classes=("cat", "dog")):
    """A run folder whose run.json is complete but whose model is never loaded (or is the fake)."""
    run_dir.mkdir(parents=True)
    settings = run_settings_for("resnet50", SIZE, classes=list(classes), epochs=1)
    (run_dir / "run.json").write_text(json.dumps({"settings": settings, "model_file": "model.keras"}))
    return run_dir


def write_photos(folder, count=3, size=40):
    """Random photos (JPEG and PNG), a text file and a hidden empty .jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for index in range(count):
        array = rng.integers(0, 256, (size, size, 3)).astype("uint8")
        Image.fromarray(array).save(folder / f"photo{index}.png" if index % 2 else folder / f"photo{index}.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(b"")


def solid(path, red, size=40):
    """A one-colour PNG: the fake model gives it red / 255 for the first class, exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (red, 0, 255 - red)).save(path)
    return path


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def predict_error(capsys, *argv) -> str:
    """predict's exit status must be 1 and its stderr one line: that line."""
    assert predict_main([str(arg) for arg in argv]) == 1
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and captured.out == "", captured
    return captured.err.rstrip("\n")


# --- the run's classes, in the run's order -----------------------------------------------------------------


def test_classes_and_columns_follow_the_runs_order_not_the_alphabet(tmp_path, model):
    """run.json lists dog before cat: the model's first output is dog, as it was trained."""
    run = record_only_run(tmp_path / "run", classes=("dog", "cat"))
    solid(tmp_path / "photos" / "a.png", 255)
    solid(tmp_path / "photos" / "b.png", 51)
    solid(tmp_path / "photos" / "c.png", 0)
    assert predict_images(run, tmp_path / "photos", tmp_path / "p.csv") == 3
    assert rows_of(tmp_path / "p.csv") == [
        ["file", "predicted_class", "probability_dog", "probability_cat"],
        ["a.png", "dog", "1.000000", "0.000000"],
        ["b.png", "cat", "0.200000", "0.800000"],
        ["c.png", "cat", "0.000000", "1.000000"],
    ]


def test_images_reach_the_model_as_the_training_cache_has_them(tmp_path, model):
    """Decoded to RGB and resized to the run's input size as the cache is (float32, 0-255), without a progress bar."""
    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=3)
    assert predict_images(run, tmp_path / "photos", tmp_path / "p.csv") == 3
    [batch] = model.batches
    assert batch.shape == (3, SIZE, SIZE, 3) and batch.dtype == np.float32
    for image, name in zip(batch, ["photo0.jpg", "photo1.png", "photo2.jpg"], strict=True):
        expected = resize_rgb(decode_rgb((tmp_path / "photos" / name).read_bytes()), SIZE)
        np.testing.assert_array_equal(image, expected.astype("float32"))
    assert model.verbose == [0] and model.loaded == [run]


def test_images_go_to_the_model_in_batches_of_32_and_the_model_is_loaded_once(tmp_path, model):
    run = record_only_run(tmp_path / "run")
    for index in range(33):
        solid(tmp_path / "photos" / f"{index:02d}.png", index, size=8)
    assert predict_images(run, tmp_path / "photos", tmp_path / "p.csv") == 33
    assert [len(batch) for batch in model.batches] == [32, 1]
    assert model.loaded == [run]
    rows = rows_of(tmp_path / "p.csv")[1:]
    assert [row[0] for row in rows] == [f"{index:02d}.png" for index in range(33)]
    assert rows[32][2] == f"{32 / 255:.6f}"


def test_a_batch_without_a_decodable_image_is_left_out_and_the_next_is_classified(tmp_path, model, caplog):
    run = record_only_run(tmp_path / "run")
    (tmp_path / "photos").mkdir()
    for index in range(32):
        (tmp_path / "photos" / f"a{index:02d}.jpg").write_text("not a photo")
    solid(tmp_path / "photos" / "b.png", 255)
    output = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING, logger="cnn_study.predict"):
        assert predict_images(run, tmp_path / "photos", output) == 1
    assert [len(batch) for batch in model.batches] == [1]
    assert [row[0] for row in rows_of(output)[1:]] == ["b.png"]
    assert caplog.messages[0] == "a00.jpg: not an image; left out"
    assert caplog.messages[-1] == f"32 of 33 files could not be decoded and are not in {output}"
    assert len(caplog.messages) == 33


def test_a_file_refused_unread_is_named_with_the_sources_reason(tmp_path, model, monkeypatch, caplog):
    """A file over the source's size limit is never read: its reason is the source's, not 'zero bytes'."""
    run = record_only_run(tmp_path / "run")
    solid(tmp_path / "photos" / "a.png", 255, size=8)
    big = solid(tmp_path / "photos" / "big.png", 255, size=40)
    limit = big.stat().st_size - 1
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", limit)
    with caplog.at_level(logging.WARNING, logger="cnn_study.predict"):
        assert predict_images(run, tmp_path / "photos", tmp_path / "p.csv") == 1
    refused = sources.MemberRejected(
        "big.png", "file too large", f"{big.stat().st_size} bytes, over the limit of {limit}"
    )
    assert caplog.messages[0] == f"big.png: {error_text(refused)}; left out"


# --- which files are images, and why one is left out ---------------------------------------------------------


def test_image_names_are_the_image_files_sorted_without_hidden_files_or_macos_metadata():
    source = SimpleNamespace(
        names=[
            "sub/e.jpeg",
            "b.JPG",
            "a.png",
            "f.gif",
            "g.BMP",
            "notes.txt",
            "h.webp",
            ".hidden.jpg",
            "x/.thumbs/c.jpg",
            "__MACOSX/d.jpg",
            "y/__MACOSX/d.jpg",
        ]
    )
    assert image_names(source) == ["a.png", "b.JPG", "f.gif", "g.BMP", "sub/e.jpeg"]


def test_why_undecodable_gives_the_hand_picks_reason_else_the_error():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    error = ValueError("cannot decode")
    # Not read at all (refused by the source): the error itself.
    assert why_undecodable("a.jpg", None, error) == "ValueError: cannot decode"
    assert why_undecodable("a.jpg", b"text", error) == "not an image"
    assert why_undecodable("a.jpg", png.getvalue()[:40], error).startswith("truncated or undecodable (")
    # An image the screening accepts (even one pixel wide) but decode failed on: the error.
    one_pixel = io.BytesIO()
    Image.new("RGB", (1, 1)).save(one_pixel, format="PNG")
    assert why_undecodable("a.png", one_pixel.getvalue(), error) == "ValueError: cannot decode"


# --- the command: one line per error, nothing half-written --------------------------------------------------


def test_command_writes_predictions_csv_here_by_default_and_says_how_many(tmp_path, model, monkeypatch, capsys):
    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=2)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        for path in sorted((tmp_path / "photos").iterdir()):
            archive.write(path, f"new/{path.name}")
    monkeypatch.chdir(tmp_path)
    assert predict_main([str(run), "photos.zip"]) == 0
    assert capsys.readouterr().out == "2 images classified: predictions.csv\n"
    assert [row[0] for row in rows_of(tmp_path / "predictions.csv")[1:]] == ["new/photo0.jpg", "new/photo1.png"]


def test_command_prints_warnings_as_one_line_each(tmp_path, model, capsys):
    """Left-out files are named on the console as 'WARNING: ...' (the command's logging set-up)."""
    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=1)
    (tmp_path / "photos" / "broken.jpg").write_text("not a photo")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []  # as in a fresh process: basicConfig installs the console handler
    try:
        assert predict_main([str(run), str(tmp_path / "photos"), "-o", str(tmp_path / "p.csv")]) == 0
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    assert capsys.readouterr().err.splitlines() == [
        "WARNING: broken.jpg: not an image; left out",
        f"WARNING: 1 of 2 files could not be decoded and are not in {tmp_path / 'p.csv'}",
    ]


def test_command_help_says_what_each_argument_is(capsys):
    with pytest.raises(SystemExit):
        predict_main(["--help"])
    text = f" {' '.join(capsys.readouterr().out.split())} "
    for phrase in [
        "Classify images with a finished run's model; writes file, predicted_class and one probability column per "
        "class.",
        "a finished run's folder, e.g. results/runs/paper/resnet50/sgd/lr0.001/seed0",
        "a folder or zip archive of images (JPEG, PNG, GIF, BMP)",
        "-o OUTPUT, --output OUTPUT CSV to write (default: predictions.csv)",
    ]:
        assert f" {phrase} " in text


def test_predict_refuses_an_output_that_is_a_folder_and_leaves_nothing(tmp_path, capsys):
    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=2)
    (tmp_path / "out").mkdir()
    assert predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "out") == (
        f"Error: {tmp_path / 'out'}: is a folder; give the CSV file to write, e.g. -o {tmp_path / 'out' / 'predictions.csv'}"
    )
    assert list(tmp_path.glob("*partial*")) == [] and list((tmp_path / "out").iterdir()) == []


def test_predict_names_a_missing_images_path_without_the_workflows_setting(tmp_path, capsys):
    run = record_only_run(tmp_path / "run")
    line = predict_error(capsys, run, tmp_path / "nowhere", "-o", tmp_path / "p.csv")
    assert (
        line
        == f"Error: {tmp_path / 'nowhere'}: no such file or folder; give a folder or zip archive of images to classify"
    )
    assert not (tmp_path / "p.csv").exists()


def test_predict_names_a_folder_without_image_files(tmp_path, capsys):
    run = record_only_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    assert predict_error(capsys, run, tmp_path / "empty", "-o", tmp_path / "p.csv") == (
        f"Error: {tmp_path / 'empty'}: no image files (.jpg, .jpeg, .png, .gif, .bmp) found; give a folder or zip of "
        "images"
    )
    assert not (tmp_path / "p.csv").exists()


def test_predict_names_a_folder_that_is_no_run(tmp_path, capsys):
    write_photos(tmp_path / "photos", count=1)
    assert predict_error(capsys, tmp_path, tmp_path / "photos", "-o", tmp_path / "p.csv") == (
        f"Error: {tmp_path / 'run.json'} does not exist: {tmp_path} is not a finished run"
    )


def test_predict_fails_when_no_image_can_be_decoded(tmp_path, capsys):
    run = record_only_run(tmp_path / "run")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_text("not a photo")
    (tmp_path / "photos" / "b.png").write_bytes(b"")
    line = predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert line == (
        f"Error: {tmp_path / 'photos'}: none of its 2 image files can be decoded (first: a.jpg: not an image); "
        "give JPEG, PNG, GIF or BMP images"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]


def test_predict_refuses_images_over_the_screenings_pixel_limits(tmp_path, monkeypatch, capsys, caplog):
    """The limits of screening.oversize, the hand-pick's own: a JPEG over MAX_PIXELS, a PNG over
    MAX_FULL_DECODE_PIXELS (40x40 photos, the limits made small)."""
    from cnn_study import screening

    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=2)  # photo0.jpg, photo1.png, both 40x40
    monkeypatch.setattr(screening, "MAX_PIXELS", 40 * 40 - 1)
    line = predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert line == (
        f"Error: {tmp_path / 'photos'}: none of its 2 image files can be decoded (first: photo0.jpg: too large "
        "(40x40 > 1599 pixels)); give JPEG, PNG, GIF or BMP images"
    )
    monkeypatch.setattr(screening, "MAX_PIXELS", 40 * 40)
    monkeypatch.setattr(screening, "MAX_FULL_DECODE_PIXELS", 40 * 40 - 1)
    (tmp_path / "photos" / "photo0.jpg").unlink()
    predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert (
        "photo1.png: too large (40x40 > 1599 pixels, the most a PNG is decoded at; only JPEG decodes at a "
        "reduced scale); left out"
    ) in caplog.messages


def test_predict_names_a_corrupt_run_record(tmp_path, capsys):
    run = record_only_run(tmp_path / "run")
    write_photos(tmp_path / "photos", count=1)
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    line = predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert line.startswith(f"Error: {run / 'run.json'}: corrupt run record (") and line.endswith(
        "); rerun the run to write it again"
    )
    (run / "run.json").write_text('{"settings": {"model": "resnet50"}}')
    assert predict_error(capsys, run, tmp_path / "photos", "-o", tmp_path / "p.csv") == (
        f"Error: {run / 'run.json'}: not a run record of this workflow (no settings.classes and "
        "settings.input_size); give a run's folder under results/runs"
    )
