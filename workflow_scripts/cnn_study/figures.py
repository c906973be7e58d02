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
from cnn_study.model_specs import MODEL_SPECS  # noqa: E402
from cnn_study.optimizers import OPTIMIZERS  # noqa: E402
from cnn_study.schedule import warmup_length  # noqa: E402
from cnn_study.summary_stats import mean_ci, mean_curves  # noqa: E402

LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D"]


def draw_panel(ax, epochs: pd.DataFrame, column: str, label: str) -> None:
    curves = mean_curves(epochs, column)
    learning_rates = sorted(curves["lr"].unique())
    # The registry's order (the paper's optimizers first), so legends read the same in every figure.
    order = {name: rank for rank, name in enumerate(OPTIMIZERS)}
    groups = sorted(curves.groupby(["optimizer", "lr"]), key=lambda g: (order.get(g[0][0], 99), g[0][1]))
    for (optimizer, lr), curve in groups:
        style = LINE_STYLES[learning_rates.index(lr) % len(LINE_STYLES)]
        name = optimizer if len(learning_rates) == 1 else f"{optimizer}, lr {lr:g}"
        n = int(curve["n"].max())
        color = OPTIMIZERS[optimizer].color if optimizer in OPTIMIZERS else None
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
    """The frozen warm-up's length when the runs switch to training the base after it (0 when they never do)."""
    runs = epochs.sort_values("epoch").groupby(["optimizer", "lr", "seed"])
    return max((warmup_length(run["phase"].tolist()) for _, run in runs), default=0)


def mark_warmup(ax, epochs: pd.DataFrame) -> None:
    warmup = warmup_epochs(epochs)
    if warmup:
        ax.axvline(warmup + 0.5, color="0.4", linestyle=":", linewidth=1, label=f"end of warm-up (epoch {warmup})")


def setup_text(epochs: pd.DataFrame) -> str:
    seeds = epochs.groupby(["optimizer", "lr"])["seed"].nunique().max()
    lrs = ", ".join(f"{lr:g}" for lr in sorted(epochs["lr"].unique()))
    return f"lr {lrs}, {seeds} seed{'s' if seeds > 1 else ''}"


def _runs_of(epochs: pd.DataFrame, arm: str, model: str | None = None) -> pd.DataFrame:
    runs = epochs[(epochs["arm"] == arm) & ((epochs["model"] == model) if model else True)]
    if runs.empty:
        what = f"arm {arm}, model {model}" if model else f"arm {arm}"
        raise ValueError(f"results/metrics/epochs.csv has no rows for {what}; run the metrics stage again")
    return runs


def plot_model(epochs_path: str, arm: str, model: str, outputs: dict[str, str]) -> None:
    """One arm's model: outputs {'accuracy': png, 'accuracy_pdf': pdf, 'loss': ..., 'val_accuracy': ..., ...}."""
    runs = _runs_of(pd.read_csv(epochs_path), arm, model)
    title = MODEL_SPECS[model].display_name
    for name, (column, label) in FIGURES.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
        draw_panel(ax, runs, column, label)
        ax.set_title(f"{title}, arm {arm}: {label} ({setup_text(runs)})", fontsize="medium")
        save(fig, outputs[name], outputs[pdf_key(name)])


def plot_overview(epochs_path: str, arm: str, png: str, pdf: str) -> None:
    """One arm's models side by side: one column per model, one row per panel."""
    epochs = _runs_of(pd.read_csv(epochs_path), arm)
    models = [m for m in MODEL_SPECS if m in set(epochs["model"])]
    fig, axes = plt.subplots(
        len(FIGURES), len(models), figsize=(4.8 * len(models), 3.4 * len(FIGURES)), squeeze=False, layout="constrained"
    )
    for col, model in enumerate(models):
        runs = epochs[epochs["model"] == model]
        for row, (column, label) in enumerate(FIGURES.values()):
            draw_panel(axes[row][col], runs, column, label)
        axes[0][col].set_title(f"{MODEL_SPECS[model].display_name} ({setup_text(runs)})")
    fig.suptitle(f"arm {arm}")
    save(fig, png, pdf)


def arm_points(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (model, arm, optimizer, lr): mean, 95% CI (clipped to [0, 1]) and n of ``metric`` over seeds."""
    rows = []
    for (model, arm, optimizer, lr), group in runs.groupby(["model", "arm", "optimizer", "lr"], sort=False):
        mean, _, low, high, n = mean_ci(group[metric], bounds=(0.0, 1.0))
        rows.append(dict(model=model, arm=arm, optimizer=optimizer, lr=lr, mean=mean, low=low, high=high, n=n))
    return pd.DataFrame(rows, columns=["model", "arm", "optimizer", "lr", "mean", "low", "high", "n"])


def plot_arms(runs_path: str, arms_path: str, png: str, pdf: str) -> None:
    """The arms compared: per model, each arm's final accuracy per optimizer (and learning rate) with its 95% CI.
    Test accuracy where every run was evaluated on the held-out split, else final validation accuracy."""
    runs = pd.read_csv(runs_path)
    arms = list(pd.read_csv(arms_path)["arm"])
    tested = "test_accuracy" in runs.columns and runs["test_accuracy"].notna().all()
    metric, label = (
        ("test_accuracy", "test accuracy") if tested else ("final_val_accuracy", "final validation accuracy")
    )
    points = arm_points(runs, metric)
    models = [m for m in MODEL_SPECS if m in set(points["model"])]
    fig, axes = plt.subplots(
        1,
        len(models),
        figsize=(max(4.8, 1.2 * len(arms) + 2.5) * len(models), 4.4),
        squeeze=False,
        layout="constrained",
    )
    series = sorted(
        points.groupby(["optimizer", "lr"]).groups,
        key=lambda key: (list(OPTIMIZERS).index(key[0]) if key[0] in OPTIMIZERS else 99, key[1]),
    )
    lrs = sorted(points["lr"].unique())
    width = 0.8 / max(1, len(series))
    for ax, model in zip(axes[0], models, strict=True):
        shown = points[points["model"] == model]
        for index, (optimizer, lr) in enumerate(series):
            line = shown[(shown["optimizer"] == optimizer) & (shown["lr"] == lr)]
            x = [arms.index(arm) - 0.4 + width * (index + 0.5) for arm in line["arm"]]
            error = [line["mean"] - line["low"].fillna(line["mean"]), line["high"].fillna(line["mean"]) - line["mean"]]
            name = optimizer if len(lrs) == 1 else f"{optimizer}, lr {lr:g}"
            color = OPTIMIZERS[optimizer].color if optimizer in OPTIMIZERS else None
            marker = MARKERS[lrs.index(lr) % len(MARKERS)]
            ax.errorbar(x, line["mean"], yerr=error, fmt=marker, color=color, capsize=3, label=name)
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(f"{MODEL_SPECS[model].display_name}: {label} per arm (mean, 95% CI over seeds)", fontsize="medium")
        ax.legend(title="optimizer", fontsize="small")
    save(fig, png, pdf)


def save(fig, png: str, pdf: str) -> None:
    for path in (png, pdf):
        with atomic_write(path) as partial:
            fig.savefig(partial, dpi=150)
    plt.close(fig)
