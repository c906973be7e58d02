"""Photo-like test images and sources built from them, for the data-stage tests.

Each photo is smooth random structure (a coarse random colour grid, upsampled) plus a gradient and
fine noise: distinct seeds give images whose perceptual hashes are far apart, and a re-encoded or
resized copy stays close to its original -- like real photos.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float64)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    slope = rng.uniform(-30, 30, size=(2, 3))
    pixels = pixels + xx[..., None] / width * slope[0] + yy[..., None] / height * slope[1]
    pixels += rng.normal(0, 3, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        options.setdefault("quality", 90)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (96, 80), quality: int = 90) -> bytes:
    return encode(photo(seed, size), "JPEG", quality=quality)


def numbered_members(per_class: int, classes, start_seed: int, name) -> dict:
    """{name(label, number): JPEG bytes}, a distinct photo per member."""
    members, seed = {}, start_seed
    for label in classes:
        for number in range(per_class):
            members[name(label, number)] = jpeg(seed)
            seed += 1
    return members


def competition_members(per_class: int, classes=("cat", "dog"), start_seed: int = 0, folder: str = "train") -> dict:
    """{member name: JPEG bytes} in the competition layout: train/cat.0.jpg, ..."""
    return numbered_members(per_class, classes, start_seed, lambda label, number: f"{folder}/{label}.{number}.jpg")


def petimages_members(per_class: int, classes=("Cat", "Dog"), start_seed: int = 0) -> dict:
    """{member name: JPEG bytes} in the PetImages layout: PetImages/Cat/0.jpg, ..."""
    return numbered_members(per_class, classes, start_seed, lambda label, number: f"PetImages/{label}/{number}.jpg")


def write_zip(path: Path, members: dict, order: list[str] | None = None, shuffle_seed: int | None = None) -> Path:
    names = list(order or members)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(names)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), members[name])
    return path


def write_folder(path: Path, members: dict) -> Path:
    for name, data in members.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path
