"""The shared helpers: atomic writes (cnn_study.files) and one-line errors (cnn_study.errors)."""

import errno
import shutil

import pandas as pd
import pytest

from cnn_study import files
from cnn_study.errors import error_text, one_line
from cnn_study.files import atomic_write, partial_path, write_table, write_text


def test_partial_path_keeps_the_suffix_beside_the_target(tmp_path):
    assert partial_path(tmp_path / "fig.pdf") == tmp_path / "fig.partial.pdf"
    assert partial_path(tmp_path / "images.npy") == tmp_path / "images.partial.npy"
    assert partial_path("a/b/model.keras").as_posix() == "a/b/model.partial.keras"


@pytest.mark.parametrize("durable", [False, True])
def test_atomic_write_renames_only_a_finished_file(tmp_path, durable):
    target = tmp_path / "new" / "folder" / "table.csv"
    with atomic_write(target, durable=durable) as partial:
        assert partial == tmp_path / "new" / "folder" / "table.partial.csv"
        partial.write_text("a\n")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "a\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as partial:
            partial.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_write_text_ends_with_one_newline(tmp_path):
    write_text(tmp_path / "a.md", "line")
    write_text(tmp_path / "b.md", "line\r\n")
    write_text(tmp_path / "c.md", "line\n")
    assert (tmp_path / "a.md").read_bytes() == b"line\n"
    assert (tmp_path / "b.md").read_bytes() == b"line\r\n"  # the text is written as given
    assert (tmp_path / "c.md").read_bytes() == b"line\n"


def test_write_table_has_no_index_column(tmp_path):
    write_table(pd.DataFrame({"model": ["vgg16"], "lr": [0.001]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "model,lr\nvgg16,0.001\n"


def test_one_line_folds_white_space_and_cuts():
    assert one_line("  a\n  b\tc  ") == "a b c"
    assert one_line(ValueError("x\ny"), 2) == "x "
    assert one_line("abc", None) == "abc"


def test_error_text_names_the_type():
    assert error_text(OSError("bad\n  crc")) == "OSError: bad crc"
    assert error_text(KeyError()) == "KeyError"
    assert error_text(ValueError("x" * 200)) == "ValueError: " + "x" * 120


# ---- a full disk ---------------------------------------------------------------------------


def test_a_write_that_fills_the_disk_is_one_line_with_the_path_and_leaves_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "model.keras"
    target.write_text("old\n")
    monkeypatch.setattr(files, "free_bytes", lambda path: 1536)
    with pytest.raises(files.DiskFullError) as error:
        with atomic_write(target) as partial:
            partial.write_bytes(b"x" * 3 * 2**20)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(error.value) == (
        f"{target}: disk full after 3145728 bytes written, 1536 bytes free on its file system; "
        "free space there (or run the workflow on a larger disk), then rerun"
    )
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"] and target.read_text() == "old\n"


def test_a_text_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "free_bytes", lambda path: 10)
    with pytest.raises(files.DiskFullError) as error:
        write_text(tmp_path / "new" / "manifest.csv", "file,split\n" + "a.jpg,train\n" * 2)
    assert str(error.value) == (
        f"{tmp_path / 'new' / 'manifest.csv'}: disk full, 35 bytes needed and 10 bytes free on its file system; "
        "free space there (or run the workflow on a larger disk), then rerun"
    )
    assert list((tmp_path / "new").iterdir()) == []
    monkeypatch.setattr(files, "free_bytes", lambda path: 35)
    write_text(tmp_path / "new" / "manifest.csv", "file,split\n" + "a.jpg,train\n" * 2)  # exactly enough


@pytest.mark.parametrize(
    "error, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("disk full"), False),
    ],
    ids=["ENOSPC", "EDQUOT", "h5py-text", "EACCES", "other"],
)
def test_a_full_disk_is_recognised_by_errno_or_by_what_a_library_says(error, full):
    assert files.is_disk_full(error) is full
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("saving the model failed") from inner
    except RuntimeError as outer:
        assert files.is_disk_full(outer) is full  # however deep


def test_free_bytes_of_a_path_not_yet_made_is_its_nearest_folders(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: asked.append(path) or shutil._ntuple_diskusage(9, 2, 7))
    assert files.free_bytes(tmp_path / "a" / "b" / "c.npy") == 7
    assert asked == [tmp_path]
