"""A learnable two-class image set, written as JPEGs in the competition's train.zip layout.

Each class has its own colour cast and stripe orientation under noise, so a small CNN trained from
random weights separates them within a few epochs. It lets the demo run the real ingest code with no
network and no credentials.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_study.files import atomic_write


def synthetic_image(rng: np.random.Generator, class_index: int, size: int) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(6, 14)
    phase = rng.uniform(0, 2 * np.pi)
    # Class 0: horizontal stripes, warm cast; class 1: vertical stripes, cool cast; and so on.
    angle = np.pi / 2 * class_index + rng.normal(0, 0.15)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + phase)
    cast = np.roll(np.array([60.0, 0.0, -60.0]), class_index)
    base = rng.uniform(90, 170) + cast + rng.normal(0, 15, size=3)
    pixels = base + 45 * stripes[..., None] + rng.normal(0, 20, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_synthetic_archive(path: str | Path, classes: list[str], images_per_class: int, size: int, seed: int) -> Path:
    path = Path(path)
    rng = np.random.default_rng(seed)
    with atomic_write(path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for class_index, label in enumerate(classes):
            for number in range(images_per_class):
                buffer = io.BytesIO()
                synthetic_image(rng, class_index, size).save(buffer, "JPEG", quality=90)
                # Fixed timestamps keep the archive byte-identical from run to run.
                info = zipfile.ZipInfo(f"train/{label}.{number}.jpg", date_time=(2020, 1, 1, 0, 0, 0))
                archive.writestr(info, buffer.getvalue())
    return path
