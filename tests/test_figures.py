"""The figures mark where the frozen warm-up ends."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cnn_study.figures import draw_panel, warmup_epochs  # noqa: E402


def epochs(phases):
    return pd.DataFrame(
        dict(
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
