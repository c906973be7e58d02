"""Classify new images with a finished run: a folder or zip of images in, a predictions CSV out.

Images are decoded and resized exactly as the training cache was (``screening.decode_rgb``,
``image_cache.resize_rgb``) to the run's input size; the class names and their order come from the
run's run.json, as the model was trained with them.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path, PurePosixPath

import numpy as np

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


def probability_columns(classes: list[str]) -> list[str]:
    return [f"probability_{label}" for label in classes]


def predict_images(run_dir: str | Path, images: str | Path, output: str | Path) -> int:
    """Write output (file, predicted_class, probability_<class>...) for every image in ``images``;
    returns the number of images classified. Undecodable files are named in the log and left out."""
    from cnn_study.image_cache import resize_rgb
    from cnn_study.screening import decode_rgb

    record = read_run_record(run_dir)
    classes, size = record["settings"]["classes"], int(record["settings"]["input_size"])
    model = load_run_model(run_dir)
    rows, skipped = [], []
    with ImageSource(images) as source:
        names = image_names(source)
        if not names:
            raise ValueError(
                f"{images}: no image files ({', '.join(IMAGE_SUFFIXES)}) found; give a folder or zip of images"
            )
        for start in range(0, len(names), BATCH):
            batch, arrays = [], []
            for name in names[start : start + BATCH]:
                try:
                    arrays.append(resize_rgb(decode_rgb(source.read(name)), size))
                    batch.append(name)
                except Exception as error:  # noqa: BLE001 -- any undecodable file is named and skipped
                    skipped.append(name)
                    log.warning("%s: cannot be decoded (%s); left out", name, type(error).__name__)
            if not batch:
                continue
            probabilities = np.asarray(model.predict(np.stack(arrays).astype("float32"), verbose=0))
            for name, p in zip(batch, probabilities):
                rows.append([name, classes[int(np.argmax(p))], *(f"{v:.6f}" for v in p)])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "predicted_class", *probability_columns(classes)])
        writer.writerows(rows)
    partial.replace(output)
    if skipped:
        log.warning("%d of %d files could not be decoded and are not in %s", len(skipped), len(names), output)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Classify images with a finished run's model; writes file, predicted_class and one "
        "probability column per class."
    )
    parser.add_argument("run", help="a finished run's folder, e.g. results/runs/resnet50/sgd/lr0.001/seed0")
    parser.add_argument("images", help="a folder or zip archive of images (JPEG, PNG, GIF, BMP)")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        count = predict_images(args.run, args.images, args.output)
    except (ValueError, FileNotFoundError) as error:
        print(f"Error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{count} images classified: {args.output}")
    return 0
