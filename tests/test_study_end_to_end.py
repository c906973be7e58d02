"""The study on real photos: several seeds and learning rates, a held-out test split, and the verdicts with
p-values, the tuned view and test accuracy. A small, fast grid (ResNet50 at 32 px from random weights, 2
epochs): 12 training and 12 evaluation jobs, about 30-60 CPU-seconds each (measured), so roughly 5 minutes
on 2 idle cores; it shows the machinery, not the paper's result."""

from __future__ import annotations

import csv
import json
import re

import pandas as pd
import pytest
import yaml

from helpers import MINI_ARCHIVE, copy_workflow, snakemake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MINI_ARCHIVE.exists(), reason=f"real photos not found at {MINI_ARCHIVE}"),
]

STUDY = {
    "dataset": {"source": str(MINI_ARCHIVE), "n_train": 20, "n_val": 10, "n_test": 15},
    "grid": {
        "models": ["resnet50"],
        "optimizers": ["sgd", "adam", "rmsprop"],
        "learning_rates": [0.001, 0.01],
        "seeds": [0, 1],
    },
    "models": {"resnet50": {"input_size": 32, "weights": "none"}},
    "training": {"epochs": 2, "augmentation": {"enabled": False}},
    "results": {"final_epochs": 1},
}
RUNS = 3 * 2 * 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("study") / "wf")
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    snakemake(workdir, "--cores", "2", "--configfile", "configs/demo.yaml", "study.yaml")
    return workdir


def test_the_test_split_is_disjoint_and_every_run_is_evaluated_on_it(study):
    picked = list(csv.DictReader(open(study / "results/data/manifest.csv")))
    test = list(csv.DictReader(open(study / "results/data/test_manifest.csv")))
    assert len(test) == 30 and {r["split"] for r in test} == {"test"}
    assert not {r["sha256"] for r in test} & {r["sha256"] for r in picked}
    results = [json.loads(path.read_text()) for path in (study / "results/runs").glob("resnet50/*/*/*/test.json")]
    assert len(results) == RUNS
    assert all(r["test_images"] == 30 and r["test_correct"] == round(30 * r["test_accuracy"]) for r in results)


def test_runs_csv_holds_every_run_with_its_test_accuracy(study):
    runs = pd.read_csv(study / "results/metrics/runs.csv")
    assert len(runs) == RUNS and runs["test_accuracy"].between(0, 1).all()
    assert (runs["test_accuracy_ci95_low"] <= runs["test_accuracy"]).all()
    summary = pd.read_csv(study / "results/metrics/summary.csv")
    assert summary["tuned"].sum() == 3 and (summary["n"] == 2).all()


def test_claims_are_judged_with_p_values_at_both_views_and_horizons(study):
    claims = (study / "results/tables/claims.md").read_text()
    assert "## At the paper's learning rate (0.001), last epoch (2)" in claims
    assert "## At tuned learning rates" in claims and "epoch 15" in claims
    assert re.search(r"p_Holm=\d\.\d{4}", claims)
    assert "inconclusive at n=2 seeds" in claims
    assert "Test accuracy (held-out split, secondary): sgd" in claims
    summary = (study / "results/tables/summary.md").read_text()
    assert "### Tuned learning rates" in summary and "Test acc (%) [95% CI]" in summary
    tests = (study / "results/tables/optimizer_tests.md").read_text()
    assert "resnet50, lr 0.01: test accuracy (held-out split)" in tests
