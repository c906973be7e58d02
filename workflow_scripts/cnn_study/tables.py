"""Markdown and LaTeX tables of a :func:`cnn_study.summary_stats.summarize_runs` summary.

Pure functions (DataFrame in, str out); markdown rows through cnn_study.markdown, LaTeX through latex_escape.

Per model, one row per (optimizer, lr) with: seeds, final & best training and validation
accuracy (percent, 1 decimal, ``mean ± std`` when n > 1; final = mean of the last k epochs), final
validation loss (3 decimals), test accuracy with its 95% CI where the runs were evaluated on a test split,
epochs to the target accuracy (mean over the seeds that reached it, ``k/n`` when not all did,
an em dash when none did), and training seconds (mean over seeds).  The row of the best
optimizer per model (highest ``final_val_accuracy_mean``) is bold, only when it is the only one that high.
"""

from __future__ import annotations

import math

import pandas as pd

from cnn_study import markdown
from cnn_study.model_specs import MODEL_SPECS
from cnn_study.optimizers import OPTIMIZERS

DISPLAY_NAMES = {
    **{name: spec.display_name for name, spec in MODEL_SPECS.items()},
    **{name: spec.display_name for name, spec in OPTIMIZERS.items()},
}

_ACC_COLS = [
    ("final_accuracy", "Final train acc (%)"),
    ("best_accuracy", "Best train acc (%)"),
    ("final_val_accuracy", "Final val acc (%)"),
    ("best_val_accuracy", "Best val acc (%)"),
]
_REQUIRED = [
    "arm",
    "model",
    "optimizer",
    "lr",
    "n",
    "final_val_loss_mean",
    "final_val_loss_std",
    "epochs_to_target",
    "epochs_to_target_reached",
    "total_train_seconds_mean",
] + [f"{c}_{s}" for c, _ in _ACC_COLS for s in ("mean", "std")]


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _name(x) -> str:
    return DISPLAY_NAMES.get(str(x).lower(), str(x))


def _mean_std(mean, std, n, scale: float, digits: int, pm: str) -> str:
    if _nan(mean):
        return "—"
    s = f"{mean * scale:.{digits}f}"
    if n > 1 and not _nan(std):
        s += f"{pm}{std * scale:.{digits}f}"
    return s


def _ett(row, dash: str) -> str:
    if _nan(row["epochs_to_target"]):
        return dash
    s = f"{row['epochs_to_target']:.1f}"
    if int(row["epochs_to_target_reached"]) < int(row["n"]):
        s += f" ({int(row['epochs_to_target_reached'])}/{int(row['n'])})"
    return s


def _target_label(summary: pd.DataFrame) -> str:
    if "target_accuracy" in summary.columns:
        t = summary["target_accuracy"].dropna().unique()
        if len(t) == 1:
            return f"{100 * t[0]:g}%"
    return "target"


def _rows(summary: pd.DataFrame, pm: str, dash: str, arm_order: list[str] | None = None):
    """Yield (arm, model, [(cells, is_best), ...]): arms in the study's order (``arm_order``, else as the summary
    lists them), models and optimizers in the registries' order."""
    missing = [c for c in _REQUIRED if c not in summary.columns]
    if missing:
        raise ValueError(f"summary.csv lacks columns: {', '.join(missing)}; run the metrics stage again")
    ranks = {
        "arm": {arm: rank for rank, arm in enumerate(arm_order or dict.fromkeys(summary["arm"]))},
        "model": {model: rank for rank, model in enumerate(MODEL_SPECS)},
        "optimizer": {optimizer: rank for rank, optimizer in enumerate(OPTIMIZERS)},
    }
    order = summary.assign(**{f"{key}_rank": summary[key].map(rank).fillna(len(rank)) for key, rank in ranks.items()})
    s = order.sort_values(["arm_rank", "model_rank", "optimizer_rank", "optimizer", "lr"], kind="mergesort")
    for (arm, model), g in s.groupby(["arm", "model"], sort=False):
        best = g["final_val_accuracy_mean"].max()
        strict = (g["final_val_accuracy_mean"] == best).sum() == 1  # a tie has no winner: nothing bold
        rows = []
        for _, r in g.iterrows():
            n = int(r["n"])
            cells = [_name(r["optimizer"]), f"{float(r['lr']):g}", str(n)]
            cells += [_mean_std(r[f"{c}_mean"], r[f"{c}_std"], n, 100.0, 1, pm) for c, _ in _ACC_COLS]
            cells.append(_mean_std(r["final_val_loss_mean"], r["final_val_loss_std"], n, 1.0, 3, pm))
            if _has_test(summary):
                cells.append(_test_cell(r, dash))
            cells.append(_ett(r, dash))
            sec = r["total_train_seconds_mean"]
            cells.append(dash if _nan(sec) else f"{sec:.0f}")
            is_best = strict and not _nan(best) and r["final_val_accuracy_mean"] == best
            rows.append((cells, is_best))
        yield arm, model, rows


def _has_test(summary: pd.DataFrame) -> bool:
    return "test_accuracy_mean" in summary.columns and summary["test_accuracy_mean"].notna().any()


def _test_cell(row, dash: str) -> str:
    """Test accuracy in %, with its 95% CI (over seeds; a single run's Wilson interval)."""
    if _nan(row["test_accuracy_mean"]):
        return dash
    cell = f"{100 * row['test_accuracy_mean']:.1f}"
    if not _nan(row["test_accuracy_ci95_low"]):
        cell += f" [{100 * row['test_accuracy_ci95_low']:.1f}, {100 * row['test_accuracy_ci95_high']:.1f}]"
    return cell


def _final_epochs(summary: pd.DataFrame) -> str:
    return f"{int(summary['final_epochs'].iloc[0])}" if "final_epochs" in summary.columns else "k"


def _headers(summary: pd.DataFrame) -> list[str]:
    test = ["Test acc (%) [95% CI]"] if _has_test(summary) else []
    return (
        ["Optimizer", "LR", "Seeds"]
        + [h for _, h in _ACC_COLS]
        + ["Final val loss"]
        + test
        + [f"Epochs to {_target_label(summary)}", "Train time (s)"]
    )


def arm_heading(arm: str, arms: pd.DataFrame | None) -> str:
    """``## Arm no_augmentation: training.augmentation.enabled=false`` (what it changes against the reference)."""
    if arms is None or arm not in set(arms["arm"]):
        return f"## Arm {arm}"
    row = arms[arms["arm"] == arm].iloc[0]
    if bool(row["reference"]):
        return f"## Arm {arm} (the reference arm)"
    changes = row["described"] if isinstance(row["described"], str) and row["described"] else "no setting changed"
    return f"## Arm {arm}: {changes}"


def summary_markdown(summary: pd.DataFrame, arms: pd.DataFrame | None = None) -> str:
    """Per arm (``## Arm <name>``, with what it changes from ``arms.csv``), one markdown table per model
    (``### <Model>``), best optimizer row in bold."""
    if summary.empty:
        return "_No runs to summarise._\n"
    head = _headers(summary)
    out, current_arm = [], None
    for arm, model, rows in _rows(summary, " ± ", "—", None if arms is None else list(arms["arm"])):
        if arm != current_arm:
            out += [arm_heading(arm, arms), ""]
            current_arm = arm
        out += [
            f"### {_name(model)}",
            "",
            markdown.row(head),
            markdown.rule(len(head), right_aligned_from=1),
        ]
        for cells, best in rows:
            out.append(markdown.row([f"**{c}**" for c in cells] if best else cells))
        out.append("")
    out.append(
        f"Accuracies in %, mean ± std over seeds when there are several; final = mean of the last "
        f"{_final_epochs(summary)} epochs (results.final_epochs). Epochs to "
        f"{_target_label(summary)}: first epoch whose training accuracy reaches it, mean "
        f"over the seeds that did (k/n: seeds that did). **Bold**: highest mean final "
        f"validation accuracy per arm and model, when no other optimizer ties it."
    )
    return "\n".join(out + tuned_markdown(summary)) + "\n"


def tuned_markdown(summary: pd.DataFrame) -> list[str]:
    """The tuned view, for the arms whose grid has several learning rates: per arm, model and optimizer, the lr with
    the best mean final validation accuracy (summary.csv's ``tuned`` rows), and what it reached."""
    if "tuned" not in summary.columns or summary.groupby("arm")["lr"].nunique().max() < 2:
        return []
    test = _has_test(summary)
    head = ["Arm", "Model", "Optimizer", "Tuned LR", "Seeds", "Final val acc (%)", "Final train acc (%)"]
    head += ["Test acc (%) [95% CI]"] if test else []
    lines = [
        "",
        "### Tuned learning rates",
        "",
        "Per model and optimizer, the learning rate with the best mean final validation accuracy "
        "(the test split, where there is one, never chooses).",
        "",
        markdown.row(head),
        markdown.rule(len(head), right_aligned_from=3),
    ]
    swept = summary.groupby("arm")["lr"].transform("nunique") > 1  # arms with one lr have nothing to tune
    for _, r in summary[summary["tuned"].astype(bool) & swept].iterrows():
        n = int(r["n"])
        cells = [
            str(r["arm"]),
            _name(r["model"]),
            _name(r["optimizer"]),
            f"{float(r['lr']):g}",
            str(n),
            _mean_std(r["final_val_accuracy_mean"], r["final_val_accuracy_std"], n, 100.0, 1, " ± "),
            _mean_std(r["final_accuracy_mean"], r["final_accuracy_std"], n, 100.0, 1, " ± "),
        ]
        cells += [_test_cell(r, "—")] if test else []
        lines.append(markdown.row(cells))
    return lines


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (underscores included)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def summary_latex(summary: pd.DataFrame, arms: pd.DataFrame | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), one block per model headed by
    an italic model row; best optimizer row per model in ``\\textbf{}``."""
    head = _headers(summary)
    ncol = len(head)
    lines = [
        "% requires \\usepackage{booktabs}",
        "\\begin{tabular}{l" + "r" * (ncol - 1) + "}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in head) + " \\\\",
        "\\midrule",
    ]
    if summary.empty:
        lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{No runs}} \\\\")
    first = True
    arm_order = None if arms is None else list(arms["arm"])
    for arm, model, rows in [] if summary.empty else _rows(summary, " $\\pm$ ", "--", arm_order):
        if not first:
            lines.append("\\midrule")
        first = False
        label = _name(model) if summary["arm"].nunique() == 1 else f"{arm}: {_name(model)}"
        lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{latex_escape(label)}}}}} \\\\")
        for cells, best in rows:
            cells = [_escape_pm(c) for c in cells]
            if best:
                cells = [f"\\textbf{{{c}}}" for c in cells]
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _escape_pm(cell: str) -> str:
    """Escape a cell, keeping its `` $\\pm$ `` separator (if any) intact."""
    return " $\\pm$ ".join(latex_escape(p.strip()) for p in cell.split(" $\\pm$ "))
