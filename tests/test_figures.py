"""The figures mark where the frozen warm-up ends."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cnn_study.figures import arm_points, draw_panel, plot_arms, plot_model, warmup_epochs  # noqa: E402
from cnn_study.schedule import phase_plan, warmup_length  # noqa: E402


def epochs(phases, arm="paper"):
    return pd.DataFrame(
        dict(
            arm=arm,
            model="resnet50",
            optimizer="sgd",
            lr=0.001,
            seed=0,
            phase=phases,
            epoch=range(1, len(phases) + 1),
            loss=0.5,
            accuracy=0.8,
            val_loss=0.6,
            val_accuracy=0.7,
            epoch_seconds=1.0,
            images_per_second=1.0,
        )
    )


def test_the_warmup_is_the_leading_frozen_epochs_before_fine_tuning():
    assert warmup_epochs(epochs(["frozen"] * 3 + ["fine_tune"] * 4)) == 3
    assert warmup_epochs(epochs(["frozen"] * 4)) == 0  # transfer: frozen throughout, nothing ends
    assert warmup_epochs(epochs(["full"] * 4)) == 0


def test_the_panel_draws_a_line_at_the_end_of_the_warmup():
    fig, ax = plt.subplots()
    draw_panel(ax, epochs(["frozen"] * 3 + ["fine_tune"] * 4), "accuracy", "training accuracy")
    marks = [line for line in ax.get_lines() if line.get_label() == "end of warm-up (epoch 3)"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [3.5, 3.5]
    plt.close(fig)


def test_warmup_length_of_every_protocol():
    assert warmup_length(phase_plan({"mode": "fine_tune", "warmup_epochs": 5}, 50)) == 5
    assert warmup_length(phase_plan({"mode": "fine_tune", "warmup_epochs": 0}, 50)) == 0
    assert warmup_length(phase_plan({"mode": "fine_tune", "warmup_epochs": 60}, 50)) == 0  # never unfrozen
    assert warmup_length(phase_plan({"mode": "transfer", "warmup_epochs": 5}, 50)) == 0
    assert warmup_length(phase_plan({"mode": "full", "warmup_epochs": 5}, 50)) == 0


def test_a_model_figure_shows_its_arm_only(tmp_path):
    table = pd.concat([epochs(["frozen"] * 2 + ["fine_tune"] * 3), epochs(["full"] * 9, arm="full_training")])
    table.to_csv(tmp_path / "epochs.csv", index=False)
    outputs = {}
    for name in ("accuracy", "loss", "val_accuracy", "val_loss"):
        outputs[name], outputs[f"{name}_pdf"] = str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.pdf")
    plot_model(str(tmp_path / "epochs.csv"), "full_training", "resnet50", outputs)
    assert all((tmp_path / f"{name}.pdf").stat().st_size > 0 for name in ("accuracy", "val_loss"))
    with pytest.raises(ValueError) as error:
        plot_model(str(tmp_path / "epochs.csv"), "transfer", "resnet50", outputs)
    assert str(error.value) == (
        "results/metrics/epochs.csv has no rows for arm transfer, model resnet50; run the metrics stage again"
    )


def runs_table():
    rows = []
    for arm, shift in (("paper", 0.0), ("no_augmentation", -0.1)):
        for optimizer, base in (("sgd", 0.9), ("adam", 0.8)):
            for seed in range(3):
                rows.append(
                    dict(
                        arm=arm,
                        model="resnet50",
                        optimizer=optimizer,
                        lr=0.001,
                        seed=seed,
                        final_val_accuracy=base + shift + 0.01 * seed,
                    )
                )
    return pd.DataFrame(rows)


def test_arm_points_are_means_with_confidence_intervals_per_arm_and_optimizer():
    points = arm_points(runs_table(), "final_val_accuracy")
    paper_sgd = points[(points["arm"] == "paper") & (points["optimizer"] == "sgd")].iloc[0]
    assert paper_sgd["mean"] == 0.91 and paper_sgd["n"] == 3 and paper_sgd["low"] < 0.91 < paper_sgd["high"]
    shifted = points[(points["arm"] == "no_augmentation") & (points["optimizer"] == "adam")].iloc[0]
    assert round(shifted["mean"], 10) == 0.71
    assert len(points) == 4


def test_the_arms_figure_is_written(tmp_path):
    runs_table().to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame({"arm": ["paper", "no_augmentation"], "reference": [True, False]}).to_csv(
        tmp_path / "arms.csv", index=False
    )
    plot_arms(
        str(tmp_path / "runs.csv"), str(tmp_path / "arms.csv"), str(tmp_path / "arms.png"), str(tmp_path / "arms.pdf")
    )
    assert (tmp_path / "arms.png").stat().st_size > 10_000 and (tmp_path / "arms.pdf").exists()
