"""The deterministic hand-pick: determinism, the leakage guard, picklists, rejected.csv, the real mini archive."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_study.screening import screen_image
from cnn_study.selection import (
    MANIFEST_COLUMNS,
    SelectionError,
    colour_rank,
    mark_duplicates,
    read_picklist,
    screen_source,
    select_images,
    select_test_images,
)
from cnn_study.sources import ImageSource
from helpers import copy_workflow, snakemake
from photo_fixtures import competition_members, encode, jpeg, petimages_members, photo, write_folder, write_zip

CLASSES = ["cat", "dog"]
MINI_ARCHIVE = Path(__file__).resolve().parents[1] / "../shared/data/dogs-vs-cats-mini/train.zip"


def select(tmp_path, source, n_train=4, n_val=2, seed=0, distance=6, picklist=None, out="out", classes=CLASSES):
    out = tmp_path / out
    rows = select_images(
        source_path=source,
        manifest_path=out / "manifest.csv",
        rejected_path=out / "rejected.csv",
        classes=classes,
        n_train=n_train,
        n_val=n_val,
        seed=seed,
        min_size=32,
        near_duplicate_distance=distance,
        picklist=picklist,
    )
    return rows, (out / "manifest.csv").read_bytes(), read_csv(out / "rejected.csv")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sha_sets(rows) -> dict:
    return {split: {r["sha256"] for r in rows if r["split"] == split} for split in ("train", "val")}


# ---- the pick ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "folder"])
@pytest.mark.parametrize("layout", ["competition", "petimages"])
def test_pick_counts_and_manifest_columns(tmp_path, kind, layout):
    members = competition_members(8) if layout == "competition" else petimages_members(8)
    source = write_zip(tmp_path / "src.zip", members) if kind == "zip" else write_folder(tmp_path / "src", members)
    rows, manifest, rejected = select(tmp_path, source)
    assert manifest.decode().splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    assert rejected == []
    for split, n in (("train", 4), ("val", 2)):
        for label in CLASSES:
            assert sum(1 for r in rows if r["split"] == split and r["label"] == label) == n
    assert {r["original_mode"] for r in rows} == {"RGB"}
    assert {(r["width"], r["height"]) for r in rows} == {(96, 80)}
    assert len({r["sha256"] for r in rows}) == len(rows)


def test_manifest_follows_the_configured_class_order(tmp_path, caplog):
    source = write_zip(tmp_path / "train.zip", competition_members(8))
    with caplog.at_level(logging.INFO, logger="cnn_study.selection"):
        rows, manifest, _ = select(tmp_path, source, classes=["dog", "cat"])
    labels = [line.split(",")[2] for line in manifest.decode().splitlines()[1:]]
    assert labels == ["dog"] * 4 + ["cat"] * 4 + ["dog"] * 2 + ["cat"] * 2
    assert "train: dog 4, cat 4" in caplog.text and "(dog 8, cat 8)" in caplog.text


def test_zip_and_folder_give_the_same_manifest(tmp_path):
    members = competition_members(8)
    _, from_zip, _ = select(tmp_path, write_zip(tmp_path / "train.zip", members), out="a")
    _, from_folder, _ = select(tmp_path, write_folder(tmp_path / "train", members), out="b")
    assert from_zip == from_folder


def test_file_names_that_are_not_utf8_are_picked_and_cached_from_a_folder(tmp_path):
    """Every image has a Latin-1 name (bytes that are not UTF-8), so whatever the seed, the pick chooses them;
    their names reach manifest.csv and rejected.csv as zipfile would read them (cp437), and the cache finds
    the files by those names."""
    import os

    from cnn_study.image_cache import build_cache

    folder = os.fsencode(tmp_path / "photos")
    members = competition_members(6)
    members["train/cat.99.jpg"] = b""  # rejected: its name reaches rejected.csv too
    for name, data in members.items():
        raw = os.path.join(folder, name.encode().replace(b".jpg", b".\xe9t\xe9.jpg"))
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        with open(raw, "wb") as handle:
            handle.write(data)
    rows, manifest, rejected = select(tmp_path, tmp_path / "photos")
    assert len(rows) == 12 and all(r["file"].endswith(".ΘtΘ.jpg") for r in rows)
    assert [(r["file"], r["reason"]) for r in rejected] == [("train/cat.99.ΘtΘ.jpg", "zero bytes")]
    names = {r["file"]: members[r["file"].replace(".ΘtΘ", "")] for r in rows}
    assert {r["sha256"] for r in rows} == {hashlib.sha256(data).hexdigest() for data in names.values()}
    cache = {
        f"{split}_{kind}": str(tmp_path / f"{split}_{kind}.npy")
        for split in ("train", "val")
        for kind in ("images", "labels")
    }
    assert build_cache(tmp_path / "photos", tmp_path / "out" / "manifest.csv", CLASSES, 32, cache) == {
        "train": 8,
        "val": 4,
    }


def test_archive_order_does_not_change_the_manifest(tmp_path):
    members = competition_members(10)
    manifests = {
        select(tmp_path, write_zip(tmp_path / f"z{order}.zip", members, shuffle_seed=order), out=f"o{order}")[1]
        for order in range(3)
    }
    assert len(manifests) == 1


def test_renaming_files_does_not_change_the_pick(tmp_path):
    members = competition_members(10)
    renamed = {}
    for label in CLASSES:
        names = [name for name in members if f"/{label}." in name]
        numbers = random.Random(label).sample(range(1000, 2000), len(names))
        for name, number in zip(names, numbers, strict=True):
            renamed[f"photos/{label}.{number}.jpg"] = members[name]
    first, _, _ = select(tmp_path, write_zip(tmp_path / "a.zip", members), out="a")
    second, _, _ = select(tmp_path, write_zip(tmp_path / "b.zip", renamed, shuffle_seed=1), out="b")
    assert sha_sets(first) == sha_sets(second)
    assert {r["file"] for r in first} != {r["file"] for r in second}


def test_another_seed_picks_other_images(tmp_path):
    source = write_zip(tmp_path / "train.zip", competition_members(10))
    picks = [sha_sets(select(tmp_path, source, seed=seed, out=f"s{seed}")[0]) for seed in (0, 1, 0)]
    assert picks[0] == picks[2]
    assert picks[0] != picks[1]


def test_too_few_usable_images_is_one_line_with_the_counts(tmp_path):
    members = competition_members(5)
    members["train/cat.5.jpg"] = b""
    members["train/cat.6.jpg"] = b"not an image"
    with pytest.raises(SelectionError) as error:
        select(tmp_path, write_zip(tmp_path / "train.zip", members), n_train=4, n_val=2)
    message = str(error.value)
    assert "\n" not in message
    assert "cat 5 usable of 7" in message and "dog 5 usable of 5" in message
    assert "4 + 2 = 6" in message


def test_too_few_usable_images_names_each_short_class_with_its_own_counts(tmp_path):
    members = competition_members(5)
    members["train/cat.0.jpg"] = b""  # cats: 4 candidates usable of 5, dogs: 5 of 5
    with pytest.raises(SelectionError) as error:
        select(tmp_path, write_zip(tmp_path / "train.zip", members), n_train=4, n_val=2)
    kept = tmp_path / "out" / "rejected.failed-pick.csv"
    assert str(error.value) == (
        "too few usable images: cat 4 usable of 5; dog 5 usable of 5; n_train + n_val = 4 + 2 = 6 per class "
        f"are needed; lower them or add images (the 1 rejected images and why: {kept})"
    )


def test_manifest_and_rejected_csv_end_lines_with_newline_only(tmp_path):
    """Byte-identical on every platform: '\\n' line ends, never '\\r\\n'."""
    members = competition_members(8)
    members["train/cat.99.jpg"] = b""
    _, manifest, _ = select(tmp_path, write_zip(tmp_path / "train.zip", members))
    rejected = (tmp_path / "out" / "rejected.csv").read_bytes()
    for written in (manifest, rejected):
        assert b"\r" not in written and written.endswith(b"\n")
    assert rejected.count(b"\n") == 2


def test_a_failed_pick_keeps_the_reasons_where_its_message_says(tmp_path):
    """Snakemake deletes rejected.csv when the job fails: the reasons survive in a file the message names."""
    members = competition_members(5)
    members["train/cat.5.jpg"] = b""
    source = write_zip(tmp_path / "train.zip", members)
    kept = tmp_path / "out" / "rejected.failed-pick.csv"
    with pytest.raises(SelectionError) as error:
        select(tmp_path, source, n_train=4, n_val=2)
    assert str(error.value).endswith(f"(the 1 rejected images and why: {kept})")
    (tmp_path / "out" / "rejected.csv").unlink()  # as Snakemake does with a failed job's outputs
    assert [(r["file"], r["reason"]) for r in read_csv(kept)] == [("train/cat.5.jpg", "zero bytes")]
    select(tmp_path, source, n_train=3, n_val=2)
    assert not kept.exists()  # a successful pick removes the stale copy


@pytest.mark.workflow
def test_a_failed_pick_in_snakemake_keeps_the_reasons_it_names(tmp_path):
    """The real thing: Snakemake deletes the failed job's rejected.csv, the copy the message names survives."""
    members = competition_members(3)
    members["train/cat.3.jpg"] = b""
    write_folder(tmp_path / "wf" / "photos", members)
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(
        workdir, "--cores", "1", "results/data/manifest.csv", "--config", "dataset={source: photos}", check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Error: too few usable images: cat 3 usable of 4; dog 3 usable of 3;" in output
    assert "(the 1 rejected images and why: results/data/rejected.failed-pick.csv)" in output
    assert not (workdir / "results" / "data" / "rejected.csv").exists()
    kept = read_csv(workdir / "results" / "data" / "rejected.failed-pick.csv")
    assert [(r["file"], r["reason"]) for r in kept] == [("train/cat.3.jpg", "zero bytes")]


def test_a_failed_picklist_keeps_the_reasons_too(tmp_path):
    members, _, _ = leaky_members()
    picklist = write_picklist(tmp_path, [("train/cat.404.jpg", "train")])
    expected = r"not an image of the source.*rejected images and why: .*rejected\.failed-pick\.csv\)$"
    with pytest.raises(SelectionError, match=expected):
        select(tmp_path, write_zip(tmp_path / "train.zip", members), picklist=picklist)
    assert [r["reason"] for r in read_csv(tmp_path / "out" / "rejected.failed-pick.csv")] == ["near duplicate"]


# ---- rejected files ------------------------------------------------------------------------


def test_bad_files_are_listed_with_reasons_and_counted_in_the_log(tmp_path, caplog):
    members = competition_members(7)
    members.update(
        {
            "train/cat.100.jpg": b"",
            "train/cat.101.jpg": jpeg(100)[:-300],
            "train/cat.102.jpg": b"GIF? no, a text file",
            "train/dog.103.jpg": encode(photo(103, size=(20, 20))),
            "train/dog.104.jpg": encode(photo(104).convert("CMYK")),
            "train/dog.105.jpg": encode(photo(105), "PNG"),
            "train/Thumbs.db": b"\x00junk",
        }
    )
    with caplog.at_level(logging.INFO, logger="cnn_study.selection"):
        rows, _, rejected = select(tmp_path, write_zip(tmp_path / "train.zip", members))
    reasons = {r["file"]: r["reason"] for r in rejected}
    assert reasons == {
        "train/cat.100.jpg": "zero bytes",
        "train/cat.101.jpg": "truncated or undecodable",
        "train/cat.102.jpg": "not an image",
        "train/dog.103.jpg": "smaller than minimum size",
    }
    assert list(rejected[0])[:2] == ["file", "reason"]
    log = caplog.text
    assert "competition layout, 20 candidate images (cat 10, dog 10)" in log
    for reason in ("zero bytes", "truncated or undecodable", "not an image", "smaller than minimum size"):
        assert f"rejected     1: {reason}" in log
    assert "usable: 16 of 20 (cat 7, dog 9)" in log
    assert not list((tmp_path / "out").glob("*partial*"))


def test_the_log_says_what_was_screened_rejected_and_picked(tmp_path, caplog):
    members = competition_members(8)
    members.update({"train/cat.100.jpg": b"", "train/dog.101.jpg": b"", "train/dog.102.jpg": b"text"})
    source = write_zip(tmp_path / "train.zip", members)
    with caplog.at_level(logging.INFO, logger="cnn_study.selection"):
        select(tmp_path, source)
    assert caplog.messages == [
        f"{source}: competition layout, 19 candidate images (cat 9, dog 10)",
        "rejected     1: not an image",
        "rejected     2: zero bytes",
        "usable: 16 of 19 (cat 8, dog 8)",
        "train: cat 4, dog 4",
        "val: cat 2, dog 2",
    ]


def corrupt_stored_member(path: Path, members: dict, name: str) -> None:
    """Flip a byte of a stored member's content, so that its CRC no longer matches."""
    data = bytearray(path.read_bytes())
    data[data.index(members[name][-200:])] ^= 0xFF  # a JPEG's entropy-coded tail is unique
    path.write_bytes(bytes(data))


def test_members_that_cannot_be_read_are_rejected_and_screening_goes_on(tmp_path, capsys):
    members = competition_members(2)
    path = write_zip(tmp_path / "train.zip", members)
    corrupt_stored_member(path, members, "train/cat.0.jpg")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.00.jpg", bytes(4 * 2**20))  # a zip bomb: refused unread
    with ImageSource(path) as source:
        layout, screened = screen_source(source, CLASSES, 32)
    assert layout == "competition"
    unreadable, bomb, *usable = screened
    assert (unreadable.file, unreadable.label, unreadable.sha256, unreadable.reason, unreadable.detail) == (
        "train/cat.0.jpg",
        "cat",
        "",
        "unreadable",
        "BadZipFile: Bad CRC-32 for file 'train/cat.0.jpg'",
    )
    assert (bomb.file, bomb.label, bomb.sha256, bomb.reason) == (
        "train/cat.00.jpg",
        "cat",
        "",
        "implausible compression ratio",
    )
    assert bomb.detail.startswith("4194304 bytes from ") and bomb.detail.endswith("over the limit of 100:1")
    assert [(s.file, s.reason) for s in usable] == [
        ("train/cat.1.jpg", None),
        ("train/dog.0.jpg", None),
        ("train/dog.1.jpg", None),
    ]
    progress = capsys.readouterr().err.splitlines()
    assert progress[-1].startswith("screening: 100%") and "5/5" in progress[-1]


def test_converted_images_record_their_original_mode(tmp_path):
    sixteen_bit = Image.fromarray(np.asarray(photo(7).convert("L"), dtype=np.uint16) * 257)
    members = {
        "train/cat.0.jpg": encode(photo(0).convert("L")),
        "train/cat.1.jpg": encode(photo(1).convert("CMYK")),
        "train/cat.2.jpg": encode(photo(2).convert("P"), "PNG"),
        "train/cat.3.jpg": encode(photo(3), "GIF"),
        "train/dog.0.jpg": encode(photo(4).convert("RGBA"), "PNG"),
        "train/dog.1.jpg": encode(photo(5).convert("LA"), "PNG"),
        "train/dog.2.jpg": encode(sixteen_bit, "PNG"),
        "train/dog.3.jpg": encode(photo(6), "PNG"),
    }
    rows, _, rejected = select(tmp_path, write_zip(tmp_path / "train.zip", members), n_train=3, n_val=1)
    assert rejected == []
    assert {r["file"]: r["original_mode"] for r in rows} == {
        "train/cat.0.jpg": "L",
        "train/cat.1.jpg": "CMYK",
        "train/cat.2.jpg": "P",
        "train/cat.3.jpg": "P",
        "train/dog.0.jpg": "RGBA",
        "train/dog.1.jpg": "LA",
        "train/dog.2.jpg": "I;16",
        "train/dog.3.jpg": "RGB",
    }


# ---- duplicates and leakage ----------------------------------------------------------------


def leaky_members() -> tuple[dict, str, str]:
    """Ten cats, one of which also appears re-encoded and resized under another name."""
    members = competition_members(10)
    original = "train/cat.3.jpg"
    copy = "train/cat.77.jpg"
    members[copy] = encode(photo(3).resize((72, 60)), quality=50)
    return members, original, copy


def test_reencoded_resized_copy_never_spans_the_splits(tmp_path):
    members, original, copy = leaky_members()
    source = write_zip(tmp_path / "train.zip", members)
    for seed in range(8):
        rows, _, rejected = select(tmp_path, source, n_train=5, n_val=4, seed=seed, out=f"s{seed}")
        picked = {r["file"] for r in rows}
        assert copy not in picked
        (row,) = [r for r in rejected if r["file"] in (original, copy)]
        assert (row["file"], row["reason"], row["kept"]) == (copy, "near duplicate", original)
        assert row["detail"] == f"phash distance {hamming_distance(members[original], members[copy])}"


def hamming_distance(first: bytes, second: bytes) -> int:
    """How many bits of the two images' perceptual hashes differ."""
    hashes = [screen_image("x", "cat", data, 32).phash for data in (first, second)]
    return bin(hashes[0] ^ hashes[1]).count("1")


# Worse copies of a photo, each losing to the original (96x80 RGB JPEG, quality 90, about 2.7 kB) on one
# criterion; the downscaled, palette and CMYK copies are larger files (PNG; a CMYK JPEG has four channels,
# about 6 kB), so only pixels or mode can decide.
WORSE_COPIES = {
    "downscaled": lambda seed: encode(photo(seed).resize((72, 60)), "PNG"),
    "reencoded": lambda seed: encode(photo(seed), quality=40),
    "grayscale": lambda seed: encode(photo(seed).convert("L"), quality=95),
    "palette": lambda seed: encode(photo(seed).convert("P"), "PNG"),
    "cmyk": lambda seed: encode(photo(seed).convert("CMYK")),
}


def kept_content(copies: dict[str, bytes], prefer=()) -> set[str]:
    """The sha256 of the members mark_duplicates keeps, for {file: bytes}."""
    screened = [screen_image(file, "cat", data, 32) for file, data in copies.items()]
    assert all(s.reason is None for s in screened), [s.description for s in screened]
    mark_duplicates(screened, 6, prefer=prefer)
    return {s.sha256 for s in screened if s.reason is None}


@pytest.mark.parametrize("kind", WORSE_COPIES)
@pytest.mark.parametrize("seed", [3, 11, 12, 17])
def test_duplicate_group_keeps_the_original_over_a_worse_copy(kind, seed):
    original, worse = jpeg(seed), WORSE_COPIES[kind](seed)
    expected = {screen_image("x", "cat", original, 32).sha256}
    # Both ways round: the file names (and so their order) must not decide.
    assert kept_content({"train/cat.1.jpg": original, "train/cat.2.jpg": worse}) == expected
    assert kept_content({"train/cat.1.jpg": worse, "train/cat.2.jpg": original}) == expected


def test_duplicate_group_keeps_the_best_copy_whatever_the_names(tmp_path):
    copies = [jpeg(40)] + [make(40) for make in WORSE_COPIES.values()]  # not among competition_members
    expected = {screen_image("x", "cat", copies[0], 32).sha256}
    for order in range(6):
        names = random.Random(order).sample(range(100, 200), len(copies))
        assert kept_content({f"train/cat.{n}.jpg": data for n, data in zip(names, copies, strict=True)}) == expected
    members = competition_members(8)
    members.update({f"train/cat.{50 + i}.jpg": data for i, data in enumerate(copies[1:])})
    members["train/cat.7.jpg"] = copies[0]  # the original under a name that sorts last
    rows, _, rejected = select(tmp_path, write_zip(tmp_path / "train.zip", members))
    assert {r["file"]: r["kept"] for r in rejected} == {
        f"train/cat.{50 + i}.jpg": "train/cat.7.jpg" for i in range(len(WORSE_COPIES))
    }


def test_palette_copy_beats_a_larger_grayscale_copy():
    palette, grayscale = encode(photo(3).convert("P"), "PNG"), encode(photo(3).convert("L"), "BMP")
    assert len(grayscale) > len(palette)
    expected = {screen_image("x", "cat", palette, 32).sha256}
    assert kept_content({"train/cat.1.jpg": grayscale, "train/cat.2.jpg": palette}) == expected
    assert kept_content({"train/cat.1.jpg": palette, "train/cat.2.jpg": grayscale}) == expected


def test_a_cmyk_copy_loses_to_the_rgb_original_it_is_larger_than_but_beats_a_palette_copy():
    original, cmyk = jpeg(3), WORSE_COPIES["cmyk"](3)
    palette = encode(photo(3).convert("P"), "BMP")
    assert len(cmyk) > 2 * len(original) and len(palette) > len(cmyk)
    kept = {screen_image("x", "cat", data, 32).sha256: name for name, data in [("rgb", original), ("cmyk", cmyk)]}
    for copies in (
        {"train/cat.1.jpg": original, "train/cat.2.jpg": cmyk},
        {"train/cat.1.jpg": cmyk, "train/cat.2.jpg": original},
    ):
        assert [kept[sha] for sha in kept_content(copies)] == ["rgb"]
    expected = {screen_image("x", "cat", cmyk, 32).sha256}
    assert kept_content({"train/cat.1.jpg": palette, "train/cat.2.jpg": cmyk}) == expected
    assert [colour_rank(mode) for mode in ("RGB", "RGBA", "CMYK", "YCbCr", "P", "L", "I;16", "1")] == [
        0,
        0,
        1,
        1,
        2,
        3,
        3,
        4,
    ]


def test_grayscale_copy_beats_a_larger_bilevel_copy():
    bilevel, grayscale = encode(photo(3).convert("1"), "PNG"), encode(photo(3).convert("L"), quality=30)
    assert len(bilevel) > len(grayscale)
    expected = {screen_image("x", "cat", grayscale, 32).sha256}
    assert kept_content({"train/cat.1.jpg": bilevel, "train/cat.2.jpg": grayscale}) == expected
    assert kept_content({"train/cat.1.jpg": grayscale, "train/cat.2.jpg": bilevel}) == expected


def test_equal_copies_are_decided_by_content_not_names():
    """Same pixel count, mode and file size (BMP): the content hash decides, whichever name each has."""
    pixels = np.asarray(photo(3), dtype=np.int16)
    touched = Image.fromarray(np.clip(pixels + 2, 0, 255).astype(np.uint8))
    first, second = encode(photo(3), "BMP"), encode(touched, "BMP")
    assert len(first) == len(second)
    kept = kept_content({"train/cat.1.jpg": first, "train/cat.2.jpg": second})
    assert len(kept) == 1
    assert kept_content({"train/cat.1.jpg": second, "train/cat.2.jpg": first}) == kept


def test_a_picked_copy_is_kept_over_a_better_one():
    original, worse = jpeg(3), WORSE_COPIES["grayscale"](3)
    expected = {screen_image("x", "cat", worse, 32).sha256}
    assert kept_content({"train/cat.1.jpg": original, "train/cat.2.jpg": worse}, prefer=["train/cat.2.jpg"]) == expected


def test_without_the_guard_the_copy_would_leak(tmp_path):
    """The same source with the near-duplicate check off: some seed puts the pair across the splits."""
    members, original, copy = leaky_members()
    source = write_zip(tmp_path / "train.zip", members)
    spans = []
    for seed in range(8):
        rows, _, _ = select(tmp_path, source, n_train=5, n_val=4, seed=seed, distance=0, out=f"s{seed}")
        splits = {r["file"]: r["split"] for r in rows}
        spans.append(original in splits and copy in splits and splits[original] != splits[copy])
    assert any(spans)


def test_exact_duplicates_keep_one_member(tmp_path):
    members = competition_members(8)
    members["train/dog.50.jpg"] = members["train/cat.2.jpg"]  # the same bytes under both classes
    members["train/cat.51.jpg"] = members["train/cat.2.jpg"]
    rows, _, rejected = select(tmp_path, write_zip(tmp_path / "train.zip", members), n_train=5, n_val=2)
    group = {"train/cat.2.jpg", "train/dog.50.jpg", "train/cat.51.jpg"}
    dropped = [r for r in rejected if r["file"] in group]
    assert len(dropped) == 2 and {(r["reason"], r["detail"]) for r in dropped} == {("exact duplicate", "same sha256")}
    (kept,) = group - {r["file"] for r in dropped}
    assert {r["kept"] for r in dropped} == {kept}
    assert sum(1 for r in rows if r["file"] in group) == 1


# ---- picklist ------------------------------------------------------------------------------


def write_picklist(tmp_path, entries, name="picklist.csv", header="file,split") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header] + [f"{file},{split}" for file, split in entries]) + "\n")
    return path


def test_picklist_is_used_as_given(tmp_path):
    members, original, copy = leaky_members()
    source = write_zip(tmp_path / "train.zip", members)
    # Picking the copy alone is fine: preferred, it is kept and the original is the duplicate.
    entries = [
        ("train/cat.0.jpg", "train"),
        (copy, "train"),
        ("train/dog.1.jpg", "train"),
        ("train/cat.5.jpg", "val"),
        ("train/dog.6.jpg", "val"),
    ]
    rows, _, rejected = select(tmp_path, source, picklist=write_picklist(tmp_path, entries))
    assert sorted((r["file"], r["split"]) for r in rows) == sorted(entries)
    assert {r["file"]: r["kept"] for r in rejected} == {original: copy}


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("train/cat.404.jpg", "train")], "'train/cat.404.jpg' is not an image of the source"),
        ([("train/cat.1.jpg", "test")], "split 'test' of train/cat.1.jpg must be train or val"),
        ([("train/cat.99.jpg", "train")], "train/cat.99.jpg is unusable (zero bytes)"),
        ([("train/cat.1.jpg", "train"), ("train/cat.1.jpg", "val")], "listed twice (also on line 2)"),
        (
            [("train/cat.3.jpg", "train"), ("train/cat.77.jpg", "val")],
            "train/cat.77.jpg is a near duplicate of train/cat.3.jpg (line 2",
        ),
        ([("train/cat.1.jpg", "train"), ("train/cat.2.jpg", "train")], "no image is picked for val"),
    ],
    ids=["unknown", "bad-split", "unusable", "listed-twice", "duplicate-pair", "no-val"],
)
def test_picklist_validation(tmp_path, entries, message):
    members, _, _ = leaky_members()
    members["train/cat.99.jpg"] = b""
    padding = (
        [("train/dog.0.jpg", "train"), ("train/dog.1.jpg", "val")] if message != "no image is picked for val" else []
    )
    picklist = write_picklist(tmp_path, entries + padding)
    with pytest.raises(SelectionError) as error:
        select(tmp_path, write_zip(tmp_path / "train.zip", members), picklist=picklist)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_picklist_errors_name_the_file_and_line(tmp_path):
    members, _, _ = leaky_members()
    entries = [("train/cat.0.jpg", "train"), ("", "val")]  # an empty cell: no file named on line 3
    picklist = write_picklist(tmp_path, entries)
    kept = tmp_path / "out" / "rejected.failed-pick.csv"
    with pytest.raises(SelectionError) as error:
        select(tmp_path, write_zip(tmp_path / "train.zip", members), picklist=picklist)
    assert str(error.value) == (
        f"{picklist}:3: '' is not an image of the source's layout; fix the name (the 1 rejected images and why: {kept})"
    )


def test_picklist_rows_follow_the_configured_class_order(tmp_path):
    entries = [("train/cat.0.jpg", "train"), ("train/dog.0.jpg", "train"), ("train/cat.1.jpg", "val")]
    entries.append(("train/dog.1.jpg", "val"))
    source = write_zip(tmp_path / "train.zip", competition_members(3))
    rows, _, _ = select(tmp_path, source, picklist=write_picklist(tmp_path, entries), classes=["dog", "cat"])
    assert [(r["split"], r["label"]) for r in rows] == [
        ("train", "dog"),
        ("train", "cat"),
        ("val", "dog"),
        ("val", "cat"),
    ]


def test_picklist_saved_by_a_spreadsheet_is_read(tmp_path):
    """A byte-order mark (Excel's UTF-8 CSV) and spaces around names and values are not part of them."""
    picklist = tmp_path / "picklist.csv"
    picklist.write_text("\ufefffile , split\n train/cat.0.jpg , train\ntrain/cat.1.jpg,val\n", encoding="utf-8")
    assert read_picklist(picklist) == [(2, "train/cat.0.jpg", "train"), (3, "train/cat.1.jpg", "val")]


def test_picklist_missing_cells_read_as_empty(tmp_path):
    """A short row leaves its last columns empty, so the checks name them as '' (no split, no file)."""
    no_split = tmp_path / "no_split.csv"
    no_split.write_text("file,note,split\ntrain/cat.0.jpg\n")
    no_file = tmp_path / "no_file.csv"
    no_file.write_text("split,file\nval\n")
    assert read_picklist(no_split) == [(2, "train/cat.0.jpg", "")]
    assert read_picklist(no_file) == [(2, "", "val")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,set\ntrain/cat.1.jpg,train\n", "a picklist needs the columns file,split; it has ['file', 'set']"),
        ("split\ntrain\n", "a picklist needs the columns file,split; it has ['split']"),
        ("", "a picklist needs the columns file,split; it has []"),
        ("file,split\n", "the picklist names no images"),
        (b"file,split\ntrain/cat.\xff.jpg,train\n", "cannot read the picklist ('utf-8' codec can't decode byte 0xff"),
        (None, "cannot read the picklist ([Errno 2] No such file or directory"),
    ],
    ids=["no-split-column", "no-file-column", "empty-file", "no-rows", "not-utf8", "missing"],
)
def test_picklist_that_cannot_be_used_is_named_with_the_reason(tmp_path, content, message):
    picklist = tmp_path / "picklist.csv"
    if isinstance(content, bytes):
        picklist.write_bytes(content)
    elif content is not None:
        picklist.write_text(content)
    with pytest.raises(SelectionError) as error:
        read_picklist(picklist)
    assert str(error.value).startswith(f"{picklist}: {message}")
    assert "\n" not in str(error.value)


def test_picklist_needs_file_and_split_columns(tmp_path):
    picklist = write_picklist(tmp_path, [("train/cat.1.jpg", "train")], header="name,set")
    with pytest.raises(SelectionError, match="needs the columns file,split"):
        select(tmp_path, write_zip(tmp_path / "train.zip", competition_members(3)), picklist=picklist)


# ---- the held-out test split ---------------------------------------------------------------


def select_test(tmp_path, source, n_test, seed=0, picklist=None, out="out", classes=CLASSES):
    """select_test_images after select (same source, seed and out folder): (rows, test_manifest.csv bytes)."""
    out = tmp_path / out
    rows = select_test_images(
        source_path=source,
        manifest_path=out / "manifest.csv",
        test_manifest_path=out / "test_manifest.csv",
        classes=classes,
        n_test=n_test,
        seed=seed,
        min_size=32,
        near_duplicate_distance=6,
        picklist=picklist,
    )
    return rows, (out / "test_manifest.csv").read_bytes()


def test_the_test_split_is_what_a_larger_validation_split_would_add(tmp_path, caplog):
    members = competition_members(12)  # 6 per class left after the pick: the pick order must choose 3 of them
    members["train/cat.99.jpg"] = b""
    source = write_zip(tmp_path / "train.zip", members)
    order = ["dog", "cat"]
    picked, _, _ = select(tmp_path, source, n_train=4, n_val=2, seed=3, classes=order)
    with caplog.at_level(logging.INFO, logger="cnn_study.selection"):
        rows, manifest = select_test(tmp_path, source, n_test=3, seed=3, classes=order)
    wider, _, _ = select(tmp_path, source, n_train=4, n_val=5, seed=3, classes=order, out="wider")
    added = {r["file"] for r in wider if r["split"] == "val"} - {r["file"] for r in picked}
    assert {r["file"] for r in rows} == added
    assert caplog.messages[-1] == "test: dog 3, cat 3"
    lines = manifest.decode().splitlines()
    assert lines[0] == ",".join(MANIFEST_COLUMNS)
    written = read_csv(tmp_path / "out" / "test_manifest.csv")
    assert [(r["split"], r["label"]) for r in written] == [("test", "dog")] * 3 + [("test", "cat")] * 3
    assert [r["file"] for r in written] == [r["file"] for r in rows]


def test_too_few_images_left_for_the_test_split_names_each_class(tmp_path):
    members = competition_members(10)
    members.update({"train/cat.99.jpg": b"", "train/dog.10.jpg": jpeg(100), "train/dog.11.jpg": jpeg(101)})
    source = write_zip(tmp_path / "train.zip", members)
    select(tmp_path, source, n_train=4, n_val=2)
    select_test(tmp_path, source, n_test=4)  # exactly the 4 cats left are enough
    with pytest.raises(SelectionError) as error:
        select_test(tmp_path, source, n_test=5)
    assert str(error.value) == (
        "too few usable images for the test split after train and validation: cat 4 left; "
        "dataset.n_test = 5 per class is needed; lower it or add images"
    )
    with pytest.raises(SelectionError, match=r": cat 4 left; dog 6 left; dataset.n_test = 7 per class"):
        select_test(tmp_path, source, n_test=7)


def test_a_source_changed_since_the_pick_is_named_for_the_test_split(tmp_path):
    members = competition_members(8)
    select(tmp_path, write_zip(tmp_path / "train.zip", members), n_train=4, n_val=2)
    picked = sorted(r["file"] for r in read_csv(tmp_path / "out" / "manifest.csv"))
    for gone in picked[1:3]:
        del members[gone]
    with pytest.raises(SelectionError) as error:
        select_test(tmp_path, write_zip(tmp_path / "changed.zip", members), n_test=1)
    assert str(error.value) == (
        f"{picked[1]} (and 1 more) of the manifest is not a usable image of the source; the source changed "
        "since the pick, rerun select_images"
    )


def test_the_test_split_keeps_the_picklists_copy_and_leaves_out_its_original(tmp_path):
    members, original, copy = leaky_members()
    source = write_zip(tmp_path / "train.zip", members)
    entries = [(copy, "train"), ("train/dog.0.jpg", "train"), ("train/cat.0.jpg", "val"), ("train/dog.1.jpg", "val")]
    picklist = write_picklist(tmp_path, entries)
    select(tmp_path, source, picklist=picklist)
    rows, _ = select_test(tmp_path, source, n_test=8, picklist=picklist)  # every usable image left
    files = {r["file"] for r in rows}
    assert original not in files and copy not in files
    assert len(files) == 16


# ---- the real mini archive -----------------------------------------------------------------


def test_real_mini_archive(tmp_path):
    if not MINI_ARCHIVE.exists():
        pytest.skip(f"{MINI_ARCHIVE} is not here")
    # Its speed (goal: under 30 s here) is measured by benchmarks/run.py, not asserted here.
    rows, _, rejected = select(tmp_path, MINI_ARCHIVE, n_train=250, n_val=50)
    for split, n in (("train", 250), ("val", 50)):
        for label in CLASSES:
            assert sum(1 for r in rows if r["split"] == split and r["label"] == label) == n
    assert len({r["sha256"] for r in rows}) == 600
    assert len(rows) + len(rejected) <= 1000


# ---- a full disk ---------------------------------------------------------------------------

FULL_DISK_PICK = """
import json, os, sys
from pathlib import Path
from cnn_study.logs import run_logged
from cnn_study.selection import select_images

source, folder, report = sys.argv[1:]
Path(folder, "filler").write_bytes(bytes(3 * 4096))  # the 16 kB file system has one page left: rejected.csv's
try:
    run_logged(f"{report}.log", select_images, source_path=source, manifest_path=f"{folder}/manifest.csv",
               rejected_path=f"{folder}/rejected.csv", classes=["cat", "dog"], n_train=4, n_val=2, seed=0,
               min_size=32, near_duplicate_distance=6)
finally:
    Path(report).write_text(json.dumps(sorted(os.listdir(folder))))  # the tmpfs leaves with this process
"""


def test_a_pick_on_a_full_disk_is_one_disk_full_line_naming_the_manifest(tmp_path):
    from helpers import run_on_small_disk

    source = write_zip(tmp_path / "train.zip", competition_members(6))
    folder, report = tmp_path / "out", tmp_path / "report.json"
    result = run_on_small_disk(folder, "16k", FULL_DISK_PICK, str(source), str(folder), str(report))
    if result is None:
        pytest.skip("no user and mount namespace here to make a small file system")
    assert result.returncode == 1, result.stderr[-2000:]
    [line] = result.stderr.splitlines()
    row_bytes = len("train/cat.0.jpg,") + 64 + len(",cat,,96,80,RGB\n")  # then the split: train or val
    manifest_bytes = len(",".join(MANIFEST_COLUMNS)) + 1 + 12 * row_bytes + 8 * len("train") + 4 * len("val")
    assert line == (
        f"Error: {folder / 'manifest.csv'}: disk full, {manifest_bytes} bytes needed and 0 bytes "
        "free on its file system; free space there (or run the workflow on a larger disk), then rerun "
        f"(log: {tmp_path / 'report.json.log'})"
    )
    assert json.loads(report.read_text()) == ["filler", "rejected.csv"]  # no manifest.partial.csv
