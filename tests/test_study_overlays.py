"""Every ready-made study in configs/ plans offline: a dry-run with the number of runs its grid spans."""

from __future__ import annotations

import re

import pytest
import yaml

from helpers import REPO, copy_workflow, snakemake

OVERLAYS = sorted((REPO / "configs").glob("*.yaml"))


def planned(result) -> dict[str, int]:
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE)}


def grid_size(config: dict) -> int:
    grid = config["grid"]
    return len(grid["models"]) * len(grid["optimizers"]) * len(grid["learning_rates"]) * len(grid["seeds"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("overlays") / "wf")


def test_the_ready_made_studies_are_there():
    assert {path.stem for path in OVERLAYS} >= {
        "paper_5_seeds",
        "lr_sweep",
        "held_out_test",
        "protocol_transfer",
        "protocol_full",
        "batch_norm_trainable",
    }


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.stem)
def test_every_overlay_dry_runs_with_its_grid(workdir, overlay):
    text = overlay.read_text()
    assert text.startswith("#"), f"{overlay.name} starts with no comment saying what it is for"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in yaml.safe_load(text).items():
        config[key] = {**config.get(key, {}), **value}
    result = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "config.yaml", f"configs/{overlay.name}")
    counts = planned(result)
    assert counts["train"] == grid_size(config)
    assert counts.get("evaluate_test", 0) == (grid_size(config) if config["dataset"].get("n_test") else 0)


def test_a_comparison_arm_runs_in_its_own_folder(workdir):
    result = snakemake(
        workdir,
        "-n",
        "--quiet",
        "rules",
        "--configfile",
        "config.yaml",
        "configs/protocol_transfer.yaml",
        "--directory",
        "studies/transfer",
    )
    assert planned(result)["train"] == 6
    assert (workdir / "studies" / "transfer").is_dir()
    assert not (workdir / "results").exists()
