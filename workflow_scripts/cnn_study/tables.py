"""Markdown and LaTeX tables of a :func:`cnn_study.summary_stats.summarize_runs` summary.

Pure functions (DataFrame in, str out); plain string formatting, no ``tabulate``.

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

from cnn_study.model_specs import MODEL_SPECS

DISPLAY_NAMES = {
    **{name: spec.display_name for name, spec in MODEL_SPECS.items()},
    "sgd": "SGD",
    "adam": "Adam",
    "rmsprop": "RMSprop",
}

_ACC_COLS = [
    ("final_accuracy", "Final train acc (%)"),
    ("best_accuracy", "Best train acc (%)"),
    ("final_val_accuracy", "Final val acc (%)"),
    ("best_val_accuracy", "Best val acc (%)"),
]
_REQUIRED = [
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


def _rows(summary: pd.DataFrame, pm: str, dash: str):
    """Yield (model, [(cells, is_best), ...]) in model order (first appearance after sorting)."""
    missing = [c for c in _REQUIRED if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns: {', '.join(missing)}")
    s = summary.sort_values(["model", "optimizer", "lr"], kind="mergesort")
    for model, g in s.groupby("model", sort=False):
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
        yield model, rows


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


def summary_markdown(summary: pd.DataFrame) -> str:
    """One markdown table per model (``### <Model>`` heading), best optimizer row in bold."""
    if summary.empty:
        return "_No runs to summarise._\n"
    head = _headers(summary)
    out = []
    for model, rows in _rows(summary, " ± ", "—"):
        out += [
            f"### {_name(model)}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        ]
        for cells, best in rows:
            cells = [c.replace("|", "\\|") for c in cells]
            if best:
                cells = [f"**{c}**" for c in cells]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append(
        f"Accuracies in %, mean ± std over seeds when there are several; final = mean of the last "
        f"{_final_epochs(summary)} epochs (results.final_epochs). Epochs to "
        f"{_target_label(summary)}: first epoch whose training accuracy reaches it, mean "
        f"over the seeds that did (k/n: seeds that did). **Bold**: highest mean final "
        f"validation accuracy per model, when no other optimizer ties it."
    )
    return "\n".join(out + tuned_markdown(summary)) + "\n"


def tuned_markdown(summary: pd.DataFrame) -> list[str]:
    """The tuned view, when the grid has several learning rates: per model and optimizer, the lr with the best
    mean final validation accuracy (summary.csv's ``tuned`` rows), and what it reached."""
    if "tuned" not in summary.columns or summary["lr"].nunique() < 2:
        return []
    test = _has_test(summary)
    head = ["Model", "Optimizer", "Tuned LR", "Seeds", "Final val acc (%)", "Final train acc (%)"]
    head += ["Test acc (%) [95% CI]"] if test else []
    lines = [
        "",
        "### Tuned learning rates",
        "",
        "Per model and optimizer, the learning rate with the best mean final validation accuracy "
        "(the test split, where there is one, never chooses).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|",
    ]
    for _, r in summary[summary["tuned"].astype(bool)].iterrows():
        n = int(r["n"])
        cells = [
            _name(r["model"]),
            _name(r["optimizer"]),
            f"{float(r['lr']):g}",
            str(n),
            _mean_std(r["final_val_accuracy_mean"], r["final_val_accuracy_std"], n, 100.0, 1, " ± "),
            _mean_std(r["final_accuracy_mean"], r["final_accuracy_std"], n, 100.0, 1, " ± "),
        ]
        cells += [_test_cell(r, "—")] if test else []
        lines.append("| " + " | ".join(cells) + " |")
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


def summary_latex(summary: pd.DataFrame) -> str:
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
    for model, rows in [] if summary.empty else _rows(summary, " $\\pm$ ", "--"):
        if not first:
            lines.append("\\midrule")
        first = False
        lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{latex_escape(_name(model))}}}}} \\\\")
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
