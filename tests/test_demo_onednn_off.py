"""The demo once more with TensorFlow's oneDNN kernels off, in a file of its own so that it runs beside
test_end_to_end.py's demo (oneDNN on): a demo's runs must settle whatever the CPU's kernels sum in their
last bits (issue 21: a run scored its whole validation set as one class on one CPU)."""

from __future__ import annotations

import pytest

from helpers import assert_the_demo_settles, demo_workdir

pytestmark = pytest.mark.slow


def test_the_demo_learns_with_onednn_off(tmp_path):
    assert_the_demo_settles(demo_workdir(tmp_path / "wf", onednn="0"))
