"""A run whose loss turns NaN (seen on a GPU: Adam from random weights diverged after reaching
99% training accuracy) must flow through the results stage: metrics, tables, claims, figures."""

import numpy as np
import pandas as pd

from cnn_study.figures import plot_model, plot_overview
from cnn_study.metrics import write_metrics
from cnn_study.report_tables import write_tables

FIGURES = ("accuracy", "loss", "val_accuracy", "val_loss")


def write_history(path, diverge_at=None, epochs=20):
    epoch = np.arange(1, epochs + 1)
    accuracy = np.minimum(0.99, 0.5 + 0.03 * epoch)
    loss = 1.0 / epoch
    if diverge_at is not None:
        accuracy[diverge_at:], loss[diverge_at:] = 0.5, np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(dict(
        epoch=epoch, phase="fine_tune", loss=loss, accuracy=accuracy, val_loss=loss, val_accuracy=accuracy,
        learning_rate=0.001, epoch_seconds=1.0, images_per_second=10.0,
    )).to_csv(path, index=False)
    return str(path)


def test_a_diverged_run_flows_through_the_results_stage(tmp_path):
    optimizers = ("sgd", "adam", "rmsprop")
    histories = [
        write_history(tmp_path / "runs" / "resnet50" / optimizer / "lr0.001" / "seed0" / "history.csv",
                      diverge_at=12 if optimizer == "adam" else None)
        for optimizer in optimizers
    ]
    runs = [{"model": "resnet50", "optimizer": o, "lr": "0.001", "seed": 0} for o in optimizers]
    epochs, summary = tmp_path / "epochs.csv", tmp_path / "summary.csv"
    metrics = {"epochs": str(epochs), "runs": str(tmp_path / "runs.csv"), "summary": str(summary)}
    write_metrics(histories, runs, metrics, 0.9, final_epochs=1)

    tidy = pd.read_csv(epochs)
    assert tidy.loc[tidy.optimizer == "adam", "loss"].isna().sum() == 8
    runs = pd.read_csv(summary).set_index("optimizer")
    assert runs.loc["adam", "final_accuracy_mean"] == 0.5
    assert runs.loc["sgd", "final_accuracy_mean"] == 0.99
    assert np.isnan(runs.loc["adam", "final_loss_mean"]) and runs.loc["adam", "best_loss_mean"] > 0

    tables = {name: str(tmp_path / f"{name}.out") for name in ("summary_md", "summary_tex", "claims", "tests")}
    write_tables(metrics["runs"], str(summary), tables)
    summary_md = open(tables["summary_md"]).read()
    assert "| Adam |" in summary_md and "**SGD**" in summary_md
    claims = open(tables["claims"]).read()
    assert "C2" in claims
    assert "adam nan (1 of 1 diverged, ranked worst)" in claims  # C1's loss comparison names the diverged run

    figures = {}
    for name in FIGURES:
        figures[name] = str(tmp_path / f"resnet50_{name}.png")
        figures[f"{name}_pdf"] = str(tmp_path / f"resnet50_{name}.pdf")
    plot_model(str(epochs), "resnet50", figures)
    plot_overview(str(epochs), str(tmp_path / "overview.png"), str(tmp_path / "overview.pdf"))
    for path in list(figures.values()) + [str(tmp_path / "overview.png")]:
        with open(path, "rb") as handle:
            magic = b"\x89PNG" if path.endswith(".png") else b"%PDF"
            assert handle.read(4) == magic, path
