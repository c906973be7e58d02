"""The decode-once cache: shapes, dtypes, labels, mmap loading, the documented resize, refusal of a changed source."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnn_study import image_cache
from cnn_study.image_cache import CacheError, build_cache, load_split
from cnn_study.screening import decode_rgb
from cnn_study.selection import select_images
from photo_fixtures import competition_members, encode, photo, write_folder, write_zip

CLASSES = ["cat", "dog"]


def outputs(root, size):
    return {
        f"{split}_{kind}": str(root / f"{size}px" / f"{split}_{kind}.npy")
        for split in ("train", "val")
        for kind in ("images", "labels")
    }


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    """A source with mixed formats and modes, and its manifest (4 + 2 per class)."""
    root = tmp_path_factory.mktemp("cache")
    members = competition_members(6)
    members["train/cat.0.jpg"] = encode(photo(100).convert("CMYK"))
    members["train/cat.1.jpg"] = encode(photo(101).convert("L"))
    members["train/dog.0.jpg"] = encode(photo(102).convert("RGBA"), "PNG")
    members["train/dog.1.jpg"] = encode(photo(103, size=(64, 120)), "GIF")
    source = write_zip(root / "train.zip", members)
    manifest = root / "manifest.csv"
    select_images(source, manifest, root / "rejected.csv", CLASSES, 4, 2, 0, 32, 6)
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    return root, source, manifest, rows, members


@pytest.mark.parametrize("size", [32, 45])
def test_cache_shapes_dtypes_labels(picked, size):
    root, source, manifest, rows, _ = picked
    files = outputs(root, size)
    counts = build_cache(source, manifest, CLASSES, size, files)
    assert counts == {"train": 8, "val": 4}
    for split, n in counts.items():
        images, labels = load_split(files[f"{split}_images"], files[f"{split}_labels"])
        assert isinstance(images, np.memmap) and images.mode == "r"
        assert images.shape == (n, size, size, 3) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        expected = [CLASSES.index(r["label"]) for r in rows if r["split"] == split]
        assert labels.tolist() == expected
    assert not list((root / f"{size}px").glob("*partial*"))


def test_cache_holds_the_documented_resize_in_manifest_order(picked):
    root, source, manifest, rows, members = picked
    files = outputs(root, 40)
    build_cache(source, manifest, CLASSES, 40, files)
    images = np.load(files["train_images"], mmap_mode="r")
    train_rows = [r for r in rows if r["split"] == "train"]
    for index, row in enumerate(train_rows):
        decoded = decode_rgb(members[row["file"]])
        expected = np.asarray(decoded.resize((40, 40), Image.Resampling.BILINEAR))
        assert np.array_equal(images[index], expected), row["file"]
    # The docstring names the filter the code uses.
    assert image_cache.RESAMPLE == Image.Resampling.BILINEAR
    assert "BILINEAR" in image_cache.__doc__ and "aspect ratio" in image_cache.__doc__


# The picked fixture's converted members: file -> (photo seed, photo size, grey, largest mean difference
# from the original photo in the cache, in 0-255 levels: JPEG and GIF palettes are lossy).
CONVERTED = {
    "train/cat.0.jpg": (100, (96, 80), False, 4),  # CMYK JPEG
    "train/cat.1.jpg": (101, (96, 80), True, 3),  # grayscale JPEG: three equal channels
    "train/dog.0.jpg": (102, (96, 80), False, 2),  # RGBA PNG, opaque: the colours survive compositing
    "train/dog.1.jpg": (103, (64, 120), False, 12),  # GIF: a palette image
}


def test_conversions_reach_the_cache_as_rgb(picked):
    root, source, manifest, rows, members = picked
    files = outputs(root, 32)
    build_cache(source, manifest, CLASSES, 32, files)
    where = {}
    for split in ("train", "val"):
        for index, row in enumerate(r for r in rows if r["split"] == split):
            where[row["file"]] = (split, index)
    assert set(CONVERTED) <= set(where)  # every conversion was picked, so every check below runs
    for name, (seed, size, grey, tolerance) in CONVERTED.items():
        split, index = where[name]
        cached = np.load(files[f"{split}_images"], mmap_mode="r")[index].astype(float)
        original = photo(seed, size).convert("L").convert("RGB") if grey else photo(seed, size)
        reference = np.asarray(original.resize((32, 32), Image.Resampling.BILINEAR), dtype=float)
        assert np.abs(cached - reference).mean() < tolerance, name
        if grey:
            assert np.array_equal(cached[..., 0], cached[..., 1]) and np.array_equal(cached[..., 0], cached[..., 2])
        else:  # colour kept, not flattened to grey
            assert np.abs(cached[..., 0] - cached[..., 2]).mean() > 10, name


def _tiff(array: np.ndarray, mode: str) -> bytes:
    image = Image.fromarray(array)
    assert image.mode == mode
    buffer = io.BytesIO()
    image.save(buffer, "TIFF")
    return buffer.getvalue()


def _transparent_palette() -> Image.Image:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.info["transparency"] = 1
    return image


@pytest.mark.parametrize(
    "data, expected",
    [
        # Transparency is composited onto white, whatever the mode that carries it.
        (encode(Image.new("LA", (4, 4), (0, 0)), "PNG"), 255),
        (encode(Image.new("LA", (4, 4), (60, 255)), "PNG"), 60),
        (encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG"), 255),
        (encode(_transparent_palette(), "PNG"), 255),
        (encode(_transparent_palette(), "GIF"), 255),
        # 16-bit and 32-bit integers are scaled to 8 bits (x / 257), larger values to their maximum.
        (encode(Image.fromarray(np.full((4, 4), 257 * 200, dtype=np.uint16)), "PNG"), 200),
        (encode(Image.fromarray(np.full((4, 4), 200, dtype=np.uint16)), "PNG"), 1),  # 16-bit even when dark
        (_tiff(np.full((4, 4), 60000, dtype=np.int32), "I"), 233),  # 60000 / 257 = 233.5
        (_tiff(np.array([[0, 45875, 65536]] * 2, dtype=np.int32), "I"), [0, 178, 255]),  # x 255 / 65536
        (_tiff(np.array([[-5, 255]] * 2, dtype=np.int32), "I"), [0, 255]),  # 8-bit values, clipped
        # 8-bit values in a float image stay as they are.
        (_tiff(np.full((4, 4), 99.6, dtype=np.float32), "F"), 100),
    ],
    ids=[
        "LA clear",
        "LA opaque",
        "RGBA clear",
        "P PNG",
        "P GIF",
        "I;16",
        "I;16 dark",
        "I 32-bit",
        "I beyond 16-bit",
        "I 8-bit",
        "F",
    ],
)
def test_decode_gives_8_bit_rgb(data, expected):
    pixels = np.asarray(decode_rgb(data))
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    if isinstance(expected, list):  # one value per column
        assert pixels[0, :, 0].tolist() == expected and np.all(pixels == pixels[:, :, :1])
    else:
        assert np.all(pixels == expected), np.unique(pixels)


def test_folder_source_gives_the_same_cache(picked, tmp_path):
    root, source, manifest, _, members = picked
    from_zip, from_folder = outputs(tmp_path / "zip", 32), outputs(tmp_path / "folder", 32)
    build_cache(source, manifest, CLASSES, 32, from_zip)
    build_cache(write_folder(tmp_path / "train", members), manifest, CLASSES, 32, from_folder)
    for key in from_zip:
        assert np.array_equal(np.load(from_zip[key]), np.load(from_folder[key]))


def test_changed_source_is_refused(picked, tmp_path):
    _, _, manifest, rows, members = picked
    changed = dict(members)
    changed[rows[0]["file"]] = encode(photo(999))
    with pytest.raises(CacheError) as error:
        build_cache(write_zip(tmp_path / "changed.zip", changed), manifest, CLASSES, 32, outputs(tmp_path, 32))
    assert str(error.value) == (
        f"{rows[0]['file']}: content differs from the manifest's sha256; the source changed since the pick, "
        "rerun select_images"
    )
    del changed[rows[0]["file"]]
    missing = tmp_path / "missing.zip"
    with pytest.raises(CacheError) as error:
        build_cache(write_zip(missing, changed), manifest, CLASSES, 32, outputs(tmp_path, 32))
    assert str(error.value) == (
        f"{rows[0]['file']}: cannot be read from {missing} (KeyError); the source changed since the pick, "
        "rerun select_images"
    )
    assert not list(tmp_path.rglob("*.npy"))


def test_a_split_without_images_gets_empty_arrays(picked, tmp_path):
    _, source, manifest, rows, _ = picked
    train_only = tmp_path / "train_only.csv"
    with open(train_only, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["split"] == "train")
    files = outputs(tmp_path, 32)
    assert build_cache(source, train_only, CLASSES, 32, files) == {"train": 8, "val": 0}
    images, labels = load_split(files["val_images"], files["val_labels"])
    assert images.shape == (0, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (0,) and labels.dtype == np.int64


def test_unknown_label_in_manifest_is_refused(picked, tmp_path):
    _, source, manifest, _, _ = picked
    with pytest.raises(CacheError) as error:
        build_cache(source, manifest, ["cat", "bird"], 32, outputs(tmp_path, 32))
    assert str(error.value) == (f"{manifest}: labels ['dog'] are not among the classes ['cat', 'bird']; rerun the pick")


def test_zip_is_read_in_place(picked, tmp_path, monkeypatch):
    _, source, manifest, _, _ = picked
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: pytest.fail("extracted"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: pytest.fail("extracted"))
    build_cache(source, manifest, CLASSES, 32, outputs(tmp_path, 32))


# ---- a full disk ---------------------------------------------------------------------------

FULL_DISK_CACHE = """
import json, os, sys
from pathlib import Path
from cnn_study import image_cache
from cnn_study.logs import run_logged

source, manifest, folder, report, check = sys.argv[1:]
if check == "off":  # as if the space went while the cache was written: the writes meet the full disk
    image_cache.check_free_space = lambda *args: None
outputs = {key: f"{folder}/{key}.npy" for key in image_cache.cache_keys()}
try:
    run_logged(f"{report}.log", image_cache.build_cache, source_path=source, manifest_path=manifest,
               classes=["cat", "dog"], size=224, outputs=outputs)
finally:
    Path(report).write_text(json.dumps(sorted(os.listdir(folder))))  # the tmpfs leaves with this process
"""


@pytest.mark.parametrize("check", ["on", "off"], ids=["checked-before", "met-while-writing"])
def test_a_cache_that_does_not_fit_is_one_disk_full_line_and_leaves_no_partial_file(picked, tmp_path, check):
    """12 images at 224 px need 1.8 MB; the cache folder is a 1 MB file system. Memory-mapped writes would end
    in SIGBUS there, leaving a sparse partial file."""
    from helpers import run_on_small_disk

    _, source, manifest, _, _ = picked
    folder, report = tmp_path / "cache", tmp_path / "report.json"
    result = run_on_small_disk(
        folder, "1m", FULL_DISK_CACHE, str(source), str(manifest), str(folder), str(report), check
    )
    if result is None:
        pytest.skip("no user and mount namespace here to make a small file system")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not -7, SIGBUS
    [line] = result.stderr.splitlines()
    needed = 12 * 224 * 224 * 3 + 12 * 8 + 4 * 128
    expected = rf"Error: {folder}: disk full, {needed} bytes needed and \d+ bytes free on its "
    assert re.match(
        expected + r"file system; free space there \(or run the workflow on a larger disk\), then rerun ", line
    )
    assert line.endswith(f"(log: {tmp_path / 'report.json.log'})")
    assert json.loads(report.read_text()) == []  # no partial file on the full disk
    # Checked before: refused before a byte is written; else the write's own error is in the log.
    assert ("No space left on device" in (tmp_path / "report.json.log").read_text()) is (check == "off")
