"""The decode-once cache: the picked images resized to one model input size, as .npy arrays.

Resize method: each photo is decoded to RGB and resized to size x size with PIL's bilinear filter
(antialiased when shrinking), without keeping the aspect ratio -- the same squash that Keras'
``image_dataset_from_directory`` and ``flow_from_directory`` apply by default. Arrays are uint8,
shape (n, size, size, 3), and load with ``numpy.load(path, mmap_mode="r")``; labels are int64
indices into the configured class list.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_study.screening import decode_rgb
from cnn_study.sources import ImageSource


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, array)
    partial.replace(path)


def build_cache(
    source_path: str | Path, manifest_path: str | Path, classes: list[str], size: int, outputs: dict
) -> dict[str, int]:
    """Write {split}_images.npy and {split}_labels.npy for train and val; return the counts."""
    with open(manifest_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = {}
    with ImageSource(source_path) as source:
        for split in ("train", "val"):
            picked = [r for r in rows if r["split"] == split]
            images = np.empty((len(picked), size, size, 3), dtype=np.uint8)
            for index, row in enumerate(picked):
                image = decode_rgb(source.read(row["file"]))
                images[index] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
            labels = np.array([classes.index(r["label"]) for r in picked], dtype=np.int64)
            save_npy_atomic(Path(outputs[f"{split}_images"]), images)
            save_npy_atomic(Path(outputs[f"{split}_labels"]), labels)
            counts[split] = len(picked)
    return counts


def load_split(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(images_path, mmap_mode="r"), np.load(labels_path)
