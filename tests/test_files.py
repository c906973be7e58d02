"""The shared helpers: atomic writes (cnn_study.files) and one-line errors (cnn_study.errors)."""

import pandas as pd
import pytest

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
