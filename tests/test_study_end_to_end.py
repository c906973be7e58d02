"""The results stage of a study with several seeds, learning rates, arms and a held-out test split, through
Snakemake's own rules on hand-made histories and test evaluations (the rules that train and evaluate are left out
with --allowed-rules: the demo and tests/test_paper_statements.py train for real). What the tables say is pinned
by test_claims.py and test_tables.py; here, that the rules pass every run forward and write every output."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from cnn_study import run_layout, settings
from helpers import copy_workflow, snakemake

pytestmark = pytest.mark.workflow

STUDY = {
    "dataset": {"n_test": 15},
    "grid": {
        "models": ["resnet50"],
        "optimizers": ["sgd", "adam", "rmsprop"],
        "learning_rates": [0.001, 0.01],
        "seeds": [0, 1],
    },
    "training": {"epochs": 20, "protocol": {"warmup_epochs": 2}},
    "arms": {
        "no_augmentation": {"grid": {"learning_rates": [0.001]}, "training": {"augmentation": {"enabled": False}}}
    },
}
RESULTS_RULES = ["extract_metrics", "make_tables", "plot_model_figures", "plot_overview", "plot_arms"]
OPTIMIZER_LEVEL = {"sgd": 0.9, "adam": 0.8, "rmsprop": 0.85}


def history(run: dict, epochs: int = 20) -> pd.DataFrame:
    """A plausible curve per run: each optimizer its own level, a little seed noise, lr 0.01 a bit worse."""
    epoch = np.arange(1, epochs + 1)
    level = OPTIMIZER_LEVEL[run["optimizer"]] - (0.05 if run["lr"] == "0.01" else 0) + 0.01 * run["seed"]
    accuracy = level * (1 - np.exp(-epoch / 3))
    return pd.DataFrame(
        dict(
            epoch=epoch,
            phase=["frozen" if e <= 2 else "fine_tune" for e in epoch],
            loss=1 - accuracy,
            accuracy=accuracy,
            val_loss=1.1 - accuracy,
            val_accuracy=accuracy - (0.1 if run["arm"] == "no_augmentation" else 0.05),
            learning_rate=float(run["lr"]),
            epoch_seconds=2.0,
            images_per_second=10.0,
        )
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("study") / "wf")
    (workdir / "study.yaml").write_text(yaml.safe_dump(STUDY))
    config = settings.read_config_files([workdir / "config.yaml", workdir / "study.yaml"])
    runs = settings.run_grid(settings.prepare_study(config))
    for run in runs:
        folder = workdir / run_layout.run_folder(run)
        folder.mkdir(parents=True)
        history(run).to_csv(folder / run_layout.HISTORY, index=False)
        correct = 10 + run["seed"] + (2 if run["optimizer"] == "sgd" else 0)
        result = {"test_loss": 0.5, "test_accuracy": correct / 30, "test_correct": correct, "test_images": 30}
        (folder / run_layout.TEST_RESULT).write_text(json.dumps(result))
    targets = ["results/tables/summary.md", "results/figures/arms.png"]
    targets += [
        f"results/figures/{arm}/{name}.png"
        for arm in ("paper", "no_augmentation")
        for name in ("overview", "resnet50_val_loss")
    ]
    allowed = ["--allowed-rules", *RESULTS_RULES]
    snakemake(workdir, *targets, "--cores", "2", "--configfile", "config.yaml", "study.yaml", *allowed)
    return workdir, runs


def test_every_run_reaches_the_metrics_with_its_keys_and_test_accuracy(study):
    workdir, runs = study
    table = pd.read_csv(workdir / "results/metrics/runs.csv")
    assert len(table) == len(runs) == 3 * 2 * 2 + 3 * 2
    assert sorted(map(tuple, table[["arm", "optimizer", "lr", "seed"]].astype(str).values)) == sorted(
        (run["arm"], run["optimizer"], str(float(run["lr"])), str(run["seed"])) for run in runs
    )
    assert (
        table["test_accuracy"].between(0, 1).all() and (table["test_accuracy_ci95_low"] <= table["test_accuracy"]).all()
    )
    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    assert (summary["n"] == 2).all() and len(summary) == 3 * 2 + 3
    # The tuned lr per arm, model and optimizer: 0.001 everywhere (lr 0.01 was made worse).
    assert set(summary.loc[summary["tuned"], "lr"]) == {0.001} and summary["tuned"].sum() == 6


def test_the_tables_and_figures_cover_every_arm(study):
    workdir, _ = study
    summary = (workdir / "results/tables/summary.md").read_text()
    assert "## Arm paper (the reference arm)" in summary
    assert "## Arm no_augmentation: training.augmentation.enabled=false" in summary
    assert "### Tuned learning rates" in summary and "Test acc (%) [95% CI]" in summary
    claims = (workdir / "results/tables/claims.md").read_text()
    assert "## At the paper's learning rate (0.001), last epoch (20)" in claims
    assert re.search(r"p_Holm=\d\.\d{4}", claims) and "inconclusive at n=2 seeds" in claims
    tests = (workdir / "results/tables/optimizer_tests.md").read_text()
    assert "## Arm paper: resnet50, lr 0.01: test accuracy (held-out split)" in tests
    assert "## Arm no_augmentation: resnet50, lr 0.001: final validation accuracy" in tests
    for arm in ("paper", "no_augmentation"):
        assert (workdir / f"results/figures/{arm}/resnet50_val_loss.pdf").read_bytes()[:4] == b"%PDF"
        assert (workdir / f"results/figures/{arm}/overview.png").is_file()
    assert (workdir / "results/figures/arms.png").stat().st_size > 10_000
