"""The workflow parses, lints and plans offline, with no credentials (pinned versions: test_pins.py)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from cnn_study.figure_names import FIGURES, pdf_key
from cnn_study.metric_columns import EPOCH_COLUMNS
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
        ('optimizers={"adamx": {}}', "unknown key optimizers.adamx: allowed keys here are adagrad, adam, adamw"),
        ('arms={"short": {"training": {"epochs": 0}}}', "arm short: training.epochs: 0 is less than the minimum of 1"),
        ('dataset={"n_trian": 3}', "unknown key dataset.n_trian"),
        ('grid={"models": ["mobilenetv2"]}', "models.mobilenetv2.weights = imagenet, but Keras publishes no hash"),
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


def test_plot_model_figures_writes_exactly_the_outputs_its_rule_declares(tmp_path):
    """The rule names its outputs from cnn_study.figure_names and the script fills them by key: a key or
    figure that drifts on either side fails the job (KeyError) or leaves an output missing."""
    workdir = copy_workflow(tmp_path / "wf")
    epochs = workdir / "results" / "metrics" / "epochs.csv"
    epochs.parent.mkdir(parents=True)
    rows = [
        {
            "arm": "paper",
            "model": "resnet50",
            "optimizer": optimizer,
            "lr": 0.001,
            "seed": 0,
            "phase": "fine_tune",
            "epoch": epoch,
            "loss": 1 / epoch,
            "accuracy": 0.5 + 0.1 * epoch,
            "val_loss": 1 / epoch,
            "val_accuracy": 0.5,
            "epoch_seconds": 1.0,
            "images_per_second": 10.0,
        }
        for optimizer in ("sgd", "adam")
        for epoch in (1, 2, 3)
    ]
    pd.DataFrame(rows, columns=EPOCH_COLUMNS).to_csv(epochs, index=False)
    targets = [f"results/figures/paper/resnet50_{name}.png" for name in FIGURES]
    snakemake(workdir, *targets, "--cores", "1", "--allowed-rules", "plot_model_figures")
    written = sorted(path.name for path in (workdir / "results" / "figures" / "paper").iterdir())
    assert written == sorted(f"resnet50_{name}.{kind}" for name in FIGURES for kind in ("png", "pdf"))
    assert pdf_key("loss") == "loss_pdf"
    for name in FIGURES:
        assert (REPO / "report" / f"{name}.rst").is_file(), f"report/{name}.rst: the caption of figure {name}"


def test_numbers_given_with_config_on_the_command_line_are_accepted(tmp_path):
    """Snakemake hands nested --config values over as text ('5'): the workflow converts them to the schema's types."""
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(
        workdir,
        "-n",
        "--configfile",
        "config.yaml",
        "configs/demo.yaml",
        "--config",
        'training={"epochs": 5}',
        'dataset={"n_train": 20}',
        'grid={"seeds": [0, 1]}',
    )
    planned = set(re.findall(r"results/runs/paper/\w+/\w+/lr0\.001/seed(\d)/history\.csv", result.stdout))
    assert planned == {"0", "1"}
