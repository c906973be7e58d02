"""The decode-once cache: the picked images resized to one model input size, as .npy arrays.

One cache per distinct input size, shared by every training job of that size, so no job decodes a
JPEG again. Per split it holds ``{split}_images.npy`` -- uint8, shape (n, size, size, 3), RGB,
pixel values 0..255 with no normalisation (each model's own preprocessing comes later) -- and
``{split}_labels.npy`` -- int64 indices into the configured class list. Rows follow manifest.csv.
Images load with ``numpy.load(path, mmap_mode="r")`` (see :func:`load_split`).

Resize method: each picked file is decoded in full from the source (no JPEG draft scaling, except for
a JPEG over ``screening.MAX_FULL_DECODE_PIXELS``, which decodes at 1/2, 1/4 or 1/8 scale, the largest
under that limit, to bound memory; EXIF orientation not applied) and converted to RGB by ``screening.to_rgb`` (grayscale, palette and CMYK
converted; 16-bit values scaled to 8 bits; transparency composited onto white; an animated GIF's
first frame). It is then resized straight to size x size with Pillow's ``Image.resize`` and the
BILINEAR filter -- Pillow widens the filter's support when shrinking, so downscaling is
antialiased -- without keeping the aspect ratio and without cropping. Keras' loaders squash the
same way by default (``keep_aspect_ratio=False`` / ``crop_to_aspect_ratio=False``), though their
filters differ: ``load_img``/``flow_from_directory`` use nearest neighbour and
``image_dataset_from_directory`` TensorFlow's bilinear resize without antialiasing.

Each file's bytes are checked against the manifest's sha256, so a source that changed since the
pick is refused. Arrays are written under a temporary name and renamed when complete. Before any is
written, the free space is checked against the size the cache needs; images are written with plain
writes (no memory map, which a full disk turns into SIGBUS), and a full disk on the way is one line
(files.DiskFullError) with every partial file removed.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_study.files import DiskFullError, check_free_space, is_disk_full, partial_path
from cnn_study.logs import progress_bar
from cnn_study.screening import decode_rgb
from cnn_study.sources import ImageSource

RESAMPLE = Image.Resampling.BILINEAR
#: The splits a training job reads; the held-out test split has a cache of its own (built only when
#: dataset.n_test > 0), so adding a test split never rebuilds the training cache or retrains a run.
SPLITS = ("train", "val")
#: Where the workflow keeps the cache of one input size (rule build_image_cache), under its working directory.
CACHE_FOLDER = "results/data/cache/{size}px"
TEST_SPLITS = ("test",)
ARRAYS = ("images", "labels")


def cache_keys(splits=SPLITS) -> list[str]:
    """The cache's file keys ({split}_images, {split}_labels): one home for the rules, train.py and benchmarks."""
    return [f"{split}_{array}" for split in splits for array in ARRAYS]


def cache_paths(directory: str | Path, splits=SPLITS) -> dict[str, str]:
    """{key: directory/key.npy} for every cache file of these splits."""
    return {key: f"{directory}/{key}.npy" for key in cache_keys(splits)}


class CacheError(ValueError):
    """The cache cannot be built; the message is one line saying why and what to do."""


def resize_rgb(image: Image.Image, size: int) -> np.ndarray:
    """The documented resize: an RGB image squashed to (size, size, 3) uint8."""
    return np.asarray(image.resize((size, size), RESAMPLE), dtype=np.uint8)


def _read_checked(source: ImageSource, source_path, row: dict) -> bytes:
    try:
        data = source.read(row["file"])
    except (KeyError, OSError) as error:
        raise CacheError(
            f"{row['file']}: cannot be read from {source_path} ({type(error).__name__}); "
            "the source changed since the pick, rerun select_images"
        ) from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise CacheError(
            f"{row['file']}: content differs from the manifest's sha256; the source changed "
            "since the pick, rerun select_images"
        )
    return data


# An upper bound of a .npy file's header (numpy pads version 1 headers to a multiple of 64 bytes).
NPY_HEADER_BYTES = 128


def cache_bytes(counts: dict[str, int], size: int) -> int:
    """The bytes a cache of these per-split image counts needs at this size: images, labels, headers."""
    return sum(
        2 * NPY_HEADER_BYTES + count * (size * size * 3 + np.dtype(np.int64).itemsize) for count in counts.values()
    )


def _write_images(source: ImageSource, source_path, picked: list[dict], size: int, partial: Path) -> None:
    """Decode, resize and append each image to a .npy on disk, so memory stays small for large picks.

    Plain writes, not a memory map: on a full disk a write raises ENOSPC, where a mapped page would kill
    the process with SIGBUS and leave a sparse file."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
    with open(partial, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {**header, "shape": (len(picked), size, size, 3)})
        for row in progress_bar(picked, f"caching {size} px") if picked else ():
            handle.write(resize_rgb(decode_rgb(_read_checked(source, source_path, row)), size).tobytes())


def build_cache(
    source_path: str | Path, manifest_path: str | Path, classes: list[str], size: int, outputs: dict, splits=SPLITS
) -> dict[str, int]:
    """Write {split}_images.npy and {split}_labels.npy for each split (train and val by default); return the counts.

    All files are written under temporary names and renamed only once every one is complete.
    """
    with open(manifest_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    unknown = sorted({r["label"] for r in rows} - set(classes))
    if unknown:
        raise CacheError(f"{manifest_path}: labels {unknown} are not among the classes {classes}; rerun the pick")
    targets = {key: Path(outputs[key]) for key in cache_keys(splits)}
    partials = {key: partial_path(path) for key, path in targets.items()}
    for path in targets.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    folder = targets[f"{splits[0]}_images"].parent
    needed = cache_bytes({split: sum(r["split"] == split for r in rows) for split in splits}, size)
    check_free_space(folder, needed)
    counts = {}
    try:
        with ImageSource(source_path) as source:
            for split in splits:
                picked = [r for r in rows if r["split"] == split]
                _write_images(source, source_path, picked, size, partials[f"{split}_images"])
                labels = np.array([classes.index(r["label"]) for r in picked], dtype=np.int64)
                np.save(partials[f"{split}_labels"], labels)
                counts[split] = len(picked)
    except BaseException as error:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(folder, needed) from error
        raise
    for key, partial in partials.items():
        partial.replace(targets[key])
    return counts


def load_split(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images memory-mapped read-only, labels in memory."""
    return np.load(images_path, mmap_mode="r"), np.load(labels_path)
