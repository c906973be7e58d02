"""The held-out test split: picked after train and validation by the same keyed order, disjoint from both
(duplicates included), cached apart from the training cache."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cnn_study.image_cache import SPLITS, TEST_SPLITS, build_cache, cache_keys, cache_paths
from cnn_study.selection import SelectionError, select_images, select_test_images
from photo_fixtures import competition_members, encode, photo, write_zip

CLASSES = ["cat", "dog"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def pick(tmp_path, source, n_train, n_val, n_test, out="out"):
    out = tmp_path / out
    common = dict(classes=CLASSES, seed=0, min_size=32, near_duplicate_distance=6)
    select_images(
        source_path=source,
        manifest_path=out / "manifest.csv",
        rejected_path=out / "rejected.csv",
        n_train=n_train,
        n_val=n_val,
        **common,
    )
    select_test_images(
        source_path=source,
        manifest_path=out / "manifest.csv",
        test_manifest_path=out / "test_manifest.csv",
        n_test=n_test,
        **common,
    )
    return read_csv(out / "manifest.csv"), read_csv(out / "test_manifest.csv")


def test_the_test_split_is_the_next_images_of_the_same_pick(tmp_path):
    source = write_zip(tmp_path / "train.zip", competition_members(10))
    manifest, test = pick(tmp_path, source, 4, 2, 3)
    assert [r["split"] for r in test] == ["test"] * 6
    assert {r["label"] for r in test} == {"cat", "dog"}
    assert not {r["sha256"] for r in test} & {r["sha256"] for r in manifest}
    # a bigger validation split takes exactly the first test images: the order is one and the same
    bigger_val, _ = pick(tmp_path, source, 4, 3, 1, out="bigger")
    moved = {r["file"] for r in bigger_val if r["split"] == "val"} - {r["file"] for r in manifest}
    first_test = {r["file"] for r in pick(tmp_path, source, 4, 2, 1, out="one")[1]}
    assert moved == first_test


def test_a_near_duplicate_of_a_picked_image_never_enters_the_test_split(tmp_path):
    members = competition_members(6)
    for index in range(6):  # every cat has a re-encoded, resized copy under another name
        members[f"train/cat.{100 + index}.jpg"] = encode(photo(index).resize((72, 60)), quality=50)
    source = write_zip(tmp_path / "train.zip", members)
    manifest, test = pick(tmp_path, source, 2, 1, 3)
    picked_numbers = {int(r["file"].split(".")[1]) % 100 for r in manifest if r["label"] == "cat"}
    test_numbers = {int(r["file"].split(".")[1]) % 100 for r in test if r["label"] == "cat"}
    assert not picked_numbers & test_numbers


def test_too_few_images_for_the_test_split_is_one_line_naming_the_key(tmp_path):
    source = write_zip(tmp_path / "train.zip", competition_members(5))
    with pytest.raises(SelectionError, match=r"cat 1 left; dog 1 left; dataset.n_test = 2 per class is needed"):
        pick(tmp_path, source, 3, 1, 2)


def test_the_cache_keys_live_once_and_the_test_cache_is_apart(tmp_path):
    assert cache_keys() == ["train_images", "train_labels", "val_images", "val_labels"]
    assert cache_keys(TEST_SPLITS) == ["test_images", "test_labels"]
    assert cache_paths("c/64px", SPLITS)["val_labels"] == "c/64px/val_labels.npy"
    source = write_zip(tmp_path / "train.zip", competition_members(6))
    pick(tmp_path, source, 2, 1, 2)
    outputs = cache_paths(tmp_path / "cache", TEST_SPLITS)
    counts = build_cache(source, tmp_path / "out" / "test_manifest.csv", CLASSES, 32, outputs, splits=TEST_SPLITS)
    assert counts == {"test": 4}
    assert np.load(outputs["test_images"]).shape == (4, 32, 32, 3)
    assert sorted(np.load(outputs["test_labels"]).tolist()) == [0, 0, 1, 1]
    assert not (tmp_path / "cache" / "train_images.npy").exists()
