"""The deterministic hand-pick: screen every candidate, drop duplicates, then pick by a keyed hash.

Per class, usable images are ordered by sha256(f"{seed}:{content sha256}"): the first n_train go to
train, the next n_val to validation. The order depends on content and seed alone, so renaming files
or reordering the archive picks the same images, and the manifest (rows sorted by split, class and
content hash) is byte-identical for the same images and seed.

Duplicates are collapsed before the pick, so a group can never span train and validation: exact
copies (same sha256) and near copies (perceptual hashes within ``near_duplicate_distance`` bits,
chains included) form one group, whose best copy is kept -- with a picklist, a picked member first;
otherwise the most pixels, then RGB over another colour space (a CMYK copy is a conversion), colour
over palette or grayscale, then the larger file, then the content hash (see :func:`copy_quality`) --
and the others are rejected naming the kept file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from cnn_study.errors import error_text
from cnn_study.files import write_text
from cnn_study.logs import progress_bar
from cnn_study.screening import Screened, near_duplicate_keepers, screen_image
from cnn_study.sources import ImageSource, MemberRejected

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["file", "sha256", "label", "split", "width", "height", "original_mode"]
REJECTED_COLUMNS = ["file", "reason", "detail", "kept", "label", "sha256", "width", "height", "original_mode"]
SPLITS = ("train", "val")
TEST_SPLIT = "test"


class SelectionError(ValueError):
    """The pick cannot be made; the message is one line with the counts."""


def pick_key(seed: int, sha256: str) -> str:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def screen_source(source: ImageSource, classes: list[str], min_size: int) -> tuple[str, list[Screened]]:
    """Read and screen every candidate once; a member that cannot be read is rejected, not raised."""
    layout, candidates = source.candidates(classes)
    screened = []
    for candidate in progress_bar(candidates, "screening"):
        try:
            data = source.read(candidate.file)
        except MemberRejected as error:  # a zip bomb or a file no photo could be: refused unread
            screened.append(Screened(candidate.file, candidate.label, "", reason=error.reason, detail=error.detail))
            continue
        except Exception as error:  # noqa: BLE001 -- bad CRC, encryption, permissions: a reason
            item = Screened(candidate.file, candidate.label, "", reason="unreadable")
            item.detail = error_text(error)
            screened.append(item)
            continue
        screened.append(screen_image(candidate.file, candidate.label, data, min_size))
    return layout, screened


# Among copies of one picture: RGB (a photo's own colour space) beats other colour spaces (a CMYK copy is a
# conversion), full colour beats palette, palette beats grayscale, grayscale beats bilevel.
RGB_MODES = ("RGB", "RGBA", "RGBX")
COLOUR_MODES = ("CMYK", "YCbCr", "LAB", "HSV")
PALETTE_MODES = ("P", "PA")
BILEVEL_MODES = ("1",)


def colour_rank(mode: str) -> int:
    """0 for RGB, 1 another colour space (CMYK, ...), 2 palette, 3 grayscale (L, LA, I;16, ...), 4 bilevel:
    lower is better."""
    for rank, modes in enumerate((RGB_MODES, COLOUR_MODES, PALETTE_MODES)):
        if mode in modes:
            return rank
    return 4 if mode in BILEVEL_MODES else 3


def copy_quality(item: Screened) -> tuple:
    """Sort key putting the best copy of a picture first: the most pixels, then the original colour space (RGB)
    over a converted one (CMYK, ...), colour over palette or grayscale, then the larger file (less compressed),
    then the content hash -- never the file name, so renaming files or reordering the archive keeps the same
    copy. A CMYK copy of an RGB photo is a conversion, larger but not better, so the mode decides before the
    file size."""
    return -item.width * item.height, colour_rank(item.original_mode), -item.size_bytes, item.sha256


def mark_duplicates(screened: list[Screened], max_distance: int, prefer: Sequence[str] = ()) -> None:
    """Collapse exact and near duplicates to one member each; reject the rest naming the kept file.

    The kept member is the group's first in (preferred files in their order, then copy_quality, then
    file name among identical bytes); ``prefer`` holds a picklist's files. The pick's seed does
    not enter: which copy is best does not depend on it.
    """
    rank = {file: index for index, file in reversed(list(enumerate(prefer)))}
    usable = [s for s in screened if s.reason is None]
    usable.sort(key=lambda s: (rank.get(s.file, len(rank)), *copy_quality(s), s.file))
    # Exact copies: identical bytes, the first in that order stays.
    first_of: dict[str, Screened] = {}
    distinct = []
    for item in usable:
        keeper = first_of.setdefault(item.sha256, item)
        if keeper is item:
            distinct.append(item)
        else:
            item.reason, item.kept, item.detail = "exact duplicate", keeper.file, "same sha256"
    # Near copies among the distinct contents.
    keepers = near_duplicate_keepers([s.phash for s in distinct], max_distance)
    for item, kept in zip(distinct, keepers, strict=True):
        keeper = distinct[kept]
        if keeper is not item:
            distance = (item.phash ^ keeper.phash).bit_count()
            item.reason, item.kept, item.detail = "near duplicate", keeper.file, f"phash distance {distance}"


def pick(screened: list[Screened], classes: list[str], n_train: int, n_val: int, seed: int) -> list[dict]:
    short = []
    ordered = {}
    for label in classes:
        ordered[label] = sorted(
            (s for s in screened if s.reason is None and s.label == label),
            key=lambda s: (pick_key(seed, s.sha256), s.file),
        )
        if len(ordered[label]) < n_train + n_val:
            candidates = sum(1 for s in screened if s.label == label)
            short.append(f"{label} {len(ordered[label])} usable of {candidates}")
    if short:
        raise SelectionError(
            f"too few usable images: {'; '.join(short)}; n_train + n_val = {n_train} + {n_val} = "
            f"{n_train + n_val} per class are needed; lower them or add images"
        )
    rows = []
    for label in classes:
        for position, item in enumerate(ordered[label][: n_train + n_val]):
            rows.append(_manifest_row(item, "train" if position < n_train else "val"))
    return _sorted_rows(rows, classes)


def read_picklist(picklist: Path) -> list[tuple[int, str, str]]:
    """(line, file, split) for each entry of a picklist CSV with columns file and split."""
    try:
        with open(picklist, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            if "file" not in columns or "split" not in columns:
                raise SelectionError(f"{picklist}: a picklist needs the columns file,split; it has {columns}")
            reader.fieldnames = columns
            entries = [
                (line, (entry.get("file") or "").strip(), (entry.get("split") or "").strip())
                for line, entry in enumerate(reader, start=2)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SelectionError(f"{picklist}: cannot read the picklist ({error})") from None
    if not entries:
        raise SelectionError(f"{picklist}: the picklist names no images")
    return entries


def apply_picklist(
    screened: list[Screened], picklist: Path, entries: list[tuple[int, str, str]], classes: list[str]
) -> list[dict]:
    """A user's own hand-pick (read_picklist's entries; ``picklist`` names the file in messages), checked
    like the automatic pick.

    Call mark_duplicates with the picked files preferred first, so that a picked file is only
    rejected as a duplicate when another picked file is kept in its place.
    """
    by_file = {s.file: s for s in screened}
    first_line: dict[str, int] = {}
    for line, file, _ in entries:
        first_line.setdefault(file, line)
    rows = []
    for line, file, split in entries:
        where = f"{picklist}:{line}"
        if file not in by_file:
            raise SelectionError(f"{where}: {file!r} is not an image of the source's layout; fix the name")
        if split not in SPLITS:
            raise SelectionError(f"{where}: split {split!r} of {file} must be train or val")
        if first_line[file] != line:
            raise SelectionError(f"{where}: {file} is listed twice (also on line {first_line[file]}); list it once")
        item = by_file[file]
        if item.kept and item.kept in first_line:
            raise SelectionError(
                f"{where}: {file} is a {item.reason} of {item.kept} (line {first_line[item.kept]}, "
                f"{item.detail}); pick only one of them"
            )
        if item.reason is not None:
            raise SelectionError(f"{where}: {file} is unusable ({item.description}); pick another")
        rows.append(_manifest_row(item, split))
    for split in SPLITS:
        if not any(row["split"] == split for row in rows):
            raise SelectionError(f"{picklist}: no image is picked for {split}; a run needs both train and val")
    return _sorted_rows(rows, classes)


def _manifest_row(item: Screened, split: str) -> dict:
    return {
        "file": item.file,
        "sha256": item.sha256,
        "label": item.label,
        "split": split,
        "width": item.width,
        "height": item.height,
        "original_mode": item.original_mode,
    }


def _sorted_rows(rows: list[dict], classes: list[str]) -> list[dict]:
    order = {label: index for index, label in enumerate(classes)}
    splits = (*SPLITS, TEST_SPLIT)
    return sorted(rows, key=lambda r: (splits.index(r["split"]), order[r["label"]], r["sha256"], r["file"]))


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Write atomically (UTF-8, '\\n' line ends): a reader never sees half a file."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def failed_pick_rejected_path(rejected_path: Path) -> Path:
    """Where a failed pick keeps rejected.csv's rows: beside it, but not a declared output."""
    return rejected_path.with_name(f"{rejected_path.stem}.failed-pick{rejected_path.suffix}")


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
    entries = read_picklist(Path(picklist)) if picklist else None
    with ImageSource(source_path) as source:
        layout, screened = screen_source(source, classes, min_size)
    per_class = Counter(s.label for s in screened)
    log.info(
        "%s: %s layout, %d candidate images (%s)",
        source_path,
        layout,
        len(screened),
        ", ".join(f"{label} {per_class[label]}" for label in classes),
    )
    mark_duplicates(screened, near_duplicate_distance, prefer=[f for _, f, _ in entries or []])
    rejected = sorted((s for s in screened if s.reason), key=lambda s: s.file)
    reasons = Counter(s.reason for s in rejected)
    for reason, count in sorted(reasons.items()):
        log.info("rejected %5d: %s", count, reason)
    usable = Counter(s.label for s in screened if s.reason is None)
    log.info(
        "usable: %d of %d (%s)",
        len(screened) - len(rejected),
        len(screened),
        ", ".join(f"{label} {usable[label]}" for label in classes),
    )
    write_csv(Path(rejected_path), [vars(s) for s in rejected], REJECTED_COLUMNS)
    reasons_kept = failed_pick_rejected_path(Path(rejected_path))
    try:
        if entries is not None:
            rows = apply_picklist(screened, Path(picklist), entries, classes)
        else:
            rows = pick(screened, classes, n_train, n_val, seed)
    except SelectionError as error:
        # Snakemake deletes a failed job's outputs, rejected.csv too: keep the reasons in a file it does not know.
        write_csv(reasons_kept, [vars(s) for s in rejected], REJECTED_COLUMNS)
        raise SelectionError(f"{error} (the {len(rejected)} rejected images and why: {reasons_kept})") from None
    reasons_kept.unlink(missing_ok=True)  # a previous failure's copy is stale now
    for split in SPLITS:
        counts = Counter(r["label"] for r in rows if r["split"] == split)
        log.info("%s: %s", split, ", ".join(f"{label} {counts[label]}" for label in classes))
    write_csv(Path(manifest_path), rows, MANIFEST_COLUMNS)
    return rows


def pick_test(screened: list[Screened], picked: list[dict], classes: list[str], n_test: int, seed: int) -> list[dict]:
    """The held-out test split: per class, the next n_test usable images in pick order after the picked
    train and validation images. Duplicates were collapsed before (mark_duplicates), so no test image is
    a copy of a picked one."""
    taken = {row["file"] for row in picked}
    usable = {s.file for s in screened if s.reason is None}
    stale = sorted(taken - usable)
    if stale:
        raise SelectionError(
            f"{stale[0]} (and {len(stale) - 1} more) of the manifest is not a usable image of the source; "
            "the source changed since the pick, rerun select_images"
        )
    rows, short = [], []
    for label in classes:
        ordered = sorted(
            (s for s in screened if s.reason is None and s.label == label and s.file not in taken),
            key=lambda s: (pick_key(seed, s.sha256), s.file),
        )
        if len(ordered) < n_test:
            short.append(f"{label} {len(ordered)} left")
        rows += [_manifest_row(item, TEST_SPLIT) for item in ordered[:n_test]]
    if short:
        raise SelectionError(
            f"too few usable images for the test split after train and validation: {'; '.join(short)}; "
            f"dataset.n_test = {n_test} per class is needed; lower it or add images"
        )
    return _sorted_rows(rows, classes)


def select_test_images(
    source_path: str | Path,
    manifest_path: str | Path,
    test_manifest_path: str | Path,
    classes: list[str],
    n_test: int,
    seed: int,
    min_size: int,
    near_duplicate_distance: int,
    picklist: str | Path | None = None,
) -> list[dict]:
    """Screen the source as select_images does and pick the test split after the manifest's images.

    A rule of its own, so that adding a test split leaves manifest.csv, the training cache and every
    finished run untouched."""
    with open(manifest_path, newline="", encoding="utf-8") as handle:
        picked = list(csv.DictReader(handle))
    entries = read_picklist(Path(picklist)) if picklist else None
    with ImageSource(source_path) as source:
        _, screened = screen_source(source, classes, min_size)
    mark_duplicates(screened, near_duplicate_distance, prefer=[f for _, f, _ in entries or []])
    rows = pick_test(screened, picked, classes, n_test, seed)
    counts = Counter(r["label"] for r in rows)
    log.info("%s: %s", TEST_SPLIT, ", ".join(f"{label} {counts[label]}" for label in classes))
    write_csv(Path(test_manifest_path), rows, MANIFEST_COLUMNS)
    return rows
