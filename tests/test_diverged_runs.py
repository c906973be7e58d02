"""A run whose loss turns NaN (seen on a GPU: Adam from random weights diverged after reaching
99% training accuracy) must flow through the results stage: metrics, tables, claims, figures."""

import numpy as np
import pandas as pd
from PIL import Image

from cnn_study import figures as figures_module
from cnn_study.figure_names import FIGURES, pdf_key
from cnn_study.figures import plot_model, plot_overview
from cnn_study.metrics import write_metrics
from cnn_study.report_tables import write_tables


def write_history(path, diverge_at=None, epochs=20):
    epoch = np.arange(1, epochs + 1)
    accuracy = np.minimum(0.99, 0.5 + 0.03 * epoch)
    loss = 1.0 / epoch
    if diverge_at is not None:
        accuracy[diverge_at:], loss[diverge_at:] = 0.5, np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        dict(
            epoch=epoch,
            phase="fine_tune",
            loss=loss,
            accuracy=accuracy,
            val_loss=1.5 * loss,
            val_accuracy=accuracy - 0.05,
            learning_rate=0.001,
            epoch_seconds=1.0,
            images_per_second=10.0,
        )
    ).to_csv(path, index=False)
    return str(path)


def test_a_diverged_run_flows_through_the_results_stage(tmp_path, monkeypatch):
    optimizers = ("sgd", "adam", "rmsprop")
    histories = [
        write_history(
            tmp_path / "runs" / "paper" / "resnet50" / optimizer / "lr0.001" / "seed0" / "history.csv",
            diverge_at=12 if optimizer == "adam" else None,
        )
        for optimizer in optimizers
    ]
    runs = [{"arm": "paper", "model": "resnet50", "optimizer": o, "lr": "0.001", "seed": 0} for o in optimizers]
    epochs, summary = tmp_path / "epochs.csv", tmp_path / "summary.csv"
    metrics = {"epochs": str(epochs), "runs": str(tmp_path / "runs.csv"), "summary": str(summary)}
    metrics["arms"] = str(tmp_path / "arms.csv")
    write_metrics(histories, runs, metrics, 0.9, final_epochs=1, arm_changes={"paper": {}}, reference_arm="paper")

    tidy = pd.read_csv(epochs)
    assert tidy.loc[tidy.optimizer == "adam", "loss"].isna().sum() == 8
    runs = pd.read_csv(summary).set_index("optimizer")
    assert runs.loc["adam", "final_accuracy_mean"] == 0.5
    assert runs.loc["sgd", "final_accuracy_mean"] == 0.99
    assert np.isnan(runs.loc["adam", "final_loss_mean"]) and runs.loc["adam", "best_loss_mean"] > 0

    tables = {name: str(tmp_path / f"{name}.out") for name in ("summary_md", "summary_tex", "claims", "tests")}
    write_tables(metrics["runs"], str(summary), metrics["arms"], tables)
    summary_md = open(tables["summary_md"]).read()
    # SGD and RMSprop tie for the best final validation accuracy: no row is bold (only a strict winner is).
    assert "| Adam |" in summary_md and "| SGD |" in summary_md and "**" not in summary_md.split("**Bold**")[0]
    claims = open(tables["claims"]).read()
    assert "C2" in claims
    assert "adam nan (1 of 1 diverged, ranked worst)" in claims  # C1's loss comparison names the diverged run

    figures = {}
    for name in FIGURES:
        figures[name] = str(tmp_path / f"resnet50_{name}.png")
        figures[pdf_key(name)] = str(tmp_path / f"resnet50_{name}.pdf")
    drawn = record_drawn_figures(monkeypatch)
    plot_model(str(epochs), "paper", "resnet50", figures)
    plot_overview(str(epochs), "paper", str(tmp_path / "overview.png"), str(tmp_path / "overview.pdf"))

    # What each figure plots: one curve per optimizer, the metric of its run, the diverged one with gaps.
    epoch = np.arange(1, 21)
    sgd_accuracy = np.minimum(0.99, 0.5 + 0.03 * epoch)
    adam_accuracy = np.where(epoch > 12, 0.5, sgd_accuracy)
    expected = {
        "accuracy": {"sgd": sgd_accuracy, "adam": adam_accuracy, "rmsprop": sgd_accuracy},
        "loss": {"sgd": 1 / epoch, "adam": np.where(epoch > 12, np.nan, 1 / epoch), "rmsprop": 1 / epoch},
    }
    expected["val_accuracy"] = {optimizer: values - 0.05 for optimizer, values in expected["accuracy"].items()}
    expected["val_loss"] = {optimizer: 1.5 * values for optimizer, values in expected["loss"].items()}
    assert [png for png, _, _ in drawn] == [figures[name] for name in FIGURES] + [str(tmp_path / "overview.png")]
    for (_, pdf, axes), name in zip(drawn[: len(FIGURES)], FIGURES, strict=True):
        assert pdf == figures[pdf_key(name)]
        assert len(axes) == 1 and axes[0]["title"].startswith(
            f"ResNet50, arm paper: {FIGURES[name][1]} (lr 0.001, 1 seed)"
        )
        check_curves(axes[0], expected[name])
    _, overview_pdf, overview_axes = drawn[-1]
    assert overview_pdf == str(tmp_path / "overview.pdf")
    assert [ax["ylabel"] for ax in overview_axes] == [label for _, label in FIGURES.values()]
    for ax, name in zip(overview_axes, FIGURES, strict=True):
        check_curves(ax, expected[name])

    for path in list(figures.values()) + [str(tmp_path / "overview.png")]:
        with open(path, "rb") as handle:
            magic = b"\x89PNG" if path.endswith(".png") else b"%PDF"
            assert handle.read(4) == magic, path
    pixels = np.asarray(Image.open(figures["accuracy"]).convert("RGB"))
    colours = {tuple(colour) for colour in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # drawn curves, text and grid: not a blank canvas


def record_drawn_figures(monkeypatch) -> list:
    """Replace figures.save by a wrapper that records each figure's axes (title, y label, curves) first."""
    drawn, save = [], figures_module.save

    def recording_save(fig, png, pdf):
        axes = [
            {
                "title": ax.get_title(),
                "ylabel": ax.get_ylabel(),
                "curves": {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.get_lines()},
            }
            for ax in fig.axes
        ]
        drawn.append((png, pdf, axes))
        save(fig, png, pdf)

    monkeypatch.setattr(figures_module, "save", recording_save)
    return drawn


def check_curves(ax: dict, expected: dict) -> None:
    assert list(ax["curves"]) == list(expected)  # the paper's optimizers, in its order
    for optimizer, values in expected.items():
        x, y = ax["curves"][optimizer]
        np.testing.assert_array_equal(x, np.arange(1, 21))
        np.testing.assert_allclose(np.asarray(y, dtype=float), values, rtol=1e-12, err_msg=optimizer)
