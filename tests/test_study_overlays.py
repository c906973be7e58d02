"""Every ready-made study in configs/ plans offline: a dry-run with the number of runs its grid spans."""

from __future__ import annotations

import re

import pytest
import yaml

from cnn_study import settings
from helpers import REPO, copy_workflow, snakemake

OVERLAYS = sorted((REPO / "configs").glob("*.yaml"))


def planned(result) -> dict[str, int]:
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("overlays") / "wf")


def test_the_ready_made_studies_are_there():
    assert {path.stem for path in OVERLAYS} >= {
        "paper_5_seeds",
        "lr_sweep",
        "held_out_test",
        "protocols",
        "batch_norm_trainable",
        "paper_statements",
    }


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.stem)
def test_every_overlay_dry_runs_with_its_grid(workdir, overlay):
    text = overlay.read_text()
    assert text.startswith("#"), f"{overlay.name} starts with no comment saying what it is for"
    config = settings.read_config_files([REPO / "config.yaml", overlay])
    runs = settings.run_grid(settings.prepare_study(config))
    result = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "config.yaml", f"configs/{overlay.name}")
    counts = planned(result)
    assert counts["train"] == len(runs)
    assert counts.get("evaluate_test", 0) == (len(runs) if config["dataset"].get("n_test") else 0)


def test_the_paper_statements_plan_every_arm_in_one_dag_with_paths_naming_the_arm(workdir):
    result = snakemake(workdir, "-n", "--configfile", "config.yaml", "configs/paper_statements.yaml")
    planned_runs = set(re.findall(r"results/runs/(\w+)/\w+/\w+/lr[\d.e-]+/seed\d/history\.csv", result.stdout))
    arms = yaml.safe_load((REPO / "configs/paper_statements.yaml").read_text())["arms"]
    assert planned_runs == set(arms) and len(arms) == 7
    counts = {arm: len(set(re.findall(rf"results/runs/{arm}/[^\s,]+/history\.csv", result.stdout))) for arm in arms}
    assert counts["paper"] == 2 * 3 * 5 and counts["longer_training"] == 3 * 5  # narrowed to InceptionV3
    # Arms that need the same data share one pick and one cache per input size.
    every = snakemake(workdir, "-n", "--quiet", "rules", "--configfile", "config.yaml", "configs/paper_statements.yaml")
    assert planned(every)["select_images"] == 1 and planned(every)["build_image_cache"] == 2
