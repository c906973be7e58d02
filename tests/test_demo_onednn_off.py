"""The demo once more with TensorFlow's oneDNN kernels off, in a file of its own so that it runs beside
test_end_to_end.py's demo (oneDNN on): a demo's runs must settle whatever the CPU's kernels sum in their
last bits (issue 21: a run scored its whole validation set as one class on one CPU)."""

from __future__ import annotations

import pytest

from helpers import assert_the_demo_settles, demo_workdir

pytestmark = pytest.mark.slow


def test_the_demo_learns_with_onednn_off(tmp_path):
    """Every run of the demo's grid trained, up to the table of runs that the floors are read from: the figures
    and tables drawn from it are the same code whatever the kernels, and test_end_to_end.py checks them."""
    assert_the_demo_settles(demo_workdir(tmp_path / "wf", "0", "results/metrics/runs.csv"))
