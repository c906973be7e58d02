"""Classify new images with a finished run: a folder or zip of images in, a predictions CSV out.

Images are decoded and resized exactly as the training cache was (``screening.decode_rgb``,
``image_cache.resize_rgb``) to the run's input size, within the same pixel limits; the class names
and their order come from the run's run.json, as the model was trained with them. Bad input (no
decodable image, a missing path, an output that is a folder, a damaged run) is one line, and the CSV
is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path, PurePosixPath

import numpy as np

from cnn_study.errors import error_text
from cnn_study.files import atomic_write
from cnn_study.run_model import load_run_model, read_run_record
from cnn_study.sources import IMAGE_SUFFIXES, ImageSource

log = logging.getLogger(__name__)

BATCH = 32


def image_names(source: ImageSource) -> list[str]:
    """Every image file in the source (by suffix), hidden files and macOS metadata left out, sorted."""
    names = []
    for name in source.names:
        parts = PurePosixPath(name).parts
        if name.lower().endswith(IMAGE_SUFFIXES) and not any(p.startswith(".") or p == "__MACOSX" for p in parts):
            names.append(name)
    return sorted(names)


def why_undecodable(name: str, data: bytes | None, error: Exception) -> str:
    """The hand-pick's reason for a file that did not decode (not an image, too large, ...), else the error."""
    from cnn_study.screening import screen_image

    screened = screen_image(name, "", data, 1) if data is not None else None
    return screened.description if screened is not None and screened.reason else error_text(error)


def probability_columns(classes: list[str]) -> list[str]:
    return [f"probability_{label}" for label in classes]


def predict_images(run_dir: str | Path, images: str | Path, output: str | Path) -> int:
    """Write output (file, predicted_class, probability_<class>...) for every image in ``images``;
    returns the number of images classified. Undecodable files (and those over screening's pixel limits)
    are named in the log and left out; when none is left, nothing is written."""
    from cnn_study.image_cache import resize_rgb
    from cnn_study.screening import decode_rgb

    output = Path(output)
    if output.is_dir():
        raise ValueError(f"{output}: is a folder; give the CSV file to write, e.g. -o {output / 'predictions.csv'}")
    if not Path(images).exists():
        raise ValueError(f"{images}: no such file or folder; give a folder or zip archive of images to classify")
    record = read_run_record(run_dir)
    classes, size = record["settings"]["classes"], int(record["settings"]["input_size"])
    rows, skipped = [], []
    with ImageSource(images) as source:
        names = image_names(source)
        if not names:
            raise ValueError(
                f"{images}: no image files ({', '.join(IMAGE_SUFFIXES)}) found; give a folder or zip of images"
            )
        model = None  # loaded once an image decodes: a folder of broken files fails without the wait
        for start in range(0, len(names), BATCH):
            batch, arrays = [], []
            for name in names[start : start + BATCH]:
                data = None
                try:
                    data = source.read(name)
                    arrays.append(resize_rgb(decode_rgb(data), size))
                    batch.append(name)
                except Exception as error:  # noqa: BLE001 -- any undecodable file is named and skipped
                    skipped.append(f"{name}: {why_undecodable(name, data, error)}")
                    log.warning("%s; left out", skipped[-1])
            if not batch:
                continue
            model = model or load_run_model(run_dir)
            probabilities = np.asarray(model.predict(np.stack(arrays).astype("float32"), verbose=0))
            for name, p in zip(batch, probabilities, strict=True):
                rows.append([name, classes[int(np.argmax(p))], *(f"{v:.6f}" for v in p)])
    if not rows:
        raise ValueError(
            f"{images}: none of its {len(names)} image files can be decoded (first: {skipped[0]}); "
            "give JPEG, PNG, GIF or BMP images"
        )
    with atomic_write(output) as partial, open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "predicted_class", *probability_columns(classes)])
        writer.writerows(rows)
    if skipped:
        log.warning("%d of %d files could not be decoded and are not in %s", len(skipped), len(names), output)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Classify images with a finished run's model; writes file, predicted_class and one "
        "probability column per class."
    )
    parser.add_argument("run", help="a finished run's folder, e.g. results/runs/paper/resnet50/sgd/lr0.001/seed0")
    parser.add_argument("images", help="a folder or zip archive of images (JPEG, PNG, GIF, BMP)")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        count = predict_images(args.run, args.images, args.output)
    except (ValueError, OSError) as error:  # FileNotFoundError and permissions too: one line, no traceback
        print(f"Error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{count} images classified: {args.output}")
    return 0
