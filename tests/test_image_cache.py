"""The decode-once cache: shapes, dtypes, labels, mmap loading, the documented resize, refusal of a changed source."""

from __future__ import annotations

import csv
import zipfile

import numpy as np
import pytest
from PIL import Image
from photo_fixtures import competition_members, encode, photo, write_folder, write_zip

from cnn_study import image_cache
from cnn_study.image_cache import CacheError, build_cache, load_split
from cnn_study.screening import decode_rgb
from cnn_study.selection import select_images

CLASSES = ["cat", "dog"]


def outputs(root, size):
    return {
        f"{split}_{kind}": str(root / f"{size}px" / f"{split}_{kind}.npy")
        for split in ("train", "val") for kind in ("images", "labels")
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


def test_conversions_reach_the_cache_as_rgb(picked):
    root, source, manifest, rows, members = picked
    files = outputs(root, 32)
    build_cache(source, manifest, CLASSES, 32, files)
    position = {split: [r["file"] for r in rows if r["split"] == split] for split in ("train", "val")}
    for split, names in position.items():
        images = np.load(files[f"{split}_images"], mmap_mode="r")
        for index, name in enumerate(names):
            if name == "train/dog.0.jpg":  # RGBA, opaque: the colours survive compositing
                reference = np.asarray(photo(102).resize((32, 32), Image.Resampling.BILINEAR), dtype=float)
                assert np.abs(images[index].astype(float) - reference).mean() < 2
            if name == "train/cat.1.jpg":  # grayscale: three equal channels
                assert np.array_equal(images[index][..., 0], images[index][..., 2])


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
    with pytest.raises(CacheError, match="differs from the manifest's sha256"):
        build_cache(write_zip(tmp_path / "changed.zip", changed), manifest, CLASSES, 32, outputs(tmp_path, 32))
    del changed[rows[0]["file"]]
    with pytest.raises(CacheError, match="cannot be read"):
        build_cache(write_zip(tmp_path / "missing.zip", changed), manifest, CLASSES, 32, outputs(tmp_path, 32))
    assert not list(tmp_path.rglob("*.npy"))


def test_unknown_label_in_manifest_is_refused(picked, tmp_path):
    _, source, manifest, _, _ = picked
    with pytest.raises(CacheError, match="not among the classes"):
        build_cache(source, manifest, ["cat", "bird"], 32, outputs(tmp_path, 32))


def test_zip_is_read_in_place(picked, tmp_path, monkeypatch):
    _, source, manifest, _, _ = picked
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: pytest.fail("extracted"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: pytest.fail("extracted"))
    build_cache(source, manifest, CLASSES, 32, outputs(tmp_path, 32))
