"""The paper's figures (Figs. 3-6): accuracy and loss against epoch, one curve per optimizer.

With several seeds a curve is the mean, with a shaded 95% confidence band. An optimizer keeps its
colour in every figure; learning rates differ by line style.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cnn_study.figure_names import FIGURES, pdf_key  # noqa: E402
from cnn_study.files import atomic_write  # noqa: E402
from cnn_study.metrics import WARMUP_PHASE  # noqa: E402
from cnn_study.model_specs import MODEL_SPECS  # noqa: E402
from cnn_study.summary_stats import mean_curves  # noqa: E402

OPTIMIZER_COLORS = {
    "sgd": "tab:blue",
    "adam": "tab:orange",
    "rmsprop": "tab:green",
    "sgd_momentum": "tab:purple",
    "adamw": "tab:red",
    "nadam": "tab:brown",
    "adagrad": "tab:pink",
}
LINE_STYLES = ["-", "--", ":", "-."]


def draw_panel(ax, epochs: pd.DataFrame, column: str, label: str) -> None:
    curves = mean_curves(epochs, column)
    learning_rates = sorted(curves["lr"].unique())
    # The paper's optimizers first, in its order, so legends read the same in every figure.
    order = {name: rank for rank, name in enumerate(OPTIMIZER_COLORS)}
    groups = sorted(curves.groupby(["optimizer", "lr"]), key=lambda g: (order.get(g[0][0], 99), g[0][1]))
    for (optimizer, lr), curve in groups:
        style = LINE_STYLES[learning_rates.index(lr) % len(LINE_STYLES)]
        name = optimizer if len(learning_rates) == 1 else f"{optimizer}, lr {lr:g}"
        n = int(curve["n"].max())
        color = OPTIMIZER_COLORS.get(optimizer)
        ax.plot(curve["epoch"], curve["mean"], style, color=color, label=f"{name} (n={n})" if n > 1 else name)
        if n > 1:
            ax.fill_between(curve["epoch"], curve["ci95_low"], curve["ci95_high"], color=color, alpha=0.2, linewidth=0)
    mark_warmup(ax, epochs)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if column.endswith("accuracy"):
        ax.set_ylim(-0.02, 1.02)
    ax.legend(title="optimizer", fontsize="small")


def warmup_epochs(epochs: pd.DataFrame) -> int:
    """The frozen warm-up's length when the runs switch to fine-tuning after it (0 when they never do)."""
    frozen = epochs.loc[epochs["phase"] == WARMUP_PHASE, "epoch"]
    if frozen.empty or (epochs["phase"] == WARMUP_PHASE).all():
        return 0
    return int(frozen.max())


def mark_warmup(ax, epochs: pd.DataFrame) -> None:
    warmup = warmup_epochs(epochs)
    if warmup:
        ax.axvline(warmup + 0.5, color="0.4", linestyle=":", linewidth=1, label=f"end of warm-up (epoch {warmup})")


def setup_text(epochs: pd.DataFrame) -> str:
    seeds = epochs.groupby(["optimizer", "lr"])["seed"].nunique().max()
    lrs = ", ".join(f"{lr:g}" for lr in sorted(epochs["lr"].unique()))
    return f"lr {lrs}, {seeds} seed{'s' if seeds > 1 else ''}"


def plot_model(epochs_path: str, model: str, outputs: dict[str, str]) -> None:
    """outputs: {'accuracy': png, 'accuracy_pdf': pdf, 'loss': ..., 'val_accuracy': ..., 'val_loss': ...}."""
    epochs = pd.read_csv(epochs_path)
    runs = epochs[epochs["model"] == model]
    if runs.empty:
        raise ValueError(f"results/metrics/epochs.csv has no rows for model {model}; rerun its training")
    title = MODEL_SPECS[model].display_name
    for name, (column, label) in FIGURES.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
        draw_panel(ax, runs, column, label)
        ax.set_title(f"{title}: {label} ({setup_text(runs)})")
        save(fig, outputs[name], outputs[pdf_key(name)])


def plot_overview(epochs_path: str, png: str, pdf: str) -> None:
    """All models side by side: one column per model, one row per panel."""
    epochs = pd.read_csv(epochs_path)
    models = [m for m in MODEL_SPECS if m in set(epochs["model"])]
    fig, axes = plt.subplots(
        len(FIGURES), len(models), figsize=(4.8 * len(models), 3.4 * len(FIGURES)), squeeze=False, layout="constrained"
    )
    for col, model in enumerate(models):
        runs = epochs[epochs["model"] == model]
        for row, (column, label) in enumerate(FIGURES.values()):
            draw_panel(axes[row][col], runs, column, label)
        axes[0][col].set_title(f"{MODEL_SPECS[model].display_name} ({setup_text(runs)})")
    save(fig, png, pdf)


def save(fig, png: str, pdf: str) -> None:
    for path in (png, pdf):
        with atomic_write(path) as partial:
            fig.savefig(partial, dpi=150)
    plt.close(fig)
