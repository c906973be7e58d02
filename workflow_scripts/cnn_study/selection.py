"""The deterministic hand-pick: screen every candidate, drop duplicates, then pick by a keyed hash.

Per class, usable images are ordered by sha256(f"{seed}:{content sha256}"): the first n_train go to
train, the next n_val to validation. The order depends on content and seed alone, so renaming files
or reordering the archive picks the same images, and a duplicate group, collapsed to one kept member
before the pick, can never span train and validation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from cnn_study.screening import Screened, hamming_matrix_pairs, screen_image
from cnn_study.sources import ImageSource

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["file", "sha256", "label", "split", "width", "height", "original_mode"]
REJECTED_COLUMNS = ["file", "label", "sha256", "reason"]
SPLITS = ("train", "val")


class SelectionError(ValueError):
    """The pick cannot be made; the message is one line with the counts."""


def pick_key(seed: int, sha256: str) -> str:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def screen_source(source: ImageSource, classes: list[str], min_size: int) -> tuple[str, list[Screened]]:
    layout, candidates = source.candidates(classes)
    screened = [screen_image(c.file, c.label, source.read(c.file), min_size) for c in candidates]
    return layout, screened


def mark_duplicates(screened: list[Screened], seed: int, max_distance: int) -> None:
    """Collapse exact and near duplicates to the member the pick would meet first; reject the rest."""
    usable = [s for s in screened if s.reason is None]
    # Sort by pick key, then name, so the kept member does not depend on archive order.
    usable.sort(key=lambda s: (pick_key(seed, s.sha256), s.file))
    parent = list(range(len(usable)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    distance_to = {}
    hashes = np.array([s.phash for s in usable], dtype=np.uint64)
    for i, j, distance in hamming_matrix_pairs(hashes, max_distance):
        # Union towards the smaller index: the earlier member in pick order is the one kept.
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
        distance_to[j] = min(distance, distance_to.get(j, 64))
    for index, item in enumerate(usable):
        kept = root(index)
        if kept != index:
            keeper = usable[kept]
            kind = "exact duplicate" if keeper.sha256 == item.sha256 else "near duplicate"
            item.reason = f"{kind} of {keeper.file}"


def pick(screened: list[Screened], classes: list[str], n_train: int, n_val: int, seed: int) -> list[dict]:
    rows = []
    for label in classes:
        usable = sorted(
            (s for s in screened if s.reason is None and s.label == label),
            key=lambda s: (pick_key(seed, s.sha256), s.file),
        )
        if len(usable) < n_train + n_val:
            raise SelectionError(
                f"class {label}: {len(usable)} usable images, but n_train + n_val = {n_train} + {n_val} "
                f"= {n_train + n_val} are needed; lower them or add images"
            )
        for position, item in enumerate(usable[: n_train + n_val]):
            rows.append(_manifest_row(item, "train" if position < n_train else "val"))
    return rows


def apply_picklist(screened: list[Screened], picklist: Path) -> list[dict]:
    """A user's own hand-pick (CSV with columns file, split), checked like the automatic pick."""
    by_file = {s.file: s for s in screened}
    rows = []
    with open(picklist, newline="") as handle:
        for line, entry in enumerate(csv.DictReader(handle), start=2):
            file, split = entry.get("file"), entry.get("split")
            if file not in by_file:
                raise SelectionError(f"{picklist}:{line}: {file!r} is not an image of the source; fix the name")
            if split not in SPLITS:
                raise SelectionError(f"{picklist}:{line}: split {split!r} must be train or val")
            item = by_file[file]
            if item.reason is not None:
                raise SelectionError(f"{picklist}:{line}: {file} is unusable ({item.reason}); pick another")
            rows.append(_manifest_row(item, split))
    # Duplicates other than a group's kept member are unusable, so a group cannot span splits.
    return _sorted_rows(rows)


def _manifest_row(item: Screened, split: str) -> dict:
    return {
        "file": item.file, "sha256": item.sha256, "label": item.label, "split": split,
        "width": item.width, "height": item.height, "original_mode": item.original_mode,
    }


def _sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (SPLITS.index(r["split"]), r["label"], r["sha256"]))


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Write atomically: a reader never sees half a file."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(buffer.getvalue())
    partial.replace(path)


def select_images(
    source_path: str | Path,
    manifest_path: str | Path,
    rejected_path: str | Path,
    classes: list[str],
    n_train: int,
    n_val: int,
    seed: int,
    min_size: int,
    near_duplicate_distance: int,
    picklist: str | Path | None = None,
) -> list[dict]:
    with ImageSource(source_path) as source:
        layout, screened = screen_source(source, classes, min_size)
    log.info("%s: %s layout, %d candidate images", source_path, layout, len(screened))
    mark_duplicates(screened, seed, near_duplicate_distance)
    rejected = sorted((s for s in screened if s.reason), key=lambda s: s.file)
    reasons = Counter(s.reason.split(" (")[0].split(" of ")[0] for s in rejected)
    for reason, count in sorted(reasons.items()):
        log.info("rejected %5d: %s", count, reason)
    log.info("usable: %d of %d", len(screened) - len(rejected), len(screened))
    if picklist:
        rows = apply_picklist(screened, Path(picklist))
    else:
        rows = _sorted_rows(pick(screened, classes, n_train, n_val, seed))
    for split in SPLITS:
        counts = Counter(r["label"] for r in rows if r["split"] == split)
        log.info("%s: %s", split, ", ".join(f"{label} {counts[label]}" for label in classes))
    write_csv(Path(rejected_path), [vars(s) for s in rejected], REJECTED_COLUMNS)
    write_csv(Path(manifest_path), rows, MANIFEST_COLUMNS)
    return rows
