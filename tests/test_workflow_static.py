"""The workflow parses, lints and plans offline, with no credentials (pinned versions: test_pins.py)."""

from __future__ import annotations

import re

import pytest

from helpers import REPO, copy_workflow, snakemake


def test_dry_run_of_the_paper_config_plans_every_run(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "-n", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts["train"] == "6"  # 2 models x 3 optimizers x 1 lr x 1 seed
    assert counts["download_kaggle"] == "1"
    assert counts["fetch_weights"] == "2"
    assert counts["build_image_cache"] == "2"  # 224 and 299 px


def test_lint_is_clean():
    result = snakemake(REPO, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_dry_run_of_the_demo_needs_no_download(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "configs/demo.yaml")
    assert "download_kaggle" not in result.stdout
    assert "fetch_weights" not in result.stdout
    assert "make_synthetic_dataset" in result.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("foo=1", "unknown key foo"),
        ('grid={"models": ["resnet51"]}', "grid.models.0: 'resnet51' is not one of"),
        ('training={"epochs": "ten"}', "training.epochs: expected integer"),
        ('optimizers={"adamx": {}}', "optimizers: 'adamx' is not one of"),
        ('dataset={"n_trian": 3}', "unknown key dataset.n_trian"),
    ],
)
def test_a_bad_config_stops_with_one_line_naming_the_key(tmp_path, override, message):
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "-n", "--config", override, check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("invalid config")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]


def test_a_size_below_the_minimum_is_refused(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "small.yaml").write_text("models:\n  inceptionv3:\n    input_size: 60\n")
    result = snakemake(workdir, "-n", "--configfile", "small.yaml", check=False)
    assert result.returncode != 0
    assert "models.inceptionv3.input_size = 60 is below InceptionV3's minimum of 75" in result.stdout + result.stderr

