"""The workflow as a Snakemake module of another one (`module` / `use rule * from`, as snakedeploy sets it up):
a Snakefile in an empty folder imports it by path, plans the paper's grid and runs a shortened demo."""

from __future__ import annotations

import re

import pytest
import yaml

from helpers import FAST_MODEL, FAST_MODEL_SETTINGS, REPO, snakemake

pytestmark = pytest.mark.workflow

# The demo's DAG with one run of AlexNet (seconds to train; the module's paths, not the model, are tested here).
TINY_DEMO = {
    "grid": {"models": [FAST_MODEL], "optimizers": ["sgd"]},
    "models": FAST_MODEL_SETTINGS,
    "training": {"epochs": 2},
}


def importing_workflow(folder, *configfiles: str):
    """An outer workflow with only a Snakefile that takes this one as a module, its config from the given files."""
    folder.mkdir(parents=True)
    configs = "\n".join(f'configfile: "{REPO / name}"' for name in configfiles)
    (folder / "Snakefile").write_text(
        f"""{configs}


module cnn_study:
    snakefile:
        "{REPO / "Snakefile"}"
    config:
        config


use rule * from cnn_study as cnn_study_*
"""
    )
    return folder


def test_the_paper_grid_plans_through_the_module(tmp_path):
    outer = importing_workflow(tmp_path / "outer", "config.yaml")
    result = snakemake(outer, "-n", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts["cnn_study_train"] == "6" and counts["cnn_study_fetch_weights"] == "2"
    assert not (outer / "results").exists()


@pytest.mark.slow
def test_the_demo_runs_through_the_module(tmp_path):
    outer = importing_workflow(tmp_path / "outer", "config.yaml", "configs/demo.yaml")
    (outer / "tiny.yaml").write_text(yaml.safe_dump(TINY_DEMO))
    snakemake(outer, "--cores", "2", "--configfile", "tiny.yaml")
    assert (outer / f"results/runs/paper/{FAST_MODEL}/sgd/lr0.001/seed0/model.keras").is_file()
    assert "C1" in (outer / "results/tables/claims.md").read_text()
    assert (outer / f"results/figures/paper/{FAST_MODEL}_accuracy.png").is_file()
